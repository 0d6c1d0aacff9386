/**
 * One end of the peer benchmark's two-process measurement (driven by `peer_two_process.ts`):
 * a receiver or a sender, over raw TCP or a mailpeer TCP session. Each end is its own process,
 * as two peers on two hosts are, so each pays only its own side's CPU work (seal or open).
 *
 * A transfer starts with an 8-byte big-endian byte count (raw: the first 8 bytes of the stream;
 * session: a first 8-byte message), then that many bytes; the receiver answers with 1 byte once
 * it holds them all. The sender times from its first write to that byte: one clock.
 *
 * - `receive --kind raw|session`: listens on 127.0.0.1 port 0 (raw: reads into one 256 KiB
 *   buffer; session: `receive({ into })` with one 256 KiB buffer), prints
 *   `{"event":"listening","port":P}`, then takes one connection at a time and prints
 *   `{"event":"received","bytes":N,"ms":…,"cpu_ms":…}` per transfer (ms and CPU from the first
 *   byte to the ack). It stops when its stdin closes.
 * - `send --kind raw|session --port P [--message-bytes B]`: per line `{"mib":N}` on stdin,
 *   connects (handshake untimed), sends N MiB (raw: 256 KiB writes; session: messages of B
 *   bytes, default `MAX_FRAGMENT_BYTES`), waits for the ack, closes, prints
 *   `{"event":"sent","bytes":N,"ms":…,"cpu_ms":…}`. It stops when its stdin closes.
 *
 * The session's AES-GCM is libIPSec_MB or OpenSSL when the process may load them (`--allow-ffi`,
 * or the CLI's `--allow-ffi=<library paths>`), else WebCrypto (`src/peer/aes_gcm.ts`); each report
 * names the one the link sealed with (`PeerLink.cipher`, as the CLI's `connected` event).
 *
 * @module
 */
import process from "node:process";
import { TcpTransport } from "../../src/peer/tcp_transport.ts";
import { MAX_FRAGMENT_BYTES } from "../../src/peer/session_link.ts";
import { autoAesGcmEngine } from "../../src/peer/aes_gcm.ts";
import { generateEd25519 } from "../../src/message/keys.ts";
import type { PeerIdentity, PeerLink } from "../../src/peer/types.ts";

const MiB = 1024 * 1024;
const BLOCK = 256 * 1024;

/** What one end reports per transfer (one JSON line on stdout). */
export interface EndReport {
  event: "listening" | "received" | "sent";
  port?: number;
  bytes?: number;
  /** Wall ms: sender, first write to ack; receiver, first byte to ack sent. */
  ms?: number;
  /** CPU ms (user + system, all threads) of this process over the same span. */
  cpu_ms?: number;
  /** The session's AES-GCM implementation ("raw" for raw TCP). */
  aes_gcm?: string;
}

function flag(name: string): string | undefined {
  const at = Deno.args.indexOf(`--${name}`);
  return at >= 0 ? Deno.args[at + 1] : undefined;
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

const encoder = new TextEncoder();
async function report(r: EndReport): Promise<void> {
  const line = encoder.encode(JSON.stringify(r) + "\n");
  for (let at = 0; at < line.length;) at += await Deno.stdout.write(line.subarray(at));
}

async function identity(userId: string): Promise<PeerIdentity> {
  const keys = await generateEd25519();
  return { userId, publicKey: keys.publicKey, privateKey: keys.privateKey };
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}

async function readExactly(conn: Deno.Conn, into: Uint8Array): Promise<boolean> {
  for (let at = 0; at < into.length;) {
    const n = await conn.read(into.subarray(at));
    if (n === null) return false;
    at += n;
  }
  return true;
}

function header(bytes: number): Uint8Array {
  const h = new Uint8Array(8);
  new DataView(h.buffer).setBigUint64(0, BigInt(bytes));
  return h;
}

const headerValue = (h: Uint8Array) =>
  Number(new DataView(h.buffer, h.byteOffset, 8).getBigUint64(0));

/** Receives transfers on one raw TCP connection until the sender closes it. */
async function receiveRaw(conn: Deno.TcpConn): Promise<void> {
  const buf = new Uint8Array(BLOCK);
  const head = new Uint8Array(8);
  const ack = new Uint8Array(1);
  while (await readExactly(conn, head)) {
    const started = performance.now();
    const cpu = cpuMs();
    const total = headerValue(head);
    let got = 0;
    while (got < total) {
      const n = await conn.read(buf.subarray(0, Math.min(buf.length, total - got)));
      if (n === null) throw new Error(`raw TCP: the sender closed after ${got} of ${total} bytes`);
      got += n;
    }
    await writeAll(conn, ack);
    const ms = performance.now() - started;
    await report({ event: "received", bytes: got, ms, cpu_ms: cpuMs() - cpu, aes_gcm: "raw" });
  }
}

/**
 * Receives transfers on one session link until the sender closes it. Like raw TCP's reader, it
 * reuses one 256 KiB buffer (`receive({ into })`: the session opens each message straight into
 * it; a longer message, from `--message-bytes` above 256 KiB, comes in a new array instead).
 */
async function receiveSession(link: PeerLink, aes: string): Promise<void> {
  const into = new Uint8Array(BLOCK);
  for (;;) {
    const head = await link.receive();
    if (head === null) return;
    const started = performance.now();
    const cpu = cpuMs();
    const total = headerValue(head);
    let got = 0;
    while (got < total) {
      const message = await link.receive({ into });
      if (message === null) {
        throw new Error(`session: the sender closed after ${got} of ${total} bytes`);
      }
      got += message.length;
    }
    await link.send(new Uint8Array(1));
    const ms = performance.now() - started;
    await report({ event: "received", bytes: got, ms, cpu_ms: cpuMs() - cpu, aes_gcm: aes });
  }
}

async function receiver(kind: string, stopped: Promise<void>): Promise<void> {
  if (kind === "raw") {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    stopped.then(() => listener.close());
    await report({ event: "listening", port: listener.addr.port });
    for await (const conn of listener) {
      try {
        await receiveRaw(conn);
      } finally {
        conn.close();
      }
    }
    return;
  }
  const aes = autoAesGcmEngine();
  const listener = await new TcpTransport().listen({ address: "127.0.0.1", port: 0 }, {
    identity: await identity("bob"),
  });
  let open = true;
  stopped.then(() => {
    open = false;
    return listener.close();
  });
  await report({ event: "listening", port: listener.endpoint.port });
  while (open) {
    let link: PeerLink;
    try {
      link = await listener.accept();
    } catch (err) {
      if (!open) return;
      throw err;
    }
    try {
      await receiveSession(link, link.cipher ?? aes);
    } finally {
      await link.close();
    }
  }
}

/** Lines of stdin, one transfer request each, until stdin closes. */
async function* requests(): AsyncGenerator<{ mib: number }> {
  let buf = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line) yield JSON.parse(line);
    }
  }
}

async function sendRaw(port: number, total: number, payload: Uint8Array): Promise<EndReport> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  try {
    const ack = new Uint8Array(1);
    const started = performance.now();
    const cpu = cpuMs();
    await writeAll(conn, header(total));
    for (let sent = 0; sent < total; sent += BLOCK) {
      await writeAll(conn, payload.subarray(0, Math.min(BLOCK, total - sent)));
    }
    if (!(await readExactly(conn, ack))) throw new Error("raw TCP: no ack from the receiver");
    const ms = performance.now() - started;
    return { event: "sent", bytes: total, ms, cpu_ms: cpuMs() - cpu, aes_gcm: "raw" };
  } finally {
    conn.close();
  }
}

async function sendSession(
  link: PeerLink,
  total: number,
  message: Uint8Array,
  aes: string,
): Promise<EndReport> {
  const started = performance.now();
  const cpu = cpuMs();
  await link.send(header(total));
  for (let sent = 0; sent < total; sent += message.length) {
    await link.send(message.subarray(0, Math.min(message.length, total - sent)));
  }
  if ((await link.receive()) === null) throw new Error("session: no ack from the receiver");
  const ms = performance.now() - started;
  return { event: "sent", bytes: total, ms, cpu_ms: cpuMs() - cpu, aes_gcm: aes };
}

async function sender(kind: string, port: number, messageBytes: number): Promise<void> {
  const payload = new Uint8Array(Math.max(BLOCK, messageBytes));
  for (let at = 0; at < payload.length; at += 65536) {
    crypto.getRandomValues(payload.subarray(at, Math.min(payload.length, at + 65536)));
  }
  const tcp = new TcpTransport();
  const alice = kind === "raw" ? null : await identity("alice");
  const aes = kind === "raw" ? "raw" : autoAesGcmEngine();
  for await (const { mib } of requests()) {
    const total = Math.round(mib * MiB);
    if (alice === null) {
      await report(await sendRaw(port, total, payload));
      continue;
    }
    const link = await tcp.connect({ transport: "tcp", address: "127.0.0.1", port }, {
      identity: alice,
    });
    try {
      const cipher = link.cipher ?? aes;
      await report(await sendSession(link, total, payload.subarray(0, messageBytes), cipher));
    } finally {
      await link.close();
    }
  }
}

if (import.meta.main) {
  const [role] = Deno.args;
  const kind = flag("kind") ?? "session";
  if (kind !== "raw" && kind !== "session") throw new TypeError("--kind is raw or session");
  if (role === "receive") {
    // stdin closing (the driver ending or dying) stops the receiver
    const stopped = (async () => {
      for await (const _ of Deno.stdin.readable) { /* drain */ }
    })();
    await receiver(kind, stopped);
  } else if (role === "send") {
    const port = Number(flag("port"));
    if (!Number.isInteger(port) || port <= 0) throw new TypeError("send needs --port");
    const messageBytes = Number(flag("message-bytes") ?? MAX_FRAGMENT_BYTES);
    await sender(kind, port, messageBytes);
  } else {
    throw new TypeError("usage: peer_end.ts receive|send --kind raw|session [--port P]");
  }
}
