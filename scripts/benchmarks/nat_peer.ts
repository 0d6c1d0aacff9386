/**
 * One end of the stream part of `scripts/bench-nat` (`nat.ts`), run inside a NAT lab namespace
 * (`ip netns exec mpl-a deno run … nat_peer.ts --role send …`). It talks JSON lines with the
 * bench, as `tests/natlab/punch_peer.ts` does with its test:
 *
 * 1. opens two UDP sockets on 0.0.0.0:0: a mailpeer `UdpTransport` listener and a raw socket;
 *    learns the NAT's mapping of each by STUN over that very socket; writes
 *    `{"key", "candidates", "raw"}` (a `host` and a `srflx` endpoint of each);
 * 2. reads the other end's line from stdin;
 * 3. raw UDP: both ends send one-byte hole datagrams to each other's raw endpoints every 50 ms
 *    until the path is open; then the sender sends `--mib` MiB in 1,200-byte datagrams as fast
 *    as `send()` returns, nothing sent again, and an end marker until the receiver answers it
 *    with what it counted; writes `{"raw": {…}}`;
 * 4. the mailpeer stream: both punch from their listener's socket (`listener.punch()`, window
 *    `--window` ms); writes `{"punch": {…}}`; the sender sends `--mib` MiB in 1 MiB messages over
 *    the reliable stream, the receiver answers "done" once it has every byte; writes
 *    `{"stream": {…}}`.
 *
 * Times that span both processes are wall-clock milliseconds (`performance.timeOrigin +
 * performance.now()`): both ends run on the same machine, so they share that clock.
 *
 * Arguments: `--stun HOST:PORT --name NAME --role send|receive --mib N [--window MS]`.
 *
 * @module
 */
import { PeerError } from "../../src/errors.ts";
import { fromBase64, toBase64 } from "../../src/message/base64.ts";
import { generateEd25519 } from "../../src/message/keys.ts";
import { autoAesGcmEngine } from "../../src/peer/aes_gcm.ts";
import type { ReliableLink } from "../../src/peer/reliable_link.ts";
import type { PunchCandidate } from "../../src/peer/types.ts";
import { DEFAULT_MAX_DATAGRAM_BYTES, UdpTransport } from "../../src/peer/udp_transport.ts";
import { StunAddress, type StunSocket } from "../../src/terminal/stun.ts";
import { isStunMessage } from "../../src/net/stun_message.ts";
import { arg, num } from "./args.ts";

const MiB = 1024 * 1024;
const NAME = arg("name") ?? "peer";
const ROLE = arg("role");
if (ROLE !== "send" && ROLE !== "receive") throw new TypeError("--role takes send or receive");
const TOTAL = num("mib", 32, 1) * MiB;
const WINDOW_MS = num("window", 10_000, 1);
const STUN = arg("stun");
if (!STUN) throw new TypeError("--stun HOST:PORT is required");

/** Raw datagram kinds (first byte). */
const HOLE = 1, DATA = 2, END = 3, REPORT = 4;
/** Retransmission interval of the hole and end datagrams, ms. */
const RESEND_MS = 50;
/** The sender gives up on the receiver's report after this long, ms. */
const REPORT_TIMEOUT_MS = 5_000;
/** Either end gives up on raw UDP when no hole opened (or no data came) in this long, ms. */
const HOLE_TIMEOUT_MS = 15_000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const wall = () => performance.timeOrigin + performance.now();
const say = (value: unknown) => {
  const bytes = encoder.encode(JSON.stringify(value) + "\n");
  for (let at = 0; at < bytes.length;) at += Deno.stdout.writeSync(bytes.subarray(at));
};

async function readLine(): Promise<string> {
  let text = "";
  const buf = new Uint8Array(4096);
  while (!text.includes("\n")) {
    const n = await Deno.stdin.read(buf);
    if (n === null) break;
    text += decoder.decode(buf.subarray(0, n));
  }
  return text.split("\n")[0]!;
}

/** The first non-loopback IPv4 address of this namespace: the `host` candidate. */
function hostAddress(): string {
  return Deno.networkInterfaces().find((i) => i.family === "IPv4" && !i.address.startsWith("127."))
    ?.address ?? "127.0.0.1";
}

interface Addr {
  address: string;
  port: number;
}

/** A raw UDP socket whose STUN answers go to STUN and everything else to `onDatagram`. */
class RawSocket implements StunSocket {
  readonly #conn = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port: 0 });
  readonly #stun = new Set<(bytes: Uint8Array) => void>();
  onDatagram: (bytes: Uint8Array, from: Addr) => void = () => {};
  readonly reading: Promise<void>;

  constructor() {
    this.reading = (async () => {
      for (;;) {
        let got: [Uint8Array, Deno.Addr];
        try {
          got = await this.#conn.receive();
        } catch {
          return; // closed
        }
        const [bytes, addr] = got;
        if (isStunMessage(bytes)) { for (const listener of this.#stun) listener(bytes); }
        else {
          const { hostname, port } = addr as Deno.NetAddr;
          this.onDatagram(bytes, { address: hostname, port });
        }
      }
    })();
  }

  get localPort(): number {
    return (this.#conn.addr as Deno.NetAddr).port;
  }

  async send(bytes: Uint8Array, host: string, port: number): Promise<void> {
    await this.#conn.send(bytes, { transport: "udp", hostname: host, port });
  }

  subscribe(listener: (bytes: Uint8Array) => void): () => void {
    this.#stun.add(listener);
    return () => this.#stun.delete(listener);
  }

  close(): void {
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
  }
}

/** Calls `fn` now and every `ms` until the returned function is called. */
function every(ms: number, fn: () => Promise<void>): () => void {
  fn().catch(() => {});
  const id = setInterval(() => fn().catch(() => {}), ms);
  return () => clearInterval(id);
}

interface RawReport {
  bytes: number;
  datagrams: number;
  firstAt: number;
  lastAt: number;
}

/** Rejects with `what` after `ms` unless `promise` settles first. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} in ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, limit]);
  } finally {
    clearTimeout(timer);
  }
}

/** Raw UDP through the NATs: open the hole, then blast (sender) or count (receiver). */
async function raw(socket: RawSocket, peer: Addr[]): Promise<Record<string, unknown>> {
  const heard = Promise.withResolvers<Addr>(); // any datagram of the other end: the hole is open
  const data = Promise.withResolvers<void>(); // the receiver's first datagram of data
  const reported = Promise.withResolvers<RawReport>();
  const counted: RawReport = { bytes: 0, datagrams: 0, firstAt: 0, lastAt: 0 };
  socket.onDatagram = (bytes, from) => {
    heard.resolve(from);
    const kind = bytes[0];
    if (kind === DATA) {
      if (counted.datagrams === 0) counted.firstAt = wall();
      counted.lastAt = wall();
      counted.bytes += bytes.length;
      counted.datagrams++;
      data.resolve();
    } else if (kind === END) {
      // Answered every time: a report lost on the way is asked for again.
      const report = encoder.encode(JSON.stringify(counted));
      const reply = new Uint8Array(1 + report.length);
      reply[0] = REPORT;
      reply.set(report, 1);
      socket.send(reply, from.address, from.port).catch(() => {});
      data.resolve();
      reported.resolve({ ...counted });
    } else if (kind === REPORT) {
      reported.resolve(JSON.parse(decoder.decode(bytes.subarray(1))));
    }
  };
  const hole = Uint8Array.of(HOLE);
  const stopHole = every(RESEND_MS, async () => {
    for (const to of peer) await socket.send(hole, to.address, to.port);
  });
  if (ROLE === "receive") {
    // Holes go on until data comes: the sender starts when one of them reached it.
    try {
      await within(data.promise, HOLE_TIMEOUT_MS, "no raw datagram of data came");
    } finally {
      stopHole();
    }
    return { role: "receiver", ...await reported.promise };
  }
  let to: Addr;
  try {
    to = await within(heard.promise, HOLE_TIMEOUT_MS, "no raw datagram came through the NATs");
  } finally {
    stopHole();
  }
  const datagram = new Uint8Array(DEFAULT_MAX_DATAGRAM_BYTES);
  crypto.getRandomValues(datagram);
  datagram[0] = DATA;
  const startedAt = wall();
  let sent = 0, datagrams = 0;
  for (; sent < TOTAL; sent += datagram.length, datagrams++) {
    await socket.send(datagram, to.address, to.port);
  }
  const sentAt = wall();
  const end = Uint8Array.of(END);
  const stopEnd = every(RESEND_MS, () => socket.send(end, to.address, to.port));
  try {
    const report = await within(
      reported.promise,
      REPORT_TIMEOUT_MS,
      "the receiver did not report what it counted",
    );
    return {
      role: "sender",
      sentBytes: sent,
      sentDatagrams: datagrams,
      startedAt,
      sentAt,
      seen: to,
      received: report,
    };
  } finally {
    stopEnd();
  }
}

/** The mailpeer reliable stream over a punched link. */
async function stream(
  listener: Awaited<ReturnType<UdpTransport["listen"]>>,
  peer: { key: string; candidates: PunchCandidate[] },
): Promise<void> {
  const t0 = performance.now();
  let result;
  try {
    result = await listener.punch!({
      peerKey: fromBase64(peer.key),
      candidates: peer.candidates,
      windowMs: WINDOW_MS,
    });
  } catch (err) {
    say({
      punch: {
        connected: false,
        code: err instanceof PeerError ? err.code : "?",
        message: (err as Error).message,
        ms: Math.round(performance.now() - t0),
      },
    });
    return;
  }
  const { link } = result;
  say({
    punch: {
      connected: true,
      path: result.path,
      role: result.role,
      ms: Math.round(performance.now() - t0),
      remote: result.remote,
    },
  });
  if (ROLE === "send") {
    const message = new Uint8Array(MiB);
    crypto.getRandomValues(message.subarray(0, 65536));
    const startedAt = wall();
    const done = link.receive(); // the receiver says when it has every byte
    for (let sent = 0; sent < TOTAL; sent += MiB) {
      await link.send(message.subarray(0, Math.min(MiB, TOTAL - sent)));
    }
    const ack = await done;
    const doneAt = wall();
    const stats = (link as Partial<ReliableLink>).stats;
    say({
      stream: {
        role: "sender",
        bytes: TOTAL,
        startedAt,
        doneAt,
        ack: ack ? decoder.decode(ack) : null,
        ...(stats ? { stats } : {}),
      },
    });
  } else {
    const into = new Uint8Array(256 * 1024);
    let got = 0, firstAt = 0;
    while (got < TOTAL) {
      const m = await link.receive({ into });
      if (!m) break;
      if (got === 0) firstAt = wall();
      got += m.length;
    }
    const lastAt = wall();
    await link.send(encoder.encode("done"));
    say({ stream: { role: "receiver", bytes: got, firstAt, lastAt } });
  }
  await link.close();
}

const keys = await generateEd25519();
const identity = { userId: NAME, publicKey: keys.publicKey, privateKey: keys.privateKey };
const udp = new UdpTransport();
const listener = await udp.listen({ address: "0.0.0.0", port: 0 }, { identity });
const socket = new RawSocket();
try {
  const [mapped, rawMapped] = await Promise.all([
    new StunAddress([STUN], { socket: listener.stunSocket() }).query(),
    new StunAddress([STUN], { socket }).query(),
  ]);
  const here = hostAddress();
  const endpoints = (port: number, found: Addr) =>
    found.address === here && found.port === port
      ? [{ address: here, port, kind: "host" }]
      : [{ address: here, port, kind: "host" }, { ...found, kind: "srflx" }];
  const candidates: PunchCandidate[] = endpoints(listener.endpoint.port, mapped).map((e) => ({
    transport: "udp",
    address: e.address,
    port: e.port,
    kind: e.kind as "host" | "srflx",
  }));
  const rawEndpoints = endpoints(socket.localPort, rawMapped)
    .map(({ address, port }) => ({ address, port }));
  say({
    key: toBase64(keys.publicKey),
    candidates,
    raw: rawEndpoints,
    aes: autoAesGcmEngine(),
  });
  const peer = JSON.parse(await readLine()) as {
    key: string;
    candidates: PunchCandidate[];
    raw: Addr[];
  };
  say({
    raw: await raw(socket, peer.raw).catch((err) => ({ error: (err as Error).message })),
  });
  await stream(listener, peer);
} finally {
  socket.close();
  await socket.reading;
  await listener.close();
}
