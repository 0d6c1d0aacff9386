/**
 * {@link MailSource} over IMAP (imapflow): one persistent connection, the mailbox opened
 * read-write, push through IMAP IDLE or NOOP polling, reconnection with backoff.
 *
 * Only mail whose subject matches is ever fetched, deleted or moved, and nothing is ever
 * marked `\Seen`: bodies are read with `BODY.PEEK[]`, deletion is `UID EXPUNGE` of exactly one
 * UID (UIDPLUS), quarantine is `UID MOVE`.
 *
 * @module
 */
import type { ImapFlow } from "imapflow";
import { MailError } from "../errors.ts";
import { DEFAULT_POLL_INTERVAL_MS } from "../limits.ts";
import { type Logger, silentLogger } from "../log.ts";
import { type Backoff, type Clock, exponentialBackoff, systemClock } from "../runtime.ts";
import { connectImap, type ImapServerOptions } from "./imap_connect.ts";
import {
  asConnectionLoss,
  classifyImapError,
  commandError,
  connectionError,
  errorText,
  type ImapErrorContext,
  uidSet,
} from "./imap_errors.ts";

export type { ImapServerOptions } from "./imap_connect.ts";
import { type MailRef, type MailSource, matchesSubject, type SubjectMatch } from "./types.ts";

/** Options of {@link ImapSource}. */
export interface ImapSourceOptions {
  /** Mailbox to read. Default: `INBOX`. */
  mailbox?: string;
  /** Folder that quarantined mail is moved to, created when missing. Default: `Quarantine`. */
  quarantine?: string;
  /** Wait for mail with IMAP IDLE (else NOOP polling). Default: true. */
  idle?: boolean;
  /** NOOP poll interval when `idle` is false (or the server lacks IDLE). Default: 1000. */
  pollIntervalMs?: number;
  /** Longest single {@link ImapSource.waitForMail} without news. Default: 60000. */
  wakeAfterMs?: number;
  /** Connection attempts per operation before it fails with `ECONNECT`. Default: 6. */
  connectAttempts?: number;
  /** Delay before reconnection attempt n. Default: exponential 200 ms .. 5 s. */
  backoff?: Backoff;
  /** Timers. Default: the system clock. */
  clock?: Clock;
  /** Receives connection and protocol log records. Default: silent. */
  logger?: Logger;
  /** Configuration section named in error messages, e.g. `host.receive`. Default: `receive`. */
  configKey?: string;
}

const DEFAULT_WAKE_AFTER_MS = 60_000;
const DEFAULT_CONNECT_ATTEMPTS = 6;
/** How often one wait restarts an IDLE that other commands ended, before it gives up. */
const MAX_IDLE_ROUNDS = 100;

/** A parsed {@link MailRef.id}: `<uidvalidity>:<uid>`. */
interface RefId {
  validity: bigint;
  uid: number;
}

/**
 * Reads one IMAP mailbox, seeing only mail that matches. Connects on first use and
 * reconnects (with backoff) when the connection drops.
 *
 * @example
 * ```ts
 * const source = new ImapSource({
 *   host: "127.0.0.13", port: 143, tls: "starttls", user: "host@host.test",
 *   password, caFile: "ca.crt", servername: "mail.host.test",
 * });
 * for (const ref of await source.list({ subject: "[mailpeer] lan request", mode: "exact" })) {
 *   const raw = await source.fetch(ref);
 *   await source.delete(ref);
 * }
 * await source.close();
 * ```
 */
export class ImapSource implements MailSource {
  readonly #server: ImapServerOptions;
  readonly #mailbox: string;
  readonly #quarantine: string;
  readonly #idle: boolean;
  readonly #pollIntervalMs: number;
  readonly #wakeAfterMs: number;
  readonly #attempts: number;
  readonly #backoff: Backoff;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #ctx: ImapErrorContext;
  #client: ImapFlow | undefined;
  #connecting: Promise<ImapFlow> | undefined;
  #uidValidity = 0n;
  /** Count of EXISTS notifications, and its value when list() last ran. */
  #arrivals = 0;
  #arrivalsListed = 0;
  readonly #waiters = new Set<() => void>();
  /** The IDLE this source started and the promise of its end. */
  #idling: { client: ImapFlow; ended: Promise<void> } | undefined;
  #quarantineReady = false;
  #closed = false;

  constructor(server: ImapServerOptions, options: ImapSourceOptions = {}) {
    this.#server = server;
    this.#mailbox = options.mailbox ?? "INBOX";
    this.#quarantine = options.quarantine ?? "Quarantine";
    this.#idle = options.idle ?? true;
    this.#pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
    this.#wakeAfterMs = options.wakeAfterMs ?? DEFAULT_WAKE_AFTER_MS;
    this.#attempts = Math.max(1, options.connectAttempts ?? DEFAULT_CONNECT_ATTEMPTS);
    this.#backoff = options.backoff ?? exponentialBackoff(200, 5_000);
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? silentLogger;
    this.#ctx = {
      server: `${server.host}:${server.port}`,
      user: server.user,
      configKey: options.configKey ?? "receive",
      servername: server.servername ?? server.host,
    };
  }

  /** Lists matching mail not flagged `\Deleted`, oldest (lowest UID) first. */
  list(match: SubjectMatch, options: { signal?: AbortSignal } = {}): Promise<MailRef[]> {
    return this.#run(`list mail in ${this.#mailbox} on`, async (client) => {
      // SEARCH sees only mail the session was told about: NOOP first makes the server
      // announce (EXISTS) what arrived since; later arrivals wake waitForMail
      await client.noop();
      this.#arrivalsListed = this.#arrivals;
      // server-side substring search narrows; the exact/prefix rule is checked below
      const found = await client.search({ subject: match.subject, deleted: false }, {
        uid: true,
      });
      if (found === false) throw new Error("the server refused the SEARCH");
      if (!found || found.length === 0) return [];
      const uids = [...found].sort((a, b) => a - b);
      const messages = await client.fetchAll(
        uidSet(uids),
        { uid: true, envelope: true, size: true, flags: true },
        { uid: true },
      );
      const refs: { uid: number; ref: MailRef }[] = [];
      for (const msg of messages) {
        if (msg.flags?.has("\\Deleted")) continue;
        const subject = (msg.envelope?.subject ?? "").trim();
        if (!matchesSubject(subject, match)) continue;
        const ref: MailRef = { id: `${this.#uidValidity}:${msg.uid}`, subject };
        if (typeof msg.size === "number") ref.size = msg.size;
        refs.push({ uid: msg.uid, ref });
      }
      return refs.sort((a, b) => a.uid - b.uid).map((r) => r.ref);
    }, options.signal);
  }

  /** Returns the raw bytes of a listed mail (`BODY.PEEK[]`: it is not marked `\Seen`). */
  fetch(ref: MailRef, options: { signal?: AbortSignal } = {}): Promise<Uint8Array> {
    return this.#run(`fetch mail ${ref.id} from ${this.#mailbox} on`, async (client) => {
      const id = this.#current(ref);
      const msg = id === undefined
        ? false
        : await client.fetchOne(String(id.uid), { uid: true, source: true }, { uid: true });
      if (!msg || !msg.source) {
        throw new MailError(
          "EMAIL",
          `Cannot fetch mail ${ref.id} from ${this.#mailbox} on IMAP server ` +
            `${this.#ctx.server}: it is no longer in the mailbox; list the mailbox again`,
        );
      }
      return new Uint8Array(msg.source);
    }, options.signal);
  }

  /**
   * Removes a mail for good: `\Deleted` then `UID EXPUNGE` of that UID only. A server without
   * UIDPLUS only gets the flag (a plain EXPUNGE would also remove other people's deleted mail).
   * A mail that is already gone is not an error.
   */
  delete(ref: MailRef): Promise<void> {
    return this.#run(`delete mail ${ref.id} in ${this.#mailbox} on`, async (client) => {
      const id = this.#current(ref);
      if (id === undefined) return;
      const uid = String(id.uid);
      const ok = client.capabilities.has("UIDPLUS")
        ? await client.messageDelete(uid, { uid: true })
        : await client.messageFlagsAdd(uid, ["\\Deleted"], { uid: true });
      if (!ok) throw this.#refused(client, "the server refused STORE or EXPUNGE");
    });
  }

  /**
   * Moves a mail into the quarantine folder (created when missing) with `UID MOVE`. The
   * reason is for the caller's log; the mail itself is not changed. Already gone: nothing.
   */
  quarantine(ref: MailRef, _reason: string): Promise<void> {
    return this.#run(`move mail ${ref.id} to ${this.#quarantine} on`, async (client) => {
      const id = this.#current(ref);
      if (id === undefined) return;
      if (!this.#quarantineReady) {
        const folders = await client.list();
        if (!folders.some((f) => f.path === this.#quarantine)) {
          await client.mailboxCreate(this.#quarantine);
        }
        this.#quarantineReady = true;
      }
      const moved = await client.messageMove(String(id.uid), this.#quarantine, { uid: true });
      if (moved === false) {
        this.#quarantineReady = false;
        throw this.#refused(client, "the server refused MOVE");
      }
    });
  }

  /**
   * Resolves when the server announces new mail (IDLE, or a NOOP poll every
   * `pollIntervalMs`), when the connection drops, after `wakeAfterMs`, or at once when
   * `signal` aborts. Resolves at once when mail arrived since the last {@link list}.
   */
  async waitForMail(options: { signal?: AbortSignal } = {}): Promise<void> {
    const signal = options.signal;
    if (signal?.aborted || this.#closed) return;
    let wake = () => {};
    const woken = new Promise<void>((resolve) => (wake = resolve));
    let done = false;
    const onWake = () => {
      done = true;
      wake();
    };
    const timers = new AbortController();
    this.#waiters.add(onWake);
    signal?.addEventListener("abort", onWake, { once: true });
    const news = () => done || this.#arrivals !== this.#arrivalsListed;
    try {
      const client = await this.#run("wait for mail on", (c) => Promise.resolve(c), signal)
        .catch((err) => {
          if (signal?.aborted) return undefined;
          throw err;
        });
      if (client === undefined || news()) return;
      let expired = false;
      const deadline = this.#clock.sleep(this.#wakeAfterMs, timers.signal).then(
        () => void (expired = true),
        () => {},
      );
      if (this.#idle && client.capabilities.has("IDLE")) {
        // Another command (a list() meanwhile) ends IDLE: start it again once the connection
        // is free, so this waiter still hears of new mail. IDLE left running when this wait
        // ends is ended by the next command.
        for (let round = 0; round < MAX_IDLE_ROUNDS; round++) {
          if (news() || expired || !client.usable) return;
          await Promise.race([woken, deadline, this.#idleOn(client)]);
        }
        return;
      }
      while (!news() && !expired && client.usable) {
        await client.noop().catch((err) => this.#debug("NOOP failed", err));
        if (news()) return;
        await Promise.race([
          woken,
          deadline,
          this.#clock.sleep(this.#pollIntervalMs, timers.signal).catch(() => {}),
        ]);
      }
    } finally {
      timers.abort();
      this.#waiters.delete(onWake);
      signal?.removeEventListener("abort", onWake);
    }
  }

  /** Logs out (or drops the connection when that fails) and wakes every waiter. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const wake of this.#waiters) wake();
    const connecting = this.#connecting;
    const client = this.#client ?? await connecting?.catch(() => undefined);
    this.#client = undefined;
    if (client === undefined) return;
    try {
      await client.logout();
    } catch {
      client.close();
    }
  }

  /** Runs IDLE on `client` (one IDLE for all waiters); resolves when that IDLE ends. */
  #idleOn(client: ImapFlow): Promise<void> {
    if (this.#idling?.client === client) return this.#idling.ended;
    const ended = client.idle({ whenFree: true }).then(
      () => {},
      (err) => this.#debug("IDLE failed", err),
    );
    const idling = { client, ended };
    this.#idling = idling;
    ended.finally(() => {
      if (this.#idling === idling) this.#idling = undefined;
    });
    return ended;
  }

  /** The ref's UID, or undefined when the mailbox was recreated (UIDVALIDITY changed). */
  #current(ref: MailRef): RefId | undefined {
    const id = parseRefId(ref.id);
    if (id === undefined) {
      throw new TypeError(`Not an IMAP mail id: ${JSON.stringify(ref.id)}`);
    }
    return id.validity === this.#uidValidity ? id : undefined;
  }

  /** Runs `fn` on a connected client, reconnecting with backoff when the connection fails. */
  async #run<T>(
    action: string,
    fn: (client: ImapFlow) => Promise<T>,
    signal?: AbortSignal,
  ): Promise<T> {
    for (let attempt = 0;; attempt++) {
      signal?.throwIfAborted();
      if (this.#closed) {
        throw new MailError(
          "ECONNECT",
          `Cannot ${action} IMAP server ${this.#ctx.server}: the source is closed; ` +
            "open a new one",
        );
      }
      let client: ImapFlow | undefined;
      try {
        client = await this.#open();
        return await fn(client);
      } catch (err) {
        if (err instanceof MailError && err.code !== "ECONNECT") throw err;
        const lost = classifyImapError(err) === "connect" ||
          (client !== undefined && !client.usable);
        if (!lost) {
          throw client === undefined
            ? connectionError(err, this.#ctx)
            : commandError(err, action, this.#ctx);
        }
        if (attempt + 1 >= this.#attempts || this.#closed) {
          throw connectionError(asConnectionLoss(err), this.#ctx);
        }
        this.#drop(client);
        this.#logger.log("warn", "IMAP connection failed; retrying", {
          server: this.#ctx.server,
          attempt: attempt + 1,
          error: errorText(err),
        });
        await this.#clock.sleep(this.#backoff(attempt), signal);
      }
    }
  }

  /** The connected client, connecting (once, shared by concurrent callers) if needed. */
  #open(): Promise<ImapFlow> {
    const client = this.#client;
    if (client !== undefined && client.usable) return Promise.resolve(client);
    if (client !== undefined) this.#drop(client);
    this.#connecting ??= this.#connect().finally(() => (this.#connecting = undefined));
    return this.#connecting;
  }

  async #connect(): Promise<ImapFlow> {
    const wakeAll = () => {
      for (const wake of this.#waiters) wake();
    };
    const { client, uidValidity } = await connectImap(this.#server, {
      mailbox: this.#mailbox,
      logger: this.#logger,
      ctx: this.#ctx,
      onClose: (closed) => {
        if (this.#client === closed) this.#client = undefined;
        wakeAll();
      },
      onExists: () => {
        this.#arrivals++;
        wakeAll();
      },
    });
    if (this.#closed) {
      client.close();
      throw new MailError(
        "ECONNECT",
        `Cannot connect to IMAP server ${this.#ctx.server}: the source was closed ` +
          "meanwhile; open a new one",
      );
    }
    this.#uidValidity = uidValidity;
    this.#client = client;
    return client;
  }

  #drop(client: ImapFlow | undefined): void {
    if (client === undefined) return;
    if (this.#client === client) this.#client = undefined;
    client.close();
  }

  /** A refusal (false result); a dropped connection instead makes #run reconnect. */
  #refused(client: ImapFlow, reason: string): Error {
    const err = new Error(reason);
    return client.usable ? err : Object.assign(err, { code: "NoConnection" });
  }

  #debug(message: string, err: unknown): void {
    this.#logger.log("debug", message, { server: this.#ctx.server, error: errorText(err) });
  }
}

/** Parses `<uidvalidity>:<uid>`. */
function parseRefId(id: string): RefId | undefined {
  const m = /^(\d+):(\d+)$/.exec(id);
  if (m === null) return undefined;
  const uid = Number(m[2]);
  if (!Number.isSafeInteger(uid) || uid < 1) return undefined;
  return { validity: BigInt(m[1]!), uid };
}
