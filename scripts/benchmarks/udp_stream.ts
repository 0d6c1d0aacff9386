/**
 * UDP stream benchmark (issue 13): the reliable stream of a mailpeer UDP link over loopback,
 * beside raw UDP datagrams of the same size in the same run, each with 0 % and 5 % of
 * datagrams dropped (a seeded PRNG drops them at the sender, as the tests do).
 *
 * - raw UDP: one socket sends `--mib` MiB in 1,200-byte datagrams to another as fast as
 *   `send()` returns; the receiver counts what arrives. Nothing is sent again, so what is lost
 *   (dropped on purpose, or by a full socket buffer) stays lost: the figure is the goodput,
 *   with the share delivered beside it. A last datagram marks the end; the clock stops when it
 *   arrives or 200 ms after the last one that did.
 * - mailpeer UDP stream: a link from `UdpTransport` (handshake, AES-256-GCM, the reliable
 *   stream), 1 MiB messages until `--mib` MiB arrived, everything delivered in order.
 *
 * Best and median of `--runs`. Prints a table, then the JSON it also writes to `--out`.
 *
 * Usage: scripts/bench-udp-stream [--mib 32] [--runs 3] [--out bench-results/udp_stream.json]
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
const LOSSES = [0, 0.05];

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
  mb_s: number;
  delivered: number;
  retransmitted?: number;
}

/** Raw datagrams: goodput and the share delivered. */
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
    for await (const [bytes] of receiver) {
      lastAt = performance.now();
      if (bytes[0] === 0xff && bytes.length === 1) break;
      got += bytes.length;
    }
    ended = true;
  })().catch(() => {});
  datagram[0] = 0;
  const started = performance.now();
  for (let sent = 0; sent < TOTAL; sent += datagram.length) {
    if (random() < loss) continue;
    await sender.send(datagram, to);
  }
  for (let i = 0; i < 5 && !ended; i++) { // the end marker, repeated in case one is lost
    await sender.send(Uint8Array.of(0xff), to);
    await new Promise((r) => setTimeout(r, 40));
  }
  while (!ended && performance.now() - lastAt < 200) await new Promise((r) => setTimeout(r, 20));
  const ms = (lastAt || performance.now()) - started;
  sender.close();
  receiver.close();
  await reading;
  return { mb_s: mbps(got, ms), delivered: got / TOTAL };
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
  await Promise.all([a.close(), b.close()]);
  await listener.close();
  return { mb_s: mbps(got, ms), delivered: got / TOTAL, retransmitted };
}

const results: Record<string, unknown> = {
  version: VERSION,
  deno: Deno.version.deno,
  mib: TOTAL_MIB,
  runs: RUNS,
  datagram_bytes: DEFAULT_MAX_DATAGRAM_BYTES,
};
const rows: [string, string, string, string][] = [];
for (const loss of LOSSES) {
  const raw: Run[] = [];
  const rel: Run[] = [];
  for (let run = 0; run < RUNS; run++) { // interleaved, so both see the same machine load
    raw.push(await rawUdp(loss, 0x5eed + run));
    rel.push(await stream(loss, 0x5eed + run));
  }
  const pct = `${loss * 100} %`;
  const summary = (runs: Run[]) => ({
    best_mb_s: round(Math.max(...runs.map((r) => r.mb_s))),
    median_mb_s: round(median(runs.map((r) => r.mb_s))),
    delivered: round(Math.min(...runs.map((r) => r.delivered)), 4),
    ...(runs[0]!.retransmitted === undefined
      ? {}
      : { retransmitted_median: median(runs.map((r) => r.retransmitted!)) }),
  });
  const r = summary(raw);
  const s = summary(rel);
  results[`raw_udp_loss_${loss * 100}`] = r;
  results[`stream_loss_${loss * 100}`] = s;
  rows.push([
    "raw UDP datagrams",
    pct,
    `${r.best_mb_s} / ${r.median_mb_s}`,
    `${round(r.delivered * 100, 2)} %`,
  ]);
  rows.push([
    "mailpeer UDP reliable stream",
    pct,
    `${s.best_mb_s} / ${s.median_mb_s}`,
    `${round(s.delivered * 100, 2)} % (${s.retransmitted_median} resent)`,
  ]);
}
const head: [string, string, string, string] = [
  "path",
  "drop",
  `MB/s best / median of ${RUNS}`,
  "delivered",
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
