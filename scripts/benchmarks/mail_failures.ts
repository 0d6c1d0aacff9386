/**
 * How long a person waits to learn that their mail settings are wrong (issue 15), for IMAP,
 * POP3 and SMTP, beside a good login measured in the same run: each case of
 * `mail_failures_cases.ts` is opened through the CLI's own wiring (`openSource` /
 * `openSender`, so the defaults and retries are the ones a user gets), and the first error's
 * code, message and time are recorded. A server that answers should refuse within ~2 s; one
 * that does not within the configured connect timeout.
 *
 * Prints a Markdown table and writes JSON (`--json FILE`, default
 * bench-results/mail-failures.json). Needs the mail stack (scripts/mailstack/mailstack.sh).
 *
 * `--cli` also runs the command line as a person does (`mail_failures_cli.ts`): `host --once`
 * and `client` with a wrong password, `host --once` with STARTTLS on 993, beside
 * `main.ts --version` and a good `host --once`.
 *
 * Usage: scripts/bench-mail-failures [--runs 3] [--protocols imap,pop3,smtp] [--cli]
 *        [--connect-timeout-ms 10000] [--json FILE]
 *
 * @module
 */
import { dirname } from "node:path";
import type { ServerConfig } from "../../src/config/config_schema.ts";
import { DEFAULT_MAIL_CONNECT_TIMEOUT_MS } from "../../src/limits.ts";
import { openSender, openSource } from "../../src/cli/wire.ts";
import { account, STACK } from "../../tests/support/mailstack.ts";
import { arg, num } from "./args.ts";
import {
  type CaseEnv,
  CASES,
  closedPort,
  type Ports,
  type Protocol,
  sectionFor,
  silentListener,
  unreachableAddress,
} from "./mail_failures_cases.ts";
import { measureCli } from "./mail_failures_cli.ts";
import { serverRefusalMs } from "./mail_failures_raw.ts";
import { markdownTable } from "./markdown_table.ts";

if (!STACK) throw new Error("No mail stack: run scripts/mailstack/mailstack.sh start (as root)");

const runs = num("runs", 3, 1);
const protocols = (arg("protocols") ?? "imap,pop3,smtp").split(",").filter(Boolean) as Protocol[];
const withCli = Deno.args.includes("--cli");
const connectTimeoutMs = num("connect-timeout-ms", DEFAULT_MAIL_CONNECT_TIMEOUT_MS, 100);
const jsonPath = arg("json") ?? "bench-results/mail-failures.json";
/** A case still running after this is recorded as hanging (the measurement stops there). */
const GUARD_MS = 180_000;
const ADDRESS = "alice2@a.test";
const SECTIONS: Record<Protocol, string> = {
  imap: "terminal.receive",
  pop3: "terminal.receive",
  smtp: "terminal.send",
};

const { provider, user } = account(ADDRESS);
Deno.env.set("MAILPEER_BENCH_PASSWORD", user.password);
Deno.env.set("MAILPEER_BENCH_WRONG_PASSWORD", `${user.password}-wrong`);
const PORTS: Record<Protocol, Ports> = {
  imap: { starttls: provider.ports.imap, implicit: provider.ports.imaps },
  pop3: { starttls: provider.ports.pop3, implicit: provider.ports.pop3s },
  smtp: { starttls: provider.ports.submission, implicit: provider.ports.smtps },
};

interface Outcome {
  ms: number;
  code: string;
  message: string;
}

/** One operation through the CLI's wiring: list the mailbox, or submit one mail. */
async function attempt(protocol: Protocol, server: ServerConfig): Promise<Outcome> {
  const section = sectionFor(protocol, server);
  const t0 = performance.now();
  let guard: ReturnType<typeof setTimeout> | undefined;
  const hang = new Promise<never>((_, reject) => {
    guard = setTimeout(() => reject(new Error(`still running after ${GUARD_MS} ms`)), GUARD_MS);
  });
  let close = async () => {};
  try {
    const work = (async () => {
      if (protocol === "smtp") {
        const sender = await openSender(section as Parameters<typeof openSender>[0]);
        close = () => sender.close();
        // an unknown user of the sender's own provider: refused at RCPT, nothing is delivered
        await sender.send({
          from: ADDRESS,
          to: [`nobody-${crypto.randomUUID().slice(0, 8)}@${provider.domain}`],
          subject: "[mailpeer] bench-mail-failures",
          text: "never delivered\r\n",
        });
      } else {
        const source = await openSource(section as Parameters<typeof openSource>[0], {
          pollIntervalMs: 50,
          configKey: SECTIONS[protocol],
        });
        close = () => source.close();
        await source.list({ subject: "[mailpeer] bench-mail-failures request", mode: "exact" });
      }
    })();
    await Promise.race([work, hang]);
    return { ms: performance.now() - t0, code: "ok", message: "" };
  } catch (err) {
    const ms = performance.now() - t0;
    const hung = err instanceof Error && err.message.startsWith("still running after");
    const code = String((err as { code?: unknown }).code ?? (hung ? "hang" : "error"));
    return { ms, code, message: err instanceof Error ? err.message : String(err) };
  } finally {
    clearTimeout(guard);
    await close().catch(() => {});
  }
}

const silent = silentListener();
const env: CaseEnv = {
  closedPort: closedPort(),
  silentPort: silent.port,
  ...(await unreachableAddress().then((a) => (a ? { unreachable: a } : {}))),
};

interface Row {
  protocol: Protocol;
  case: string;
  what: string;
  answers: boolean;
  server: string;
  runs: number[];
  medianMs: number;
  code: string;
  message: string;
  met: boolean;
  /** Wrong password only: how long the server alone held the refusal (a bare client). */
  serverRuns?: number[];
  serverMedianMs?: number;
}

const encoder = new TextEncoder();
/** Progress, on stderr. */
const note = (line: string) => Deno.stderr.writeSync(encoder.encode(line + "\n"));
/** The report, on stdout. */
const out: string[] = [];
const print = (line: string) => out.push(line);

const rows: Row[] = [];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

for (const protocol of protocols) {
  const ports = PORTS[protocol];
  const good: ServerConfig = {
    host: provider.ip,
    port: ports.starttls,
    tls: "starttls",
    user: ADDRESS,
    password: { env: "MAILPEER_BENCH_PASSWORD" },
    caFile: STACK.caFile,
    servername: provider.hostname,
    insecure: false,
    connectTimeoutMs,
    section: SECTIONS[protocol],
  };
  // loads the protocol's library (imapflow, nodemailer) and warms the server: not measured
  await attempt(protocol, good);
  const cases = CASES.flatMap((c) => {
    const change = c.change(good, ports, env);
    if (change === undefined) {
      note(`${protocol} ${c.name}: skipped (needs the NAT lab's bridge)`);
      return [];
    }
    return [{
      c,
      server: { ...good, ...change },
      times: [] as number[],
      serverTimes: [] as number[],
      last: undefined as Outcome | undefined,
    }];
  });
  // Round by round, each round starting with a good login: Dovecot delays a failed login
  // more after each failure from the same address, and a successful one resets that.
  for (let i = 0; i < runs; i++) {
    for (const k of cases) {
      if (k.last?.code === "hang" || k.last?.code === "error") continue;
      k.last = await attempt(protocol, k.server);
      k.times.push(k.last.ms);
      note(`${protocol} ${k.c.name}: ${k.last.ms.toFixed(0)} ms ${k.last.code}`);
      if (k.c.name === "wrong password") {
        await attempt(protocol, good); // a success resets Dovecot's growing delay
        const ms = await serverRefusalMs(protocol, {
          host: provider.ip,
          port: ports.implicit,
          servername: provider.hostname,
          caFile: STACK.caFile,
          user: ADDRESS,
          password: `${user.password}-wrong`,
        });
        k.serverTimes.push(ms);
        note(`${protocol} wrong password, server alone: ${ms.toFixed(0)} ms`);
        await attempt(protocol, good);
      }
    }
  }
  for (const { c, server, times, serverTimes, last } of cases) {
    const medianMs = median(times);
    const limit = c.answers ? 2_000 : connectTimeoutMs + 500;
    rows.push({
      protocol,
      case: c.name,
      what: c.what,
      answers: c.answers,
      server: `${server.host}:${server.port} tls=${server.tls}`,
      runs: times.map((t) => Math.round(t)),
      medianMs: Math.round(medianMs),
      code: last!.code,
      message: last!.message,
      met: c.name === "good login"
        ? last!.code === "ok" || last!.code === "ESEND"
        : medianMs <= limit + (serverTimes.length > 0 ? median(serverTimes) : 0),
      ...(serverTimes.length > 0
        ? {
          serverRuns: serverTimes.map((t) => Math.round(t)),
          serverMedianMs: Math.round(median(serverTimes)),
        }
        : {}),
    });
  }
}
silent.close();

const baseline = new Map(rows.filter((r) => r.case === "good login").map((r) => [r.protocol, r]));
const table = markdownTable(
  [
    "protocol",
    "case",
    "server",
    "median",
    "baseline (same run)",
    "ratio",
    "error",
    "target",
    "met?",
  ],
  rows.map((r) => {
    const base = baseline.get(r.protocol)?.medianMs ?? NaN;
    const against = r.serverMedianMs ?? base;
    return [
      r.protocol,
      r.case,
      r.server,
      `${r.medianMs} ms`,
      r.case === "good login"
        ? ""
        : r.serverMedianMs !== undefined
        ? `the server alone holds it ${r.serverMedianMs} ms`
        : `good login ${base} ms`,
      r.case === "good login" ? "" : (r.medianMs / against).toFixed(2),
      r.code,
      r.case === "good login"
        ? "baseline"
        : r.serverMedianMs !== undefined
        ? "≤ 2 s beyond the server's hold"
        : r.answers
        ? "≤ 2 s"
        : `≤ ${connectTimeoutMs / 1000} s`,
      r.met ? "yes" : "**no**",
    ];
  }),
  new Set([3, 5]),
);
const cli = withCli ? await measureCli(runs, note) : new Map();
const cliRows = [...cli].map(([name, { times, last }]) => ({
  command: name,
  runs: times.map((t: number) => Math.round(t)),
  medianMs: Math.round(median(times)),
  exit: last.code,
  message: last.line,
}));
const version = cliRows.find((r) => r.command === "main.ts --version")?.medianMs ?? NaN;
const cliTable = markdownTable(
  ["command line", "median", "× main.ts --version", "exit", "says"],
  cliRows.map((r) => [
    r.command,
    `${r.medianMs} ms`,
    (r.medianMs / version).toFixed(2),
    String(r.exit),
    r.message.replace(/\|/g, "\\|"),
  ]),
  new Set([1, 2]),
);
const report = {
  bench: "mail-failures",
  date: new Date().toISOString(),
  deno: Deno.version.deno,
  runs,
  connectTimeoutMs,
  loadavg: Deno.loadavg(),
  rows,
  cli: cliRows,
};
await Deno.mkdir(dirname(jsonPath), { recursive: true });
await Deno.writeTextFile(jsonPath, JSON.stringify(report, null, 2) + "\n");
print(
  `Run ${report.date.slice(0, 16).replace("T", " ")} UTC, ${runs} run(s) per case, ` +
    `connect timeout ${connectTimeoutMs} ms, load ${
      report.loadavg.map((l) => l.toFixed(1)).join(" ")
    }.\n`,
);
print(table);
print("Messages:\n");
for (const r of rows) if (r.message) print(`- ${r.protocol}, ${r.case}: ${r.message}`);
if (withCli) print(`\nThe command line (a site on the stack, one process per run):\n\n${cliTable}`);
print(`\nJSON: ${jsonPath}`);
print(JSON.stringify(report));
await Deno.stdout.write(encoder.encode(out.join("\n") + "\n"));
