/**
 * Cron benchmark (issue 7): `mailpeer host --once` on an empty mailbox, as cron runs it —
 * `deno run … main.ts host --once --config X`, an IMAP + SMTP host of host@host.test on the
 * real stack — wall time including Deno's start (target ≤ 0.5 s), next to, in the same run and
 * interleaved:
 *
 * - bare runtime start: `deno run` of an empty module;
 * - process start: `deno run main.ts --version` (runtime + every module main.ts imports);
 * - the same with `--cached-only` (does start-up touch the network?);
 * - each heavy npm package imported alone (minus the bare start: its load cost);
 * - the `--once` work in this process with modules already loaded, by phase: configuration +
 *   keys, wiring (hostFromConfig), `HostService.runOnce` (run lock, IMAP connect, login, SELECT,
 *   NOOP, one SEARCH for the host and the pool sync), close (LOGOUT); and a raw
 *   imapflow connect + SELECT + LOGOUT as the stack's own floor.
 *
 * Usage: scripts/bench runs it; alone (stack running):
 *   scripts/deno run --no-prompt -A scripts/benchmarks/cron.ts [--runs 7] [--json-out FILE]
 *
 * @module
 */
import { dirname, join } from "node:path";
import { loadConfig } from "../../src/config/config.ts";
import { hostFromConfig } from "../../src/cli/host.ts";
import { VERSION } from "../../src/version.ts";
import { makeSite, PERMS, writeHostConfig } from "./host_site.ts";
import { now, out, RawBox, requireStack, summarize, type Summary } from "./rendezvous_stack.ts";
import { arg, num } from "./args.ts";

const RUNS = Math.max(5, num("runs", 7));
const JSON_OUT = arg("json-out") ?? "bench-results/cron.json";
const ROOT = new URL("../../", import.meta.url).pathname;
const MAIN = join(ROOT, "main.ts");
const CONFIG = join(ROOT, "deno.json");
const HEAVY = [
  "nodemailer",
  "imapflow",
  "mailparser",
  "redis",
  "@hpke/core",
  "@commander-js/extra-typings",
  "smol-toml",
];

/** Runs `deno <args>` to its end; resolves with the wall ms (throws on a failure). */
async function timed(args: string[], o: { cwd: string; env: Record<string, string> }) {
  const t0 = now();
  const r = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: o.cwd,
    env: o.env,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  const ms = now() - t0;
  if (r.code !== 0) {
    throw new Error(`deno ${args.join(" ")} failed: ${new TextDecoder().decode(r.stderr)}`);
  }
  return ms;
}

async function main(): Promise<void> {
  requireStack();
  const started = new Date().toISOString();
  const site = await makeSite();
  const network = `bench-${crypto.randomUUID().slice(0, 8)}-cron`;
  const config = await writeHostConfig(site, "cron", { network, pollMs: 1000 });
  const fastConfig = await writeHostConfig(site, "cron-fast", {
    network,
    pollMs: 1000,
    tls: "implicit-1.2",
  });
  const o = { cwd: site.dir, env: site.env };
  const empty = join(site.dir, "empty.ts");
  await Deno.writeTextFile(empty, "");
  for (const pkg of HEAVY) {
    await Deno.writeTextFile(
      join(site.dir, `import-${pkg.replace(/\W/g, "_")}.ts`),
      `import "${pkg}";\n`,
    );
  }
  const cmds: Record<string, string[]> = {
    "bare runtime start (empty module)": ["run", "--no-prompt", empty],
    "process start (main.ts --version)": ["run", "--no-prompt", ...PERMS, MAIN, "--version"],
    "main.ts --version --cached-only": [
      "run",
      "--no-prompt",
      "--cached-only",
      ...PERMS,
      MAIN,
      "--version",
    ],
    "host --once, empty mailbox": [
      "run",
      "--no-prompt",
      ...PERMS,
      MAIN,
      "host",
      "--once",
      "--config",
      config,
    ],
    "host --once, empty mailbox, IMAP implicit TLS + tls_max_version 1.2": [
      "run",
      "--no-prompt",
      ...PERMS,
      MAIN,
      "host",
      "--once",
      "--config",
      fastConfig,
    ],
  };
  const samples: Record<string, number[]> = {};
  const imports: Record<string, number[]> = {};
  const phases: Record<string, number[]> = {};
  const add = (to: Record<string, number[]>, k: string, v: number) => (to[k] ??= []).push(v);
  try {
    out(`cron bench: ${RUNS} runs each, interleaved (one untimed round first)\n`);
    for (let i = 0; i <= RUNS; i++) {
      for (const [name, args] of Object.entries(cmds)) {
        const ms = await timed(args, o);
        if (i > 0) add(samples, name, ms);
      }
    }
    for (let i = 0; i <= 3; i++) {
      const bare = await timed(cmds["bare runtime start (empty module)"]!, o);
      for (const pkg of HEAVY) {
        const file = join(site.dir, `import-${pkg.replace(/\W/g, "_")}.ts`);
        const ms = await timed(["run", "--no-prompt", "-A", "--config", CONFIG, file], o);
        if (i > 0) add(imports, pkg, ms - bare);
      }
    }
    // the --once work in this process (modules loaded): fresh objects each run
    for (const [k, v] of Object.entries(site.env)) Deno.env.set(k, v);
    for (let i = 0; i <= RUNS; i++) {
      const t0 = now();
      const cfg = await loadConfig(config);
      const t1 = now();
      const wired = await hostFromConfig(cfg, { onEvent: () => {} });
      const t2 = now();
      const t3 = now();
      await wired.service.runOnce();
      const t4 = now();
      await wired.close();
      const t5 = now();
      const raw = await RawBox.open("host@host.test", "poll");
      const t6 = now();
      await raw.close();
      const t7 = now();
      if (i === 0) continue;
      add(phases, "load configuration", t1 - t0);
      add(phases, "wire: keys, source, sender, store, directory (hostFromConfig)", t2 - t1);
      add(
        phases,
        "HostService.runOnce: run lock, IMAP connect+STARTTLS+login+SELECT, one listing for host and sync",
        t4 - t3,
      );
      add(phases, "close: IMAP LOGOUT, SMTP, store", t5 - t4);
      add(phases, "baseline: raw imapflow connect+login+SELECT", t6 - t5);
      add(phases, "baseline: raw imapflow LOGOUT", t7 - t6);
    }
  } finally {
    await Deno.remove(site.dir, { recursive: true }).catch(() => {});
  }
  const s = (xs: Record<string, number[]>) =>
    Object.fromEntries(Object.entries(xs).map(([k, v]) => [k, summarize(v)])) as Record<
      string,
      Summary
    >;
  const runs = s(samples);
  const once = runs["host --once, empty mailbox"]!;
  const onceFast = runs["host --once, empty mailbox, IMAP implicit TLS + tls_max_version 1.2"]!;
  const version = runs["process start (main.ts --version)"]!;
  const bare = runs["bare runtime start (empty module)"]!;
  const result = {
    bench: "cron",
    version: VERSION,
    started,
    runs: RUNS,
    loadAverage1m: Deno.loadavg()[0],
    machine: { cpus: navigator.hardwareConcurrency, deno: Deno.version.deno, os: Deno.build.os },
    processes: runs,
    importCostOverBareStart: s(imports),
    inProcessPhases: s(phases),
    once: { p50: once.p50, targetMs: 500, met: once.p50 <= 500 },
    onceImplicitTls12: { p50: onceFast.p50, p90: onceFast.p90, met: onceFast.p50 <= 500 },
    ratioToProcessStart: Math.round((once.p50 / version.p50) * 100) / 100,
    ratioToBareStart: Math.round((once.p50 / bare.p50) * 100) / 100,
    breakdownP50: {
      bareRuntime: bare.p50,
      moduleLoading: Math.round((version.p50 - bare.p50) * 10) / 10,
      onceWorkBeyondVersion: Math.round((once.p50 - version.p50) * 10) / 10,
    },
  };
  const row = (k: string, v: Summary) =>
    `${k.padEnd(72)} ${v.p50.toFixed(1).padStart(8)} ${v.p90.toFixed(1).padStart(8)} ${
      String(v.n).padStart(3)
    }\n`;
  let text = `\n${"metric".padEnd(72)} ${"p50 ms".padStart(8)} ${"p90 ms".padStart(8)}   n\n`;
  for (const [k, v] of Object.entries(runs)) text += row(k, v);
  for (const [k, v] of Object.entries(result.importCostOverBareStart)) {
    text += row(`  import "${k}" alone, minus bare start`, v);
  }
  for (const [k, v] of Object.entries(result.inProcessPhases)) text += row(`  in-process: ${k}`, v);
  text += `\nhost --once p50 ${once.p50} ms (target ≤ 500): ${result.ratioToProcessStart}× ` +
    `process start, ${result.ratioToBareStart}× bare runtime start\n`;
  const json = JSON.stringify(result, null, 2) + "\n";
  out(text + "\n" + json);
  await Deno.mkdir(dirname(JSON_OUT), { recursive: true });
  await Deno.writeTextFile(JSON_OUT, json);
}

await main();
