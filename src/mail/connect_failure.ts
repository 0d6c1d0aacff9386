/**
 * The one-line messages of a failed connection to a mail server, shared by IMAP, POP3 and
 * SMTP: what happened in words (never a raw `EHOSTUNREACH` alone), the server's `host:port`,
 * and the configuration key to fix (e.g. `terminal.receive.port`). Also tells which failures
 * are refusals (the server, its address or its name said no: trying again changes nothing)
 * and which mean that nothing answered.
 *
 * @module
 */
import { MailError } from "../errors.ts";

/** Which mail protocol, for the message and the usual ports. */
export type MailProtocol = "IMAP" | "POP3" | "SMTP";

/** Where a connection went, for the message. */
export interface ConnectTarget {
  protocol: MailProtocol;
  host: string;
  port: number;
  /** Configuration section, e.g. `terminal.receive`. */
  configKey: string;
}

/** What a failed connection amounts to. */
export type ConnectFailure =
  | "refused"
  | "unknown-host"
  | "unreachable"
  | "timeout"
  | "dropped"
  | "other";

/** The usual ports: STARTTLS (or plain) and implicit TLS. */
export const USUAL_PORTS: Record<MailProtocol, { starttls: number; implicit: number }> = {
  IMAP: { starttls: 143, implicit: 993 },
  POP3: { starttls: 110, implicit: 995 },
  SMTP: { starttls: 587, implicit: 465 },
};

const CODES: Record<string, ConnectFailure> = {
  ECONNREFUSED: "refused",
  ENOTFOUND: "unknown-host",
  EAI_AGAIN: "unknown-host",
  EAI_NONAME: "unknown-host",
  EHOSTUNREACH: "unreachable",
  ENETUNREACH: "unreachable",
  EHOSTDOWN: "unreachable",
  EADDRNOTAVAIL: "unreachable",
  ETIMEDOUT: "timeout",
  CONNECT_TIMEOUT: "timeout",
  GREETING_TIMEOUT: "timeout",
  ECONNRESET: "dropped",
  ECONNABORTED: "dropped",
  EPIPE: "dropped",
};

/** Deno's own errors carry no code; their class and message tell. */
function denoFailure(err: Error): ConnectFailure | undefined {
  if (err instanceof Deno.errors.ConnectionRefused) return "refused";
  if (err instanceof Deno.errors.TimedOut) return "timeout";
  if (
    err instanceof Deno.errors.ConnectionReset || err instanceof Deno.errors.ConnectionAborted ||
    err instanceof Deno.errors.BrokenPipe
  ) return "dropped";
  if (
    /failed to lookup address|Name or service not known|No address associated/i.test(err.message)
  ) {
    return "unknown-host";
  }
  if (/No route to host|Network is unreachable|os error 11[03]\b/i.test(err.message)) {
    return "unreachable";
  }
  return undefined;
}

/** Classifies a connection error of node's `net`, Deno, imapflow or nodemailer. */
export function connectFailure(err: unknown): ConnectFailure {
  for (let e = err, depth = 0; e !== undefined && e !== null && depth < 4; depth++) {
    const code = String((e as { code?: unknown }).code ?? "");
    const errno = String((e as { errno?: unknown }).errno ?? "");
    const known = CODES[code] ?? CODES[errno];
    if (known) return known;
    if (e instanceof Error) {
      const text = e.message;
      const found = denoFailure(e) ??
        Object.entries(CODES).find(([c]) => new RegExp(`\\b${c}\\b`).test(text))?.[1];
      if (found) return found;
    }
    e = (e as { cause?: unknown; _err?: unknown }).cause ?? (e as { _err?: unknown })._err;
  }
  return "other";
}

/**
 * True for failures that trying again cannot mend: the server refused the connection, or its
 * name does not resolve. (A refused login is never retried either; see the callers.)
 */
export function isRefusal(err: unknown): boolean {
  const kind = connectFailure(err);
  return kind === "refused" || kind === "unknown-host";
}

/** Errors made here for a server that did not answer (timed out, unreachable, silent). */
const unanswered = new WeakSet<object>();

/**
 * True when a first connection's failure is the answer for the settings as they are, and
 * asking the server again would only repeat it at the same cost: a refused login (`EAUTH`, the
 * server holds each refusal up to seconds), a TLS failure (`ETLS`), or nothing answering until
 * the connect timeout. A refused connection or an unknown name is not kept: asking again costs
 * nothing, and a server that is (re)starting may be there the next time.
 */
export function isFinalFailure(err: unknown): boolean {
  if (!(err instanceof MailError)) return false;
  return err.code === "EAUTH" || err.code === "ETLS" || unanswered.has(err);
}

/** `host:port`. */
export function where(t: ConnectTarget): string {
  return `${t.host}:${t.port}`;
}

/**
 * The one-line `ECONNECT` for a connection that failed before the server spoke: refused,
 * unknown name, unreachable, timed out (after `timeoutMs`), or dropped.
 */
export function connectError(
  err: unknown,
  t: ConnectTarget,
  options: { timeoutMs?: number } = {},
): MailError {
  const k = t.configKey;
  const ports = USUAL_PORTS[t.protocol];
  const usual = `${t.protocol}: ${ports.starttls} for STARTTLS, ${ports.implicit} for implicit TLS`;
  let text: string;
  switch (connectFailure(err)) {
    case "refused":
      text = `the connection was refused: nothing listens on port ${t.port} there; check ` +
        `${k}.port (${usual}) and ${k}.host, and that the server runs`;
      break;
    case "unknown-host":
      text = `the host name ${t.host} does not resolve (no such name in DNS); check ${k}.host ` +
        "for a typo, and your network's DNS";
      break;
    case "unreachable":
      text = `there is no route to ${t.host} (the address is unreachable from this machine); ` +
        `check ${k}.host and this machine's network connection`;
      break;
    case "timeout":
      text = `nothing answered within ${seconds(options.timeoutMs)}; check ${k}.host and ` +
        `${k}.port, that a firewall lets the connection through, or raise ${k}.connect_timeout`;
      break;
    case "dropped":
      text = `the server closed the connection before it answered (${reasonOf(err)}); check ` +
        `${k}.port (${usual}) and ${k}.tls, and try again`;
      break;
    default:
      text = `${reasonOf(err)}; check ${k}.host, ${k}.port and that the server runs`;
  }
  const error = new MailError(
    "ECONNECT",
    `Cannot connect to ${t.protocol} server ${where(t)}: ${text}`,
    { cause: err },
  );
  const kind = connectFailure(err);
  if (kind === "timeout" || kind === "unreachable") unanswered.add(error);
  return error;
}

/** `ECONNECT` for a server that accepted the connection but never sent its greeting. */
export function silentServerError(t: ConnectTarget, timeoutMs: number, cause?: unknown): MailError {
  const k = t.configKey;
  const ports = USUAL_PORTS[t.protocol];
  const error = new MailError(
    "ECONNECT",
    `Cannot connect to ${t.protocol} server ${where(t)}: it accepted the connection but sent ` +
      `no ${t.protocol} greeting within ${seconds(timeoutMs)}; check ${k}.port ` +
      `(${ports.starttls} with tls = "starttls", ${ports.implicit} with tls = "implicit") and ` +
      `that ${article(t.protocol)} ${t.protocol} server runs there, or raise ${k}.connect_timeout`,
    { cause: cause ?? `no greeting within ${timeoutMs} ms` },
  );
  unanswered.add(error);
  return error;
}

/**
 * `ETLS` for a port that speaks TLS from the first byte while the configuration says
 * STARTTLS (or no TLS): both sides would wait for each other.
 */
export function implicitPortError(t: ConnectTarget, tls: string, cause?: unknown): MailError {
  const k = t.configKey;
  const ports = USUAL_PORTS[t.protocol];
  return new MailError(
    "ETLS",
    `Cannot connect to ${t.protocol} server ${where(t)}: the port speaks TLS from the start ` +
      `(implicit TLS), but ${k}.tls is "${tls}"; set ${k}.tls = "implicit", or keep ` +
      `"${tls}" and set ${k}.port = ${ports.starttls}`,
    { cause: cause ?? "a TLS handshake succeeded where a plain greeting was expected" },
  );
}

/**
 * True when a TLS handshake failed because the server answered in plain text (implicit TLS
 * against a STARTTLS or plain port): rustls says "InvalidContentType", OpenSSL "wrong version
 * number".
 */
export function isPlainTextAnswer(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 4; depth++) {
    if (
      /InvalidContentType|wrong version number|packet length too long|unknown protocol|http request|CorruptMessage/i
        .test(e.message)
    ) return true;
    e = e.cause ?? (e as { _err?: unknown })._err;
  }
  return false;
}

/** `ETLS` for implicit TLS against a port that answers in plain text. */
export function plainPortError(t: ConnectTarget, cause?: unknown): MailError {
  const k = t.configKey;
  const ports = USUAL_PORTS[t.protocol];
  return new MailError(
    "ETLS",
    `Cannot connect to ${t.protocol} server ${where(t)}: ${k}.tls is "implicit" but the port ` +
      `answers in plain text (it expects STARTTLS); set ${k}.tls = "starttls", or keep ` +
      `"implicit" and set ${k}.port = ${ports.implicit}`,
    { cause: cause ?? "the server's first bytes were not TLS" },
  );
}

/** "an IMAP", "a POP3". */
function article(protocol: MailProtocol): string {
  return protocol === "POP3" ? "a" : "an";
}

/** `10 s`, `2.5 s`. */
function seconds(ms: number | undefined): string {
  return ms === undefined ? "the connect timeout" : `${Number((ms / 1000).toFixed(1))} s`;
}

/** The first line of an error's message. */
function reasonOf(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split("\n")[0]!.trim();
}
