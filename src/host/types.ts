/**
 * The control table (docs/design.md "Control table") and its storage seam, {@link TableStore}.
 *
 * @module
 */
import type { Candidate, Endpoint } from "../message/types.ts";

/** One row of the control table: the latest request of one user id. */
export interface PeerRow {
  userId: string;
  network: string;
  /** Ed25519 identity public key, base64url. */
  identityKey: string;
  endpoints: Endpoint[];
  /**
   * The typed candidates the request carried (payload version 2), as signed; absent for a
   * version 1 request (its endpoints are its `host` candidates).
   */
  candidates?: Candidate[];
  /** X25519 key (base64url) the request announced for introductions; absent: none wanted. */
  introductionKey?: string;
  /** When the host mailed this user introductions, within the last hour: the per-target limit. */
  introduced?: number[];
  /** The requester's e-mail address. Kept on the host only, never sent to terminals. */
  email: string;
  /** Session id of the latest request, base64url. */
  sessionId: string;
  /**
   * When the latest request was made: its signed creation time (never the forgeable `Date:`),
   * ms since the epoch.
   */
  requestedAt: number;
  /** How many notices reported this user as unreachable since its latest request. */
  failures: number;
  /** When the latest notice about this user arrived, ms since the epoch. */
  lastFailureAt?: number;
  /**
   * Recent requests of this user (session id, base64url, when they arrived, and the sender
   * address, lower case), oldest first, within the expiry age, repeats included: the replay
   * cache and the per-user and per-sender rate counts.
   */
  history?: { sessionId: string; at: number; from?: string }[];
  /**
   * What the host's recent replies to this user listed (session id, when, the peers' user
   * ids), newest last, at most `MAX_LISTED_REPLIES`: the peers this user may flag in a notice.
   */
  listed?: { sessionId: string; at: number; peers: string[] }[];
  /**
   * The terminal's signed request behind the row (base64url: request body, signature, the
   * X25519 key of the host it was sealed to): travels in sync snapshots so other hosts can
   * check it (host/pool/request_proof.ts). Rows without one are not synced.
   */
  proof?: { body: string; signature: string; recipient: string };
  /** When this user id's row was made (its first request under this key), ms since the epoch. */
  since?: number;
  /** The notices this user sent recently (session id @ signed time, when): replay and rate. */
  notices?: { id: string; at: number }[];
}

/**
 * Claims of mails among host processes that share a mailbox, kept beside their shared table
 * (docs/decisions.md "Claims in the shared store"): whoever holds a mail's claim processes it;
 * a claim lapses by itself after a while, so a process that died holds nothing for long.
 */
export interface ClaimLedger {
  /**
   * Takes the mails with these ids (`MailRef.id`) for this process, in one round trip;
   * resolves with the ids it holds now: those it took, and those it already held (renewed).
   * The ids are tried in order; with `upTo` (a positive integer) the walk stops as soon as
   * this process holds `upTo` of them, and the ids after that are not touched, so a host can
   * offer a window of the listing larger than its batch and still get a full batch when
   * other processes hold some of the window (docs/decisions.md "Claims in the shared store").
   * Without `upTo` every id is tried.
   */
  claim(ids: readonly string[], options?: { upTo?: number }): Promise<Set<string>>;
  /**
   * Marks the mails this process held and deleted as done: no process takes them again while
   * their claims last (a listing made before the delete still shows them).
   */
  finish(ids: readonly string[]): Promise<void>;
}

/** Stores the control table. Every implementation passes tests/conformance/table_store.ts. */
export interface TableStore {
  /** Reads the whole table. */
  read(): Promise<PeerRow[]>;
  /**
   * Runs `fn` on the current rows under an exclusive lock (across processes for shared
   * stores) and stores the rows it returns atomically: a crash leaves either the old or the
   * new table, never a mix. Resolves with `fn`'s result.
   */
  update<T>(
    fn: (
      rows: PeerRow[],
    ) => { rows: PeerRow[]; result: T } | Promise<{ rows: PeerRow[]; result: T }>,
  ): Promise<T>;
  /**
   * A store shared by several processes may keep their claims of mails too (the Redis store):
   * `scope` names the mailbox, a claim lapses `ttlMs` after it was taken or renewed.
   */
  claimLedger?(scope: string, options: { ttlMs: number }): ClaimLedger;
  /** Releases connections. */
  close(): Promise<void>;
}
