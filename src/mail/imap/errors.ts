/**
 * Turns what imapflow, Node's `net`/`tls` layer and Deno throw into one-line
 * {@link MailError}s: `ECONNECT` (unreachable or dropped), `EAUTH` (refused login), `ETLS`
 * (certificate or handshake failure) and `EMAIL` (a command the server refused).
 *
 * @module
 */
import { MailError } from "../../errors.ts";

/** What kind of failure an error from the IMAP client is. */
export type ImapFailure = "connect" | "auth" | "tls" | "command";

/** Where the failure happened, for the message. */
export interface ImapErrorContext {
  /** `host:port` of the server. */
  server: string;
  /** Login name. */
  user: string;
  /** Configuration section for the fix, e.g. `host.receive`. */
  configKey: string;
  /** TLS server name that was verified (when TLS was used). */
  servername?: string;
}

/** Node/Deno socket error codes that mean "the server is not (or no longer) there". */
const CONNECT_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EHOSTDOWN",
  "EADDRNOTAVAIL",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ERR_SOCKET_CLOSED",
  "ERR_STREAM_DESTROYED",
  // imapflow
  "NoConnection",
  "EConnectionClosed",
  "StateLogout",
  "ClosedAfterConnectText",
  "CONNECT_TIMEOUT",
  "GREETING_TIMEOUT",
  "ETIMEOUT",
]);

/** Certificate verification codes of Node's tls (Deno's node:tls uses the same). */
const TLS_CODE = /^(ERR_TLS_|ERR_SSL_|UNABLE_TO_|CERT_|SELF_SIGNED|DEPTH_ZERO|HOSTNAME_MISMATCH)/;
const TLS_CODES = new Set(["ClosedAfterConnectTLS", "UPGRADE_TIMEOUT", "STARTTLS_INJECTION"]);
const TLS_TEXT = /certificate|\bTLS\b|\bSSL\b|STARTTLS|handshake/i;

/** Deno's own network errors, which carry no `code`. */
const DENO_CONNECT_ERRORS = [
  Deno.errors.ConnectionRefused,
  Deno.errors.ConnectionReset,
  Deno.errors.ConnectionAborted,
  Deno.errors.BrokenPipe,
  Deno.errors.TimedOut,
  Deno.errors.NotConnected,
  Deno.errors.AddrNotAvailable,
];

interface ErrorLike {
  code?: unknown;
  message?: unknown;
  authenticationFailed?: unknown;
  serverResponseCode?: unknown;
  responseText?: unknown;
  response?: unknown;
}

/** Classifies an error thrown by the IMAP client (or by the socket under it). */
export function classifyImapError(err: unknown): ImapFailure {
  if (err instanceof MailError) {
    if (err.code === "ECONNECT") return "connect";
    if (err.code === "EAUTH") return "auth";
    if (err.code === "ETLS") return "tls";
    return "command";
  }
  if (DENO_CONNECT_ERRORS.some((cls) => err instanceof cls)) return "connect";
  const e = (err ?? {}) as ErrorLike;
  const code = typeof e.code === "string" ? e.code : "";
  const message = typeof e.message === "string" ? e.message : "";
  // "NO [UNAVAILABLE] Temporary authentication failure": the server is (re)starting
  if (e.serverResponseCode === "UNAVAILABLE") return "connect";
  if (e.authenticationFailed === true || e.serverResponseCode === "AUTHENTICATIONFAILED") {
    return "auth";
  }
  if (TLS_CODES.has(code) || TLS_CODE.test(code)) return "tls";
  if (CONNECT_CODES.has(code)) return "connect";
  if (code === "" && TLS_TEXT.test(message) && !/^Command failed/.test(message)) return "tls";
  return "command";
}

/** The short reason of an error, without imapflow's "Command failed" boilerplate. */
export function imapReason(err: unknown): string {
  const e = (err ?? {}) as ErrorLike;
  const text = typeof e.responseText === "string" && e.responseText !== ""
    ? e.responseText
    : typeof e.response === "string" && e.response !== ""
    ? e.response.replace(/^\S+\s+/, "")
    : err instanceof Error
    ? err.message
    : String(err);
  return text.replace(/\s*\(\d+\.\d+ \+ [^)]*secs?\)/g, "") // Dovecot's timing suffix
    .replace(/\s+/g, " ").trim().replace(/[.;]+$/, "");
}

/**
 * Builds the one-line {@link MailError} for a failure while connecting or logging in.
 * Command failures get {@link commandError} instead.
 */
export function connectionError(err: unknown, ctx: ImapErrorContext): MailError {
  if (err instanceof MailError) return err;
  const kind = classifyImapError(err);
  const key = ctx.configKey;
  const reason = imapReason(err);
  if (kind === "auth") {
    if (/disabled|PRIVACYREQUIRED|plaintext/i.test(reason)) {
      return new MailError(
        "EAUTH",
        `Cannot log in to IMAP server ${ctx.server} as ${ctx.user}: the server refuses ` +
          `logins without TLS; set ${key}.tls = "starttls" or "implicit"`,
        { cause: err },
      );
    }
    return new MailError(
      "EAUTH",
      `Cannot log in to IMAP server ${ctx.server} as ${ctx.user}: the server refused the ` +
        `password; check ${key}.password_env (or ${key}.password_file) and ${key}.user`,
      { cause: err },
    );
  }
  if (kind === "tls") {
    const code = String((err as ErrorLike).code ?? "");
    const name = ctx.servername ?? "the host name";
    const fix = code.includes("ALTNAME") || /altname|not valid for|hostname/i.test(reason)
      ? `the certificate is not valid for ${name}; set ${key}.servername to a name the ` +
        "certificate carries"
      : /verify|issuer|self.signed|unknown ?ca|UnknownIssuer/i.test(reason + code)
      ? `the certificate is not signed by a trusted CA (${reason}); set ${key}.ca_file to ` +
        "the PEM file of the CA that signed it"
      : `${reason}; check ${key}.tls (starttls on 143, implicit on 993), ${key}.ca_file ` +
        `and ${key}.servername`;
    return new MailError(
      "ETLS",
      `Cannot open a TLS connection to IMAP server ${ctx.server}: ${fix}`,
      { cause: err },
    );
  }
  if (kind === "connect") {
    return new MailError(
      "ECONNECT",
      `Cannot connect to IMAP server ${ctx.server}: ${connectReason(err, reason)}; ` +
        `check ${key}.host and ` +
        `${key}.port and that the server is running`,
      { cause: err },
    );
  }
  return commandError(err, "log in to", ctx);
}

/** Builds the one-line {@link MailError} for a command the server refused. */
export function commandError(err: unknown, action: string, ctx: ImapErrorContext): MailError {
  if (err instanceof MailError) return err;
  return new MailError(
    "EMAIL",
    `Cannot ${action} IMAP server ${ctx.server} as ${ctx.user}: ${imapReason(err)}; ` +
      `check ${ctx.configKey} and the server log`,
    { cause: err },
  );
}

/** A readable reason for a connection failure. */
function connectReason(err: unknown, reason: string): string {
  const code = String((err as ErrorLike)?.code ?? "");
  if (code === "ECONNREFUSED" || err instanceof Deno.errors.ConnectionRefused) {
    return "the connection was refused (nothing listens there)";
  }
  if (/TIMEOUT|ETIMEDOUT/.test(code)) return `no answer in time (${reason})`;
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") return "the host name does not resolve";
  return reason;
}

/** Compresses sorted UIDs into an IMAP sequence set, e.g. `1:3,7,9:10`. */
export function uidSet(uids: readonly number[]): string {
  const parts: string[] = [];
  let start = -1;
  let prev = -1;
  for (const uid of uids) {
    if (uid === prev + 1 && start >= 0) {
      prev = uid;
      continue;
    }
    if (start >= 0) parts.push(start === prev ? `${start}` : `${start}:${prev}`);
    start = prev = uid;
  }
  if (start >= 0) parts.push(start === prev ? `${start}` : `${start}:${prev}`);
  return parts.join(",");
}

/** An error that reads as a lost connection, keeping the original as its cause. */
export function asConnectionLoss(err: unknown): unknown {
  if (classifyImapError(err) === "connect") return err;
  return Object.assign(new Error(`the connection was lost (${errorText(err)})`), {
    code: "ECONNRESET",
    cause: err,
  });
}

/** The message of an error, or the value as text. */
export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
