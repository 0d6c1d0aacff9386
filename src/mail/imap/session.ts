/**
 * One kept-open imapflow connection of an `ImapSource` with its mailbox selected:
 * connection on first use, reconnection with backoff when it drops, and waiting for new mail
 * (IMAP IDLE or NOOP polling). A first connection that fails is not retried: settings that
 * never worked (a wrong port, an unknown name, a server that refuses) are reported at once,
 * and only a server that has worked before and went away (a restart) is waited for. A failure
 * that costs time to repeat (`isFinalFailure`: a refused password, a TLS failure, nothing
 * answering) is also the answer to later calls for `FIRST_FAILURE_KEPT_MS`, without asking the
 * server again: a wrong password tried twice would only wait out the server's delay for failed
 * logins twice (a terminal lists its mailbox early and again while it waits).
 *
 * @module
 */
import type { MailLogin } from "../types.ts";
import type { ImapFlow } from "imapflow";
import { MailError } from "../../errors.ts";
import { FIRST_FAILURE_KEPT_MS } from "../tuning.ts";
import type { Logger } from "../../log.ts";
import type { Backoff, Clock } from "../../runtime.ts";
import { connectImap } from "./connect.ts";
import { isFinalFailure } from "../connect_failure.ts";
import { personalFolder } from "./namespace.ts";
import {
  asConnectionLoss,
  classifyImapError,
  commandError,
  connectionError,
  errorText,
  type ImapErrorContext,
} from "./errors.ts";

/** Options of {@link ImapSession}, all resolved (the source applies the defaults). */
export interface ImapSessionOptions {
  /** Mailbox to select (read-write). */
  mailbox: string;
  /** Wait for mail with IMAP IDLE (else NOOP polling). */
  idle: boolean;
  /** NOOP poll interval when `idle` is false (or the server lacks IDLE). */
  pollIntervalMs: number;
  /** Longest single {@link ImapSession.waitForMail} without news. */
  wakeAfterMs: number;
  /** Connection attempts per operation before it fails with `ECONNECT`. */
  attempts: number;
  /** Delay before reconnection attempt n. */
  backoff: Backoff;
  clock: Clock;
  logger: Logger;
  ctx: ImapErrorContext;
}

/** How often one wait restarts an IDLE that other commands ended, before it gives up. */
const MAX_IDLE_ROUNDS = 100;

/** A connection to one mailbox that reconnects itself; see the module notes. */
export class ImapSession {
  readonly mailbox: string;
  readonly ctx: ImapErrorContext;
  readonly #server: MailLogin;
  readonly #o: ImapSessionOptions;
  #client: ImapFlow | undefined;
  #connecting: Promise<ImapFlow> | undefined;
  #uidValidity = 0n;
  #condstore: boolean | undefined;
  /** Count of EXISTS notifications, and its value when {@link ImapSession.markListed} last ran. */
  #arrivals = 0;
  #arrivalsListed = 0;
  readonly #waiters = new Set<() => void>();
  /** The IDLE this session started and the promise of its end. */
  #idling: { client: ImapFlow; ended: Promise<void> } | undefined;
  /** Folders known to exist, by configured name: their full names (see {@link ImapSession.ensureFolder}). */
  readonly #folders = new Map<string, string>();
  /** Commands under way; close() lets them finish before logging out. */
  readonly #inflight = new Set<Promise<unknown>>();
  /** Aborted by close(): ends the backoff of a command that is waiting to reconnect. */
  readonly #closing = new AbortController();
  #closed = false;
  /** True once a connection was made: only then is a failed connection retried. */
  #everConnected = false;
  /** The failure of the settings, when the first connection failed for good, and when. */
  #failed: { error: MailError; at: number } | undefined;

  constructor(server: MailLogin, options: ImapSessionOptions) {
    this.#server = server;
    this.#o = options;
    this.mailbox = options.mailbox;
    this.ctx = options.ctx;
  }

  /**
   * Whether the server offers CONDSTORE (RFC 7162), which safe claims need (`claim.ts`):
   * undefined before the first connection.
   */
  get condstore(): boolean | undefined {
    return this.#condstore;
  }

  /** UIDVALIDITY of the mailbox as of the last connection; 0 before the first. */
  get uidValidity(): bigint {
    return this.#uidValidity;
  }

  /** Notes that the mailbox was just listed: later arrivals end {@link ImapSession.waitForMail} at once. */
  markListed(): void {
    this.#arrivalsListed = this.#arrivals;
  }

  /**
   * Runs `fn` on a connected client, reconnecting with backoff when the connection fails.
   * A command started before {@link ImapSession.close} is finished before the logout, so a
   * caller may leave a delete running (the terminal deletes its reply while it connects).
   */
  run<T>(
    action: string,
    fn: (client: ImapFlow) => Promise<T>,
    signal?: AbortSignal,
  ): Promise<T> {
    const running = this.#run(action, fn, signal);
    const tracked = running.catch(() => {}).finally(() => this.#inflight.delete(tracked));
    this.#inflight.add(tracked);
    return running;
  }

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
          `Cannot ${action} IMAP server ${this.ctx.server}: the source is closed; ` +
            "open a new one",
        );
      }
      if (this.#failed && this.#o.clock.now() - this.#failed.at < FIRST_FAILURE_KEPT_MS) {
        throw this.#failed.error;
      }
      let client: ImapFlow | undefined;
      try {
        client = await this.#open();
        return await fn(client);
      } catch (err) {
        if (client === undefined && !this.#everConnected) throw this.#neverWorked(err);
        if (err instanceof MailError && err.code !== "ECONNECT") throw err;
        const lost = classifyImapError(err) === "connect" ||
          (client !== undefined && !client.usable);
        if (!lost) {
          throw client === undefined
            ? connectionError(err, this.ctx)
            : commandError(err, action, this.ctx);
        }
        if (attempt + 1 >= this.#o.attempts || this.#closed || !this.#everConnected) {
          throw connectionError(asConnectionLoss(err), this.ctx);
        }
        this.#drop(client);
        this.#o.logger.log("warn", "IMAP connection failed; retrying", {
          server: this.ctx.server,
          attempt: attempt + 1,
          error: errorText(err),
        });
        const stop = signal
          ? AbortSignal.any([signal, this.#closing.signal])
          : this.#closing.signal;
        await this.#o.clock.sleep(this.#o.backoff(attempt), stop).catch((sleepErr) => {
          // closed meanwhile: end now with the connection error, not after the backoff
          if (this.#closed) throw connectionError(asConnectionLoss(err), this.ctx);
          throw sleepErr;
        });
      }
    }
  }

  /**
   * Resolves when the server announces new mail (IDLE, or a NOOP poll every
   * `pollIntervalMs`), when the connection drops, after `wakeAfterMs`, or at once when
   * `signal` aborts. Resolves at once when mail arrived since {@link ImapSession.markListed}.
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
      const client = await this.run("wait for mail on", (c) => Promise.resolve(c), signal)
        .catch((err) => {
          if (signal?.aborted) return undefined;
          throw err;
        });
      if (client === undefined || news()) return;
      let expired = false;
      const deadline = this.#o.clock.sleep(this.#o.wakeAfterMs, timers.signal).then(
        () => void (expired = true),
        () => {},
      );
      if (this.#o.idle && client.capabilities.has("IDLE")) {
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
        await client.noop().catch((err) => this.debug("NOOP failed", err));
        if (news()) return;
        await Promise.race([
          woken,
          deadline,
          this.#o.clock.sleep(this.#o.pollIntervalMs, timers.signal).catch(() => {}),
        ]);
      }
    } finally {
      timers.abort();
      this.#waiters.delete(onWake);
      signal?.removeEventListener("abort", onWake);
    }
  }

  /**
   * Creates `folder` (a name in the personal namespace, see `mail/imap/namespace.ts`) when the
   * server does not list it (another process may create it too), and resolves with its full
   * name on this server, e.g. `INBOX.Quarantine` on Courier. Remembers folders it found, so
   * only the first call per folder costs a round trip.
   */
  async ensureFolder(client: ImapFlow, folder: string): Promise<string> {
    const known = this.#folders.get(folder);
    if (known !== undefined) return known;
    const path = personalFolder(folder, client.namespace);
    const listed = (all: { path: string }[]) => all.some((f) => f.path === path);
    if (!listed(await client.list())) {
      try {
        await client.mailboxCreate(path);
      } catch (err) {
        if (!listed(await client.list())) throw err;
      }
    }
    this.#folders.set(folder, path);
    return path;
  }

  /** Forgets that `folder` exists (a MOVE into it was refused: it may have been deleted). */
  forgetFolder(folder: string): void {
    this.#folders.delete(folder);
  }

  /** A refusal (false result); a dropped connection instead makes {@link ImapSession.run} reconnect. */
  refused(client: ImapFlow, reason: string): Error {
    const err = new Error(reason);
    return client.usable ? err : Object.assign(err, { code: "NoConnection" });
  }

  debug(message: string, err: unknown): void {
    this.#o.logger.log("debug", message, { server: this.ctx.server, error: errorText(err) });
  }

  /** Logs out (or drops the connection when that fails) and wakes every waiter. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const wake of this.#waiters) wake();
    this.#closing.abort();
    await Promise.all([...this.#inflight]);
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

  /** The error of a first connection that failed; kept when it is about the settings. */
  #neverWorked(err: unknown): MailError {
    const failure = connectionError(err, this.ctx);
    if (isFinalFailure(failure) && !this.#closed) {
      this.#failed = { error: failure, at: this.#o.clock.now() };
    }
    return failure;
  }

  /** Runs IDLE on `client` (one IDLE for all waiters); resolves when that IDLE ends. */
  #idleOn(client: ImapFlow): Promise<void> {
    if (this.#idling?.client === client) return this.#idling.ended;
    const ended = client.idle({ whenFree: true }).then(
      () => {},
      (err) => this.debug("IDLE failed", err),
    );
    const idling = { client, ended };
    this.#idling = idling;
    ended.finally(() => {
      if (this.#idling === idling) this.#idling = undefined;
    });
    return ended;
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
      mailbox: this.mailbox,
      logger: this.#o.logger,
      ctx: this.ctx,
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
        `Cannot connect to IMAP server ${this.ctx.server}: the source was closed ` +
          "meanwhile; open a new one",
      );
    }
    this.#uidValidity = uidValidity;
    this.#condstore = client.capabilities.has("CONDSTORE");
    this.#client = client;
    this.#everConnected = true;
    return client;
  }

  #drop(client: ImapFlow | undefined): void {
    if (client === undefined) return;
    if (this.#client === client) this.#client = undefined;
    client.close();
  }
}
