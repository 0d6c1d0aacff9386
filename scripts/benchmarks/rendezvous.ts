/**
 * Rendezvous benchmark (issue 3), against the real Postfix + Dovecot stack:
 *
 * 1. raw: the stack's own request + reply round trip (warm SMTP pool, warm IMAP sessions,
 *    an echo host; NOOP poll or IDLE) — the floor;
 * 2. rendezvous: a fresh mailpeer Terminal (alice, no open mail connections) from start to a
 *    connected, encrypted TCP link with a standing-by bob, through a Host running in a Worker (its own event loop);
 * 3. process start: `deno run main.ts --version`.
 *
 * Prints a table, then the JSON it also writes to `--json-out` (default
 * bench-results/rendezvous.json). Every mail it creates is deleted at the end.
 *
 * Usage: scripts/bench-rendezvous [--runs 20] [--json-out FILE] [--modes poll,idle]
 *        [--poll-ms 25] [--warmup 1] [--timeout-ms 30000]
 *
 * @module
 */
import { dirname } from "node:path";
import { VERSION } from "../../src/version.ts";
import { mailpeerRendezvous, type Mark, type Marks } from "./rendezvous_mailpeer.ts";
import { rawRoundTrips, type RawRun } from "./rendezvous_raw.ts";
import { now, out, requireStack, summarize, type Summary, sweep } from "./rendezvous_stack.ts";
import { arg, num } from "./args.ts";

const RUNS = Math.max(1, num("runs", 20));
const WARMUP = num("warmup", 1);
const POLL_MS = Math.max(1, num("poll-ms", 25));
const TIMEOUT_MS = Math.max(1000, num("timeout-ms", 30_000));
const JSON_OUT = arg("json-out") ?? "bench-results/rendezvous.json";
const MODES = (arg("modes") ?? "poll,idle").split(",").map((m) => {
  if (m !== "poll" && m !== "idle") throw new TypeError(`--modes takes poll and/or idle`);
  return m;
});
const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const TAG = `bench-${crypto.randomUUID().slice(0, 8)}`;

/** `deno run main.ts --version`: one untimed run (cache), then five timed. */
async function processStart(): Promise<Summary> {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      "--allow-read",
      "--allow-write",
      "--allow-net",
      "--allow-env",
      "--allow-sys=hostname,networkInterfaces",
      MAIN,
      "--version",
    ],
    stdout: "null",
    stderr: "piped",
    stdin: "null",
  });
  const times: number[] = [];
  for (let i = 0; i < 6; i++) {
    const t0 = now();
    const r = await cmd.output();
    if (r.code !== 0) {
      throw new Error(`main.ts --version failed: ${new TextDecoder().decode(r.stderr)}`);
    }
    if (i > 0) times.push(now() - t0);
  }
  return summarize(times);
}

type Phase = [label: string, from: Mark | 0, to: Mark];
const RENDEZVOUS_PHASES: Phase[] = [
  ["start → listening (listener up)", 0, "listening"],
  ["seal request", "listening", "requestSendStart"],
  ["SMTP submit, new connection", "requestSendStart", "requestSent"],
  ["request delivery + host wake", "requestSent", "hostSeen"],
  ["host: fetch + parse + open", "hostSeen", "hostOpened"],
  ["host: table + seal + reply SMTP", "hostOpened", "hostReplySent"],
  ["reply delivery + terminal wake", "hostReplySent", "aliceSeen"],
  ["terminal: fetch + open + delete", "aliceSeen", "replyReceived"],
  ["TCP connect + handshake", "replyReceived", "connected"],
  ["(parallel) alice IMAP connect+1st list", "aliceFirstListStart", "aliceFirstListEnd"],
];

function phaseSummaries(
  runs: Marks[],
  phases: Phase[],
): Record<string, Summary> {
  const res: Record<string, Summary> = {};
  for (const [label, from, to] of phases) {
    const xs = runs.map((m) => (m[to] ?? NaN) - (from === 0 ? 0 : m[from] ?? NaN))
      .filter(Number.isFinite);
    if (xs.length > 0) res[label] = summarize(xs);
  }
  return res;
}

function rawPhases(runs: RawRun[]): Record<string, Summary> {
  const d = (f: (r: RawRun) => number) => summarize(runs.map(f));
  return {
    "SMTP submit, warm pool": d((r) => r.sent),
    "request delivery + host wake": d((r) => r.hostSeen - r.sent),
    "host: fetch + reply SMTP": d((r) => r.replySent - r.hostSeen),
    "reply delivery + alice wake": d((r) => r.aliceSeen - r.replySent),
    "alice: fetch reply": d((r) => r.total - r.aliceSeen),
  };
}

interface Row {
  mode: string;
  metric: string;
  p50: number;
  p90: number;
  n: number;
  ratio: string;
}

function table(rows: Row[]): string {
  const head = ["mode", "metric", "p50 ms", "p90 ms", "n", "ratio to raw"];
  const cells = rows.map((r) => [
    r.mode,
    r.metric,
    r.p50.toFixed(1),
    r.p90.toFixed(1),
    String(r.n),
    r.ratio,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) =>
    c.map((x, i) => (i >= 2 ? x.padStart(widths[i]!) : x.padEnd(widths[i]!))).join("  ");
  return [line(head), widths.map((w) => "-".repeat(w)).join("  "), ...cells.map(line)].join(
    "\n",
  ) + "\n";
}

async function main(): Promise<void> {
  requireStack();
  const started = new Date().toISOString();
  out(`rendezvous bench ${TAG}: runs=${RUNS} warmup=${WARMUP} poll=${POLL_MS}ms\n`);
  const rows: Row[] = [];
  const modes: Record<string, unknown> = {};
  let swept: Record<string, number> = {};
  let startup: Summary | undefined;
  try {
    out("process start ...\n");
    startup = await processStart();
    for (const mode of MODES) {
      out(`${mode}: raw round trips ...\n`);
      const raw = await rawRoundTrips({
        mode,
        runs: RUNS,
        warmup: WARMUP,
        pollMs: POLL_MS,
        timeoutMs: TIMEOUT_MS,
        tag: TAG,
      });
      out(`${mode}: mailpeer rendezvous ...\n`);
      const rv = await mailpeerRendezvous({
        mode,
        runs: RUNS,
        warmup: WARMUP,
        pollMs: POLL_MS,
        timeoutMs: TIMEOUT_MS,
        network: `${TAG}-${mode}`,
      });
      const rawTotal = summarize(raw.runs.map((r) => r.total));
      const rvTotal = summarize(rv.runs.map((m) => m.total ?? NaN).filter(Number.isFinite));
      const ratio = (x: number) => (x / rawTotal.p50).toFixed(2);
      rows.push({ mode, metric: "raw request+reply round trip", ...rawTotal, ratio: "1.00" });
      rows.push({
        mode,
        metric: "mailpeer rendezvous (start → connected)",
        ...rvTotal,
        ratio: ratio(rvTotal.p50),
      });
      const rp = rawPhases(raw.runs);
      for (const [label, s] of Object.entries(rp)) {
        rows.push({ mode, metric: `  raw: ${label}`, ...s, ratio: "" });
      }
      const mp = phaseSummaries(rv.runs, RENDEZVOUS_PHASES);
      for (const [label, s] of Object.entries(mp)) {
        rows.push({ mode, metric: `  rendezvous: ${label}`, ...s, ratio: "" });
      }
      modes[mode] = {
        raw: { total: rawTotal, phases: rp, disturbed: raw.disturbed },
        rendezvous: {
          total: rvTotal,
          phases: mp,
          marks: rv.runs,
          bobRegisteredMs: rv.bobRegisteredMs,
          bobAccepted: rv.accepted,
          disturbedRuns: rv.disturbed,
          errors: rv.errors,
        },
        ratioP50: Number((rvTotal.p50 / rawTotal.p50).toFixed(2)),
        ratioP90: Number((rvTotal.p90 / rawTotal.p90).toFixed(2)),
      };
    }
  } finally {
    // the host deleted the requests and alice the replies; bob's replies (and anything a
    // failed run left) go here
    swept = await sweep(["alice@a.test", "bob@b.test", "host@host.test"], TAG);
  }
  if (startup) {
    rows.push({ mode: "-", metric: "process start (main.ts --version)", ...startup, ratio: "" });
  }
  const result = {
    bench: "rendezvous",
    version: VERSION,
    started,
    tag: TAG,
    runs: RUNS,
    warmup: WARMUP,
    pollMs: POLL_MS,
    host: "Host (src/host/host.ts) in a Worker: ImapSource + pooled SmtpSender, MemoryStore",
    terminal: "fresh Terminal per run: new SmtpSender + new ImapSource, TcpTransport",
    machine: { cpus: navigator.hardwareConcurrency, deno: Deno.version.deno, os: Deno.build.os },
    processStart: startup,
    modes,
    sweptMails: swept,
    table: rows,
  };
  const json = JSON.stringify(result, null, 2) + "\n";
  out("\n" + table(rows) + "\n" + json);
  await Deno.mkdir(dirname(JSON_OUT), { recursive: true });
  await Deno.writeTextFile(JSON_OUT, json);
}

await main();
