/**
 * {@link MailSource} over IMAP (imapflow): one persistent connection, the mailbox opened
 * read-write, push through IMAP IDLE or NOOP polling, reconnection with backoff
 * (`mail/imap/session.ts`).
 *
 * Only mail whose subject matches is ever fetched, deleted or moved, and nothing is ever
 * marked `\Seen`: bodies are read with `BODY.PEEK[]`, deletion is `UID EXPUNGE` of exactly the
 * UIDs given (UIDPLUS), quarantine is `UID MOVE`.
 *
 * Round trips: {@link ImapSource.list} reads the bodies of small matching mails along with the
 * listing (`mail/imap/prefetch.ts`), so {@link ImapSource.fetch} of a listed mail usually needs no
 * round trip; {@link ImapSource.deleteMany} removes a whole batch with one STORE and one
 * EXPUNGE. Claims for several host processes on one mailbox ({@link ImapSource.claimMany})
 * are a CONDSTORE-locked `UID MOVE` into a processing folder (`mail/imap/claim.ts`): two or three
 * round trips per batch (one or two conditional STOREs, one MOVE), and two more (NOOP, FETCH)
 * on the processing folder's connection for the bodies.
 *
 * @module
 */
import type { StoreOptions } from "imapflow";
import { MailError } from "../../errors.ts";
import { DEFAULT_POLL_INTERVAL_MS, MAX_MAIL_BYTES } from "../../limits.ts";
import { DEFAULT_PREFETCH_BUDGET_BYTES } from "../tuning.ts";
import { type Logger, silentLogger } from "../../log.ts";
import { type Backoff, type Clock, exponentialBackoff, systemClock } from "../../runtime.ts";
import { CLAIMED, type ClaimedUid, ImapClaims } from "./claim.ts";

import { uidSet } from "./errors.ts";
import { BodyCache, bodyKey, choosePrefetch, prefetchBodies, prefetchLimit } from "./prefetch.ts";
import { claimedRef, mailboxRefId, type RefId, unclaimedRef } from "./ref.ts";
import { ImapSession } from "./session.ts";
import {
  type MailLogin,
  type MailRef,
  type MailSource,
  matchesSubject,
  type SubjectMatch,
} from "../types.ts";

const DEFAULT_WAKE_AFTER_MS = 60_000;
/** Most envelopes a source keeps between listings (see `ImapSource.#envelopes`). */
const MAX_KEPT_ENVELOPES = 20_000;
const DEFAULT_CONNECT_ATTEMPTS = 6;

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
 * const refs = await source.list({ subject: "[mailpeer] lan request", mode: "exact" });
 * for (const ref of refs) {
 *   const raw = await source.fetch(ref); // read with the listing: no round trip
 * }
 * await source.deleteMany(refs); // one STORE + one UID EXPUNGE
 * await source.close();
 * ```
 */
export class ImapSource implements MailSource {
  /**
   * True unless the server is known to lack CONDSTORE: a claim is a CONDSTORE-conditional lock
   * and a MOVE into the processing folder (`mail/imap/claim.ts`); without CONDSTORE two
   * processes could take the same mail, so {@link claimMany} answers with the refs themselves
   * and {@link recoverClaims} with 0, as POP3 does, and the host service refuses
   * `shared_mailbox` (docs/providers.md). Known after the first connection; true before.
   */
  get claims(): boolean {
    return this.#session.condstore !== false;
  }
  readonly #server: MailLogin;
  readonly #options: ImapSourceOptions;
  readonly #mailbox: string;
  readonly #quarantine: string;
  readonly #session: ImapSession;
  readonly #claims: ImapClaims;
  readonly #cache: BodyCache;
  /** MODSEQ of each mail of the last listing (by {@link bodyKey}), for claims. */
  readonly #modseqs = new Map<string, bigint>();
  /** The highest MODSEQ the last listing read (of any mail it fetched), for claims. */
  #listedHighest: bigint | undefined;
  /**
   * Subject, size and MODSEQ of mails listed before, by UID under `#envelopesValidity`: a
   * mail never changes, so a listing fetches the envelopes of mail it has not seen only. A
   * MODSEQ kept from an earlier listing may be older than the mail's (a claim then finds it
   * `MODIFIED` and reads it again, see `mail/imap/claim.ts`).
   */
  readonly #envelopes = new Map<number, { subject: string; size?: number; modseq?: bigint }>();
  #envelopesValidity: bigint | undefined;
  readonly #prefetchBytes: number;
  readonly #clock: Clock;
  /** The source that reads the processing folder (a second connection), made on first use. */
  #processingSource: ImapSource | undefined;
  /** Set on a processing folder's source: mail arrives there by MOVE from another session,
   * which this session learns of only at its next command, so NOOP before using a UID. */
  #syncFirst = false;

  constructor(server: MailLogin, options: ImapSourceOptions = {}) {
    this.#server = server;
    this.#options = options;
    this.#mailbox = options.mailbox ?? "INBOX";
    this.#quarantine = options.quarantine ?? "Quarantine";
    const processing = options.processing ?? "Processing";
    if (processing === this.#mailbox || processing === this.#quarantine) {
      throw new TypeError(
        `Cannot use ${JSON.stringify(processing)} as the processing folder: it is the ` +
          "mailbox or the quarantine folder; choose another name",
      );
    }
    const clock = this.#clock = options.clock ?? systemClock;
    const logger = options.logger ?? silentLogger;
    this.#claims = new ImapClaims({ processing, claimer: options.claimer, clock, logger });
    this.#prefetchBytes = prefetchLimit(options.prefetchBytes ?? MAX_MAIL_BYTES);
    this.#cache = new BodyCache(options.prefetchBudgetBytes ?? DEFAULT_PREFETCH_BUDGET_BYTES);
    this.#session = new ImapSession(server, {
      mailbox: this.#mailbox,
      idle: options.idle ?? true,
      pollIntervalMs: options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS,
      wakeAfterMs: options.wakeAfterMs ?? DEFAULT_WAKE_AFTER_MS,
      attempts: Math.max(1, options.connectAttempts ?? DEFAULT_CONNECT_ATTEMPTS),
      backoff: options.backoff ?? exponentialBackoff(200, 5_000),
      clock,
      logger,
      ctx: {
        server: `${server.host}:${server.port}`,
        user: server.user,
        configKey: options.configKey ?? "receive",
        servername: server.servername ?? server.host,
      },
    });
  }

  /** Connects, logs in and selects the mailbox (`MailSource.open`). */
  async open(options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.#session.run(`open ${this.#mailbox} on`, () => Promise.resolve(), options.signal);
  }

  /**
   * Lists matching mail not flagged `\Deleted`, oldest (lowest UID) first, and reads the
   * bodies of the small ones along (`BODY.PEEK[]`, see `prefetchBytes`).
   */
  list(match: SubjectMatch, options: { signal?: AbortSignal } = {}): Promise<MailRef[]> {
    const session = this.#session;
    return session.run(`list mail in ${this.#mailbox} on`, async (client) => {
      // SEARCH sees only mail the session was told about: NOOP first makes the server
      // announce (EXISTS) what arrived since; later arrivals wake waitForMail
      await client.noop();
      session.markListed();
      this.#cache.clear();
      this.#modseqs.clear();
      this.#listedHighest = undefined;
      // server-side substring search narrows; the exact/prefix rule is checked below
      // claimed mail (another host process's, on a shared mailbox) is left out by the server,
      // so a listing never fetches the envelopes of mail that is not this process's to take
      const found = await client.search(
        { subject: match.subject, deleted: false, unKeyword: CLAIMED },
        { uid: true },
      );
      if (found === false) throw new Error("the server refused the SEARCH");
      if (!found || found.length === 0) return [];
      const uids = [...found].sort((a, b) => a - b);
      const envelopes = this.#envelopesOf(session.uidValidity, uids);
      const fresh = uids.filter((uid) => !envelopes.has(uid));
      const messages = fresh.length === 0 ? [] : await client.fetchAll(
        uidSet(fresh),
        { uid: true, envelope: true, size: true, flags: true },
        { uid: true },
      );
      for (const msg of messages) {
        if (msg.flags?.has("\\Deleted") || msg.flags?.has(CLAIMED)) continue;
        envelopes.set(msg.uid, {
          subject: (msg.envelope?.subject ?? "").trim(),
          ...(typeof msg.size === "number" ? { size: msg.size } : {}),
          ...(msg.modseq !== undefined ? { modseq: msg.modseq } : {}),
        });
      }
      const listed: { uid: number; size?: number; ref: MailRef }[] = [];
      for (const uid of uids) {
        const seen = envelopes.get(uid);
        if (seen === undefined) continue; // gone, deleted or claimed meanwhile
        if (seen.modseq !== undefined && seen.modseq > (this.#listedHighest ?? 0n)) {
          this.#listedHighest = seen.modseq;
        }
        if (!matchesSubject(seen.subject, match)) continue;
        const ref: MailRef = { id: `${session.uidValidity}:${uid}`, subject: seen.subject };
        if (seen.size !== undefined) ref.size = seen.size;
        const key = bodyKey(this.#mailbox, session.uidValidity, uid);
        if (seen.modseq !== undefined) this.#modseqs.set(key, seen.modseq);
        listed.push({ uid, size: ref.size, ref });
      }
      // only now, with the subjects checked: bodies of matching mail only
      const ahead = choosePrefetch(listed, {
        maxBytes: this.#prefetchBytes,
        budgetBytes: this.#cache.budgetBytes,
      });
      await prefetchBodies(client, ahead, {
        cache: this.#cache,
        mailbox: this.#mailbox,
        validity: session.uidValidity,
        maxBytes: this.#prefetchBytes,
      });
      return listed.map((l) => l.ref);
    }, options.signal);
  }

  /**
   * The kept envelopes for `validity`, without those of mails `uids` (a SEARCH's answer) no
   * longer names, and at most `MAX_KEPT_ENVELOPES` of them.
   */
  #envelopesOf(validity: bigint, uids: readonly number[]) {
    const kept = this.#envelopes;
    if (this.#envelopesValidity !== validity || kept.size > MAX_KEPT_ENVELOPES) {
      kept.clear();
      this.#envelopesValidity = validity;
    }
    const named = new Set(uids);
    for (const uid of kept.keys()) if (!named.has(uid)) kept.delete(uid);
    return kept;
  }

  /**
   * Returns the raw bytes of a listed mail: those read with the listing when there are any
   * (once), else with `BODY.PEEK[]` (the mail is not marked `\Seen`). A mail removed after
   * the listing may still be returned, as if fetched just before; never another mail.
   */
  fetch(ref: MailRef, options: { signal?: AbortSignal } = {}): Promise<Uint8Array> {
    const claimed = unclaimedRef(ref, this.#claims.processing);
    if (claimed !== undefined) return this.#claimSource().fetch(claimed, options);
    return this.#session.run(`fetch mail ${ref.id} from ${this.#mailbox} on`, async (client) => {
      const id = this.#current(ref);
      const cached = id && this.#cache.take(bodyKey(this.#mailbox, id.validity, id.uid));
      if (cached !== undefined) return cached;
      if (this.#syncFirst) await client.noop();
      const msg = id === undefined
        ? false
        : await client.fetchOne(String(id.uid), { uid: true, source: true }, { uid: true });
      if (!msg || !msg.source) {
        throw new MailError(
          "EMAIL",
          `Cannot fetch mail ${ref.id} from ${this.#mailbox} on IMAP server ` +
            `${this.#session.ctx.server}: it is no longer in the mailbox; list the mailbox again`,
        );
      }
      return new Uint8Array(msg.source);
    }, options.signal);
  }

  /** Removes a mail for good; {@link deleteMany} of that one mail. */
  delete(ref: MailRef): Promise<void> {
    return this.deleteMany([ref]);
  }

  /**
   * Removes mails for good: `UID STORE <set> +FLAGS.SILENT (\Deleted)` then
   * `UID EXPUNGE <set>` of exactly these UIDs, once per folder (claimed mails sit in the
   * processing folder). A server without UIDPLUS only gets the flag (a plain EXPUNGE would
   * also remove other people's deleted mail). Mail that is already gone is not an error.
   */
  async deleteMany(refs: MailRef[]): Promise<void> {
    const here: RefId[] = [];
    const claimed: MailRef[] = [];
    for (const ref of refs) {
      const inProcessing = unclaimedRef(ref, this.#claims.processing);
      if (inProcessing !== undefined) claimed.push(inProcessing);
      else here.push(mailboxRefId(ref));
    }
    await Promise.all([
      here.length > 0 ? this.#expunge(here) : undefined,
      claimed.length > 0 ? this.#claimSource().deleteMany(claimed) : undefined,
    ]);
  }

  /**
   * Moves a mail into the quarantine folder (created when missing) with `UID MOVE`. The
   * reason is for the caller's log; the mail itself is not changed. Already gone: nothing.
   */
  quarantine(ref: MailRef, reason: string): Promise<void> {
    const claimed = unclaimedRef(ref, this.#claims.processing);
    if (claimed !== undefined) return this.#claimSource().quarantine(claimed, reason);
    const session = this.#session;
    return session.run(`move mail ${ref.id} to ${this.#quarantine} on`, async (client) => {
      const id = this.#current(ref);
      if (id === undefined) return;
      this.#cache.drop(bodyKey(this.#mailbox, id.validity, id.uid));
      if (this.#syncFirst) await client.noop();
      const folder = await session.ensureFolder(client, this.#quarantine);
      const moved = await client.messageMove(String(id.uid), folder, { uid: true });
      if (moved === false) {
        session.forgetFolder(this.#quarantine);
        throw session.refused(client, "the server refused MOVE");
      }
    });
  }

  /**
   * Resolves when the server announces new mail (IDLE, or a NOOP poll every
   * `pollIntervalMs`), when the connection drops, after `wakeAfterMs`, or at once when
   * `signal` aborts. Resolves at once when mail arrived since the last {@link list}.
   */
  waitForMail(options: { signal?: AbortSignal } = {}): Promise<void> {
    return this.#session.waitForMail(options);
  }

  /**
   * Takes a listed mail for this process: {@link claimMany} of that one mail, i.e. a
   * CONDSTORE-conditional claim keyword on the listing's MODSEQ (read back when that is the
   * listing's highest, see `mail/imap/claim.ts`), then `UID MOVE` into the processing folder.
   * Resolves with a ref into that folder, or undefined when another process locked or moved
   * the mail first, or it is gone.
   */
  async claim(ref: MailRef): Promise<MailRef | undefined> {
    const [claimed] = await this.claimMany([ref]);
    return claimed;
  }

  /**
   * Takes listed mails for this process (see `mail/imap/claim.ts`) in a constant number of round
   * trips however many: one or two conditional STOREs of the claim keywords on the listing's
   * MODSEQs and one `UID MOVE` into the processing folder of those locked; one FETCH more when
   * some changed since the listing (those still unclaimed are then locked one by one). A lone
   * mail: STORE, a read-back when needed, MOVE. Of processes racing for the same mails, never
   * two win one. The bodies go along: those read with the listing are kept, the others (of at
   * most `MAX_MAIL_BYTES`, whatever `prefetchBytes` says) are read on the processing folder's
   * connection in one `UID FETCH`, so {@link fetch} of a claimed mail usually needs no round
   * trip. Resolves with refs into the processing folder of the mails won, in the order given;
   * the others were taken by another process first, or are gone.
   */
  async claimMany(refs: MailRef[]): Promise<MailRef[]> {
    const folder = this.#claims.processing;
    for (const ref of refs) {
      if (unclaimedRef(ref, folder) !== undefined) {
        throw new TypeError(`Cannot claim mail ${ref.id}: it is already claimed`);
      }
    }
    if (refs.length === 0) return [];
    // without CONDSTORE, as POP3: the refs themselves (one host process per mailbox; the host
    // service refuses shared_mailbox then)
    if (!await this.#canClaim()) return refs;
    const session = this.#session;
    const ids = refs.map(mailboxRefId);
    const keyOf = (id: RefId) => bodyKey(this.#mailbox, id.validity, id.uid);
    const what = refs.length === 1 ? `mail ${refs[0]!.id}` : `${refs.length} mails`;
    const won = await session.run(`claim ${what} in ${this.#mailbox} on`, (client) => {
      const uids = ids.filter((id) => id.validity === session.uidValidity).map((id) => id.uid);
      if (uids.length === 0) return Promise.resolve(new Map<number, ClaimedUid>());
      return this.#claims.lockAndMoveMany(session, client, uids, {
        modseq: (uid) => this.#modseqs.get(bodyKey(this.#mailbox, session.uidValidity, uid)),
        highest: this.#listedHighest,
      });
    });
    const claimSource = this.#claimSource();
    const claimed: MailRef[] = [];
    const toRead: { uid: number; size?: number; validity: bigint }[] = [];
    for (const [i, ref] of refs.entries()) {
      const id = ids[i]!;
      this.#modseqs.delete(keyOf(id));
      const body = this.#cache.take(keyOf(id));
      const moved = id.validity === session.uidValidity ? won.get(id.uid) : undefined;
      if (moved === undefined) continue;
      won.delete(id.uid); // (a ref given twice is claimed once)
      claimed.push(claimedRef(ref, folder, moved));
      if (body !== undefined) {
        claimSource.#cache.put(bodyKey(folder, moved.validity, moved.uid), body);
      } else {
        toRead.push({ ...moved, size: ref.size });
      }
    }
    await claimSource.#readClaimed(toRead);
    return claimed;
  }

  /**
   * Puts claimed mail back (see `mail/imap/claim.ts`): every mail in the processing folder saved
   * there `olderThanMs` or more ago is locked again with this process's keyword (so two
   * recovering processes never both move it), moved back into the mailbox and unlocked. Mail
   * left locked in the mailbox is unlocked once this source has seen it so for `olderThanMs`.
   * Resolves with how many mails became listable again.
   */
  async recoverClaims(olderThanMs: number): Promise<number> {
    if (!(olderThanMs >= 0)) {
      throw new RangeError(`Cannot recover claims: olderThanMs must be >= 0, not ${olderThanMs}`);
    }
    if (!await this.#canClaim()) return 0;
    const limit = this.#clock.now() - olderThanMs;
    const session = this.#session;
    const folder = this.#claims.processing;
    await session.run(`create folder ${folder} on`, (c) => session.ensureFolder(c, folder));
    // a recovered mail arrives locked (and one whose claimer died before MOVE stays locked):
    // unlock what this pass moves back at once, and what was locked long enough
    const moved = await this.#claims.putBack(this.#claimSource().#session, this.#mailbox, limit);
    return await this.#claims.unlock(session, moved, limit);
  }

  /** Logs out (or drops the connection when that fails) and wakes every waiter. */
  async close(): Promise<void> {
    await this.#processingSource?.close();
    this.#cache.clear();
    await this.#session.close();
  }

  /**
   * Reads the bodies of listed mails of this mailbox (not yet read with the listing) in one
   * `UID FETCH`, so {@link fetch} finds them; claimed refs and mails of an older UIDVALIDITY
   * are left to {@link fetch}. A failure only leaves them to {@link fetch} too.
   */
  async prefetch(refs: MailRef[]): Promise<void> {
    const session = this.#session;
    const listed = refs.flatMap((ref) => {
      if (unclaimedRef(ref, this.#claims.processing) !== undefined) return [];
      const id = this.#current(ref);
      if (id === undefined || this.#cache.has(bodyKey(this.#mailbox, id.validity, id.uid))) {
        return [];
      }
      return [{ uid: id.uid, size: ref.size, validity: id.validity }];
    });
    const validity = listed[0]?.validity;
    const uids = choosePrefetch(listed, {
      maxBytes: this.#prefetchBytes > 0 ? this.#prefetchBytes : MAX_MAIL_BYTES,
      budgetBytes: this.#cache.budgetBytes,
    });
    if (uids.length === 0 || validity === undefined) return;
    await session.run(`read mail ahead in ${this.#mailbox} on`, async (client) => {
      if (session.uidValidity !== validity) return;
      await prefetchBodies(client, uids, {
        cache: this.#cache,
        mailbox: this.#mailbox,
        validity,
        maxBytes: MAX_MAIL_BYTES,
      });
    }).catch((err) => session.debug("reading mail ahead failed; fetch reads it", err));
  }

  /**
   * On the processing folder's source: reads the bodies of mails just claimed into it, in one
   * `UID FETCH` after a NOOP (the MOVE came from the other connection). A failure only leaves
   * them to {@link fetch}.
   */
  async #readClaimed(moved: { uid: number; size?: number; validity: bigint }[]): Promise<void> {
    const validity = moved[0]?.validity;
    const uids = choosePrefetch(moved.filter((m) => m.validity === validity), {
      maxBytes: MAX_MAIL_BYTES,
      budgetBytes: this.#cache.budgetBytes,
    });
    if (uids.length === 0) return;
    const session = this.#session;
    await session.run(`read claimed mail in ${this.#mailbox} on`, async (client) => {
      await client.noop();
      if (session.uidValidity !== validity) return; // the folder was recreated meanwhile
      await prefetchBodies(client, uids, {
        cache: this.#cache,
        mailbox: this.#mailbox,
        validity,
        maxBytes: MAX_MAIL_BYTES,
      });
    }).catch((err) => session.debug("reading claimed mail failed; fetch reads it", err));
  }

  /**
   * Connects when needed (no round trip otherwise); true when the server can make claims
   * exclusive (CONDSTORE, see {@link claims}).
   */
  async #canClaim(): Promise<boolean> {
    const session = this.#session;
    await session.run("connect to", () => Promise.resolve());
    return session.condstore !== false;
  }

  /** Removes `ids` (of this source's mailbox) with one STORE and one UID EXPUNGE. */
  #expunge(ids: RefId[]): Promise<void> {
    const session = this.#session;
    const what = ids.length === 1 ? `mail ${ids[0]!.validity}:${ids[0]!.uid}` : "mails";
    let reconnected = false;
    return session.run(`delete ${what} in ${this.#mailbox} on`, async (client) => {
      const uids = new Set<number>();
      for (const id of ids) {
        this.#cache.drop(bodyKey(this.#mailbox, id.validity, id.uid));
        if (id.validity === session.uidValidity) uids.add(id.uid);
      }
      if (uids.size === 0) return; // the mailbox was recreated: all of them are gone
      if (this.#syncFirst) await client.noop();
      const set = uidSet([...uids].sort((a, b) => a - b));
      // messageDelete passes the options on to its STORE: `+FLAGS.SILENT`, no FETCH echoes
      const store: StoreOptions = { uid: true, silent: true };
      const ok = client.capabilities.has("UIDPLUS")
        ? await client.messageDelete(set, store)
        : await client.messageFlagsAdd(set, ["\\Deleted"], store);
      if (ok) return;
      const err = session.refused(client, "the server refused STORE or EXPUNGE");
      if (reconnected) throw err;
      // Dovecot refuses STORE in a mailbox deleted under the session (NO [SERVERBUG]): once,
      // make run() reconnect, which then finds the mailbox recreated and the mail gone
      reconnected = true;
      throw Object.assign(err, { code: "NoConnection" });
    });
  }

  /** The ref's UID, or undefined when the mailbox was recreated (UIDVALIDITY changed). */
  #current(ref: MailRef): RefId | undefined {
    const id = mailboxRefId(ref);
    return id.validity === this.#session.uidValidity ? id : undefined;
  }

  /** The source of the processing folder: a second connection, which never IDLEs. */
  #claimSource(): ImapSource {
    if (this.#processingSource === undefined) {
      const source = new ImapSource(this.#server, {
        ...this.#options,
        mailbox: this.#claims.processing,
        processing: `${this.#claims.processing}.unused`,
        claimer: this.#claims.claimer,
        idle: false,
      });
      source.#syncFirst = true;
      this.#processingSource = source;
    }
    return this.#processingSource;
  }
}

/** Options of `ImapSource`. */
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
  /**
   * Connection attempts per operation before it fails with `ECONNECT`, once the source has
   * connected (the first connection is not retried). Default: 6.
   */
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
  /**
   * {@link ImapSource.list} also reads the body of each matching mail of at most this many
   * bytes (RFC822.SIZE), for {@link ImapSource.fetch} to return without a round trip; 0 turns
   * this off. Default: `MAX_MAIL_BYTES` (64 KiB), the largest mail a host parses. (Claimed
   * mails, see {@link ImapSource.claimMany}, are read up to `MAX_MAIL_BYTES` whatever this
   * says: they are this process's to handle.)
   */
  prefetchBytes?: number;
  /**
   * Most bytes of bodies read ahead and held at once: by one listing, and again by claimed
   * mails not yet fetched. Default: 2 MiB.
   */
  prefetchBudgetBytes?: number;
}
