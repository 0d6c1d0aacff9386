/**
 * Claims on IMAP: several host processes read one mailbox and never take the same mail twice
 * (`ImapSource.claim`, `ImapSource.recoverClaims`).
 *
 * A plain `UID MOVE` is not a lock. Measured on Dovecot 2.3: two sessions moving the same 30
 * UIDs at once put 35-39 messages into the target. So a claim first locks the mail with a
 * CONDSTORE conditional store (`UID STORE uid (UNCHANGEDSINCE modseq) +FLAGS.SILENT
 * ($MailpeerClaimed $MailpeerClaim-<claimer>)`): of two sessions that read the same modseq
 * exactly one gets `OK`, the other `OK [MODIFIED]`. The per-process keyword is needed:
 * Dovecot treats a store of a keyword that is already set as a no-op that never conflicts, so
 * with one shared keyword both sessions "won" about once in 600 races. The winner then
 * `UID MOVE`s the mail into the processing folder; the COPYUID answer gives its new UID, and
 * the claimed ref's id is `<folder>:<uidvalidity>:<uid>` (folder percent-encoded). Fetch,
 * delete and quarantine of claimed refs go through a second connection that keeps the
 * processing folder selected.
 *
 * Dovecot 2.3 skips the conflict check of a conditional store whose `UNCHANGEDSINCE` equals
 * the highest MODSEQ the session has synced ("no conflicts possible",
 * `mail_index_transaction_check_conflicts`), yet another session may have changed the mail
 * since. Measured: of three sessions claiming the newest mail at once, two won in 3 of 1,200
 * races; three storing overlapping batches on their highest MODSEQ moved a mail twice in 2 of
 * about 330 rounds of 30 mails. So a lock on a MODSEQ below the listing's highest (the session has
 * synced at least that far) is trusted as is; a lock on the highest is read back, and the
 * mail moved only when this process's keyword is its only claim keyword (of sessions that
 * locked at once, each reads after its own lock, so the later one sees the earlier). Of a
 * contested lock the lowest keyword keeps the mail and the others step back
 * (`ImapClaims.settle`).
 *
 * A batch (`ImapSource.claimMany`) needs a constant number of round trips whatever its size:
 * one conditional store `UNCHANGEDSINCE` the batch's highest listed MODSEQ S (at least each
 * mail's, so unchanged mails are locked) when S is below the listing's highest, else two:
 * first the mails listed below S on S-1 (never the session's highest), then those listed at
 * S on S (by then the session has synced past S: the first store locked mails or found them
 * changed or gone, each a change above S); then one `UID MOVE` of those locked. When every
 * mail of the batch carries S (mails moved or flagged into the mailbox in one transaction),
 * they are locked in one store on S and read back in one FETCH: each mail whose only claim
 * keyword is this process's is moved, the contested ones are settled together, as a lone
 * mail's are. Mails that came back `MODIFIED` are read again in one FETCH, and those still
 * unclaimed are locked one by one.
 *
 * Claim time: MOVE keeps INTERNALDATE (the arrival), so recovery reads SAVEDATE (RFC 8514:
 * when the mail was saved into the processing folder, i.e. claimed); a server without
 * SAVEDATE falls back to when this process first saw the mail there. A mail left locked in
 * the mailbox (a claimer died between STORE and MOVE) is unlocked once this process has seen
 * it locked for `olderThanMs`. A server without CONDSTORE (Courier) never claims:
 * `ImapSource.claims` is false there and the host refuses `shared_mailbox` (docs/providers.md);
 * a mailbox without MODSEQs (`NOMODSEQ`) on a CONDSTORE server gets plain MOVE claims with a
 * warning, safe for one host process per mailbox only.
 *
 * @module
 */
import type { ImapFlow } from "imapflow";
import type { Logger } from "../../log.ts";
import type { Clock } from "../../runtime.ts";
import { canCondstore, conditionalStore, saveDates, storeUnchanged } from "./condstore.ts";
import { uidSet } from "./errors.ts";
import type { ImapSession } from "./session.ts";

/** Keyword on every claimed mail, so half-done claims can be found by SEARCH. */
export const CLAIMED = "$MailpeerClaimed";
/** Prefix of the per-process claim keyword, the part that makes the lock a real change. */
export const CLAIMER_PREFIX = "$MailpeerClaim-";
const DEFAULT_CLAIMER_SLOTS = 256;
/**
 * The waits (ms) of the lowest claimer of a contested lock before each read again (see
 * `ImapClaims.settle`): 4 s in all, then the lock is left to recovery. The others step back
 * within a round trip; the waits only run out when one of them stopped in the middle.
 */
const CONTEST_WAIT_MS = [0, 5, 10, 20, 40, 80, 160, 320, 640, 1_000, 1_725];

/** Where a claimed mail went: its UID in the processing folder and that folder's UIDVALIDITY. */
export interface ClaimedUid {
  validity: bigint;
  uid: number;
}

/** UIDs that recovery moved back into the mailbox, and that mailbox's UIDVALIDITY. */
export interface MovedBack {
  validity?: bigint;
  uids: number[];
}

/** Options of {@link ImapClaims}. */
export interface ImapClaimsOptions {
  /** The processing folder claimed mail is moved to. */
  processing: string;
  /** This process's name in `$MailpeerClaim-<claimer>`. Default: a random number below 256. */
  claimer?: string | undefined;
  clock: Clock;
  logger: Logger;
}

/** The claim protocol of one source (see the module notes), and what recovery remembers. */
export class ImapClaims {
  readonly processing: string;
  /** This process's name, the part after {@link CLAIMER_PREFIX}. */
  readonly claimer: string;
  readonly #keyword: string;
  readonly #clock: Clock;
  readonly #logger: Logger;
  #warnedNoCondstore = false;
  /** When this process first saw a mail in the processing folder (`<validity>:<uid>`). */
  #seenClaimed = new Map<string, number>();
  /** When this process first saw a mail locked in the mailbox (`<validity>:<uid>`). */
  #seenLocked = new Map<string, number>();

  constructor(options: ImapClaimsOptions) {
    const claimer = options.claimer ??
      String(crypto.getRandomValues(new Uint8Array(1))[0]! % DEFAULT_CLAIMER_SLOTS);
    if (!/^[A-Za-z0-9]{1,32}$/.test(claimer)) {
      throw new TypeError(
        `Cannot use ${JSON.stringify(claimer)} as the claimer name: use 1 to 32 letters or digits`,
      );
    }
    this.processing = options.processing;
    this.claimer = claimer;
    this.#keyword = CLAIMER_PREFIX + claimer;
    this.#clock = options.clock;
    this.#logger = options.logger;
  }

  /**
   * On `session`'s connection (`client`, the mailbox selected): locks mail `uid` with a
   * conditional store and moves it into the processing folder. Resolves with where it went,
   * or undefined when another process locked or moved it first, or it is gone.
   *
   * `listed.modseq` is the mail's MODSEQ when it was listed (unclaimed, not deleted): a lock
   * conditional on it saves reading the flags first. When the mail changed since, the flags
   * are read and the lock tried again on the new MODSEQ. Unless that MODSEQ is below
   * `listed.highest` (the highest the session has synced), the lock is read back (module
   * notes).
   */
  async lockAndMove(
    session: ImapSession,
    client: ImapFlow,
    uid: number,
    listed: { modseq?: bigint | undefined; highest?: bigint | undefined } = {},
  ): Promise<ClaimedUid | undefined> {
    const target = await session.ensureFolder(client, this.processing);
    const lock = async (modseq: bigint) =>
      await conditionalStore(client, uid, modseq, "+", [CLAIMED, this.#keyword]) &&
      (modseq < (listed.highest ?? 0n) || (await this.settle(client, [uid])).length === 1);
    if (listed.modseq !== undefined && canCondstore(client) && await lock(listed.modseq)) {
      return await this.#move(session, client, uid, target);
    }
    const msg = await client.fetchOne(String(uid), { uid: true, flags: true }, { uid: true });
    if (!msg || msg.flags?.has("\\Deleted") || msg.flags?.has(CLAIMED)) return undefined;
    if (canCondstore(client) && msg.modseq !== undefined) {
      if (!await lock(msg.modseq)) return undefined;
    } else if (!this.#warnedNoCondstore) {
      this.#warnedNoCondstore = true;
      this.#logger.log(
        "warn",
        "IMAP mailbox has no MODSEQs (NOMODSEQ): claims are plain MOVEs, safe " +
          "for one host process per mailbox only",
        { server: session.ctx.server },
      );
    }
    return await this.#move(session, client, uid, target);
  }

  /**
   * Reads back locks (of `uids`, on `client`'s selected mailbox) whose store may have skipped
   * Dovecot's conflict check (module notes), and settles those several processes hold at once.
   * Resolves with the UIDs this process may move: those whose only claim keyword is this
   * process's.
   *
   * Safety: a process moves a mail only after reading, after its own lock, that no other claim
   * keyword is on it; of two processes that locked at once, the later one's read sees the
   * earlier one's keyword, so at most one moves it.
   *
   * Liveness (see "A contested claim goes to the lowest claimer" in docs/decisions.md): of the
   * keywords on a contested mail, the lowest (in code-unit order) keeps it. A process whose
   * keyword is not the lowest takes it off and steps back; the lowest keeps its keyword and
   * reads again after `CONTEST_WAIT_MS` waits (on the injected clock) until the others have
   * stepped back or one of them has moved the mail. The lowest keyword ever on the mail never
   * steps back, so someone keeps it. Before, every contestant stepped back, took its keyword
   * off, and locked again when none was left: processes in step did that in lockstep for all
   * their rounds and left the mail to recovery, 10 minutes later (1 round in 200 of three
   * processes racing). A holder that neither steps back nor moves (it died) keeps the mail
   * locked; after the last wait it is left to recovery, as before.
   */
  async settle(client: ImapFlow, uids: readonly number[]): Promise<number[]> {
    const mine: number[] = [];
    let pending = [...new Set(uids)].sort((a, b) => a - b);
    for (let round = 0; pending.length > 0; round++) {
      const now = await client.fetchAll(uidSet(pending), { uid: true, flags: true }, { uid: true });
      const asked = new Set(pending);
      const stepBack: number[] = [];
      const wait: number[] = [];
      for (const msg of now) {
        // only the mails asked about: another session's flag change may arrive as an unsolicited
        // FETCH among the answers (a 3-way race once failed with imapflow's "Invalid sequence
        // set value", which an undefined UID passed on gives)
        if (!asked.has(msg.uid)) continue;
        asked.delete(msg.uid);
        const claimers = [...(msg.flags ?? [])].filter((f) => f.startsWith(CLAIMER_PREFIX));
        if (!claimers.includes(this.#keyword)) continue; // the lock did not take
        if (claimers.length === 1) mine.push(msg.uid);
        else if (claimers.every((k) => k >= this.#keyword)) wait.push(msg.uid);
        else stepBack.push(msg.uid);
        if (claimers.length > 1) {
          this.#logger.log("debug", "IMAP claim contested", { uid: msg.uid, claimers, round });
        }
      }
      if (stepBack.length > 0) {
        await client.messageFlagsRemove(uidSet(stepBack), [this.#keyword], {
          uid: true,
          silent: true,
        });
      }
      pending = wait;
      if (pending.length === 0) break;
      if (round >= CONTEST_WAIT_MS.length) {
        this.#logger.log("warn", "IMAP claim still contested, left to recovery", {
          uids: pending,
        });
        break;
      }
      await this.#clock.sleep(CONTEST_WAIT_MS[round]!);
    }
    return mine.sort((a, b) => a - b);
  }

  /** `UID MOVE` of a locked mail into the processing folder (`target`, its full name). */
  async #move(
    session: ImapSession,
    client: ImapFlow,
    uid: number,
    target: string,
  ): Promise<ClaimedUid | undefined> {
    const result = await client.messageMove(String(uid), target, { uid: true });
    if (result === false) {
      session.forgetFolder(this.processing);
      throw session.refused(client, "the server refused MOVE");
    }
    const moved = result?.uidMap?.get(uid);
    if (moved === undefined || result?.uidValidity === undefined) return undefined;
    return { validity: result.uidValidity, uid: moved };
  }

  /**
   * The batch form of {@link lockAndMove} (see the module notes): locks those of `uids` that
   * are unchanged since the listing (`listed.modseq(uid)`, their MODSEQ then; `listed.highest`,
   * the highest MODSEQ of that listing) with one or two conditional stores, and moves them
   * into the processing folder with one `UID MOVE`; the mails changed since are read again
   * (one FETCH) and those still unclaimed locked one by one. Resolves with where each mail won
   * went, by its UID here; the others were locked or moved by another process, or are gone.
   */
  async lockAndMoveMany(
    session: ImapSession,
    client: ImapFlow,
    uids: readonly number[],
    listed: { modseq(uid: number): bigint | undefined; highest: bigint | undefined },
  ): Promise<Map<number, ClaimedUid>> {
    const target = await session.ensureFolder(client, this.processing);
    const won = new Map<number, ClaimedUid>();
    const oneByOne = async (some: readonly number[], modseqOf: typeof listed.modseq) => {
      for (const uid of some) {
        const moved = await this.lockAndMove(session, client, uid, {
          modseq: modseqOf(uid),
          highest: listed.highest,
        });
        if (moved !== undefined) won.set(uid, moved);
      }
    };
    const sorted = [...new Set(uids)].sort((a, b) => a - b);
    const known = sorted.filter((uid) => listed.modseq(uid) !== undefined);
    const top = known.reduce((max, uid) => {
      const modseq = listed.modseq(uid)!;
      return modseq > max ? modseq : max;
    }, 0n);
    // below the listing's highest MODSEQ, one store; else those below `top` first, on top-1
    let stores: [number[], bigint][] = top < (listed.highest ?? 0n) ? [[known, top]] : [
      [known.filter((uid) => listed.modseq(uid)! < top), top - 1n],
      [known.filter((uid) => listed.modseq(uid) === top), top],
    ];
    // several mails that all carry the listing's highest MODSEQ (moved or flagged in one
    // transaction): locked in one store on it, whose conflict check Dovecot may skip, so the
    // locks are read back in one FETCH, as a lone lock on the newest mail is (module notes)
    const readBack = stores[0]![0].length === 0 && known.length > 1;
    if (readBack) stores = [[known, top]];
    if (stores[0]![0].length === 0 || !canCondstore(client)) {
      // a lone mail, or no CONDSTORE: as single claims
      await oneByOne(sorted, listed.modseq);
      return won;
    }
    let locked: number[] = [];
    const changed = sorted.filter((uid) => listed.modseq(uid) === undefined);
    for (const [set, since] of stores) {
      if (set.length === 0) continue;
      const flags = [CLAIMED, this.#keyword];
      const stored = await storeUnchanged(client, uidSet(set), since, "+", flags);
      if (stored === "expunge-issued") {
        // the store may have reached some mails before the server stopped: those carrying
        // this process's keyword now (only this process sets it, and only on unclaimed mail)
        const now = await client.fetchAll(uidSet(set), { uid: true, flags: true }, { uid: true });
        const mine = new Set(
          now.filter((m) => set.includes(m.uid) && m.flags?.has(this.#keyword)).map((m) => m.uid),
        );
        for (const uid of set) (mine.has(uid) ? locked : changed).push(uid);
      } else {
        for (const uid of set) (stored(uid) ? changed : locked).push(uid);
      }
    }
    if (readBack && locked.length > 0) locked = await this.settle(client, locked);
    if (locked.length > 0) {
      const result = await client.messageMove(uidSet(locked), target, { uid: true });
      if (result === false) {
        session.forgetFolder(this.processing);
        throw session.refused(client, "the server refused MOVE");
      }
      const validity = result?.uidValidity;
      for (const uid of locked) {
        const target = result?.uidMap?.get(uid);
        if (validity !== undefined && target !== undefined) won.set(uid, { validity, uid: target });
      }
    }
    // mails changed since the listing (or listed without a MODSEQ): the unclaimed ones too
    if (changed.length === 0) return won;
    changed.sort((a, b) => a - b);
    const now = await client.fetchAll(uidSet(changed), { uid: true, flags: true }, { uid: true });
    const asked = new Set(changed);
    const fresh = new Map(
      now.filter((m) => asked.has(m.uid) && !m.flags?.has(CLAIMED) && !m.flags?.has("\\Deleted"))
        .map((m) => [m.uid, m.modseq]),
    );
    await oneByOne([...fresh.keys()], (uid) => fresh.get(uid));
    return won;
  }

  /**
   * On the processing folder's session: moves every mail saved there at or before `limit`
   * back into `mailbox`, each after locking it again with a conditional store (so two
   * recovering processes never both move it). Resolves with the UIDs the mails got there.
   */
  putBack(processing: ImapSession, mailbox: string, limit: number): Promise<MovedBack> {
    return processing.run(`recover claimed mail from ${processing.mailbox} on`, async (client) => {
      await client.noop();
      const out: MovedBack = { uids: [] };
      if (!client.mailbox || client.mailbox.exists === 0) return out;
      const saved = client.capabilities.has("SAVEDATE") ? await saveDates(client) : undefined;
      const messages = await client.fetchAll("1:*", { uid: true, flags: true });
      const now = this.#clock.now();
      const seen = new Map<string, number>();
      for (const msg of messages) {
        const key = `${processing.uidValidity}:${msg.uid}`;
        const at = saved?.get(msg.uid) ?? this.#seenClaimed.get(key) ?? now;
        seen.set(key, at);
        if (at > limit || msg.flags?.has("\\Deleted")) continue;
        if (canCondstore(client) && msg.modseq !== undefined) {
          // lock again: toggle this process's keyword, a real change that can conflict
          const mine = msg.flags?.has(this.#keyword) ?? false;
          const locked = await conditionalStore(client, msg.uid, msg.modseq, mine ? "-" : "+", [
            this.#keyword,
          ]);
          if (!locked) continue;
        }
        const result = await client.messageMove(String(msg.uid), mailbox, { uid: true });
        if (result === false) throw processing.refused(client, "the server refused MOVE");
        const target = result?.uidMap?.get(msg.uid);
        if (target === undefined) continue;
        out.validity = result?.uidValidity;
        out.uids.push(target);
        seen.delete(key);
      }
      this.#seenClaimed = seen;
      return out;
    });
  }

  /**
   * On the mailbox's session: removes the claim keywords from `moved` at once, and from every
   * other locked mail that this process has seen locked since `limit` or earlier
   * (conditionally, so a claim that completes meanwhile is left alone). Resolves with how
   * many were unlocked.
   */
  unlock(session: ImapSession, moved: MovedBack, limit: number): Promise<number> {
    return session.run(`unlock claimed mail in ${session.mailbox} on`, async (client) => {
      await client.noop();
      const found = await client.search({ keyword: CLAIMED, deleted: false }, { uid: true });
      if (found === false) throw new Error("the server refused the SEARCH");
      const movedNow = new Set(moved.validity === session.uidValidity ? moved.uids : []);
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
        const key = `${session.uidValidity}:${msg.uid}`;
        const since = this.#seenLocked.get(key) ?? now;
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
      this.#seenLocked = seen;
      // mail moved back but not found locked (a server that dropped the keywords) counts too
      for (const uid of movedNow) if (!uids.includes(uid)) count++;
      return count;
    });
  }
}
