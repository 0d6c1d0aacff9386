/**
 * NAT benchmark (issue 13, docs/nat.md "Measured: real terminals through the host"), in the
 * NAT lab (docs/natlab.md) against the real mail stack (docs/mailstack.md).
 *
 * 1. **Pairs.** For each pair of NAT types A × B (`natlab.sh setnat A B`), as
 *    tests/natlab/rendezvous_test.ts does: a host in the root namespace reads host@host.test;
 *    bob's CLI client (`mailpeer client --json`, UDP, STUN from the lab's coturn on both of its
 *    addresses) stands by in mpl-b behind router B; then alice's starts in mpl-a behind router A.
 *    Measured: whether each connected (or how it ended), the path kind of alice's `connected`
 *    event, and the times from alice's start (the spawn of her process) to her `request-sent`,
 *    `reply-received` and `connected` events (their `time` fields, ms resolution), beside her
 *    own `ms` field (the punch: from having the reply to the link), bob's `connected`, and
 *    both processes' ends. Every pair runs with the same settings: bob stands by
 *    `BOB_STANDBY_S`, alice `ALICE_STANDBY_S` (she only stands by once her punch failed), and
 *    alice punches for the terminal's default window (`DEFAULT_TERMINAL_PUNCH_WINDOW_MS`, 15 s:
 *    there is no `terminal.punch_window` key yet), so a pair that cannot be punched ends after
 *    about that long. Medians over `--runs`.
 * 2. **Stream.** Over port-restricted × port-restricted, with router A dropping 0 % and 5 % of
 *    the UDP it forwards (`natlab.sh loss`): two `nat_peer.ts` processes, the sender in mpl-a
 *    and the receiver in mpl-b, first send `--mib` MiB of raw UDP datagrams through a hole of
 *    their own (the baseline: what arrives per second, nothing sent again), then `--mib` MiB over
 *    the mailpeer reliable stream of a link punched from their listeners' sockets, in the same
 *    run. Medians over `--runs`.
 * 3. **Paths** (`nat_paths.ts`): time to first byte per path kind (host, punched, mapped,
 *    relayed), the relayed stream beside raw UDP through the same TURN allocation, and racing
 *    the candidates against trying them in series (`--series-ms` per candidate); no mail.
 *
 * Every change to the lab is undone before the bench lets go of it: port-restricted twice, no
 * loss. With `--lock FILE` it holds FILE's flock only while one pair or one stream run uses the
 * lab (a lab shared by several people, who take the same lock). Prints a line per run and the
 * tables, and writes the JSON (every run, with both terminals' event timelines) to `--out`.
 *
 * Usage: scripts/bench-nat [--runs 1] [--pairs none/none,symmetric/none,…]
 *        [--parts pairs,stream,paths] [--paths host,punched,…] [--mib 32] [--series-ms 1000]
 *        [--out bench-results/nat.json]
 *        [--lock /tmp/mailpeer-natlab.lock]
 * The mail stack is needed only for the pairs part.
 *
 * @module
 */
import { dirname } from "node:path";
import { DEFAULT_TERMINAL_PUNCH_WINDOW_MS } from "../../src/limits.ts";
import { VERSION } from "../../src/version.ts";
import { Running } from "../../tests/support/cli.ts";
import { loadStack } from "../../tests/support/mailstack.ts";
import { makeSite } from "../../tests/support/site.ts";
import { arg, num } from "./args.ts";
import { markdownTable as table } from "./markdown_table.ts";
import {
  PATH_SCENARIOS,
  type PathsLab,
  pathsPart,
  pathsSettings,
  pathsTables,
  type PathSummary,
} from "./nat_paths.ts";
import { NetnsProcess } from "./netns_process.ts";
import { out, sweep } from "./rendezvous_stack.ts";

const REPO = new URL("../../", import.meta.url).pathname;
const NATLAB = `${REPO}scripts/natlab/natlab.sh`;
const MAILSTACK = `${REPO}scripts/mailstack/mailstack.sh`;
const PEER = `${REPO}scripts/benchmarks/nat_peer.ts`;
const TYPES = ["none", "full-cone", "restricted", "port-restricted", "symmetric"] as const;
type NatType = typeof TYPES[number];
const DEFAULT_NAT: NatType = "port-restricted";
const LOSSES = [0, 5];
/** Bob stands by this long: alice's start, her mail round trip and her whole punch window. */
const BOB_STANDBY_S = 20;
/** Alice stands by only after a failed punch: briefly. */
const ALICE_STANDBY_S = 1;
/** A safety net only: a hung terminal is stopped after this long (nothing is timed by it). */
const PAIR_KILL_MS = 120_000;
const STREAM_KILL_MS = 180_000;
const STREAM_WINDOW_MS = 10_000;
const MiB = 1024 * 1024;

const RUNS = num("runs", 1, 1);
const MIB = num("mib", 32, 1);
const OUT = arg("out") ?? "bench-results/nat.json";
const LOCK = arg("lock");
const SERIES_MS = num("series-ms", 1_000, 50);
const PATHS = arg("paths")?.split(",").map((p) => {
  if (!(PATH_SCENARIOS as readonly string[]).includes(p)) {
    throw new TypeError(`--paths takes some of ${PATH_SCENARIOS.join(", ")}, not ${p}`);
  }
  return p;
});
const PARTS = (arg("parts") ?? "pairs,stream,paths").split(",").map((p) => {
  if (p !== "pairs" && p !== "stream" && p !== "paths") {
    throw new TypeError("--parts takes pairs, stream and/or paths");
  }
  return p;
});
const PAIRS: [NatType, NatType][] = (() => {
  const given = arg("pairs");
  if (given === undefined) {
    return TYPES.flatMap((a) => TYPES.map((b): [NatType, NatType] => [a, b]));
  }
  return given.split(",").map((pair) => {
    const [a, b, more] = pair.split("/");
    const known = (t: string | undefined): t is NatType => TYPES.includes(t as NatType);
    if (!known(a) || !known(b) || more !== undefined) {
      throw new TypeError(
        `--pairs takes A/B,… with A and B among ${TYPES.join(", ")}, not ${pair}`,
      );
    }
    return [a, b] as [NatType, NatType];
  });
})();
const TAG = `benchnat-${crypto.randomUUID().slice(0, 8)}`;

interface Lab extends PathsLab {
  namespaces: { rta: string };
  root: { mail: Record<string, string> };
  coturn: PathsLab["coturn"] & { alt_host: string; alt_port: number };
}

const decoder = new TextDecoder();
const median = (xs: number[]) => {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const round = (x: number, digits = 0) => Number(x.toFixed(digits));

async function run(cmd: string, args: string[]): Promise<{ code: number; text: string }> {
  const r = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  return { code: r.code, text: decoder.decode(r.stdout) + decoder.decode(r.stderr) };
}

/** The lab and (for the pairs part) the stack, or one line saying what is missing (and exit 1). */
async function requireLabAndStack(): Promise<Lab> {
  const missing = (what: string): never => {
    Deno.stderr.writeSync(new TextEncoder().encode(
      `Cannot run the NAT benchmark: ${what}; start them with scripts/natlab/natlab.sh up and ` +
        "scripts/mailstack/mailstack.sh start, or run scripts/test\n",
    ));
    Deno.exit(1);
  };
  const dir = Deno.env.get("NATLAB_DIR") ?? `${REPO}.natlab`;
  let lab: Lab | undefined;
  try {
    lab = JSON.parse(Deno.readTextFileSync(`${dir}/natlab.json`));
  } catch {
    // below
  }
  if (!lab || (await run("bash", [NATLAB, "status"])).code !== 0) {
    return missing("the NAT lab is not running");
  }
  if (!PARTS.includes("pairs")) return lab;
  const stack = loadStack();
  if (!stack || (await run("bash", [MAILSTACK, "status"])).code !== 0) {
    return missing("the mail stack is not running");
  }
  if (stack.providers.some((p) => p.labIp !== lab.root.mail[p.domain])) {
    return missing(
      "the mail stack does not listen on the lab's addresses (start it after the lab)",
    );
  }
  return lab;
}

async function natlab(...args: string[]): Promise<void> {
  const r = await run("bash", [NATLAB, ...args]);
  if (r.code !== 0) throw new Error(`natlab.sh ${args.join(" ")} failed: ${r.text}`);
}

/** True while this bench has the lab (and may have changed its NAT types or loss). */
let holding = false;

async function resetLab(): Promise<void> {
  await natlab("setnat", DEFAULT_NAT, DEFAULT_NAT);
  await natlab("loss", "0");
}

/**
 * Runs `fn` with the lab to itself (FILE's flock with `--lock FILE`), and puts the lab back to
 * port-restricted twice and no loss before letting go.
 */
async function withLab<T>(fn: () => Promise<T>): Promise<T> {
  const file = LOCK ? await Deno.open(LOCK, { create: true, write: true }) : undefined;
  try {
    await file?.lock(true);
    holding = true;
    try {
      return await fn();
    } finally {
      await resetLab();
      holding = false;
    }
  } finally {
    file?.close(); // releases the flock
  }
}

// Ctrl-C or a kill: the terminals (same process group) end with us; the lab is put back first,
// but only while this bench has it (with --lock, someone else may have it now).
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => {
    (holding ? resetLab() : Promise.resolve()).finally(() => Deno.exit(130));
  });
}

// ---- part 1: real terminals through the host, per pair of NAT types ------------------------

type Event = Record<string, unknown>;

/** One terminal's outcome in one run; times in ms from alice's start. */
interface Side {
  outcome: string;
  code: number;
  path?: string;
  requestSent?: number;
  replyReceived?: number;
  introduced?: number;
  connected?: number;
  /** The `ms` field of the `connected` event. */
  connectedMs?: number;
  failed?: number;
  exited: number;
  chat: boolean;
  timeline: { event: string; t: number }[];
}

interface PairRun {
  alice: Side;
  bob: Side;
}

function side(events: Event[], code: number, exitedAt: number, start: number, hears: string) {
  const at = (name: string) => {
    const e = events.find((x) => x.event === name);
    return e ? Date.parse(String(e.time)) - start : undefined;
  };
  const connected = events.find((e) => e.event === "connected");
  const error = events.filter((e) => e.event === "error").at(-1);
  const result: Side = {
    outcome: connected && code === 0 ? "connected" : error ? String(error.code) : `exit ${code}`,
    code,
    exited: exitedAt - start,
    chat: events.some((e) => e.event === "message" && e.text === hears),
    timeline: events.map((e) => ({
      event: String(e.event),
      t: Date.parse(String(e.time)) - start,
    })),
  };
  const put = (key: keyof Side, value: unknown) => {
    if (value !== undefined) (result as unknown as Record<string, unknown>)[key] = value;
  };
  put("path", connected?.path);
  put("requestSent", at("request-sent"));
  put("replyReceived", at("reply-received"));
  put("introduced", at("introduction"));
  put("connected", at("connected"));
  put("connectedMs", connected?.ms);
  put("failed", at("connect-failed"));
  return result;
}

/** One rendezvous of bob (standing by behind B) and alice (behind A), lab set to A × B. */
async function meet(lab: Lab, a: NatType, b: NatType, index: number): Promise<PairRun> {
  const stun = `stun_servers = ["${lab.coturn.host}:${lab.coturn.port}", ` +
    `"${lab.coturn.alt_host}:${lab.coturn.alt_port}"]`;
  const site = await makeSite({
    receive: "imap",
    labMail: true,
    network: `${TAG}-${index}`,
    terminal: [
      `address = "auto"`,
      stun,
      `transport = "udp"`,
      `reply_timeout = "60s"`,
      `standby_timeout = "${BOB_STANDBY_S}s"`,
    ].join("\n"),
  });
  const aliceToml = `${site.dir}/alice.toml`;
  await Deno.writeTextFile(
    aliceToml,
    (await Deno.readTextFile(aliceToml)).replace(
      /standby_timeout = "\d+s"/,
      `standby_timeout = "${ALICE_STANDBY_S}s"`,
    ),
  );
  const opts = { cwd: site.dir, env: site.env };
  const host = new Running(["host", "--config", "host.toml", "--json"], opts);
  try {
    await host.waitFor((e) => e.event === "host-pass"); // the host reads its mailbox
    return await withLab(async () => {
      await natlab("setnat", a, b);
      const bob = new Running(
        ["client", "--config", "bob.toml", "--json", "-m", "hello from bob"],
        { ...opts, netns: lab.hosts.b.ns },
      );
      let alice: Running | undefined;
      const guard = setTimeout(() => {
        bob.stop();
        alice?.stop();
      }, PAIR_KILL_MS);
      try {
        await bob.waitFor((e) => e.event === "standby");
        const start = Date.now();
        alice = new Running(
          ["client", "--config", "alice.toml", "--json", "-m", "hello from alice"],
          { ...opts, netns: lab.hosts.a.ns },
        );
        const ended = (who: Running) => who.status.then((s) => ({ code: s.code, at: Date.now() }));
        const [aliceEnd, bobEnd] = await Promise.all([ended(alice), ended(bob)]);
        return {
          alice: side(alice.events, aliceEnd.code, aliceEnd.at, start, "hello from bob"),
          bob: side(bob.events, bobEnd.code, bobEnd.at, start, "hello from alice"),
        };
      } finally {
        clearTimeout(guard);
        await alice?.stop();
        await bob.stop();
      }
    });
  } finally {
    await host.stop();
    await site.cleanup();
  }
}

interface PairSummary {
  pair: string;
  runs: PairRun[];
  alice: string;
  bob: string;
  path: string;
  /** Medians (ms from alice's start) over the runs that have the figure. */
  requestSent?: number;
  replyReceived?: number;
  connected?: number;
  connectedMs?: number;
  bobConnected?: number;
  failed?: number;
  aliceExited?: number;
  bobExited?: number;
  chat: string;
}

/** "connected", or "2/3 connected, 1 ETIMEOUT" over several runs. */
function outcomes(xs: string[]): string {
  const counts = new Map<string, number>();
  for (const x of xs) counts.set(x, (counts.get(x) ?? 0) + 1);
  if (counts.size === 1 && xs.length === 1) return xs[0]!;
  return [...counts].map(([what, n]) => `${n}/${xs.length} ${what}`).join(", ");
}

function summarizePair(pair: string, runs: PairRun[]): PairSummary {
  const med = (f: (r: PairRun) => number | undefined) => {
    const m = median(runs.map(f).filter((x): x is number => x !== undefined));
    return m === undefined ? undefined : round(m);
  };
  const summary: PairSummary = {
    pair,
    runs,
    alice: outcomes(runs.map((r) => r.alice.outcome)),
    bob: outcomes(runs.map((r) => r.bob.outcome)),
    path: outcomes(runs.map((r) => r.alice.path ?? "—")),
    chat: outcomes(runs.map((r) => r.alice.chat && r.bob.chat ? "both ways" : "no")),
  };
  const put = (key: keyof PairSummary, value: number | undefined) => {
    if (value !== undefined) (summary as unknown as Record<string, unknown>)[key] = value;
  };
  put("requestSent", med((r) => r.alice.requestSent));
  put("replyReceived", med((r) => r.alice.replyReceived));
  put("connected", med((r) => r.alice.connected));
  put("connectedMs", med((r) => r.alice.connectedMs));
  put("bobConnected", med((r) => r.bob.connected));
  put("failed", med((r) => r.alice.failed));
  put("aliceExited", med((r) => r.alice.exited));
  put("bobExited", med((r) => r.bob.exited));
  return summary;
}

async function pairsPart(lab: Lab): Promise<PairSummary[]> {
  const summaries: PairSummary[] = [];
  let index = 0;
  for (const [a, b] of PAIRS) {
    const pair = `${a} × ${b}`;
    const runs: PairRun[] = [];
    for (let r = 0; r < RUNS; r++) {
      const got = await meet(lab, a, b, index++);
      runs.push(got);
      out(
        `${pair} run ${r + 1}: alice ${got.alice.outcome} ${got.alice.path ?? ""} ` +
          `connected ${got.alice.connected ?? "—"} ms (punch ${
            got.alice.connectedMs ?? "—"
          } ms), bob ${got.bob.outcome}; exits ${got.alice.exited} / ${got.bob.exited} ms\n`,
      );
    }
    summaries.push(summarizePair(pair, runs));
  }
  return summaries;
}

// ---- part 2: the stream over a punched path beside raw UDP ------------------------------------

interface StreamRun {
  rawMiBs?: number;
  rawSendMiBs?: number;
  rawDelivered: number;
  streamMiBs?: number;
  streamDelivered: number;
  retransmitted?: number;
  punchMs?: number;
  path?: string;
  error?: string;
}

type J = Record<string, unknown>;

async function streamRun(lab: Lab): Promise<StreamRun & { aes: string; detail: J }> {
  const common = ["--stun", `${lab.coturn.host}:${lab.coturn.port}`, "--mib", String(MIB)];
  const window = ["--window", String(STREAM_WINDOW_MS)];
  const peer = (ns: string, args: string[]) =>
    new NetnsProcess(ns, PEER, args, { killAfterMs: STREAM_KILL_MS });
  const sender = peer(lab.hosts.a.ns, [
    ...common,
    ...window,
    "--name",
    "alice",
    "--role",
    "send",
  ]);
  const receiver = peer(lab.hosts.b.ns, [
    ...common,
    ...window,
    "--name",
    "bob",
    "--role",
    "receive",
  ]);
  try {
    const [hs, hr] = await Promise.all([sender.line(), receiver.line()]);
    await Promise.all([sender.write(hr), receiver.write(hs)]);
    const [rawS, rawR] = (await Promise.all([sender.line(), receiver.line()])).map((l) =>
      l.raw as J
    );
    const [punchS, punchR] = (await Promise.all([sender.line(), receiver.line()])).map((l) =>
      l.punch as J
    );
    const total = MIB * MiB;
    const run: StreamRun = { rawDelivered: 0, streamDelivered: 0 };
    const received = rawS!.received as { bytes: number; lastAt: number } | undefined;
    if (received) {
      run.rawMiBs = received.bytes / MiB / ((received.lastAt - Number(rawS!.startedAt)) / 1000);
      run.rawSendMiBs = Number(rawS!.sentBytes) / MiB /
        ((Number(rawS!.sentAt) - Number(rawS!.startedAt)) / 1000);
      run.rawDelivered = received.bytes / Number(rawS!.sentBytes);
    } else {
      run.error = `raw UDP: ${rawS!.error ?? "?"} / ${rawR!.error ?? "?"}`;
    }
    const detail: J = { raw: { sender: rawS, receiver: rawR }, punch: { a: punchS, b: punchR } };
    if (punchS!.connected && punchR!.connected) {
      const [streamS, streamR] = (await Promise.all([sender.line(), receiver.line()])).map((l) =>
        l.stream as J
      );
      detail.stream = { sender: streamS, receiver: streamR };
      const bytes = Number(streamR!.bytes);
      run.streamMiBs = bytes / MiB /
        ((Number(streamS!.doneAt) - Number(streamS!.startedAt)) / 1000);
      run.streamDelivered = bytes / total;
      const stats = streamS!.stats as { retransmitted?: number } | undefined;
      if (stats?.retransmitted !== undefined) run.retransmitted = stats.retransmitted;
      run.punchMs = Math.max(Number(punchS!.ms), Number(punchR!.ms));
      run.path = String(punchS!.path);
    } else {
      run.error = `${run.error ? `${run.error}; ` : ""}punch failed: ${
        JSON.stringify({ a: punchS, b: punchR })
      }`;
    }
    return { ...run, aes: String(hs.aes), detail };
  } finally {
    const codes = await Promise.all([sender.end(), receiver.end()]);
    if (codes.some((c) => c !== 0)) out(`nat_peer.ts exit codes ${codes.join(", ")}\n`);
  }
}

interface StreamSummary {
  loss: number;
  routerDropped?: number;
  aes: string;
  runs: (StreamRun & { detail: J })[];
  rawMiBs?: number;
  rawSendMiBs?: number;
  rawDelivered: number;
  streamMiBs?: number;
  streamDelivered: number;
  retransmitted?: number;
  punchMs?: number;
  path: string;
  ratio?: number;
}

async function routerDropped(lab: Lab): Promise<number | undefined> {
  const r = await run("ip", [
    "netns",
    "exec",
    lab.namespaces.rta,
    "nft",
    "list",
    "table",
    "ip",
    "natlab_loss",
  ]);
  const n = /counter packets (\d+)/.exec(r.text)?.[1];
  return n === undefined ? undefined : Number(n);
}

async function streamPart(lab: Lab): Promise<StreamSummary[]> {
  const summaries: StreamSummary[] = [];
  for (const loss of LOSSES) {
    const runs: (StreamRun & { aes: string; detail: J })[] = [];
    let dropped: number | undefined;
    for (let r = 0; r < RUNS; r++) {
      const got = await withLab(async () => {
        await natlab("setnat", DEFAULT_NAT, DEFAULT_NAT);
        await natlab("loss", String(loss));
        const result = await streamRun(lab);
        if (loss > 0) dropped = (dropped ?? 0) + (await routerDropped(lab) ?? 0);
        return result;
      });
      runs.push(got);
      out(
        `stream, ${loss} % loss, run ${r + 1}: raw ${
          got.rawMiBs === undefined ? got.error : round(got.rawMiBs, 1)
        } MiB/s (${round(got.rawDelivered * 100, 1)} % delivered), stream ${
          got.streamMiBs === undefined ? got.error : `${round(got.streamMiBs, 1)} MiB/s`
        }\n`,
      );
    }
    const med = (f: (r: StreamRun) => number | undefined, digits = 1) => {
      const m = median(runs.map(f).filter((x): x is number => x !== undefined));
      return m === undefined ? undefined : round(m, digits);
    };
    const summary: StreamSummary = {
      loss,
      aes: runs[0]!.aes,
      runs,
      rawDelivered: med((r) => r.rawDelivered, 4)!,
      streamDelivered: med((r) => r.streamDelivered, 4) ?? 0,
      path: outcomes(runs.map((r) => r.path ?? "—")),
    };
    const put = (key: keyof StreamSummary, value: number | undefined) => {
      if (value !== undefined) (summary as unknown as Record<string, unknown>)[key] = value;
    };
    put("rawMiBs", med((r) => r.rawMiBs));
    put("rawSendMiBs", med((r) => r.rawSendMiBs));
    put("streamMiBs", med((r) => r.streamMiBs));
    put("retransmitted", med((r) => r.retransmitted, 0));
    put("punchMs", med((r) => r.punchMs, 0));
    put("routerDropped", dropped);
    if (summary.streamMiBs !== undefined && summary.rawMiBs !== undefined) {
      summary.ratio = round(summary.streamMiBs / summary.rawMiBs, 2);
    }
    summaries.push(summary);
  }
  return summaries;
}

// ---- output ---------------------------------------------------------------------------------

const ms = (x: number | undefined) => x === undefined ? "—" : String(x);
const s1 = (x: number | undefined) => x === undefined ? "—" : (x / 1000).toFixed(1);

function pairsTable(pairs: PairSummary[]): string {
  return table(
    [
      "A × B",
      "alice",
      "bob",
      "path",
      "request-sent ms",
      "reply ms",
      "connected ms",
      "punch ms",
      "bob connected ms",
      "chat",
      "exit alice / bob s",
    ],
    pairs.map((p) => [
      p.pair,
      p.alice,
      p.bob,
      p.path,
      ms(p.requestSent),
      ms(p.replyReceived),
      p.connected === undefined && p.failed !== undefined ? `gave up ${p.failed}` : ms(p.connected),
      ms(p.connectedMs),
      ms(p.bobConnected),
      p.chat,
      `${s1(p.aliceExited)} / ${s1(p.bobExited)}`,
    ]),
    new Set([4, 5, 6, 7, 8]),
  );
}

function streamTable(streams: StreamSummary[]): string {
  return table(
    [
      "router A drops",
      "raw UDP datagrams MiB/s (delivered of sent)",
      "mailpeer stream MiB/s (delivered, resent)",
      "ratio",
      "punch ms",
    ],
    streams.map((s) => [
      `${s.loss} %${
        s.routerDropped === undefined
          ? ""
          : ` (${s.routerDropped} dropped in ${RUNS} run${RUNS === 1 ? "" : "s"})`
      }`,
      s.rawMiBs === undefined
        ? "failed"
        : `${s.rawMiBs} (${round(s.rawDelivered * 100, 1)} % of ${s.rawSendMiBs} sent)`,
      s.streamMiBs === undefined
        ? "no link"
        : `${s.streamMiBs} (${round(s.streamDelivered * 100, 1)} %, ${s.retransmitted ?? "?"})`,
      s.ratio === undefined ? "—" : s.ratio.toFixed(2),
      ms(s.punchMs),
    ]),
    new Set([3, 4]),
  );
}

async function main(): Promise<void> {
  const lab = await requireLabAndStack();
  const started = new Date().toISOString();
  out(
    `NAT bench ${TAG}: runs ${RUNS}` +
      (PARTS.includes("pairs") ? `, ${PAIRS.length} pairs` : "") +
      (PARTS.includes("stream") ? `, stream ${MIB} MiB` : "") +
      (PARTS.includes("paths") ? `, paths (series ${SERIES_MS} ms per candidate)` : "") +
      `${LOCK ? `, lab lock ${LOCK}` : ""}\n`,
  );
  let pairs: PairSummary[] = [];
  let streams: StreamSummary[] = [];
  let paths: PathSummary[] = [];
  try {
    if (PARTS.includes("pairs")) pairs = await pairsPart(lab);
    if (PARTS.includes("stream")) streams = await streamPart(lab);
    if (PARTS.includes("paths")) {
      paths = await pathsPart(lab, {
        runs: RUNS,
        mib: MIB,
        seriesMs: SERIES_MS,
        ...(PATHS ? { only: PATHS } : {}),
        withLab,
        natlab,
        out,
      });
    }
  } finally {
    if (PARTS.includes("pairs")) {
      // the host deleted the requests and the terminals their replies; the rest goes here
      await sweep(["alice@a.test", "bob@b.test", "host@host.test"], TAG).catch((err) =>
        out(`could not sweep the bench's mail: ${err}\n`)
      );
    }
  }
  const result = {
    bench: "nat",
    version: VERSION,
    started,
    finished: new Date().toISOString(),
    machine: {
      cpus: navigator.hardwareConcurrency,
      deno: Deno.version.deno,
      os: Deno.build.os,
      loadAverage1m: Deno.loadavg()[0],
    },
    runs: RUNS,
    settings: {
      transport: "udp",
      stun: [
        `${lab.coturn.host}:${lab.coturn.port}`,
        `${lab.coturn.alt_host}:${lab.coturn.alt_port}`,
      ],
      bobStandbyS: BOB_STANDBY_S,
      aliceStandbyS: ALICE_STANDBY_S,
      alicePunchWindowMs: DEFAULT_TERMINAL_PUNCH_WINDOW_MS,
      streamMiB: MIB,
      streamPunchWindowMs: STREAM_WINDOW_MS,
      times: "ms from the spawn of alice's process to the `time` field of her events; " +
        "punch ms = the `ms` field of alice's connected event (from the reply to the link)",
    },
    pairs: pairs.map(({ runs, ...rest }) => ({ ...rest, runs })),
    stream: streams,
    ...(paths.length > 0
      ? { pathsSettings: pathsSettings({ seriesMs: SERIES_MS, mib: MIB }), paths }
      : {}),
  };
  const json = JSON.stringify(result, null, 2) + "\n";
  await Deno.mkdir(dirname(OUT), { recursive: true });
  await Deno.writeTextFile(OUT, json);
  let text = "";
  if (pairs.length > 0) {
    text +=
      `\nReal terminals through the host (times in ms from alice's start; medians of ${RUNS}):\n` +
      pairsTable(pairs);
  }
  if (streams.length > 0) {
    text += `\nStream over a punched port-restricted × port-restricted path, ${MIB} MiB ` +
      `(AES-GCM: ${streams[0]!.aes}; medians of ${RUNS}):\n` + streamTable(streams);
  }
  if (paths.length > 0) text += pathsTables(paths, RUNS, MIB);
  out(`${text}\nJSON: ${OUT}\n`);
}

await main();
