/**
 * Opens one imapflow session for {@link ImapSource}: TLS settings (test CA, server name,
 * STARTTLS policy), login, and the mailbox selected read-write. Failures come out as one-line
 * {@link MailError}s, except connection failures, which the caller retries.
 *
 * @module
 */
import { ImapFlow } from "imapflow";
import { MailError } from "../errors.ts";
import type { Logger } from "../log.ts";
import {
  classifyImapError,
  commandError,
  errorText,
  type ImapErrorContext,
} from "./imap_errors.ts";

/** Where and how to reach the IMAP server (the password already resolved). */
export interface ImapServerOptions {
  host: string;
  port: number;
  /** `starttls` upgrades a plain connection, `implicit` starts with TLS, `none` never uses TLS. */
  tls: "starttls" | "implicit" | "none";
  user: string;
  password: string;
  /** PEM file of the CA that signed the server certificate. Default: the system roots. */
  caFile?: string;
  /** Accept any certificate (tests only; every connection logs a warning). Default: false. */
  insecure?: boolean;
  /** TLS name to verify when `host` is an IP literal. Default: `host`. */
  servername?: string;
  /**
   * Highest TLS version to offer. `1.2` avoids a ~40 ms stall on servers that hold their
   * first answer after a TLS 1.3 handshake until the session ticket is acknowledged (see
   * docs/performance.md). Default: the highest both sides support.
   */
  tlsMaxVersion?: "1.2" | "1.3";
}

/** Options of {@link connectImap}. */
export interface ConnectImapOptions {
  /** Mailbox to select (read-write). */
  mailbox: string;
  logger: Logger;
  ctx: ImapErrorContext;
  /** Called when the session closes (server restart, logout, network failure). */
  onClose: (client: ImapFlow) => void;
  /** Called on every EXISTS notification (new mail may have arrived). */
  onExists: () => void;
}

/** How long connecting (TCP + TLS) and the greeting may take, each. */
const CONNECT_TIMEOUT_MS = 15_000;

/**
 * Connects, logs in and selects `mailbox`. Throws `MailError` `ETLS` when the CA file cannot
 * be read, `EMAIL` when the mailbox cannot be selected, and imapflow's own error otherwise
 * (classify it with `classifyImapError`).
 */
export async function connectImap(
  server: ImapServerOptions,
  options: ConnectImapOptions,
): Promise<{ client: ImapFlow; uidValidity: bigint }> {
  const { ctx, logger } = options;
  const tls: Record<string, unknown> = {};
  if (server.servername !== undefined) tls.servername = server.servername;
  if (server.insecure) tls.rejectUnauthorized = false;
  if (server.tlsMaxVersion !== undefined) tls.maxVersion = `TLSv${server.tlsMaxVersion}`;
  if (server.caFile !== undefined && server.tls !== "none") {
    try {
      tls.ca = [await Deno.readTextFile(server.caFile)];
    } catch (err) {
      throw new MailError(
        "ETLS",
        `Cannot read the CA file ${server.caFile} for IMAP server ${ctx.server}: ` +
          `${errorText(err)}; check ${ctx.configKey}.ca_file`,
        { cause: err },
      );
    }
  }
  if (server.insecure) {
    logger.log("warn", "IMAP certificate checks are off (insecure = true)", {
      server: ctx.server,
    });
  }
  const client = new ImapFlow({
    host: server.host,
    port: server.port,
    secure: server.tls === "implicit",
    doSTARTTLS: server.tls === "implicit" ? undefined : server.tls === "starttls",
    ...(server.servername !== undefined ? { servername: server.servername } : {}),
    tls,
    auth: { user: server.user, pass: server.password },
    logger: imapLogger(logger),
    disableAutoIdle: true,
    connectionTimeout: CONNECT_TIMEOUT_MS,
    greetingTimeout: CONNECT_TIMEOUT_MS,
    clientInfo: { name: "mailpeer" },
  });
  client.on("error", (err: unknown) => {
    logger.log("debug", "IMAP connection error", { server: ctx.server, error: errorText(err) });
  });
  client.on("close", () => options.onClose(client));
  client.on("exists", () => options.onExists());
  try {
    await client.connect();
    const box = await client.mailboxOpen(options.mailbox);
    logger.log("debug", "IMAP connected", { server: ctx.server, mailbox: options.mailbox });
    return { client, uidValidity: box.uidValidity };
  } catch (err) {
    const loggedIn = Boolean(client.authenticated);
    client.close();
    if (loggedIn && classifyImapError(err) === "command") {
      throw commandError(err, `open mailbox ${options.mailbox} on`, {
        ...ctx,
        configKey: `${ctx.configKey}.mailbox`,
      });
    }
    throw err;
  }
}

/** imapflow's pino-style logger, forwarded to a mailpeer {@link Logger}. */
function imapLogger(logger: Logger) {
  const forward = (level: "debug" | "warn") => (obj: unknown) => {
    const record = (obj ?? {}) as Record<string, unknown>;
    const { msg, err, ...rest } = record;
    const fields: Record<string, unknown> = { ...rest, source: "imapflow" };
    if (err !== undefined) fields.error = errorText(err);
    logger.log(level, typeof msg === "string" ? msg : "imapflow", fields);
  };
  return {
    trace: () => {},
    debug: forward("debug"),
    info: forward("debug"),
    warn: forward("warn"),
    error: forward("warn"),
    fatal: forward("warn"),
  };
}
