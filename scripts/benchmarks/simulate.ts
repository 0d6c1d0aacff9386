/**
 * The capacity model's command line (issue 18, docs/scaling.md): runs the model of
 * `simulate_model.ts` for one or more network sizes, prints a table (each figure beside the
 * loopback measurement where the model overlaps it), then the JSON it also writes to
 * `--json-out`. Runs nothing else: no mail stack, no network.
 *
 * Usage: scripts/simulate [--per-day 1000,100000,1000000 | --per-hour N,...] [options]
 *        (scripts/simulate --help lists every option)
 *
 * @module
 */
import { dirname } from "node:path";
import { arg, num, real } from "./args.ts";
import { markdownTable } from "./markdown_table.ts";
import {
  DEFAULTS,
  GMAIL_DELIVERY,
  LOOPBACK,
  LOOPBACK_FIXED_MS,
  LOOPBACK_IDLE_MS,
  type ModelInputs,
  type ModelResult,
  simulate,
  type Wake,
} from "./simulate_model.ts";

/**
 * Published delivery delays, Postmark "time to inbox" for 2025 as summarised by
 * github.com/jonasmalacofilho/postmark-tti-histogram (docs/scaling.md "Inputs").
 */
const DELIVERY: Record<string, { p50Ms: number; p95Ms: number }> = {
  gmail: GMAIL_DELIVERY,
  outlook: { p50Ms: 19_500, p95Ms: 63_300 },
  aol: { p50Ms: 15_600, p95Ms: 23_300 },
  apple: { p50Ms: 24_000, p95Ms: 141_600 },
  loopback: { p50Ms: 0, p95Ms: 0 },
};

const HELP = `scripts/simulate — capacity model of a mailpeer network (docs/scaling.md)

How many host accounts (providers' sending caps), hosts and host processes (CPU) a network needs
for a given number of rendezvous, and the rendezvous time it then gets (p50/p95/p99), by a
seeded Monte Carlo simulation. Starts nothing: no mail stack, no network, no wall clock.

Usage: scripts/simulate [options]

Load
  --per-day N[,N…]            rendezvous per day, one column each (default 1000,100000,1000000)
  --per-hour N[,N…]           or: rendezvous in the peak hour (overrides --per-day)
  --peak-to-mean X            peak hour / mean hour (default ${DEFAULTS.peakToMean})
  --introductions X|auto      introductions the host mails per request, 0…8; auto: from the
                              host's rules and each host's load (default auto)
  --peers-per-reply N         peers a reply lists, host.peers_per_reply (default ${DEFAULTS.peersPerReply})
Sending caps (docs/providers.md "Sending limits")
  --cap-per-day N             messages per account per 24 h (default ${DEFAULTS.capPerDay}: Gmail)
  --cap-per-hour N            messages per account per hour, 0 = none (default ${DEFAULTS.capPerHour})
  --cap-headroom X            fraction of the cap configured as max_per_day (default ${DEFAULTS.capHeadroom})
  --accounts-per-host N       [host.send] + [[host.send_also]], at most 8 (default ${DEFAULTS.accountsPerHost})
  --host-requests-per-hour N  host.requests_per_hour (default ${DEFAULTS.hostRequestsPerHour})
  --sync-interval-s N         host.sync_interval: table pushes to every other host (default ${
  DEFAULTS.syncIntervalMs / 1000
})
  --sync-pages N              snapshot mails per push (default ${DEFAULTS.syncPages})
  --pool-size N               hosts per sync pool, each pushing to the others (default ${DEFAULTS.poolSize})
Host processes (docs/performance.md, bench-host host-1)
  --per-process X             requests one process answers per second (default ${DEFAULTS.perProcessPerSecond})
  --max-utilisation X         planned utilisation of a process (default ${DEFAULTS.maxUtilisation})
  --processes N               simulate one host with this many processes (default: the plan)
Delivery and wake-up
  --delivery NAME             published delay fit: gmail, outlook, aol, apple, loopback (default gmail)
  --delivery-p50-ms X         median delivery delay of one mail (overrides --delivery)
  --delivery-p95-ms X         95th percentile of the same (log-normal through both)
  --wake idle|poll            IMAP IDLE push or polling, host and terminal (default ${DEFAULTS.wake})
  --poll-ms X                 polling interval (default ${DEFAULTS.pollMs}: a cron host every minute)
  --idle-ms X                 IDLE notification delay (default ${DEFAULTS.idleMs}: Dovecot on loopback)
  --fixed-ms X                the rest of a rendezvous: start, seal, submit, login, fetch, handshake
                              (default ${LOOPBACK_FIXED_MS.toFixed(1)}: from the loopback run)
  --peer-rtt-ms X             round trip between the peers; the connect takes two (default ${DEFAULTS.peerRttMs})
Simulation and output
  --samples N                 rendezvous simulated per column (default ${DEFAULTS.samples})
  --seed N                    seed of the random numbers (default ${DEFAULTS.seed})
  --json-out FILE             also write the JSON there (default bench-results/simulate.json)
  --help                      this text

Prints a table (with the loopback check: the model at zero delivery delay and light load beside
the measured loopback rendezvous), then the JSON.
`;

/** A comma-separated list of positive numbers. */
function list(name: string): number[] | undefined {
  const raw = arg(name);
  if (raw === undefined) return undefined;
  return raw.split(",").map((s) => {
    const v = Number(s.replaceAll("_", ""));
    if (!Number.isFinite(v) || v <= 0) {
      throw new TypeError(`--${name} needs positive numbers, not ${s}`);
    }
    return v;
  });
}

function inputsFromArgs(): { base: ModelInputs; perHour: number[] } {
  const deliveryName = arg("delivery") ?? "gmail";
  const delivery = DELIVERY[deliveryName];
  if (delivery === undefined) {
    throw new TypeError(`--delivery takes ${Object.keys(DELIVERY).join(", ")}`);
  }
  const wake = arg("wake") ?? DEFAULTS.wake;
  if (wake !== "idle" && wake !== "poll") throw new TypeError("--wake takes idle or poll");
  const peakToMean = real("peak-to-mean", DEFAULTS.peakToMean, 1);
  const base: ModelInputs = {
    peakPerHour: 0,
    peakToMean,
    introductionsPerRequest: arg("introductions") === "auto" || arg("introductions") === undefined
      ? "auto"
      : real("introductions", 0),
    peersPerReply: num("peers-per-reply", DEFAULTS.peersPerReply),
    capPerDay: num("cap-per-day", DEFAULTS.capPerDay, 1),
    capPerHour: num("cap-per-hour", DEFAULTS.capPerHour),
    capHeadroom: real("cap-headroom", DEFAULTS.capHeadroom, 0.01),
    accountsPerHost: num("accounts-per-host", DEFAULTS.accountsPerHost, 1),
    hostRequestsPerHour: num("host-requests-per-hour", DEFAULTS.hostRequestsPerHour, 1),
    syncIntervalMs: 1000 * num("sync-interval-s", DEFAULTS.syncIntervalMs / 1000, 1),
    syncPages: num("sync-pages", DEFAULTS.syncPages),
    poolSize: num("pool-size", DEFAULTS.poolSize, 1),
    perProcessPerSecond: real("per-process", DEFAULTS.perProcessPerSecond, 0.001),
    maxUtilisation: real("max-utilisation", DEFAULTS.maxUtilisation, 0.01),
    processes: num("processes", DEFAULTS.processes),
    deliveryP50Ms: real("delivery-p50-ms", delivery.p50Ms),
    deliveryP95Ms: real("delivery-p95-ms", delivery.p95Ms),
    wake: wake as Wake,
    pollMs: real("poll-ms", DEFAULTS.pollMs),
    idleMs: real("idle-ms", DEFAULTS.idleMs),
    fixedMs: real("fixed-ms", DEFAULTS.fixedMs),
    peerRttMs: real("peer-rtt-ms", DEFAULTS.peerRttMs),
    samples: num("samples", DEFAULTS.samples, 1),
    seed: num("seed", DEFAULTS.seed),
  };
  const perHour = list("per-hour") ??
    (list("per-day") ?? [1000, 100_000, 1_000_000]).map((d) => d / 24 * peakToMean);
  return { base, perHour };
}

/**
 * The model where it overlaps the loopback bench: zero delivery delay, one rendezvous an hour,
 * one process, the bench's poll interval or Dovecot's IDLE delay, no peer round trip (the
 * loopback connect is in the fixed part).
 */
function loopbackCheck(base: ModelInputs): { poll: ModelResult; idle: ModelResult } {
  const at = (wake: Wake) =>
    simulate({
      ...base,
      peakPerHour: 1,
      processes: 1,
      deliveryP50Ms: 0,
      deliveryP95Ms: 0,
      wake,
      pollMs: LOOPBACK.pollMs,
      idleMs: LOOPBACK_IDLE_MS,
      fixedMs: LOOPBACK_FIXED_MS,
      peerRttMs: 0,
      perProcessPerSecond: LOOPBACK.hostPerSecond,
    });
  return { poll: at("poll"), idle: at("idle") };
}

/** Writes text to stdout (no console in this repository; rendezvous_stack.ts's `out` would load
 * the mail libraries). */
function out(text: string): void {
  const bytes = new TextEncoder().encode(text);
  for (let at = 0; at < bytes.length;) at += Deno.stdout.writeSync(bytes.subarray(at));
}

const n = (x: number, d = 0) =>
  x.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
const s = (ms: number) => ms >= 10_000 ? `${n(ms / 1000, 1)} s` : `${n(ms, 1)} ms`;

/** The options HELP lists, so that a mistyped one is an error rather than a silent default. */
const KNOWN = new Set([...HELP.matchAll(/^ {2}(--[a-z0-9-]+)/gm)].map((m) => m[1]!));

function main(): void {
  if (Deno.args.includes("--help") || Deno.args.includes("-h")) {
    out(HELP);
    return;
  }
  const unknown = Deno.args.filter((a) => a.startsWith("--") && !KNOWN.has(a));
  if (unknown.length > 0) {
    throw new TypeError(`unknown option ${unknown.join(", ")} (scripts/simulate --help)`);
  }
  const { base, perHour } = inputsFromArgs();
  const results = perHour.map((p) => simulate({ ...base, peakPerHour: p }));
  const check = loopbackCheck(base);
  const head = ["figure", ...results.map((r) => `${n(r.rendezvousPerDay)} /day`), "loopback"];
  const row = (label: string, f: (r: ModelResult) => string, loop = "") => [
    label,
    ...results.map(f),
    loop,
  ];
  const rows = [
    row("peak rendezvous per hour", (r) => n(r.peakPerHour)),
    row("introductions per rendezvous", (r) => n(r.introductionsPerRequest, 2)),
    row(
      "host mails per day (of which sync)",
      (r) => `${n(r.mailsPerDay)} (${n(r.syncMailsPerDay)})`,
    ),
    row("host mails in the peak hour", (r) => n(r.mailsPeakHour)),
    row("sending accounts (send-cap bound)", (r) => n(r.accounts)),
    row("hosts (≤ accounts-per-host, requests/h)", (r) => n(r.hosts)),
    row(
      "host processes the CPU needs",
      (r) => n(r.cpuProcesses),
      `${LOOPBACK.hostPerSecond} req/s per process`,
    ),
    row("host processes (≥ 1 per host)", (r) => n(r.processes)),
    row("utilisation of a host's processes", (r) => `${n(100 * r.utilisation, 2)} %`),
    row(
      "rendezvous p50",
      (r) => s(r.rendezvousMs.p50),
      `poll ${LOOPBACK.pollRendezvousP50Ms} ms, IDLE ${LOOPBACK.idleRendezvousP50Ms} ms`,
    ),
    row("rendezvous p95", (r) => s(r.rendezvousMs.p95)),
    row("rendezvous p99", (r) => s(r.rendezvousMs.p99)),
    row("  delivery, both mails, p50", (r) => s(r.parts.delivery.p50), "0 (same machine)"),
    row("  wake-ups, both mailboxes, p50", (r) => s(r.parts.wake.p50)),
    row("  queue wait at the host, p95", (r) => s(r.parts.queueWait.p95)),
  ];
  const checkRows = [
    [
      "poll (25 ms)",
      `${n(check.poll.rendezvousMs.p50, 1)} ms`,
      `${LOOPBACK.pollRendezvousP50Ms} ms`,
      n(check.poll.rendezvousMs.p50 / LOOPBACK.pollRendezvousP50Ms, 3),
      "calibration (fixed part taken from it)",
    ],
    [
      "IDLE (Dovecot 500 ms)",
      `${n(check.idle.rendezvousMs.p50, 1)} ms`,
      `${LOOPBACK.idleRendezvousP50Ms} ms`,
      n(check.idle.rendezvousMs.p50 / LOOPBACK.idleRendezvousP50Ms, 3),
      "prediction",
    ],
  ];
  out(
    `capacity model, seed ${base.seed}, ${
      n(base.samples)
    } rendezvous per column, wake ${base.wake}` +
      (base.wake === "poll" ? ` every ${s(base.pollMs)}` : ` (${base.idleMs} ms)`) +
      `, delivery p50 ${s(base.deliveryP50Ms)} p95 ${
        s(base.deliveryP95Ms)
      }, cap ${base.capPerDay}/day\n\n`,
  );
  out(markdownTable(head, rows, new Set(results.map((_, i) => i + 1))));
  out("\nloopback check (zero delivery delay, 1 rendezvous/hour, 1 process):\n\n");
  out(
    markdownTable(
      ["mode", "model p50", "measured p50", "ratio", "kind"],
      checkRows,
      new Set([1, 2, 3]),
    ),
  );
  const json = {
    bench: "simulate",
    inputs: { ...base, peakPerHour: perHour },
    results,
    // The model where it overlaps the loopback bench, each figure beside the measurement.
    loopbackCheck: {
      source: "docs/performance.md, bench run 2026-11-26 10:14 UTC",
      measured: LOOPBACK,
      poll: {
        kind: "calibration",
        modelMs: check.poll.rendezvousMs,
        measuredP50Ms: LOOPBACK.pollRendezvousP50Ms,
        ratioP50: check.poll.rendezvousMs.p50 / LOOPBACK.pollRendezvousP50Ms,
      },
      idle: {
        kind: "prediction",
        modelMs: check.idle.rendezvousMs,
        measuredP50Ms: LOOPBACK.idleRendezvousP50Ms,
        ratioP50: check.idle.rendezvousMs.p50 / LOOPBACK.idleRendezvousP50Ms,
      },
    },
  };
  const text = JSON.stringify(json, null, 2) + "\n";
  const path = arg("json-out") ?? "bench-results/simulate.json";
  Deno.mkdirSync(dirname(path), { recursive: true });
  Deno.writeTextFileSync(path, text);
  out("\n" + text);
}

try {
  main();
} catch (err) {
  // A usage error: one line and exit code 2; anything else keeps its stack trace.
  if (!(err instanceof TypeError || err instanceof RangeError)) throw err;
  Deno.stderr.writeSync(new TextEncoder().encode(`scripts/simulate: ${err.message}\n`));
  Deno.exitCode = 2;
}
