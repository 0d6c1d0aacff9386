/**
 * `mailpeer doctor`: checks everything a configuration depends on and prints a checklist, one
 * line per check (pass, warn, fail or skip) saying what is wrong and what to do: for every
 * configured mail server DNS, TCP, TLS (trust, name, expiry, version) and login; for IMAP the
 * capabilities mailpeer uses and its folders (mailbox, quarantine, Junk); a mail to itself
 * with its round trip and the clock skew it shows; the key files and host cards; and for a
 * terminal what STUN and the router say about its reachability. `--json` prints one
 * `doctor-check` event per line instead. Exit 1 when a check failed (docs/cli.md "doctor").
 *
 * @module
 */
import { Command, Option } from "@commander-js/extra-typings";
import type { Config, ReceiveConfig, SendConfig } from "../config/config_schema.ts";
import { resolveSecret, runTokenCommand } from "../config/secret.ts";
import { ConfigError, isMailpeerError } from "../errors.ts";
import { configOption, loadConfigFor, onSignals, untilStopped } from "./common.ts";
import { jsonLine, printable } from "./terminal_text.ts";
import { openSource } from "./wire.ts";
import { type CheckReport, type CheckResult, needsTlsMessage, resultOf } from "./doctor/check.ts";
import { checkConnection } from "./doctor/connection_check.ts";
import { checkImap } from "./doctor/imap_check.ts";
import { checkKeys } from "./doctor/key_check.ts";
import { checkReach } from "./doctor/reach_check.ts";
import { checkSelfMail, type MailRole } from "./doctor/self_mail.ts";
import { checkSmtpLogin } from "./doctor/smtp_check.ts";

/** Options of {@link runDoctor}. */
export interface DoctorOptions {
  report: CheckReport;
  /** This machine's clock (ms since the epoch). Default: `Date.now`. */
  now?: () => number;
  /** Skip the mail to itself (and the clock skew it measures). */
  selfMail?: boolean;
  signal?: AbortSignal;
}

/**
 * Resolves a section's password, or runs its OAuth2 `token_command`; a failure is the section's
 * `password` (or `token`) line.
 */
async function password(
  config: {
    password?: Parameters<typeof resolveSecret>[0];
    tokenCommand?: string[];
    section: string;
    user: string;
  },
  report: CheckReport,
): Promise<{ ok: boolean; value?: string; token?: string }> {
  if (config.tokenCommand) {
    try {
      const token = await runTokenCommand(config.tokenCommand, `OAuth2 token of ${config.user}`);
      return { ok: true, token };
    } catch (err) {
      if (!isMailpeerError(err)) throw err;
      report(resultOf("token", config.section).fail(err.message));
      return { ok: false };
    }
  }
  if (!config.password) return { ok: true };
  try {
    return { ok: true, value: await resolveSecret(config.password, `password of ${config.user}`) };
  } catch (err) {
    if (!isMailpeerError(err)) throw err;
    report(resultOf("password", config.section).fail(err.message));
    return { ok: false };
  }
}

/** Checks a receive section; resolves whether the self-mail can be awaited there. */
async function checkReceive(
  receive: ReceiveConfig,
  role: string,
  config: Config,
  options: DoctorOptions & { now: () => number },
): Promise<boolean> {
  const { report } = options;
  if (receive.kind === "local") {
    return await checkLocalDir(receive.maildir, `${role}.receive`, "maildir", report);
  }
  const protocol = receive.kind === "imap" ? "IMAP" : "POP3";
  const reached = await checkConnection(receive, protocol, { now: options.now, report });
  if (!reached.usable) return false;
  const secret = await password(receive, report);
  if (!secret.ok) return false;
  if (receive.kind === "pop3") return await checkPop3Login(receive, report);
  if (secret.value === undefined && secret.token === undefined) {
    report(
      resultOf("login", receive.section).fail(
        `IMAP needs a password; set ${receive.section}.password_env or password_file`,
      ),
    );
    return false;
  }
  return await checkImap(receive, {
    ...(secret.token !== undefined ? { accessToken: secret.token } : { password: secret.value! }),
    subject: `[mailpeer] ${config.network} `,
    report,
  });
}

/** Logs in to POP3 with the source mailpeer uses (its errors are the source's own lines). */
async function checkPop3Login(
  receive: Extract<ReceiveConfig, { kind: "pop3" }>,
  report: CheckReport,
): Promise<boolean> {
  const r = resultOf("login", receive.section);
  const source = await openSource(receive, { pollIntervalMs: 1000 });
  try {
    const started = performance.now();
    await source.list({ subject: "[mailpeer-doctor] login", mode: "exact" });
    const ms = Math.round(performance.now() - started);
    report(r.pass(
      `logged in to POP3 ${receive.host}:${receive.port} as ${receive.user} (${ms} ms)`,
      { ms },
    ));
    return true;
  } catch (err) {
    if (!isMailpeerError(err)) throw err;
    const where = `${receive.host}:${receive.port}`;
    // The server's own words, inside the source's one line.
    const answer = /\((-ERR .*?)\);/.exec(err.message)?.[1] ?? err.message;
    report(r.fail(needsTlsMessage("POP3", where, receive.section, answer) ?? err.message));
    return false;
  } finally {
    await source.close().catch(() => {});
  }
}

/** Checks a send section; resolves whether it can send the self-mail. */
async function checkSend(
  send: SendConfig,
  role: string,
  options: DoctorOptions & { now: () => number },
): Promise<boolean> {
  const { report } = options;
  if (send.kind === "local") {
    return await checkLocalDir(send.postOffice, `${role}.send`, "post_office", report);
  }
  const reached = await checkConnection(send, "SMTP", { now: options.now, report });
  if (!reached.usable) return false;
  const secret = await password(send, report);
  if (!secret.ok) return false;
  return await checkSmtpLogin(send, {
    password: secret.value,
    ...(secret.token !== undefined ? { accessToken: secret.token } : {}),
    report,
  });
}

/**
 * A local post office or Maildir: a directory, or not there yet (mailpeer makes it on first
 * use, as the self-mail will).
 */
async function checkLocalDir(
  path: string,
  section: string,
  key: string,
  report: CheckReport,
): Promise<boolean> {
  const r = resultOf("directory", section);
  try {
    const info = await Deno.stat(path);
    if (!info.isDirectory) {
      report(r.fail(`${path} is not a directory; set ${section}.${key} to a directory`));
      return false;
    }
    report(r.pass(`${path} is a directory`));
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      report(r.pass(`${path} does not exist yet: mailpeer makes it on first use`));
      return true;
    }
    report(r.fail(
      `${path} cannot be read (${(err as Error).message}); check ${section}.${key} and its ` +
        "permissions",
    ));
    return false;
  }
}

/** The roles a configuration has, with their mail settings. */
function rolesOf(config: Config): MailRole[] {
  const roles: MailRole[] = [];
  if (config.host) {
    const h = config.host;
    roles.push({ role: "host", email: h.email, send: h.send, receive: h.receive });
  }
  if (config.terminal) {
    const t = config.terminal;
    roles.push({ role: "terminal", email: t.email, send: t.send, receive: t.receive });
  }
  return roles;
}

/** Runs every check of `config`, reporting each result as it comes. */
export async function runDoctor(config: Config, options: DoctorOptions): Promise<void> {
  const now = options.now ?? Date.now;
  const o = { ...options, now };
  const { report } = options;
  await checkKeys(config, report);
  for (const role of rolesOf(config)) {
    const receiving = await checkReceive(role.receive, role.role, config, o);
    const sending = await checkSend(role.send, role.role, o);
    const target = `${role.role}.receive`;
    if (options.selfMail === false) {
      report(resultOf("self-mail", target).skip("not tried (--no-self-mail)"));
    } else if (!receiving || !sending) {
      report(
        resultOf("self-mail", target).skip(
          `not tried: ${role.role}.${receiving ? "send" : "receive"} failed above`,
        ),
      );
    } else {
      await checkSelfMail(role, {
        now,
        report,
        ...(options.signal ? { signal: options.signal } : {}),
      });
    }
  }
  if (config.terminal) {
    await checkReach(config.terminal, {
      report,
      ...(options.signal ? { signal: options.signal } : {}),
    });
  }
}

const MARK: Record<CheckResult["status"], string> = {
  pass: "PASS",
  warn: "WARN",
  fail: "FAIL",
  skip: "SKIP",
};

/** One checklist line for a person. */
export function checklistLine(r: CheckResult): string {
  return printable(`${MARK[r.status]} ${r.target} ${r.check}: ${r.message}`);
}

/** Reads `--clock-offset`: a duration with an optional sign, e.g. `20m`, `-90s`. */
function clockOffset(text: string): number {
  const m = /^\s*([+-]?)\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(text);
  const unit: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  if (!m) {
    throw new ConfigError(
      "ECONFIG",
      `Cannot read --clock-offset: ${JSON.stringify(text)} is not a duration; write e.g. ` +
        '"20m" or "-90s"',
    );
  }
  return (m[1] === "-" ? -1 : 1) * Math.round(Number(m[2]) * unit[m[3] ?? "s"]!);
}

/**
 * Writes to stdout; a reader that went away (`doctor | head`) ends the printing, not the
 * checks (the exit code still tells).
 */
function print(bytes: Uint8Array): void {
  try {
    Deno.stdout.writeSync(bytes);
  } catch (err) {
    if (!(err instanceof Deno.errors.BrokenPipe)) throw err;
  }
}

/** The `doctor` subcommand. */
export function doctorCommand() {
  return configOption(new Command("doctor"))
    .description(
      "check the mail servers, keys, clock and reachability of a configuration; " +
        "print a checklist (exit 1 when a check fails)",
    )
    .addHelpText(
      "after",
      `
Checks, each a line PASS, WARN, FAIL or SKIP with what is wrong and what to do:
  key files (mode 0600) and host cards against the host keys; for every mail server of
  [host] and [terminal]: DNS, TCP, TLS (trust, name, expiry, version), login; for IMAP the
  capabilities (IDLE, MOVE, UIDPLUS, CONDSTORE, SPECIAL-USE), the mailbox, quarantine and
  Junk folders; a mail to itself (round trip, then deleted) and the clock skew it shows;
  STUN and the router mapping of a terminal. Warnings do not fail the run (docs/cli.md).

Examples:
  mailpeer doctor -c mailpeer.toml
  mailpeer doctor --json | jq -c 'select(.status == "fail")'`,
    )
    .option("--json", "print one JSON object per check")
    .option("--no-self-mail", "do not mail each role's address to itself (no round trip, no skew)")
    .addOption(
      new Option(
        "--clock-offset <duration>",
        "for tests: pretend this machine's clock is off by this much (e.g. 20m, -90s)",
      ).hideHelp(),
    )
    .action(async (opts) => {
      const json = opts.json ?? false;
      const config = await loadConfigFor(opts.config, { json });
      if (!config.host && !config.terminal) {
        throw new ConfigError(
          "ECONFIG",
          `Cannot check ${config.path ?? "the configuration"}: it has neither a [host] nor a ` +
            "[terminal] section; add one (see docs/config.md)",
        );
      }
      const offset = opts.clockOffset === undefined ? 0 : clockOffset(opts.clockOffset);
      const counts = { pass: 0, warn: 0, fail: 0, skip: 0 };
      const failed: CheckResult[] = [];
      const encoder = new TextEncoder();
      const report: CheckReport = (r) => {
        counts[r.status]++;
        if (r.status === "fail") failed.push(r);
        const line = json
          ? jsonLine({ time: new Date().toISOString(), event: "doctor-check", ...r })
          : checklistLine(r);
        print(encoder.encode(line + "\n"));
      };
      if (!json) {
        print(
          encoder.encode(`mailpeer doctor: ${config.path ?? "configuration"}\n`),
        );
      }
      const stop = onSignals();
      await untilStopped(stop.signal, () =>
        runDoctor(config, {
          report,
          now: () => Date.now() + offset,
          selfMail: opts.selfMail,
          signal: stop.signal,
        }));
      const summary = `${counts.pass} passed, ${counts.warn} warning${
        counts.warn === 1 ? "" : "s"
      }, ${counts.fail} failed, ${counts.skip} skipped`;
      print(encoder.encode(
        (json
          ? jsonLine({ time: new Date().toISOString(), event: "doctor-done", ...counts })
          : summary) +
          "\n",
      ));
      if (failed.length > 0) {
        throw new ConfigError(
          "ECHECK",
          `Cannot pass the checks: ${failed.length} failed (${
            failed.map((r) => `${r.target} ${r.check}`).join(", ")
          }); fix what each FAIL line says`,
        );
      }
    });
}
