/**
 * {@link MailSource} over IMAP (imapflow): one persistent connection, the mailbox opened
 * read-write, push through IMAP IDLE or NOOP polling, reconnection with backoff.
 *
 * Only mail whose subject matches is ever fetched, deleted or moved, and nothing is ever
 * marked `\Seen`: bodies are read with `BODY.PEEK[]`, deletion is `UID EXPUNGE` of exactly one
 * UID (UIDPLUS), quarantine is `UID MOVE`.
 *
 * Claims (several host processes on one mailbox, {@link ImapSource.claim}): a plain `UID MOVE`
 * is not a lock. Measured on Dovecot 2.3: two sessions moving the same 30 UIDs at once put
 * 35-39 messages into the target. So a claim first locks the mail with a CONDSTORE
 * conditional store (`UID STORE uid (UNCHANGEDSINCE modseq) +FLAGS.SILENT ($MailpeerClaimed
 * $MailpeerClaim-<claimer>)`): of two sessions that read the same modseq exactly one gets
 * `OK`, the other `OK [MODIFIED]`. The per-process keyword is needed: Dovecot treats a store
 * of a keyword that is already set as a no-op that never conflicts, so with one shared
 * keyword both sessions "won" about once in 600 races. The winner then `UID MOVE`s the mail
 * into the processing folder; the COPYUID answer gives its new UID, and the claimed ref's id
 * is `<folder>:<uidvalidity>:<uid>` (folder percent-encoded). Fetch, delete and quarantine of
 * claimed refs go through a second connection that keeps the processing folder selected.
 *
 * Claim time: MOVE keeps INTERNALDATE (the arrival), so {@link ImapSource.recoverClaims}
 * reads SAVEDATE (RFC 8514: when the mail was saved into the processing folder, i.e. claimed);
 * a server without SAVEDATE falls back to when this source first saw the mail there. A mail
 * left locked in the mailbox (a claimer died between STORE and MOVE) is unlocked once this
 * source has seen it locked for `olderThanMs`. A server without CONDSTORE gets plain MOVE
 * claims (a warning is logged): safe for one host process per mailbox only.
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
  /** Folder that claimed mail is moved to, created when missing. Default: `Processing`. */
  processing?: string;
  /**
   * This process's name in its claim keyword `$MailpeerClaim-<claimer>` (letters and digits).
   * Processes sharing a mailbox need distinct names; give each host process of a pool its
   * own (e.g. its index). Default: a random number below 256 (two processes pick the same
   * one with a chance of 1/256; the mailbox never holds more than 256 such keywords).
   */
  claimer?: string;
}

const DEFAULT_WAKE_AFTER_MS = 60_000;
const DEFAULT_CONNECT_ATTEMPTS = 6;
/** How often one wait restarts an IDLE that other commands ended, before it gives up. */
const MAX_IDLE_ROUNDS = 100;
/** Keyword on every claimed mail, so half-done claims can be found by SEARCH. */
const CLAIMED = "$MailpeerClaimed";
/** Prefix of the per-process claim keyword, the part that makes the lock a real change. */
const CLAIMER_PREFIX = "$MailpeerClaim-";
const DEFAULT_CLAIMER_SLOTS = 256;

/** A parsed {@link MailRef.id}: `<uidvalidity>:<uid>`, or `<folder>:<uidvalidity>:<uid>`. */
interface RefId {
  /** The percent-encoded folder of a claimed mail; undefined for the source's mailbox. */
  folder?: string;
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
  readonly #options: ImapSourceOptions;
  readonly #processing: string;
  readonly #claimKeyword: string;
  /** The source that reads the processing folder (a second connection), made on first use. */
  #claims: ImapSource | undefined;
  #processingReady = false;
  #warnedNoCondstore = false;
  /** Set on a processing folder's source: mail arrives there by MOVE from another session,
   * which this session learns of only at its next command, so NOOP before using a UID. */
  #syncFirst = false;
  /** When this source first saw a mail locked (key `<folder>:<validity>:<uid>`). */
  #firstSeen = new Map<string, number>();

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
    this.#options = options;
    this.#processing = options.processing ?? "Processing";
    if (this.#processing === this.#mailbox || this.#processing === this.#quarantine) {
      throw new TypeError(
        `Cannot use ${JSON.stringify(this.#processing)} as the processing folder: it is the ` +
          "mailbox or the quarantine folder; choose another name",
      );
    }
    const claimer = options.claimer ??
      String(crypto.getRandomValues(new Uint8Array(1))[0]! % DEFAULT_CLAIMER_SLOTS);
    if (!/^[A-Za-z0-9]{1,32}$/.test(claimer)) {
      throw new TypeError(
        `Cannot use ${JSON.stringify(claimer)} as the claimer name: use 1 to 32 letters or digits`,
      );
    }
    this.#claimKeyword = CLAIMER_PREFIX + claimer;
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
        if (msg.flags?.has("\\Deleted") || msg.flags?.has(CLAIMED)) continue;
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
    const claimed = this.#claimed(ref);
    if (claimed !== undefined) return this.#claimSource().fetch(claimed, options);
    return this.#run(`fetch mail ${ref.id} from ${this.#mailbox} on`, async (client) => {
      const id = this.#current(ref);
      if (this.#syncFirst) await client.noop();
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
    const claimed = this.#claimed(ref);
    if (claimed !== undefined) return this.#claimSource().delete(claimed);
    return this.#run(`delete mail ${ref.id} in ${this.#mailbox} on`, async (client) => {
      const id = this.#current(ref);
      if (id === undefined) return;
      if (this.#syncFirst) await client.noop();
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
  quarantine(ref: MailRef, reason: string): Promise<void> {
    const claimed = this.#claimed(ref);
    if (claimed !== undefined) return this.#claimSource().quarantine(claimed, reason);
    return this.#run(`move mail ${ref.id} to ${this.#quarantine} on`, async (client) => {
      const id = this.#current(ref);
      if (id === undefined) return;
      if (this.#syncFirst) await client.noop();
      if (!this.#quarantineReady) {
        await ensureFolder(client, this.#quarantine);
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

  /**
   * Takes a listed mail for this process (see the module notes): a CONDSTORE-conditional
   * claim keyword, then `UID MOVE` into the processing folder. Resolves with a ref into that
   * folder, or undefined when another process locked or moved the mail first, or it is gone.
   */
  async claim(ref: MailRef): Promise<MailRef | undefined> {
    if (this.#claimed(ref) !== undefined) {
      throw new TypeError(`Cannot claim mail ${ref.id}: it is already claimed`);
    }
    const moved = await this.#run(`claim mail ${ref.id} in ${this.#mailbox} on`, async (client) => {
      const id = this.#current(ref);
      if (id === undefined) return undefined;
      if (!this.#processingReady) {
        await ensureFolder(client, this.#processing);
        this.#processingReady = true;
      }
      const uid = String(id.uid);
      const msg = await client.fetchOne(uid, { uid: true, flags: true }, {
        uid: true,
      });
      if (!msg || msg.flags?.has("\\Deleted") || msg.flags?.has(CLAIMED)) return undefined;
      if (canCondstore(client) && msg.modseq !== undefined) {
        const locked = await conditionalStore(client, id.uid, msg.modseq, "+", [
          CLAIMED,
          this.#claimKeyword,
        ]);
        if (!locked) return undefined;
      } else if (!this.#warnedNoCondstore) {
        this.#warnedNoCondstore = true;
        this.#logger.log(
          "warn",
          "IMAP server lacks CONDSTORE: claims are plain MOVEs, safe " +
            "for one host process per mailbox only",
          { server: this.#ctx.server },
        );
      }
      const result = await client.messageMove(uid, this.#processing, { uid: true });
      if (result === false) {
        this.#processingReady = false;
        throw this.#refused(client, "the server refused MOVE");
      }
      const target = result?.uidMap?.get(id.uid);
      if (target === undefined || result?.uidValidity === undefined) return undefined;
      return { validity: result.uidValidity, uid: target };
    });
    if (moved === undefined) return undefined;
    const claimed: MailRef = {
      id: `${encodeURIComponent(this.#processing)}:${moved.validity}:${moved.uid}`,
      subject: ref.subject,
    };
    if (ref.size !== undefined) claimed.size = ref.size;
    return claimed;
  }

  /**
   * Puts claimed mail back (see the module notes): every mail in the processing folder saved
   * there `olderThanMs` or more ago is locked again with this process's keyword (so two
   * recovering processes never both move it), moved back into the mailbox and unlocked. Mail
   * left locked in the mailbox is unlocked once this source has seen it so for `olderThanMs`.
   * Resolves with how many mails became listable again.
   */
  async recoverClaims(olderThanMs: number): Promise<number> {
    if (!(olderThanMs >= 0)) {
      throw new RangeError(`Cannot recover claims: olderThanMs must be >= 0, not ${olderThanMs}`);
    }
    const limit = this.#clock.now() - olderThanMs;
    if (!this.#processingReady) {
      await this.#run(`create folder ${this.#processing} on`, async (client) => {
        await ensureFolder(client, this.#processing);
        this.#processingReady = true;
      });
    }
    // a recovered mail arrives locked (and one whose claimer died before MOVE stays locked):
    // unlock what this pass moves back at once, and what was locked long enough
    const moved = await this.#claimSource().#putBack(this.#mailbox, limit);
    return await this.#unlock(moved, limit);
  }

  /** Logs out (or drops the connection when that fails) and wakes every waiter. */
  async close(): Promise<void> {
    await this.#claims?.close();
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
    if (id === undefined || id.folder !== undefined) {
      throw new TypeError(`Not an IMAP mail id: ${JSON.stringify(ref.id)}`);
    }
    return id.validity === this.#uidValidity ? id : undefined;
  }

  /** For a claimed ref: the same ref as the processing folder's source knows it. */
  #claimed(ref: MailRef): MailRef | undefined {
    const id = parseRefId(ref.id);
    if (id?.folder === undefined) return undefined;
    if (id.folder !== encodeURIComponent(this.#processing)) {
      throw new TypeError(
        `Cannot use mail ${ref.id}: it was claimed into another folder than ` +
          `${this.#processing}; use the source that claimed it`,
      );
    }
    return { ...ref, id: `${id.validity}:${id.uid}` };
  }

  /** The source of the processing folder: a second connection, which never IDLEs. */
  #claimSource(): ImapSource {
    this.#claims ??= new ImapSource(this.#server, {
      ...this.#options,
      mailbox: this.#processing,
      processing: `${this.#processing}.unused`,
      claimer: this.#claimKeyword.slice(CLAIMER_PREFIX.length),
      idle: false,
    });
    this.#claims.#syncFirst = true;
    return this.#claims;
  }

  /**
   * On the processing folder's source: moves every mail saved here at or before `limit` back
   * into `mailbox`, each after locking it with a conditional store. Resolves with the UIDs
   * the moved mails got in `mailbox`, and that mailbox's UIDVALIDITY.
   */
  #putBack(mailbox: string, limit: number): Promise<{ validity?: bigint; uids: number[] }> {
    return this.#run(`recover claimed mail from ${this.#mailbox} on`, async (client) => {
      await client.noop();
      const out: { validity?: bigint; uids: number[] } = { uids: [] };
      if (!client.mailbox || client.mailbox.exists === 0) return out;
      const saved = client.capabilities.has("SAVEDATE") ? await saveDates(client) : undefined;
      const messages = await client.fetchAll("1:*", { uid: true, flags: true });
      const now = this.#clock.now();
      const seen = new Map<string, number>();
      for (const msg of messages) {
        const key = `${this.#uidValidity}:${msg.uid}`;
        const at = saved?.get(msg.uid) ?? this.#firstSeen.get(key) ?? now;
        seen.set(key, at);
        if (at > limit || msg.flags?.has("\\Deleted")) continue;
        if (canCondstore(client) && msg.modseq !== undefined) {
          // lock again: toggle this process's keyword, a real change that can conflict
          const mine = msg.flags?.has(this.#claimKeyword) ?? false;
          const locked = await conditionalStore(client, msg.uid, msg.modseq, mine ? "-" : "+", [
            this.#claimKeyword,
          ]);
          if (!locked) continue;
        }
        const result = await client.messageMove(String(msg.uid), mailbox, { uid: true });
        if (result === false) throw this.#refused(client, "the server refused MOVE");
        const target = result?.uidMap?.get(msg.uid);
        if (target === undefined) continue;
        out.validity = result?.uidValidity;
        out.uids.push(target);
        seen.delete(key);
      }
      this.#firstSeen = seen;
      return out;
    });
  }

  /**
   * Removes the claim keywords from `moved` at once, and from every other locked mail in
   * the mailbox that this source has seen locked since `limit` or earlier (conditionally, so
   * a claim that completes meanwhile is left alone). Resolves with how many were unlocked.
   */
  #unlock(moved: { validity?: bigint; uids: number[] }, limit: number): Promise<number> {
    return this.#run(`unlock claimed mail in ${this.#mailbox} on`, async (client) => {
      await client.noop();
      const found = await client.search({ keyword: CLAIMED, deleted: false }, { uid: true });
      if (found === false) throw new Error("the server refused the SEARCH");
      const movedNow = new Set(moved.validity === this.#uidValidity ? moved.uids : []);
      const now = this.#clock.now();
      const seen = new Map<string, number>();
      let count = 0;
      const uids = found ?? [];
      const messages = uids.length === 0 ? [] : await client.fetchAll(
        uidSet([...uids].sort((a, b) => a - b)),
        { uid: true, flags: true },
        { uid: true },
      );
      for (const msg of messages) {
        const key = `${this.#uidValidity}:${msg.uid}`;
        const since = this.#firstSeen.get(key) ?? now;
        const keywords = [...(msg.flags ?? [])].filter((f) =>
          f === CLAIMED || f.startsWith(CLAIMER_PREFIX)
        );
        if (!movedNow.has(msg.uid) && since > limit) {
          seen.set(key, since);
          continue;
        }
        const unlocked = canCondstore(client) && msg.modseq !== undefined
          ? await conditionalStore(client, msg.uid, msg.modseq, "-", keywords)
          : await client.messageFlagsRemove(String(msg.uid), keywords, { uid: true });
        if (unlocked) count++;
        else seen.set(key, since);
      }
      this.#firstSeen = seen;
      // mail moved back but not found locked (a server that dropped the keywords) counts too
      for (const uid of movedNow) if (!uids.includes(uid)) count++;
      return count;
    });
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

/** Parses `<uidvalidity>:<uid>` or `<folder>:<uidvalidity>:<uid>`. */
function parseRefId(id: string): RefId | undefined {
  const m = /^(?:([^:]+):)?(\d+):(\d+)$/.exec(id);
  if (m === null) return undefined;
  const uid = Number(m[3]);
  if (!Number.isSafeInteger(uid) || uid < 1) return undefined;
  const ref: RefId = { validity: BigInt(m[2]!), uid };
  if (m[1] !== undefined) ref.folder = m[1];
  return ref;
}

/** Creates `folder` when the server does not list it (another process may create it too). */
async function ensureFolder(client: ImapFlow, folder: string): Promise<void> {
  const folders = await client.list();
  if (folders.some((f) => f.path === folder)) return;
  try {
    await client.mailboxCreate(folder);
  } catch (err) {
    const again = await client.list();
    if (!again.some((f) => f.path === folder)) throw err;
  }
}

/** imapflow's command channel, which its own commands use; not in its typings. */
interface RawImap {
  preCheck?: () => Promise<void>;
  exec(
    command: string,
    attributes: unknown[],
    options?: { untagged?: Record<string, (untagged: RawResponse) => Promise<void>> },
  ): Promise<{ response: RawResponse; next(): void }>;
}

interface RawAttribute {
  type?: string;
  value?: unknown;
  section?: RawAttribute[];
}

interface RawResponse {
  attributes?: (RawAttribute | RawAttribute[])[];
}

/** True when conditional stores work on the selected mailbox. */
function canCondstore(client: ImapFlow): boolean {
  return client.enabled.has("CONDSTORE") && client.mailbox !== false &&
    !client.mailbox?.noModseq;
}

/**
 * `UID STORE uid (UNCHANGEDSINCE modseq) ±FLAGS.SILENT (flags)`: true when the server applied
 * it, false when the mail changed since `modseq` (`OK [MODIFIED]`) or was expunged meanwhile.
 */
async function conditionalStore(
  client: ImapFlow,
  uid: number,
  modseq: bigint,
  sign: "+" | "-",
  flags: string[],
): Promise<boolean> {
  const raw = client as unknown as RawImap;
  // as imapflow's own commands do: end a running IDLE first
  if (typeof raw.preCheck === "function") await raw.preCheck();
  let response: RawResponse;
  try {
    const result = await raw.exec("UID STORE", [
      { type: "SEQUENCE", value: String(uid) },
      [{ type: "ATOM", value: "UNCHANGEDSINCE" }, { type: "ATOM", value: modseq.toString() }],
      { type: "ATOM", value: `${sign}FLAGS.SILENT` },
      flags.map((value) => ({ type: "ATOM", value })),
    ], { untagged: { FETCH: () => Promise.resolve() } });
    result.next();
    response = result.response;
  } catch (err) {
    const code = (err as { serverResponseCode?: unknown }).serverResponseCode;
    if (code === "EXPUNGEISSUED" && client.usable) return false;
    throw err;
  }
  const first = response.attributes?.[0];
  const section = Array.isArray(first) ? undefined : first?.section;
  return section?.[0]?.value !== "MODIFIED";
}

/** SAVEDATE (RFC 8514) of every mail in the selected folder, by UID, in ms. */
async function saveDates(client: ImapFlow): Promise<Map<number, number>> {
  const raw = client as unknown as RawImap;
  if (typeof raw.preCheck === "function") await raw.preCheck();
  const dates = new Map<number, number>();
  const result = await raw.exec("UID FETCH", [
    { type: "SEQUENCE", value: "1:*" },
    [{ type: "ATOM", value: "UID" }, { type: "ATOM", value: "SAVEDATE" }],
  ], {
    untagged: {
      FETCH: (untagged) => {
        const items = untagged.attributes?.[1];
        if (Array.isArray(items)) {
          let uid: number | undefined;
          let saved: number | undefined;
          for (let i = 0; i + 1 < items.length; i += 2) {
            const key = String(items[i]?.value ?? "").toUpperCase();
            const value = items[i + 1]?.value;
            if (key === "UID") uid = Number(value);
            if (key === "SAVEDATE" && typeof value === "string") saved = parseImapDate(value);
          }
          if (uid !== undefined && saved !== undefined) dates.set(uid, saved);
        }
        return Promise.resolve();
      },
    },
  });
  result.next();
  return dates;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** Parses an IMAP date-time, `26-Nov-2026 06:39:15 +0000`, into ms since the epoch. */
export function parseImapDate(text: string): number | undefined {
  const m = /^\s*(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})$/
    .exec(text);
  if (m === null) return undefined;
  const month = MONTHS.findIndex((name) => name.toLowerCase() === m[2]!.toLowerCase());
  if (month < 0) return undefined;
  const utc = Date.UTC(+m[3]!, month, +m[1]!, +m[4]!, +m[5]!, +m[6]!);
  const offset = (m[7] === "-" ? -1 : 1) * (+m[8]! * 60 + +m[9]!) * 60_000;
  return utc - offset;
}
