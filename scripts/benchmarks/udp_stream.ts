/**
 * UDP stream benchmark (issues 13 and 18): the reliable stream of a mailpeer UDP link over
 * loopback, beside raw UDP datagrams of the same size in the same run, each with 0 % and 5 % of
 * datagrams dropped (a seeded PRNG drops them at the sender, as the tests do). Both ends run in
 * this one process, on one thread.
 *
 * - raw UDP: one socket sends `--mib` MiB in 1,200-byte datagrams to another as fast as
 *   `send()` returns; the receiver reads them into one reused buffer (as the stream's socket
 *   does) and counts what arrives. Nothing is sent again, so what is lost (dropped on purpose,
 *   or by a full socket buffer) stays lost. Two figures: the send rate (what `send()` took) and
 *   the goodput (what arrived, over the time to the last arrival), with the share delivered. A
 *   last datagram marks the end; the clock stops when it arrives or 200 ms after the last one
 *   that did.
 * - mailpeer UDP stream: a link from `UdpTransport` (handshake, AES-256-GCM, the reliable
 *   stream), 1 MiB messages until `--mib` MiB arrived, everything delivered in order. Its
 *   figure is a goodput too; the ratio compares it with raw UDP's goodput.
 *
 * Best and median of `--runs`, raw and stream interleaved. Prints a table, then the JSON it
 * also writes to `--out`. `--drops 0,5` (percent) and `--paths raw,stream` narrow a run (for
 * profiling, e.g. with `--cpu-prof`).
 *
 * Usage: scripts/bench-udp-stream [--mib 32] [--runs 3] [--drops 0,5] [--paths raw,stream]
 *        [--out bench-results/udp_stream.json]
 *
 * @module
 */
import { generateEd25519 } from "../../src/message/keys.ts";
import type { ReliableLink } from "../../src/peer/reliable_link.ts";
import type { PeerIdentity } from "../../src/peer/types.ts";
import { DEFAULT_MAX_DATAGRAM_BYTES, UdpTransport } from "../../src/peer/udp_transport.ts";
import { VERSION } from "../../src/version.ts";
import { arg, num } from "./args.ts";

const MiB = 1024 * 1024;
const OUT = arg("out") ?? "bench-results/udp_stream.json";
const TOTAL_MIB = num("mib", 32, 1);
const RUNS = num("runs", 3, 1);
const TOTAL = TOTAL_MIB * MiB;
const LOSSES = (arg("drops") ?? "0,5").split(",").map((p) => {
  const pct = Number(p);
  if (p.trim() === "" || !(pct >= 0 && pct < 100)) {
    throw new TypeError(`--drops needs percentages from 0 to below 100, such as 0,5; not ${p}`);
  }
  return pct / 100;
});
const PATHS = (arg("paths") ?? "raw,stream").split(",");
for (const p of PATHS) {
  if (p !== "raw" && p !== "stream") {
    throw new TypeError(`--paths takes raw and/or stream, such as raw,stream; not ${p}`);
  }
}

const round = (x: number, digits = 1) => Number(x.toFixed(digits));
const mbps = (bytes: number, ms: number) => bytes / MiB / (ms / 1000);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** A seeded PRNG (xorshift32): the same loss pattern every run. */
function xorshift32(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

async function identity(userId: string): Promise<PeerIdentity> {
  const keys = await generateEd25519();
  return { userId, publicKey: keys.publicKey, privateKey: keys.privateKey };
}

interface Run {
  /** Goodput: what arrived, in MB/s. */
  mb_s: number;
  delivered: number;
  /** Raw UDP: what `send()` took, in MB/s. */
  send_mb_s?: number;
  retransmitted?: number;
  cipher?: string;
}

/** Raw datagrams: send rate, goodput and the share delivered. */
async function rawUdp(loss: number, seed: number): Promise<Run> {
  const random = xorshift32(seed);
  const opts = { transport: "udp" as const, hostname: "127.0.0.1", port: 0 };
  const receiver = Deno.listenDatagram(opts);
  const sender = Deno.listenDatagram(opts);
  const to = receiver.addr as Deno.NetAddr;
  const datagram = new Uint8Array(DEFAULT_MAX_DATAGRAM_BYTES);
  crypto.getRandomValues(datagram);
  let got = 0;
  let lastAt = 0;
  let ended = false;
  const reading = (async () => {
    const buffer = new Uint8Array(65_507);
    while (true) {
      const [bytes] = await receiver.receive(buffer);
      lastAt = performance.now();
      if (bytes[0] === 0xff && bytes.length === 1) break;
      got += bytes.length;
    }
    ended = true;
  })().catch(() => {});
  datagram[0] = 0;
  let handed = 0;
  const started = performance.now();
  for (let sent = 0; sent < TOTAL; sent += datagram.length) {
    if (random() < loss) continue;
    await sender.send(datagram, to);
    handed += datagram.length;
  }
  const sendMs = performance.now() - started;
  for (let i = 0; i < 5 && !ended; i++) { // the end marker, repeated in case one is lost
    await sender.send(Uint8Array.of(0xff), to);
    await new Promise((r) => setTimeout(r, 40));
  }
  while (!ended && performance.now() - lastAt < 200) await new Promise((r) => setTimeout(r, 20));
  const ms = (lastAt || performance.now()) - started;
  sender.close();
  receiver.close();
  await reading;
  return { mb_s: mbps(got, ms), delivered: got / TOTAL, send_mb_s: mbps(handed, sendMs) };
}

/** The reliable stream of a UDP link: 1 MiB messages, all delivered in order. */
async function stream(loss: number, seed: number): Promise<Run> {
  const random = xorshift32(seed);
  const udp = new UdpTransport({
    lossy: (direction) => direction === "out" && random() < loss,
  });
  const listener = await udp.listen({ address: "127.0.0.1", port: 0 }, {
    identity: await identity("bob"),
  });
  const [a, b] = await Promise.all([
    udp.connect(listener.endpoint, { identity: await identity("alice") }),
    listener.accept(),
  ]);
  const message = new Uint8Array(MiB);
  crypto.getRandomValues(message.subarray(0, 65536));
  const started = performance.now();
  const receiving = (async () => {
    let got = 0;
    while (got < TOTAL) {
      const m = await b.receive();
      if (!m) throw new Error("the link ended early");
      got += m.length;
    }
    return got;
  })();
  for (let sent = 0; sent < TOTAL; sent += MiB) await a.send(message);
  const got = await receiving;
  const ms = performance.now() - started;
  const retransmitted = (a as ReliableLink).stats.retransmitted;
  const cipher = a.cipher;
  await Promise.all([a.close(), b.close()]);
  await listener.close();
  return { mb_s: mbps(got, ms), delivered: got / TOTAL, retransmitted, cipher };
}

const results: Record<string, unknown> = {
  version: VERSION,
  deno: Deno.version.deno,
  mib: TOTAL_MIB,
  runs: RUNS,
  datagram_bytes: DEFAULT_MAX_DATAGRAM_BYTES,
};
type Cells = [string, string, string, string, string];
const rows: Cells[] = [];
const summary = (runs: Run[]) => ({
  best_mb_s: round(Math.max(...runs.map((r) => r.mb_s))),
  median_mb_s: round(median(runs.map((r) => r.mb_s))),
  delivered: round(Math.min(...runs.map((r) => r.delivered)), 4),
  ...(runs[0]!.send_mb_s === undefined
    ? {}
    : { send_median_mb_s: round(median(runs.map((r) => r.send_mb_s!))) }),
  ...(runs[0]!.retransmitted === undefined
    ? {}
    : { retransmitted_median: median(runs.map((r) => r.retransmitted!)) }),
});
for (const loss of LOSSES) {
  const raw: Run[] = [];
  const rel: Run[] = [];
  for (let run = 0; run < RUNS; run++) { // interleaved, so both see the same machine load
    if (PATHS.includes("raw")) raw.push(await rawUdp(loss, 0x5eed + run));
    if (PATHS.includes("stream")) rel.push(await stream(loss, 0x5eed + run));
  }
  const pct = `${round(loss * 100, 2)} %`;
  const key = String(round(loss * 100, 2)).replace(".", "_");
  const r = raw.length ? summary(raw) : undefined;
  const s = rel.length ? summary(rel) : undefined;
  if (r) {
    results[`raw_udp_loss_${key}`] = r;
    rows.push([
      "raw UDP datagrams",
      pct,
      `${r.best_mb_s} / ${r.median_mb_s}`,
      `${round(r.delivered * 100, 2)} % (sent at ${r.send_median_mb_s} MB/s)`,
      "",
    ]);
  }
  if (s) {
    results[`stream_loss_${key}`] = s;
    results.cipher = rel[0]!.cipher;
    const ratio = r ? round(s.median_mb_s / r.median_mb_s, 2) : undefined;
    if (ratio !== undefined) results[`stream_to_raw_goodput_loss_${key}`] = ratio;
    rows.push([
      "mailpeer UDP reliable stream",
      pct,
      `${s.best_mb_s} / ${s.median_mb_s}`,
      `${round(s.delivered * 100, 2)} % (${s.retransmitted_median} resent)`,
      ratio === undefined ? "" : `${ratio}`,
    ]);
  }
}
const head: Cells = [
  "path",
  "drop",
  `goodput MB/s best / median of ${RUNS}`,
  "delivered",
  "stream / raw goodput (medians)",
];
const all = [head, ...rows];
const widths = head.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
const table = all.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ")).join("\n");
const json = JSON.stringify(results, null, 2);
await Deno.mkdir(OUT.split("/").slice(0, -1).join("/") || ".", { recursive: true });
await Deno.writeTextFile(OUT, json + "\n");
await Deno.stdout.write(
  new TextEncoder().encode(`${TOTAL_MIB} MiB over loopback\n${table}\n\n${json}\n`),
);
