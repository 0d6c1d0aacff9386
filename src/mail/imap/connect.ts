/**
 * Opens one imapflow session for {@link ImapSource}: TLS settings (test CA, server name,
 * STARTTLS policy), login, and the mailbox selected read-write, all within the connect timeout
 * until the server has greeted. Failures come out as one-line {@link MailError}s: a connection
 * that fails before the greeting is an `ECONNECT` in words (connect_failure.ts), a port of the
 * other TLS mode an `ETLS` saying which `tls` to set (a late greeting on a STARTTLS connection
 * is checked with a TLS probe, tls_port_probe.ts), and a failed login is imapflow's error
 * (classify it with `classifyImapError`).
 *
 * @module
 */
import type { MailLogin } from "../types.ts";
import { ImapFlow } from "imapflow";
import { MailError } from "../../errors.ts";
import { DEFAULT_MAIL_CONNECT_TIMEOUT_MS } from "../../limits.ts";
import { TLS_PORT_PROBE_AFTER_MS } from "../tuning.ts";
import type { Logger } from "../../log.ts";
import {
  connectError,
  type ConnectTarget,
  implicitPortError,
  isPlainTextAnswer,
  plainPortError,
  silentServerError,
} from "../connect_failure.ts";
import { classifyImapError, commandError, errorText, type ImapErrorContext } from "./errors.ts";
import { speaksImplicitTls } from "../tls_port_probe.ts";
import { imapflowTlsMode, nodeTlsSettings } from "../tls_settings.ts";

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

/**
 * imapflow's own connect and greeting timers run this much longer than ours, so that ours
 * decides and words the failure.
 */
const BACKSTOP_MS = 1_000;

/**
 * Connects, logs in and selects `mailbox`. Throws `MailError` `ETLS` when the CA file cannot
 * be read, `EMAIL` when the mailbox cannot be selected, and imapflow's own error otherwise
 * (classify it with `classifyImapError`).
 */
export async function connectImap(
  server: MailLogin,
  options: ConnectImapOptions,
): Promise<{ client: ImapFlow; uidValidity: bigint }> {
  if (server.accessToken === undefined) {
    return await connectWith(server, { user: server.user, pass: server.password }, options);
  }
  // OAuth2: a refused token is most likely expired; ask for a fresh one once.
  const login = async (renew: boolean) =>
    await connectWith(
      server,
      { user: server.user, accessToken: await server.accessToken!(renew) },
      options,
    );
  try {
    return await login(false);
  } catch (err) {
    if (classifyImapError(err) !== "auth") throw err;
    options.logger.log("info", "IMAP refused the OAuth2 token; asking for a fresh one", {
      server: options.ctx.server,
    });
    return await login(true);
  }
}

async function connectWith(
  server: MailLogin,
  auth: { user: string; pass: string } | { user: string; accessToken: string },
  options: ConnectImapOptions,
): Promise<{ client: ImapFlow; uidValidity: bigint }> {
  const { ctx, logger } = options;
  const timeoutMs = server.connectTimeoutMs ?? DEFAULT_MAIL_CONNECT_TIMEOUT_MS;
  let ca: string | undefined;
  if (server.caFile !== undefined && server.tls !== "none") {
    try {
      ca = await Deno.readTextFile(server.caFile);
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
    ...imapflowTlsMode(server.tls),
    ...(server.servername !== undefined ? { servername: server.servername } : {}),
    tls: nodeTlsSettings(server, ca),
    auth,
    logger: imapLogger(logger),
    disableAutoIdle: true,
    connectionTimeout: timeoutMs + BACKSTOP_MS,
    greetingTimeout: timeoutMs + BACKSTOP_MS,
    clientInfo: { name: "mailpeer" },
  });
  client.on("error", (err: unknown) => {
    logger.log("debug", "IMAP connection error", { server: ctx.server, error: errorText(err) });
  });
  client.on("close", () => options.onClose(client));
  client.on("exists", () => options.onExists());
  try {
    await greeted(client, server, ctx, timeoutMs);
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

/** What imapflow keeps about the connection's start (not in its typings). */
interface ConnectState {
  greetingReceived?: boolean;
  connectedAt?: number;
}

/**
 * Runs imapflow's connect (greeting, STARTTLS, login) under the connect timeout, which ends
 * once the server has greeted; a STARTTLS (or plain) connection whose greeting is late asks
 * {@link speaksImplicitTls} whether the port expects TLS from the first byte.
 */
async function greeted(
  client: ImapFlow,
  server: MailLogin,
  ctx: ImapErrorContext,
  timeoutMs: number,
): Promise<void> {
  const state = client as unknown as ConnectState;
  const target: ConnectTarget = {
    protocol: "IMAP",
    host: server.host,
    port: server.port,
    configKey: ctx.configKey,
  };
  const probing = new AbortController();
  const timers: ReturnType<typeof setTimeout>[] = [];
  const failed = new Promise<never>((_, reject) => {
    timers.push(setTimeout(() => {
      if (state.greetingReceived) return;
      reject(
        state.connectedAt === undefined
          ? connectError(Object.assign(new Error("timed out"), { code: "ETIMEDOUT" }), target, {
            timeoutMs,
          })
          : silentServerError(target, timeoutMs),
      );
    }, timeoutMs));
    if (server.tls === "implicit") return;
    timers.push(setTimeout(async () => {
      if (state.greetingReceived || state.connectedAt === undefined) return;
      const tls = await speaksImplicitTls(server.host, server.port, {
        ...(server.servername !== undefined ? { servername: server.servername } : {}),
        timeoutMs: Math.max(1, timeoutMs - TLS_PORT_PROBE_AFTER_MS),
        signal: probing.signal,
      });
      if (tls && !state.greetingReceived) reject(implicitPortError(target, server.tls));
    }, TLS_PORT_PROBE_AFTER_MS));
  });
  try {
    await Promise.race([client.connect(), failed]);
  } catch (err) {
    if (err instanceof MailError) throw err;
    if (!state.greetingReceived) {
      if (server.tls === "implicit" && isPlainTextAnswer(err)) throw plainPortError(target, err);
      if (classifyImapError(err) !== "tls") throw connectError(err, target, { timeoutMs });
    }
    throw err;
  } finally {
    probing.abort();
    for (const timer of timers) clearTimeout(timer);
  }
}

/**
 * imapflow's pino-style logger, forwarded to a mailpeer {@link Logger}. `isLevelEnabled` lets
 * imapflow skip serialising each server response for a debug or trace record that would be
 * dropped: without it every level counts as on, and that serialising was 22–37 % of
 * imapflow's CPU in a host (docs/performance.md "Issue 18: hosts that scale out").
 */
export function imapLogger(logger: Logger) {
  const forward = (level: "debug" | "warn") => (obj: unknown) => {
    const record = (obj ?? {}) as Record<string, unknown>;
    const { msg, err, ...rest } = record;
    const fields: Record<string, unknown> = { ...rest, source: "imapflow" };
    if (err !== undefined) fields.error = errorText(err);
    logger.log(level, typeof msg === "string" ? msg : "imapflow", fields);
  };
  return {
    isLevelEnabled: (level: string) =>
      level === "trace" ? false : (logger.enabled?.(
        level === "debug" || level === "info" ? "debug" : "warn",
      ) ?? true),
    trace: () => {},
    debug: forward("debug"),
    info: forward("debug"),
    warn: forward("warn"),
    error: forward("warn"),
    fatal: forward("warn"),
  };
}
