/**
 * One line of `mailpeer doctor`'s checklist: what was checked, where, and how it went (pass,
 * warn or fail), with what is wrong and what to do in one line (docs/cli.md "doctor").
 *
 * @module
 */

/** How a check went: `fail` makes `doctor` exit 1, `warn` does not, `skip` could not run. */
export type CheckStatus = "pass" | "warn" | "fail" | "skip";

/** One checklist line. */
export interface CheckResult {
  /** What was checked, e.g. `tls`, `login`, `junk-folder`, `clock-skew`. */
  check: string;
  /** Where: the configuration section (`terminal.receive`) or file it concerns. */
  target: string;
  status: CheckStatus;
  /** One line: what was found; for warn and fail, what is wrong; what to do. */
  message: string;
  /** Measurements worth a script's while (ms, days, skew …). */
  details?: Record<string, unknown>;
}

/** Collects results in order; each is reported as it comes. */
export type CheckReport = (result: CheckResult) => void;

/** Shorthands for a result of `check` on `target`. */
export function resultOf(check: string, target: string) {
  const make = (status: CheckStatus) => (message: string, details?: Record<string, unknown>) =>
    ({ check, target, status, message, ...(details ? { details } : {}) }) as CheckResult;
  return { pass: make("pass"), warn: make("warn"), fail: make("fail"), skip: make("skip") };
}

/** A server's refusal to log in over a connection without TLS (SMTP 530, POP3, IMAP). */
const NEEDS_TLS =
  /STARTTLS|plaintext authentication disallowed|PRIVACYREQUIRED|encryption required|TLS required/i;

/**
 * The line for a login refused because the connection has no TLS, or undefined when
 * `answer` (the server's words) says something else.
 */
export function needsTlsMessage(
  protocol: string,
  where: string,
  section: string,
  answer: string,
): string | undefined {
  if (!NEEDS_TLS.test(answer)) return undefined;
  return `${protocol} ${where} refuses to log in without TLS (${answer.trim()}); set ` +
    `${section}.tls = "starttls" (or "implicit" with the implicit-TLS port)`;
}
