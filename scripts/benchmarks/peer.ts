/**
 * Peer benchmark: raw loopback TCP throughput, the same bulk over a mailpeer TCP session,
 * handshake times over TCP (and UDP when `src/peer/udp_transport.ts` exists), and the cost of
 * the session's building blocks (AES-GCM per frame, frame encoding) to explain the gap, and the
 * AES-256-GCM ceiling: the best session/raw ratio that per-byte encryption allows here.
 *
 * Sessions run first with the fastest AES-GCM the process may load (libIPSec_MB or OpenSSL, when
 * `--allow-ffi` was given, as scripts/bench-peer does), then, after the ffi permission is
 * revoked, again (each row names the cipher its links sealed with).
 *
 * Those figures run both ends in this process. The `two_process` figures run the sender and the
 * receiver in two processes (`peer_two_process.ts`, needs `--allow-run` for this Deno), as two
 * peers on two hosts: raw TCP, sessions with exactly the CLI's permissions ("CLI default", which
 * names the cipher it got) and with WebCrypto, interleaved. The `anchors` run js-libp2p and
 * hyperdht between two Node processes beside Node raw TCP (`peer_anchors.ts`, needs
 * `--allow-run=node,npm`), and `must_show` marks issue 18's targets (`must_show.ts`).
 *
 * Usage: scripts/bench-peer [--mib 256] [--runs 5] [--handshakes 50] [--out bench-results/peer.json]
 *   [--no-anchors]
 *
 * @module
 */
import { TcpTransport } from "../../src/peer/tcp_transport.ts";
import { MAX_FRAGMENT_BYTES } from "../../src/peer/session_link.ts";
import { SessionLink } from "../../src/peer/session_link.ts";
import { encodeFrame, type Frame, FrameDecoder, FrameType } from "../../src/peer/frame.ts";
import { ipsecMbAvailable, opensslAvailable } from "../../src/peer/aes_gcm.ts";
import { PEER_FRAME_VERSION } from "../../src/protocol.ts";
import { generateEd25519 } from "../../src/message/keys.ts";
import type { FrameChannel, PeerIdentity, PeerTransport } from "../../src/peer/types.ts";
import { aesGcm, ceiling, nodeAesGcm, type SealOpen, sessionAesGcm } from "./peer_aes.ts";
import {
  canRunEnds,
  twoProcess,
  twoProcessRows,
  type TwoProcessSummary,
  twoProcessSummary,
} from "./peer_two_process.ts";
import { anchorRows, anchors } from "./peer_anchors.ts";
import { mark, mustShow } from "./must_show.ts";
import { arg, num } from "./args.ts";

const MiB = 1024 * 1024;

const OUT = arg("out") ?? "bench-results/peer.json";
const TOTAL_MIB = num("mib", 256, 1);
const RUNS = num("runs", 5, 1);
const HANDSHAKES = num("handshakes", 50, 1);
const TOTAL = TOTAL_MIB * MiB;

const payload = new Uint8Array(MiB);
for (let at = 0; at < MiB; at += 65536) crypto.getRandomValues(payload.subarray(at, at + 65536));

async function identity(userId: string): Promise<PeerIdentity> {
  const keys = await generateEd25519();
  return { userId, publicKey: keys.publicKey, privateKey: keys.privateKey };
}

const round = (x: number, digits = 1) => Number(x.toFixed(digits));
const mbps = (bytes: number, ms: number) => bytes / MiB / (ms / 1000);
const best = (xs: number[]) => Math.max(...xs);
const median = (xs: number[]) => percentile(xs, 50);
function percentile(xs: number[], p: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Raw TCP: one connection, 256 KiB writes, the reader drains into a 256 KiB buffer. */
async function rawTcp(): Promise<number> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepting = listener.accept();
  const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const server = await accepting;
  client.setNoDelay(true);
  const started = performance.now();
  const reading = (async () => {
    const buf = new Uint8Array(256 * 1024);
    let got = 0;
    while (got < TOTAL) {
      const n = await server.read(buf);
      if (n === null) break;
      got += n;
    }
    return got;
  })();
  const block = payload.subarray(0, 256 * 1024);
  for (let sent = 0; sent < TOTAL; sent += block.length) {
    for (let at = 0; at < block.length;) at += await client.write(block.subarray(at));
  }
  const got = await reading;
  const ms = performance.now() - started;
  client.close();
  server.close();
  listener.close();
  if (got !== TOTAL) throw new Error(`raw TCP received ${got} of ${TOTAL}`);
  return mbps(TOTAL, ms);
}

/**
 * Session: messages of `messageBytes` over a TcpTransport link, until all are received; the
 * reader reuses one buffer of the message size (`receive({ into })`), as raw TCP's reader does.
 */
/** The cipher the last {@link session} sealed with, as its link reports it. */
let lastCipher = "";
async function session(messageBytes: number): Promise<number> {
  const tcp = new TcpTransport();
  const listener = await tcp.listen({ address: "127.0.0.1", port: 0 }, {
    identity: await identity("bob"),
  });
  const [a, b] = await Promise.all([
    tcp.connect(listener.endpoint, { identity: await identity("alice") }),
    listener.accept(),
  ]);
  lastCipher = a.cipher ?? "unknown";
  const message = payload.subarray(0, messageBytes);
  const count = Math.ceil(TOTAL / messageBytes);
  const started = performance.now();
  const reading = (async () => {
    const into = new Uint8Array(messageBytes);
    let got = 0;
    for (let i = 0; i < count; i++) got += (await b.receive({ into }))?.length ?? 0;
    return got;
  })();
  for (let i = 0; i < count; i++) await a.send(message);
  const got = await reading;
  const ms = performance.now() - started;
  await Promise.all([a.close(), b.close()]);
  await listener.close();
  return mbps(got, ms);
}

/** A bare frame channel over one TCP connection (like the transport's), for the profile. */
class BareChannel implements FrameChannel {
  #decoder = new FrameDecoder();
  #ready: Frame[] = [];
  #buf = new Uint8Array(256 * 1024);
  #writing = Promise.resolve();
  constructor(private conn: Deno.TcpConn) {}
  send(frame: Frame): Promise<void> {
    const bytes = encodeFrame(frame);
    const run = this.#writing.then(async () => {
      for (let at = 0; at < bytes.length;) at += await this.conn.write(bytes.subarray(at));
    });
    this.#writing = run.catch(() => {});
    return run;
  }
  async receive(): Promise<Frame | null> {
    while (this.#ready.length === 0) {
      const n = await this.conn.read(this.#buf).catch(() => null);
      if (n === null) return null;
      this.#ready.push(...this.#decoder.push(this.#buf.subarray(0, n)));
    }
    return this.#ready.shift()!;
  }
  close(): void {
    try {
      this.conn.close();
    } catch { /* closed */ }
  }
}

/** A cipher that only frames: what the session costs without encryption. */
class NullCipher {
  #next = 0n;
  ordered = true;
  sealFrame(parts: Uint8Array[]): Promise<Frame> {
    const size = parts.reduce((n, p) => n + p.length, 0);
    const encoded = new Uint8Array(14 + size + 16);
    const view = new DataView(encoded.buffer);
    view.setUint32(0, 2 + 8 + size + 16);
    encoded[4] = PEER_FRAME_VERSION;
    encoded[5] = FrameType.DATA;
    view.setBigUint64(6, this.#next++);
    let at = 14;
    for (const p of parts) {
      encoded.set(p, at);
      at += p.length;
    }
    return Promise.resolve({ type: FrameType.DATA, body: encoded.subarray(6), encoded });
  }
  open(body: Uint8Array): Promise<{ sequence: bigint; plaintext: Uint8Array }> {
    const sequence = new DataView(body.buffer, body.byteOffset).getBigUint64(0);
    return Promise.resolve({ sequence, plaintext: body.subarray(8, body.length - 16) });
  }
}

/** SessionLink over a bare channel with {@link NullCipher}: framing, copies and the pump. */
async function sessionWithoutCrypto(messageBytes: number): Promise<number> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepting = listener.accept();
  const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const server = await accepting;
  const info = (userId: string) => ({
    local: { transport: "tcp" as const, address: "127.0.0.1", port: 1 },
    remote: {
      userId,
      identityKey: new Uint8Array(32),
      endpoint: { transport: "tcp" as const, address: "127.0.0.1", port: 2 },
    },
    transport: "tcp" as const,
  });
  // deno-lint-ignore no-explicit-any
  const cipher = () => new NullCipher() as any;
  const a = new SessionLink(new BareChannel(client), cipher(), info("bob"));
  const b = new SessionLink(new BareChannel(server), cipher(), info("alice"));
  const message = payload.subarray(0, messageBytes);
  const count = Math.ceil(TOTAL / messageBytes);
  const started = performance.now();
  const reading = (async () => {
    let got = 0;
    for (let i = 0; i < count; i++) got += (await b.receive())?.length ?? 0;
    return got;
  })();
  for (let i = 0; i < count; i++) await a.send(message);
  const got = await reading;
  const ms = performance.now() - started;
  await Promise.all([a.close(), b.close()]);
  listener.close();
  return mbps(got, ms);
}

/** Handshake time: connect() until the link is established, `HANDSHAKES` times. */
async function handshakes(transport: PeerTransport): Promise<number[]> {
  const alice = await identity("alice");
  const listener = await transport.listen({ address: "127.0.0.1", port: 0 }, {
    identity: await identity("bob"),
  });
  const times: number[] = [];
  try {
    for (let i = 0; i < HANDSHAKES + 3; i++) {
      const accepting = listener.accept();
      const started = performance.now();
      const a = await transport.connect(listener.endpoint, { identity: alice });
      const ms = performance.now() - started;
      const b = await accepting;
      await Promise.all([a.close(), b.close()]);
      if (i >= 3) times.push(ms); // the first runs warm up the JIT
    }
  } finally {
    await listener.close();
  }
  return times;
}

/** The copies the session used to make per fragment (slice, flag concat, buf(), encodeFrame). */
function copies(frameBytes: number): number {
  const chunk = payload.subarray(0, frameBytes);
  const count = Math.ceil((256 * MiB) / frameBytes);
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    const withFlag = new Uint8Array(chunk.length + 1);
    withFlag.set(chunk, 1);
    const forCrypto = withFlag.slice();
    encodeFrame({ type: FrameType.DATA, body: forCrypto });
  }
  return mbps(count * frameBytes, performance.now() - started);
}

async function udpTransport(): Promise<PeerTransport | string> {
  const url = new URL("../../src/peer/udp_transport.ts", import.meta.url);
  try {
    await Deno.stat(url);
  } catch {
    return "skipped: src/peer/udp_transport.ts does not exist yet";
  }
  try {
    const mod = await import(url.href);
    if (typeof mod.UdpTransport !== "function") return "skipped: no exported UdpTransport";
    return new mod.UdpTransport() as PeerTransport;
  } catch (err) {
    return `skipped: cannot load udp_transport.ts (${(err as Error).message})`;
  }
}

interface Sessions {
  implementation: string;
  fragment: number[];
  mib: number[];
}
async function sessions(implementation: string): Promise<Sessions> {
  const result: Sessions = { implementation, fragment: [], mib: [] };
  for (let i = 0; i < RUNS; i++) {
    result.fragment.push(await session(MAX_FRAGMENT_BYTES));
    result.mib.push(await session(MiB));
  }
  // what the links sealed with: once libcrypto is loaded, revoking ffi no longer unloads it
  result.implementation = lastCipher;
  return result;
}

const raw: number[] = [];
for (let i = 0; i < RUNS; i++) raw.push(await rawTcp());
const ffi = opensslAvailable();
const fast = ffi ? await sessions("openssl") : null;
const opensslAes = ffi ? await sessionAesGcm("openssl", MAX_FRAGMENT_BYTES) : null;
const ipsecMbAes = ipsecMbAvailable() ? await sessionAesGcm("ipsec-mb", MAX_FRAGMENT_BYTES) : null;
if (ffi) Deno.permissions.revokeSync({ name: "ffi" });
const web = await sessions("webcrypto");
let two: TwoProcessSummary;
if (canRunEnds()) {
  try {
    const runs = await twoProcess({
      mib: TOTAL_MIB,
      runs: RUNS,
      messageBytes: MAX_FRAGMENT_BYTES,
    });
    two = twoProcessSummary(runs, { bytesPerRun: TOTAL, messageBytes: MAX_FRAGMENT_BYTES });
  } catch (err) {
    two = { note: `failed: ${(err as Error).message}` };
  }
} else {
  two = { note: `skipped: run with --allow-run=${Deno.execPath()}` };
}
const anchored = Deno.args.includes("--no-anchors")
  ? null
  : await anchors({ mib: TOTAL_MIB, runs: RUNS, handshakes: HANDSHAKES });
const webAes = await sessionAesGcm("webcrypto", MAX_FRAGMENT_BYTES);
const nodeAes = nodeAesGcm(MAX_FRAGMENT_BYTES);
const main = fast ?? web;
const sess = main.fragment;
const sessMiB = main.mib;
const tcpHs = await handshakes(new TcpTransport());
const udp = await udpTransport();
let udpHs: number[] | string;
try {
  udpHs = typeof udp === "string" ? udp : await handshakes(udp);
} catch (err) {
  udpHs = `failed: ${(err as Error).message}`;
}
const aes = await aesGcm(MAX_FRAGMENT_BYTES);
const plainSession: number[] = [];
for (let i = 0; i < RUNS; i++) plainSession.push(await sessionWithoutCrypto(MAX_FRAGMENT_BYTES));
const copyRate = copies(MAX_FRAGMENT_BYTES);

const hs = (xs: number[] | string) =>
  typeof xs === "string" ? { note: xs } : {
    runs: xs.length,
    p50_ms: round(percentile(xs, 50), 2),
    p90_ms: round(percentile(xs, 90), 2),
  };
const results = {
  date: new Date().toISOString(),
  deno: Deno.version.deno,
  os: Deno.build.os,
  arch: Deno.build.arch,
  bytes_per_run: TOTAL,
  runs: RUNS,
  raw_tcp_mb_s: round(best(raw)),
  raw_tcp_median_mb_s: round(median(raw)),
  aes_gcm: main.implementation,
  session_tcp_mb_s: round(best(sess)),
  session_tcp_median_mb_s: round(median(sess)),
  session_tcp_1mib_messages_mb_s: round(best(sessMiB)),
  session_raw_ratio: round(best(sess) / best(raw), 3),
  session_raw_median_ratio: round(median(sess) / median(raw), 3),
  session_ffi_revoked_cipher: web.implementation,
  session_webcrypto_tcp_mb_s: round(best(web.fragment)),
  session_webcrypto_tcp_median_mb_s: round(median(web.fragment)),
  session_webcrypto_1mib_messages_mb_s: round(best(web.mib)),
  two_process: two,
  anchors: anchored ?? { note: "skipped: --no-anchors" },
  tcp_handshake: hs(tcpHs),
  udp_handshake: hs(udpHs),
  aes_gcm_ceiling: {
    fragment_bytes: MAX_FRAGMENT_BYTES,
    node_crypto: { ...nodeAes, ...ceiling(nodeAes, median(raw)) },
    webcrypto: { ...webAes, ...ceiling(webAes, median(raw)) },
    openssl_ffi: opensslAes
      ? { ...opensslAes, ...ceiling(opensslAes, median(raw)) }
      : { note: "skipped: run with --allow-ffi and OpenSSL 3 libcrypto installed" },
    ipsec_mb_ffi: ipsecMbAes
      ? { ...ipsecMbAes, ...ceiling(ipsecMbAes, median(raw)) }
      : { note: "skipped: needs --allow-ffi, libIPSec_MB 1.3–2.0 and a CPU with VAES and AVX-512" },
  },
  profile: {
    fragment_bytes: MAX_FRAGMENT_BYTES,
    webcrypto_aes_gcm_seal_mb_s: round(aes),
    session_copies_mb_s: round(copyRate),
    session_without_encryption_mb_s: round(best(plainSession)),
  },
  all_runs_mb_s: {
    raw: raw.map((x) => round(x)),
    session: sess.map((x) => round(x)),
    session_webcrypto: web.fragment.map((x) => round(x)),
  },
};
const mustShowRows = mustShow({
  cliMbS: "note" in two ? null : two.session_cli_median_mb_s,
  rawDenoTcpMbS: "note" in two ? null : two.raw_tcp_median_mb_s,
  // run i of both kinds ran back to back (twoProcess interleaves them): one pair per run
  cliRunsMbS: "note" in two ? undefined : two.all_runs_mb_s.cli,
  rawRunsMbS: "note" in two ? undefined : two.all_runs_mb_s.raw,
  libp2pMbS: anchored && !("note" in anchored.libp2p) ? anchored.libp2p.median_mb_s : null,
  handshakeP50Ms: round(percentile(tcpHs, 50), 2),
  notes: {
    cli: "note" in two ? two.note : "",
    raw: "note" in two ? two.note : "",
    libp2p: anchored === null
      ? "skipped: --no-anchors"
      : "note" in anchored.libp2p
      ? anchored.libp2p.note
      : "",
  },
});
const withMustShow = { ...results, must_show: mustShowRows };

const ceil = results.aes_gcm_ceiling;
const ceilingRow = (
  name: string,
  c: SealOpen & { one_process_ratio: number; two_hosts_ratio: number },
) =>
  [
    `AES-256-GCM ${name} seal / open (ceiling ratio: 1 process / 2 hosts)`,
    `${c.seal_mb_s} / ${c.open_mb_s} MB/s (${c.one_process_ratio} / ${c.two_hosts_ratio})`,
  ] as [string, string];
function ffiRow(name: string, c: typeof ceil.openssl_ffi): [string, string] {
  return "note" in c ? [`AES-256-GCM ${name}`, String(c.note)] : ceilingRow(name, c);
}
const rows: [string, string][] = [
  [
    `raw TCP loopback, ${TOTAL_MIB} MiB (best / median of ${RUNS})`,
    `${results.raw_tcp_mb_s} / ${results.raw_tcp_median_mb_s} MB/s`,
  ],
  [
    `mailpeer TCP session (${main.implementation}), ${MAX_FRAGMENT_BYTES}-byte messages`,
    `${results.session_tcp_mb_s} / ${results.session_tcp_median_mb_s} MB/s`,
  ],
  [
    `mailpeer TCP session (${main.implementation}), 1 MiB messages`,
    `${results.session_tcp_1mib_messages_mb_s} MB/s`,
  ],
  [
    "session / raw (best, median)",
    `${results.session_raw_ratio}, ${results.session_raw_median_ratio}`,
  ],
  [
    `mailpeer TCP session (${web.implementation}, ffi revoked), ${MAX_FRAGMENT_BYTES}-byte messages`,
    `${results.session_webcrypto_tcp_mb_s} / ${results.session_webcrypto_tcp_median_mb_s} MB/s`,
  ],
  ...twoProcessRows(two),
  ...(anchored ? anchorRows(anchored) : [["anchors", "skipped: --no-anchors"] as [string, string]]),
  ...handshakeRows("TCP", results.tcp_handshake),
  ...handshakeRows("UDP", results.udp_handshake),
  ceilingRow("node:crypto", ceil.node_crypto),
  ceilingRow("WebCrypto", ceil.webcrypto),
  ffiRow("OpenSSL (FFI)", ceil.openssl_ffi),
  ffiRow("libIPSec_MB (FFI)", ceil.ipsec_mb_ffi),
  [
    "WebCrypto AES-256-GCM seal, one frame at a time",
    `${results.profile.webcrypto_aes_gcm_seal_mb_s} MB/s`,
  ],
  ["old session copies per fragment (3 copies)", `${results.profile.session_copies_mb_s} MB/s`],
  [
    "same session without encryption (framing, copies, pump)",
    `${results.profile.session_without_encryption_mb_s} MB/s`,
  ],
];
function handshakeRows(kind: string, h: Record<string, unknown>): [string, string][] {
  if ("note" in h) return [[`${kind} handshake`, String(h.note)]];
  return [[`${kind} handshake p50 / p90 (${h.runs} runs)`, `${h.p50_ms} ms / ${h.p90_ms} ms`]];
}
const width = Math.max(...rows.map(([k]) => k.length));
const out = rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n");
const cliCipher = "note" in two ? "" : ` (${two.cli_cipher})`;
const mustShowTable = [
  `Issue 18 must-show (two processes, medians, same run)${cliCipher}:`,
  ...mustShowRows.map((r) =>
    `  ${mark(r.pass).padEnd(4)}  ${r.check.padEnd(27)}  ${r.target.padEnd(8)}  ${r.value}`
  ),
].join("\n");
const json = JSON.stringify(withMustShow, null, 2);
await Deno.mkdir(OUT.split("/").slice(0, -1).join("/") || ".", { recursive: true });
await Deno.writeTextFile(OUT, json + "\n");
await Deno.stdout.write(new TextEncoder().encode(`${out}\n\n${mustShowTable}\n\n${json}\n`));
