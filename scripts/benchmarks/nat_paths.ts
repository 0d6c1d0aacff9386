/**
 * The paths part of `scripts/bench-nat` (issue 14; docs/nat.md "Measured: paths"): in the NAT
 * lab, two `nat_paths_peer.ts` processes, one in mpl-a behind router A and one in mpl-b behind
 * router B, punch to each other from their listeners' sockets at the same instant, and
 *
 * 1. **Time to first byte per path kind**: from that instant to the moment both ends hold the
 *    other's first message over the link (each sends one as soon as its punch returns), with the
 *    candidates a terminal in that place announces:
 *    - `host`: no NAT (none × none), each gets the other's interface address as a `host`
 *      candidate (a global address, or `terminal.address` set); the baseline of the others;
 *    - `punched`: port-restricted × port-restricted, each gets the other's `srflx`;
 *    - `mapped`: port-restricted with miniupnpd × symmetric (a pair no punch joins), A asks
 *      router A for a UDP mapping of its listener's port and announces `mapped` then `srflx`;
 *      skipped, with the reason, when the lab runs no miniupnpd or the router maps nothing;
 *    - `relayed`: symmetric × symmetric (no punch joins them either), A allocates a TURN relay
 *      on its listener's socket at the lab's coturn and announces `srflx` then `relay`; the
 *      relay is tried after `PUNCH_RELAY_DELAY_MS`.
 *    Also the median round trip of a 32-byte message over the link once it is up.
 * 2. **Relayed throughput beside raw UDP through the same relay**: symmetric × symmetric, B
 *    first blasts `--mib` MiB of raw 1,200-byte datagrams to A's relayed address from a socket of
 *    its own (ChannelData to A, nothing sent again: what arrives per second), then, on the same
 *    allocation now serving A's listener, sends `--mib` MiB over the mailpeer reliable stream of
 *    the relayed link; same run.
 * 3. **Racing against trying candidates in series**: port-restricted × port-restricted, each
 *    gets 3 dead candidates of the other before the live `srflx` (its LAN address, unreachable
 *    behind its NAT, and two stale ports of its router's address); the race (`staggerMs` =
 *    `PUNCH_STAGGER_MS`: candidate i starts at i × 50 ms) against the series (`staggerMs` =
 *    `--series-ms`, a per-candidate timeout: the live candidate starts at 3 × that), in
 *    alternating runs.
 *
 * Medians and p90 (nearest rank) over `--runs`. The lab is held (`withLab`) for the runs of one
 * scenario at a time, race and series together: about a minute at most with 10 runs.
 *
 * @module
 */
import type { PunchCandidate } from "../../src/peer/types.ts";
import { PUNCH_RELAY_DELAY_MS, PUNCH_STAGGER_MS } from "../../src/limits.ts";
import type { Endpoint } from "../../src/message/types.ts";
import { NetnsProcess } from "./netns_process.ts";
import { markdownTable as table } from "./markdown_table.ts";

const PEER = new URL("./nat_paths_peer.ts", import.meta.url).pathname;
const MiB = 1024 * 1024;
const WINDOW_MS = 10_000;
const PINGS = 20;
/** A safety net only: a hung peer is stopped after this long (nothing is timed by it). */
const KILL_MS = 120_000;
/** Both ends punch this long after both said they are ready, ms (time to wait for the start). */
const START_AFTER_MS = 200;
/** Dead candidates ahead of the live one in the race / series runs. */
const DEAD = 3;
const NO_MAPPING = "router A granted no mapping";

type NatType = "none" | "full-cone" | "restricted" | "port-restricted" | "symmetric";

/** The parts of natlab.json (docs/natlab.md) this part uses. */
export interface PathsLab {
  hosts: Record<"a" | "b", { ns: string; gateway: string }>;
  coturn: {
    ns: string;
    host: string;
    port: number;
    realm: string;
    user: string;
    password: string;
    relay_ip: string;
  };
  upnp: { url: string; host: string } | null;
}

/** What the paths part needs from the bench. */
export interface PathsOptions {
  runs: number;
  mib: number;
  seriesMs: number;
  /** Only these scenarios (`PATH_SCENARIOS`); default all. */
  only?: readonly string[];
  /** Runs `fn` with the lab to itself, and puts it back afterwards. */
  withLab: <T>(fn: () => Promise<T>) => Promise<T>;
  /** `natlab.sh ARGS…`. */
  natlab: (...args: string[]) => Promise<void>;
  /** Prints progress. */
  out: (text: string) => void;
}

interface Hello {
  key: string;
  host: string;
  port: number;
  srflx: { address: string; port: number };
  mapped?: { address: string; port: number };
  mapping?: string;
  mappingError?: string;
  relayed?: Endpoint;
  aes: string;
}

type J = Record<string, unknown>;

interface Scenario {
  name: string;
  nat: [NatType, NatType];
  /** What A announces; B's candidates are always what it announces too. */
  a: { turn?: boolean; map?: boolean };
  /** The candidates each end gets of the other. */
  candidates(a: Hello, b: Hello): { forA: PunchCandidate[]; forB: PunchCandidate[] };
  staggerMs: number;
  /** Raw UDP through A's relay, then the stream, `mib` MiB from B to A. */
  throughput?: boolean;
}

const udp = (e: { address: string; port: number }, kind: PunchCandidate["kind"]) => ({
  transport: "udp" as const,
  address: e.address,
  port: e.port,
  kind,
});

/** A port of the router's address that maps nothing: a stale `srflx`. */
const stale = (port: number, k: number) => 1024 + ((port - 1024 + 97 * k) % 64_000);

/** `DEAD` candidates that never answer, then the live `srflx`. */
function deadFirst(h: Hello): PunchCandidate[] {
  return [
    udp({ address: h.host, port: h.port }, "host"),
    ...Array.from(
      { length: DEAD - 1 },
      (_, k) => udp({ address: h.srflx.address, port: stale(h.srflx.port, k + 1) }, "srflx"),
    ),
    udp(h.srflx, "srflx"),
  ];
}

/**
 * `mapped` then `srflx`, as the terminal gathers them: one candidate when the router keeps the
 * port (the mapping is the NAT's own mapping of the socket).
 */
function mappedFirst(h: Hello): PunchCandidate[] {
  const mapped = h.mapped ? [udp(h.mapped, "mapped")] : [];
  const same = h.mapped?.address === h.srflx.address && h.mapped.port === h.srflx.port;
  return same ? mapped : [...mapped, udp(h.srflx, "srflx")];
}

/**
 * The kind of the pair from both ends' `PunchResult.path` (docs/nat.md "Path kinds"): `relayed`
 * when either end is, else `mapped` when either end is, else what both say. `listener.punch()`
 * judges by the remote only, so the end behind the router mapping sees the peer's new port
 * (`punched`) and the peer sees the mapping (`mapped`); the terminal tells both `mapped`.
 */
function pairPath(a: string, b: string): string {
  for (const kind of ["relayed", "mapped"]) if (a === kind || b === kind) return kind;
  return a === b ? a : `${a} / ${b}`;
}

/** The scenarios' names, in the order they run (race and series alternate, last). */
export const PATH_SCENARIOS = [
  "host",
  "punched",
  "mapped",
  "relayed",
  "relay-throughput",
  "race",
  "series",
] as const;

function scenarios(seriesMs: number): Scenario[] {
  const host = (h: Hello) => [udp({ address: h.host, port: h.port }, "host")];
  const srflx = (h: Hello) => [udp(h.srflx, "srflx")];
  return [
    {
      name: "host",
      nat: ["none", "none"],
      a: {},
      candidates: (a, b) => ({ forA: host(b), forB: host(a) }),
      staggerMs: PUNCH_STAGGER_MS,
    },
    {
      name: "punched",
      nat: ["port-restricted", "port-restricted"],
      a: {},
      candidates: (a, b) => ({ forA: srflx(b), forB: srflx(a) }),
      staggerMs: PUNCH_STAGGER_MS,
    },
    {
      name: "mapped",
      nat: ["port-restricted", "symmetric"],
      a: { map: true },
      candidates: (a, b) => ({ forA: srflx(b), forB: mappedFirst(a) }),
      staggerMs: PUNCH_STAGGER_MS,
    },
    {
      name: "relayed",
      nat: ["symmetric", "symmetric"],
      a: { turn: true },
      candidates: (a, b) => ({ forA: srflx(b), forB: [...srflx(a), udp(a.relayed!, "relay")] }),
      staggerMs: PUNCH_STAGGER_MS,
    },
    {
      name: "race",
      nat: ["port-restricted", "port-restricted"],
      a: {},
      candidates: (a, b) => ({ forA: deadFirst(b), forB: deadFirst(a) }),
      staggerMs: PUNCH_STAGGER_MS,
    },
    {
      name: "series",
      nat: ["port-restricted", "port-restricted"],
      a: {},
      candidates: (a, b) => ({ forA: deadFirst(b), forB: deadFirst(a) }),
      staggerMs: seriesMs,
    },
    {
      name: "relay-throughput",
      nat: ["symmetric", "symmetric"],
      a: { turn: true },
      candidates: (a, b) => ({ forA: srflx(b), forB: [...srflx(a), udp(a.relayed!, "relay")] }),
      staggerMs: PUNCH_STAGGER_MS,
      throughput: true,
    },
  ];
}

/** One run of one scenario. */
export interface PathRun {
  connected: boolean;
  /** The pair's path kind ({@link pairPath}). */
  path?: string;
  /** `PunchResult.path` on A's end / B's end. */
  ends?: string;
  role?: string;
  /** Both ends hold the other's first message, ms from the common start. */
  ttfbMs?: number;
  /** The slower end's punch, ms from the common start. */
  punchMs?: number;
  rttMs?: number;
  /** A's remote: which candidate of B's won. */
  remote?: Endpoint;
  rawMiBs?: number;
  rawSendMiBs?: number;
  rawDelivered?: number;
  streamMiBs?: number;
  streamDelivered?: number;
  retransmitted?: number;
  /** Stream MiB/s ÷ raw MiB/s of this run. */
  ratio?: number;
  /** Datagrams dropped for a full receive buffer at A and at the TURN server, per phase. */
  rawDrops?: { a: number; relay: number };
  streamDrops?: { a: number; relay: number };
  error?: string;
  detail: J;
}

/** UDP datagrams dropped for a full receive buffer so far, in A's and the TURN server's netns. */
async function udpDrops(lab: PathsLab): Promise<{ a: number; relay: number }> {
  const read = async (ns: string) => {
    const out = await new Deno.Command("ip", {
      args: ["netns", "exec", ns, "cat", "/proc/net/snmp"],
      stdout: "piped",
    }).output();
    const lines = new TextDecoder().decode(out.stdout).split("\n").filter((l) =>
      l.startsWith("Udp:")
    );
    const names = lines[0]?.split(/\s+/) ?? [];
    const values = lines[1]?.split(/\s+/) ?? [];
    return Number(values[names.indexOf("RcvbufErrors")] ?? NaN);
  };
  const [a, relay] = await Promise.all([read(lab.hosts.a.ns), read(lab.coturn.ns)]);
  return { a, relay };
}

const wall = () => performance.timeOrigin + performance.now();

async function runOnce(lab: PathsLab, s: Scenario, o: PathsOptions): Promise<PathRun> {
  const stun = ["--stun", `${lab.coturn.host}:${lab.coturn.port}`];
  const turnEnv = {
    MAILPEER_BENCH_TURN: JSON.stringify({
      url: `turn:${lab.coturn.host}:${lab.coturn.port}`,
      user: lab.coturn.user,
      password: lab.coturn.password,
      realm: lab.coturn.realm,
    }),
  };
  const a = new NetnsProcess(lab.hosts.a.ns, PEER, [
    ...stun,
    "--name",
    "a",
    ...(s.a.turn ? ["--turn"] : []),
    ...(s.a.map ? ["--map", `${lab.hosts.a.gateway},${lab.upnp!.url}`] : []),
  ], { killAfterMs: KILL_MS, ...(s.a.turn ? { env: turnEnv } : {}) });
  const b = new NetnsProcess(lab.hosts.b.ns, PEER, [...stun, "--name", "b"], {
    killAfterMs: KILL_MS,
  });
  const detail: J = {};
  try {
    const [ha, hb] = (await Promise.all([a.line(), b.line()])).map((l) => l.hello as Hello);
    detail.hello = { a: ha, b: hb };
    if (s.a.map && !ha!.mapped) {
      throw new Error(`${NO_MAPPING}: ${ha!.mappingError ?? "?"}`);
    }
    const { forA, forB } = s.candidates(ha!, hb!);
    detail.candidates = { forA, forB };
    const common = { staggerMs: s.staggerMs, windowMs: WINDOW_MS, pings: PINGS };
    await Promise.all([
      a.write({
        plan: {
          ...common,
          peerKey: hb!.key,
          candidates: forA,
          ...(s.throughput
            ? {
              raw: { role: "receive", peerAddress: hb!.srflx.address },
              stream: { role: "receive", mib: o.mib },
            }
            : {}),
        },
      }),
      b.write({
        plan: {
          ...common,
          peerKey: ha!.key,
          candidates: forB,
          ...(s.throughput
            ? {
              raw: { role: "send", relayed: ha!.relayed },
              stream: { role: "send", mib: o.mib },
            }
            : {}),
        },
      }),
    ]);
    const run: PathRun = { connected: false, detail };
    // Where the relay's datagrams are dropped: receive buffers full at A (its socket) or at the
    // TURN server (the relay's sockets), per phase (/proc/net/snmp of each namespace).
    const drops = s.throughput ? [await udpDrops(lab)] : [];
    if (s.throughput) {
      const [rawA, rawB] = (await Promise.all([a.line(), b.line()])).map((l) => l.raw as J);
      detail.raw = { a: rawA, b: rawB };
      const received = rawB!.received as { bytes: number; lastAt: number } | undefined;
      if (received) {
        const started = Number(rawB!.startedAt);
        run.rawMiBs = received.bytes / MiB / ((received.lastAt - started) / 1000);
        run.rawSendMiBs = Number(rawB!.sentBytes) / MiB /
          ((Number(rawB!.sentAt) - started) / 1000);
        run.rawDelivered = received.bytes / Number(rawB!.sentBytes);
      } else {
        run.error = `raw UDP through the relay: ${rawA!.error ?? "?"} / ${rawB!.error ?? "?"}`;
      }
    }
    if (s.throughput) drops.push(await udpDrops(lab));
    await Promise.all([a.line(), b.line()]); // ready
    const at = wall() + START_AFTER_MS;
    await Promise.all([a.write({ start: { at } }), b.write({ start: { at } })]);
    const [pa, pb] = (await Promise.all([a.line(), b.line()])).map((l) => l.punch as J);
    detail.punch = { a: pa, b: pb };
    if (!pa!.connected || !pb!.connected) {
      run.error = `${run.error ? `${run.error}; ` : ""}punch: ${pa!.code ?? "ok"} / ${
        pb!.code ?? "ok"
      }`;
      return run;
    }
    run.connected = true;
    run.path = pairPath(String(pa!.path), String(pb!.path));
    run.ends = `${pa!.path} / ${pb!.path}`;
    run.role = `a ${pa!.role}`;
    run.remote = pa!.remote as Endpoint;
    run.punchMs = Math.max(Number(pa!.ms), Number(pb!.ms));
    const [fa, fb] = (await Promise.all([a.line(), b.line()])).map((l) => l.first as J);
    run.ttfbMs = Math.max(Number(fa!.ms), Number(fb!.ms));
    const [la, lb] = (await Promise.all([a.line(), b.line()])).map((l) => l.link as J);
    detail.link = { a: la, b: lb };
    const rtts = [...(la!.rtts as number[]), ...(lb!.rtts as number[])];
    if (rtts.length > 0) run.rttMs = percentile(rtts, 50);
    if (s.throughput) {
      const sender = lb!.stream as J, receiver = la!.stream as J;
      const bytes = Number(receiver.bytes);
      run.streamMiBs = bytes / MiB /
        ((Number(sender.doneAt) - Number(sender.startedAt)) / 1000);
      run.streamDelivered = bytes / (o.mib * MiB);
      const stats = sender.stats as { retransmitted?: number } | undefined;
      if (stats?.retransmitted !== undefined) run.retransmitted = stats.retransmitted;
      if (run.rawMiBs) run.ratio = run.streamMiBs / run.rawMiBs;
      drops.push(await udpDrops(lab));
      const delta = (i: number) => ({
        a: drops[i + 1]!.a - drops[i]!.a,
        relay: drops[i + 1]!.relay - drops[i]!.relay,
      });
      run.rawDrops = delta(0);
      run.streamDrops = delta(1);
    }
    await Promise.all([a.line(), b.line()]); // done
    return run;
  } catch (err) {
    a.kill();
    b.kill();
    return { connected: false, error: (err as Error).message, detail };
  } finally {
    const codes = await Promise.all([a.end(), b.end()]);
    if (codes.some((c) => c !== 0)) o.out(`nat_paths_peer.ts exit codes ${codes.join(", ")}\n`);
  }
}

/** Nearest-rank percentile. */
function percentile(xs: readonly number[], p: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.max(1, Math.ceil((p / 100) * sorted.length)) - 1]!;
}

const round = (x: number | undefined, digits = 0) =>
  x === undefined ? undefined : Number(x.toFixed(digits));

/** One scenario over all runs. */
export interface PathSummary {
  name: string;
  nat: string;
  staggerMs: number;
  /** Why the scenario did not run, if it did not. */
  skipped?: string;
  connected: string;
  path: string;
  ends: string;
  ttfbMedianMs?: number;
  ttfbP90Ms?: number;
  punchMedianMs?: number;
  rttMedianMs?: number;
  rawMiBs?: number;
  rawSendMiBs?: number;
  rawDelivered?: number;
  streamMiBs?: number;
  streamDelivered?: number;
  retransmitted?: number;
  /** Median of the runs' stream ÷ raw ratios. */
  ratio?: number;
  /** Medians over the runs. */
  rawDrops?: { a: number; relay: number };
  streamDrops?: { a: number; relay: number };
  runs: PathRun[];
}

function counts(xs: string[]): string {
  const by = new Map<string, number>();
  for (const x of xs) by.set(x, (by.get(x) ?? 0) + 1);
  return [...by].map(([what, n]) => `${n}/${xs.length} ${what}`).join(", ");
}

function summarize(s: Scenario, nat: string, runs: PathRun[]): PathSummary {
  const stat = (f: (r: PathRun) => number | undefined, p: number, digits = 0) => {
    const xs = runs.map(f).filter((x): x is number => x !== undefined);
    return xs.length === 0 ? undefined : round(percentile(xs, p), digits);
  };
  const summary: PathSummary = {
    name: s.name,
    nat,
    staggerMs: s.staggerMs,
    connected: counts(runs.map((r) => r.connected ? "connected" : r.error ?? "failed")),
    path: counts(runs.map((r) => r.path ?? "—")),
    ends: counts(runs.map((r) => r.ends ?? "—")),
    runs,
  };
  const put = (key: keyof PathSummary, value: number | undefined) => {
    if (value !== undefined) (summary as unknown as Record<string, unknown>)[key] = value;
  };
  put("ttfbMedianMs", stat((r) => r.ttfbMs, 50));
  put("ttfbP90Ms", stat((r) => r.ttfbMs, 90));
  put("punchMedianMs", stat((r) => r.punchMs, 50));
  put("rttMedianMs", stat((r) => r.rttMs, 50, 2));
  put("rawMiBs", stat((r) => r.rawMiBs, 50, 1));
  put("rawSendMiBs", stat((r) => r.rawSendMiBs, 50, 1));
  put("rawDelivered", stat((r) => r.rawDelivered, 50, 4));
  put("streamMiBs", stat((r) => r.streamMiBs, 50, 1));
  put("streamDelivered", stat((r) => r.streamDelivered, 50, 4));
  put("retransmitted", stat((r) => r.retransmitted, 50));
  put("ratio", stat((r) => r.ratio, 50, 2));
  const dropsOf = (f: (r: PathRun) => { a: number; relay: number } | undefined) => {
    const a = stat((r) => f(r)?.a, 50), relay = stat((r) => f(r)?.relay, 50);
    return a === undefined || relay === undefined ? undefined : { a, relay };
  };
  const rawDrops = dropsOf((r) => r.rawDrops), streamDrops = dropsOf((r) => r.streamDrops);
  if (rawDrops) summary.rawDrops = rawDrops;
  if (streamDrops) summary.streamDrops = streamDrops;
  return summary;
}

/** Runs every scenario `runs` times (race and series alternating); the summaries. */
export async function pathsPart(lab: PathsLab, o: PathsOptions): Promise<PathSummary[]> {
  const all = scenarios(o.seriesMs).filter((s) => !o.only || o.only.includes(s.name));
  const runs = new Map<string, PathRun[]>(all.map((s) => [s.name, []]));
  const skipped = new Map<string, string>();
  if (!lab.upnp) {
    skipped.set("mapped", "no miniupnpd on router A (natlab.sh upnp start, or up --upnp)");
  }
  const one = async (s: Scenario, r: number) => {
    await o.natlab("setnat", ...s.nat); // and a fresh conntrack for every run
    const got = await runOnce(lab, s, o);
    runs.get(s.name)!.push(got);
    o.out(
      `paths ${s.name} (${s.nat.join(" × ")}), run ${r + 1}: ${
        got.connected
          ? `${got.path}, first byte ${round(got.ttfbMs)} ms, punch ${round(got.punchMs)} ms` +
            (got.streamMiBs !== undefined
              ? `, raw ${round(got.rawMiBs, 1)} MiB/s, stream ${round(got.streamMiBs, 1)} MiB/s`
              : "")
          : got.error
      }\n`,
    );
  };
  for (const s of all) {
    if (s.name === "race" || s.name === "series" || skipped.has(s.name)) continue;
    await o.withLab(async () => {
      for (let r = 0; r < o.runs; r++) await one(s, r);
    });
    const failed = runs.get(s.name)!;
    if (s.name === "mapped" && failed.every((r) => r.error?.startsWith(NO_MAPPING))) {
      skipped.set("mapped", failed[0]!.error!);
    }
  }
  const alternating = all.filter((s) => s.name === "race" || s.name === "series");
  await o.withLab(async () => {
    for (let r = 0; r < o.runs; r++) for (const s of alternating) await one(s, r);
  });
  return all.map((s) => {
    const summary = summarize(s, s.nat.join(" × "), runs.get(s.name)!);
    const why = skipped.get(s.name);
    return why ? { ...summary, skipped: why } : summary;
  });
}

// ---- output ---------------------------------------------------------------------------------

const ms = (x: number | undefined) => x === undefined ? "—" : String(x);
const times = (x: number | undefined, base: number | undefined) =>
  x === undefined || base === undefined || base === 0 ? "—" : `${(x / base).toFixed(1)}×`;

/** The three tables of the paths part, each figure beside its baseline of the same run. */
export function pathsTables(summaries: PathSummary[], runs: number, mib: number): string {
  const by = (name: string) => summaries.find((s) => s.name === name);
  const host = by("host");
  const kinds = ["host", "punched", "mapped", "relayed"].map(by).filter((s) => s !== undefined);
  let text = "";
  if (kinds.length > 0) {
    text += `\nTime to first byte per path kind (ms from both ends' punch start to both holding ` +
      `the other's first message; ${runs} runs; baseline: host):\n` + table(
        [
          "path",
          "NAT A × B",
          "connected",
          "pair's path",
          "punch() path A / B",
          "first byte median",
          "p90",
          "punch median",
          "vs host",
          "RTT over the link",
        ],
        kinds.map((s) =>
          s.skipped
            ? [s.name, s.nat, `skipped: ${s.skipped}`, "—", "—", "—", "—", "—", "—", "—"]
            : [
              s.name,
              s.nat,
              s.connected,
              s.path,
              s.ends,
              ms(s.ttfbMedianMs),
              ms(s.ttfbP90Ms),
              ms(s.punchMedianMs),
              s === host ? "baseline" : times(s.ttfbMedianMs, host?.ttfbMedianMs),
              s.rttMedianMs === undefined ? "—" : `${s.rttMedianMs} ms`,
            ]
        ),
        new Set([5, 6, 7, 8, 9]),
      );
  }
  const race = by("race"), series = by("series");
  if (race && series) {
    text +=
      `\nRacing against trying candidates in series (${DEAD} dead candidates, then the live ` +
      `srflx; port-restricted × port-restricted; ${runs} runs each, alternating; baseline: race):\n` +
      table(
        [
          "mode",
          "stagger ms",
          "live candidate starts at ms",
          "connected",
          "first byte median",
          "p90",
          "vs race",
        ],
        [race, series].map((s) => [
          s.name,
          String(s.staggerMs),
          String(DEAD * s.staggerMs),
          s.connected,
          ms(s.ttfbMedianMs),
          ms(s.ttfbP90Ms),
          s === race ? "baseline" : times(s.ttfbMedianMs, race.ttfbMedianMs),
        ]),
        new Set([1, 2, 4, 5, 6]),
      );
  }
  const t = by("relay-throughput");
  if (!t) return text;
  const pct = (x: number | undefined) => x === undefined ? "—" : `${(x * 100).toFixed(1)} %`;
  const drops = (d: { a: number; relay: number } | undefined) =>
    d === undefined ? "—" : `${d.a} / ${d.relay}`;
  const mibs = (x: number | undefined) => x === undefined ? "failed" : String(x);
  text += `\nRelayed throughput beside raw UDP through the same TURN allocation (symmetric × ` +
    `symmetric, ${mib} MiB from B to A's relayed address, ${t.connected}, path ${t.path}; ` +
    `medians of ${runs}; baseline: raw UDP, same runs):\n` +
    table(
      [
        "what",
        "MiB/s arriving",
        "delivered",
        "sent MiB/s",
        "resent",
        "buffer drops at A / at coturn",
        "vs raw (median of runs)",
      ],
      [
        [
          "raw UDP datagrams through the relay",
          mibs(t.rawMiBs),
          pct(t.rawDelivered),
          mibs(t.rawSendMiBs),
          "none",
          drops(t.rawDrops),
          "baseline",
        ],
        [
          "mailpeer stream over the relayed path",
          mibs(t.streamMiBs),
          pct(t.streamDelivered),
          "—",
          t.retransmitted === undefined ? "?" : String(t.retransmitted),
          drops(t.streamDrops),
          t.ratio === undefined ? "—" : `${t.ratio.toFixed(2)}×`,
        ],
      ],
      new Set([1, 3, 4, 6]),
    );
  return text;
}

/** Settings of the paths part, for the JSON. */
export function pathsSettings(o: { seriesMs: number; mib: number }): J {
  return {
    windowMs: WINDOW_MS,
    pings: PINGS,
    startAfterMs: START_AFTER_MS,
    raceStaggerMs: PUNCH_STAGGER_MS,
    seriesStaggerMs: o.seriesMs,
    deadCandidates: DEAD,
    relayDelayMs: PUNCH_RELAY_DELAY_MS,
    throughputMiB: o.mib,
    firstByte: "ms from the common punch start to both ends holding the other's first message",
  };
}
