/**
 * Turns a configuration into live objects: mail senders and sources, key files, stores.
 *
 * @module
 */
import type {
  HostConfig,
  ReceiveConfig,
  SendConfig,
  ServerConfig,
} from "../config/config_schema.ts";
import type { ClaimLedger, TableStore } from "../host/types.ts";
import { CLAIM_RECOVERY_MS } from "../limits.ts";
import { resolveSecret, runTokenCommand } from "../config/secret.ts";
import { ConfigError, isMailpeerError, MessageError } from "../errors.ts";
import { IMAP_PROBE_TIMEOUT_MS } from "../mail/tuning.ts";
import { loggerFromEnv } from "../log.ts";
import type { MailLogin, MailSender, MailServerOptions, MailSource } from "../mail/types.ts";
import { concatBytes } from "../message/bytes.ts";
import { type HostCard, parseHostCard } from "../message/host_card.ts";
import {
  checkKeyFileMode,
  decodeHostKeys,
  decodeIdentityKeys,
  type HostKeys,
  type IdentityKeys,
} from "../message/key_file.ts";
import type { Clock } from "../runtime.ts";

/** The server options the mail clients take, with the password resolved. */
async function serverOptions(config: ServerConfig, what: string): Promise<MailServerOptions> {
  return {
    host: config.host,
    port: config.port,
    tls: config.tls,
    user: config.user,
    ...(config.password ? { password: await resolveSecret(config.password, what) } : {}),
    ...(config.tokenCommand
      ? {
        accessToken: (renew: boolean) =>
          runTokenCommand(config.tokenCommand!, what.replace(/password/, "OAuth2 token"), renew),
      }
      : {}),
    ...(config.caFile ? { caFile: config.caFile } : {}),
    ...(config.servername ? { servername: config.servername } : {}),
    ...(config.tlsMaxVersion ? { tlsMaxVersion: config.tlsMaxVersion } : {}),
    insecure: config.insecure,
    connectTimeoutMs: config.connectTimeoutMs,
  };
}

/** A receiver's login: its OAuth2 token, else its password (checked by the pre-flight). */
function loginOf(server: MailServerOptions): MailLogin {
  const { accessToken, password, ...rest } = server;
  return accessToken ? { ...rest, accessToken } : { ...rest, password: password ?? "" };
}

// Back-ends are imported when configured, not before: a cron host reading IMAP never loads
// the Redis client or the POP3 code, and starts faster (see docs/performance.md).

/** Opens the mail sender a role is configured with. */
export async function openSender(config: SendConfig): Promise<MailSender> {
  switch (config.kind) {
    case "local": {
      const { MaildirSender } = await import("../mail/maildir/sender.ts");
      return new MaildirSender(config.postOffice);
    }
    case "smtp": {
      const { SmtpSender } = await import("../mail/smtp/sender.ts");
      return new SmtpSender(await serverOptions(config, `SMTP password of ${config.user}`), {
        configKey: config.section,
      });
    }
  }
}

/**
 * For a cron run (`host --once`): whether the host's IMAP mailbox certainly holds no mailpeer
 * mail of `network`, found with a quick read-only search before imapflow is loaded (see
 * src/mail/imap/probe.ts). False when it may hold some, or when the probe cannot tell.
 */
export async function imapCertainlyEmpty(
  config: ReceiveConfig,
  network: string,
): Promise<boolean> {
  if (config.kind !== "imap") return false;
  const { probeImap } = await import("../mail/imap/probe.ts");
  const server = await serverOptions(config, `IMAP password of ${config.user}`);
  if (server.accessToken) return false; // the probe logs in with a password only
  const named = config.junk === "off" || config.junk === "auto" ? [] : [config.junk];
  const found = await probeImap(loginOf(server), {
    mailboxes: [config.mailbox, ...named],
    findJunk: config.junk === "auto",
    subject: `[mailpeer] ${network} `,
    timeoutMs: IMAP_PROBE_TIMEOUT_MS,
    configKey: config.section,
  });
  return found === false;
}

/**
 * The Junk folder an IMAP receiver also reads: the configured one, the one the server marks
 * `\Junk` (`auto`), or none (`off`, or no such folder). A failure to find it leaves the Junk
 * folder unread: the inbox's own source reports a login problem, in its own time.
 */
async function junkFolderOf(
  config: Extract<ReceiveConfig, { kind: "imap" }>,
  login: MailLogin,
  configKey: string,
): Promise<string | undefined> {
  if (config.junk === "off") return undefined;
  if (config.junk !== "auto") return config.junk;
  const { findJunkFolder } = await import("../mail/imap/junk.ts");
  return await findJunkFolder(login, { configKey }).catch(() => undefined);
}

/** Opens the mail source a role is configured with. */
export async function openSource(
  config: ReceiveConfig,
  options: {
    pollIntervalMs: number;
    clock?: Clock;
    configKey?: string;
    /** IMAP: read small bodies ahead with the listing (default true). */
    readAhead?: boolean;
  },
): Promise<MailSource> {
  const { configKey, readAhead = true, ...sourceOptions } = options;
  switch (config.kind) {
    case "local": {
      const { MaildirSource } = await import("../mail/maildir/source.ts");
      return new MaildirSource(config.maildir, sourceOptions);
    }
    case "imap": {
      const { ImapSource } = await import("../mail/imap/source.ts");
      const login = loginOf(await serverOptions(config, `IMAP password of ${config.user}`));
      const key = configKey ?? config.section;
      const logger = loggerFromEnv();
      const open = (mailbox: string) =>
        new ImapSource(login, {
          mailbox,
          quarantine: config.quarantine,
          idle: config.idle,
          ...(readAhead ? {} : { prefetchBytes: 0 }),
          // warnings (a dropped connection, a mailbox without MODSEQs) where MAILPEER_LOG says
          logger,
          ...sourceOptions,
          configKey: key,
        });
      const junk = await junkFolderOf(config, login, key);
      if (junk === undefined || junk === config.mailbox) return open(config.mailbox);
      // Mail a spam filter filed into Junk is read too (docs/config.md "Junk folders").
      const { MergedSource } = await import("../mail/merged_source.ts");
      return new MergedSource([open(config.mailbox), open(junk)]);
    }
    case "pop3": {
      const { Pop3Source } = await import("../mail/pop3/source.ts");
      const server = await serverOptions(config, `POP3 password of ${config.user}`);
      return new Pop3Source(loginOf(server), {
        ...sourceOptions,
        configKey: configKey ?? config.section,
      });
    }
  }
}

/**
 * Reads a private key file, refusing one that other users may read ({@link checkKeyFileMode}).
 * `todo` is what to do when it cannot be read: the keygen command that makes it, or "check the
 * path" where the user named an existing file.
 */
async function readKeyFile(path: string, what: string, todo: string): Promise<string> {
  try {
    using file = await Deno.open(path, { read: true });
    // The mode of the file opened, not of whatever the path names a moment later.
    checkKeyFileMode(path, (await file.stat()).mode);
    const chunks: Uint8Array[] = [];
    const chunk = new Uint8Array(4096);
    for (let n = await file.read(chunk); n !== null; n = await file.read(chunk)) {
      chunks.push(chunk.slice(0, n));
    }
    return new TextDecoder().decode(concatBytes(...chunks));
  } catch (err) {
    if (isMailpeerError(err)) throw err;
    const problem = err instanceof Deno.errors.NotFound
      ? "it does not exist"
      : (err as Error).message;
    throw new ConfigError("ECONFIG", `Cannot read the ${what} ${path}: ${problem}; ${todo}`, {
      cause: err,
    });
  }
}

/**
 * Options of the key file loaders: `existing` when the user named a file that should exist
 * (`keygen --card`), so a missing one is a wrong path, not a key to create.
 */
interface KeyFileOptions {
  existing?: boolean;
}

/** Loads the host's key file; `email` (the host's address) completes the keygen hint. */
export async function loadHostKeys(
  path: string,
  options: KeyFileOptions & { email?: string } = {},
): Promise<HostKeys> {
  const todo = options.existing
    ? "check the path"
    : `create it with \`mailpeer keygen --host ${options.email ?? "EMAIL"} -o ${path}\``;
  return await decodeHostKeys(await readKeyFile(path, "host key file", todo));
}

/** Loads a terminal's identity key file; `userId` completes the keygen hint. */
export async function loadIdentity(
  path: string,
  options: KeyFileOptions & { userId?: string } = {},
): Promise<IdentityKeys> {
  const todo = options.existing
    ? "check the path"
    : `create it with \`mailpeer keygen --user ${options.userId ?? "ID"} -o ${path}\``;
  return await decodeIdentityKeys(await readKeyFile(path, "identity key file", todo));
}

/** Parses the host cards of a terminal configuration, naming the bad one. */
export function parseHostCards(cards: string[], key = "terminal.hosts"): HostCard[] {
  return cards.map((card, i) => {
    try {
      return parseHostCard(card);
    } catch (err) {
      if (err instanceof MessageError) {
        throw new ConfigError("ECONFIG", `Cannot read ${key}[${i}]: ${err.message}`, {
          cause: err,
        });
      }
      throw err;
    }
  });
}

/**
 * The claims of processes sharing the host's mailbox, when they are kept in the shared store
 * (`claims = "store"` and the table in Redis); undefined: claims in the mailbox.
 * docs/decisions.md "Claims in the shared store".
 */
export function claimLedgerOf(
  host: Pick<HostConfig, "sharedMailbox" | "claims" | "receive">,
  store: TableStore,
): ClaimLedger | undefined {
  if (!host.sharedMailbox || host.claims !== "store" || store.claimLedger === undefined) {
    return undefined;
  }
  const r = host.receive;
  const scope = r.kind === "local"
    ? `maildir:${r.maildir}`
    : `${r.kind}://${r.user}@${r.host}:${r.port}/${r.kind === "imap" ? r.mailbox : ""}`;
  return store.claimLedger(scope, { ttlMs: CLAIM_RECOVERY_MS });
}

/** Opens the host's control table: the JSON file, or the shared Redis when configured. */
export async function openStore(host: Pick<HostConfig, "table" | "store">): Promise<TableStore> {
  if (host.store.kind === "redis") {
    const { RedisStore } = await import("../host/store/redis_store.ts");
    return new RedisStore(host.store.url, { key: host.store.key });
  }
  const { JsonFileStore } = await import("../host/store/json_file_store.ts");
  return new JsonFileStore(host.table);
}
