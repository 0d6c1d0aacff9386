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
 * Claim time: MOVE keeps INTERNALDATE (the arrival), so recovery reads SAVEDATE (RFC 8514:
 * when the mail was saved into the processing folder, i.e. claimed); a server without
 * SAVEDATE falls back to when this process first saw the mail there. A mail left locked in
 * the mailbox (a claimer died between STORE and MOVE) is unlocked once this process has seen
 * it locked for `olderThanMs`. A server without CONDSTORE gets plain MOVE claims (a warning
 * is logged): safe for one host process per mailbox only.
 *
 * @module
 */
import type { ImapFlow } from "imapflow";
import type { Logger } from "../log.ts";
import type { Clock } from "../runtime.ts";
import { uidSet } from "./imap_errors.ts";
import type { ImapSession } from "./imap_session.ts";

/** Keyword on every claimed mail, so half-done claims can be found by SEARCH. */
export const CLAIMED = "$MailpeerClaimed";
/** Prefix of the per-process claim keyword, the part that makes the lock a real change. */
export const CLAIMER_PREFIX = "$MailpeerClaim-";
const DEFAULT_CLAIMER_SLOTS = 256;

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
   * `listedModseq` is the mail's MODSEQ when it was listed (unclaimed, not deleted): a lock
   * conditional on it saves reading the flags first. When the mail changed since, the flags
   * are read and the lock tried again on the new MODSEQ.
   */
  async lockAndMove(
    session: ImapSession,
    client: ImapFlow,
    uid: number,
    listedModseq?: bigint,
  ): Promise<ClaimedUid | undefined> {
    await session.ensureFolder(client, this.processing);
    const lock = (modseq: bigint) =>
      conditionalStore(client, uid, modseq, "+", [CLAIMED, this.#keyword]);
    if (listedModseq !== undefined && canCondstore(client) && await lock(listedModseq)) {
      return await this.#move(session, client, uid);
    }
    const msg = await client.fetchOne(String(uid), { uid: true, flags: true }, { uid: true });
    if (!msg || msg.flags?.has("\\Deleted") || msg.flags?.has(CLAIMED)) return undefined;
    if (canCondstore(client) && msg.modseq !== undefined) {
      if (!await lock(msg.modseq)) return undefined;
    } else if (!this.#warnedNoCondstore) {
      this.#warnedNoCondstore = true;
      this.#logger.log(
        "warn",
        "IMAP server lacks CONDSTORE: claims are plain MOVEs, safe " +
          "for one host process per mailbox only",
        { server: session.ctx.server },
      );
    }
    return await this.#move(session, client, uid);
  }

  /** `UID MOVE` of a locked mail into the processing folder. */
  async #move(
    session: ImapSession,
    client: ImapFlow,
    uid: number,
  ): Promise<ClaimedUid | undefined> {
    const result = await client.messageMove(String(uid), this.processing, { uid: true });
    if (result === false) {
      session.forgetFolder(this.processing);
      throw session.refused(client, "the server refused MOVE");
    }
    const target = result?.uidMap?.get(uid);
    if (target === undefined || result?.uidValidity === undefined) return undefined;
    return { validity: result.uidValidity, uid: target };
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
