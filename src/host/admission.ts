/**
 * Whether the host answers a request, judged against the control table: replays and request
 * rates (docs/design.md "Host processing"). Pure functions over rows.
 *
 * - A request for a user id whose live row carries another identity key is refused: the user id
 *   is bound to its key while the row lives (a key change waits for the row to expire, or for
 *   the operator to remove it, docs/decisions.md).
 * - A request with the session id of the user's current row is a repeat (the host crashed
 *   before deleting it, the mail was delivered twice, or someone re-mails it): it leaves the
 *   row as it is but counts against the rates like any request (the host sends no second
 *   reply within `REPEAT_REPLY_WINDOW_MS`, see host.ts).
 * - A request with a session id the user sent before, or signed earlier than the user's current
 *   row, is a replay: refused (it could otherwise roll the user back to an old address).
 * - More than `perUser` requests of one user id, or `perSender` requests from one e-mail
 *   address (the `From:` of each request, repeats included), within `windowMs`: refused.
 * - More than `perHost` requests over all users of the network, or, for a user id without a
 *   live row, more than `newRows` rows made within `windowMs`: refused, so a flood of invented
 *   users can neither get unbounded replies nor overwrite every real row.
 *
 * @module
 */
import type { PeerRow } from "./types.ts";

/** Rate limits; `Infinity` disables one. */
export interface RateLimits {
  perUser: number;
  perSender: number;
  /** Requests the host answers within the window over all users; default `Infinity`. */
  perHost?: number;
  /** Rows (user ids) the network may gain within the window; default `Infinity`. */
  newRows?: number;
  windowMs: number;
}

/** The request being judged. */
export interface Candidate {
  network: string;
  userId: string;
  email: string;
  sessionId: string;
  /** The request's Ed25519 identity public key, base64url. */
  identityKey: string;
  /** Signed creation time of the request. */
  createdAt: number;
  /** When it is processed. */
  now: number;
}

/** The verdict: answer it (and whether it repeats the current request), or refuse and why. */
export type Admission =
  | { ok: true; repeat: boolean }
  | { ok: false; code: "EOWNER" | "EREPLAY" | "ERATE"; reason: string };

/** Largest number of history entries kept per row. */
export const MAX_HISTORY = 64;

/**
 * What admission reads off the rows besides the user's own history: {@link admit} scans the rows
 * for each request ({@link scanCounts}); a batch keeps an index instead (admission_index.ts), so
 * a request costs the same on a table of long histories as on one of short ones.
 */
export interface AdmissionCounts {
  /** The row of this network and user id (the first one, as `rows.find` would). */
  own(network: string, userId: string): PeerRow | undefined;
  /** History entries after `since` sent from `email` (lower case): `h.from ?? row.email`. */
  sender(email: string, since: number): number;
  /** History entries after `since` over the rows of `network`. */
  host(network: string, since: number): number;
  /** Rows of `network` made (`since`, absent: never) after `since`. */
  made(network: string, since: number): number;
}

/** The counts of {@link AdmissionCounts}, each a pass over `rows`. */
export function scanCounts(rows: readonly PeerRow[]): AdmissionCounts {
  const recent = (r: PeerRow, since: number) => {
    let n = 0;
    for (const h of r.history ?? []) if (h.at > since) n++;
    return n;
  };
  // counted in loops, not filtered lists: these run for each request over the whole table
  return {
    own: (network, userId) => rows.find((r) => r.network === network && r.userId === userId),
    sender: (email, since) => {
      let n = 0;
      for (const r of rows) {
        for (const h of r.history ?? []) {
          if (h.at > since && (h.from ?? r.email).toLowerCase() === email) n++;
        }
      }
      return n;
    },
    host: (network, since) => {
      let n = 0;
      for (const r of rows) if (r.network === network) n += recent(r, since);
      return n;
    },
    made: (network, since) => {
      let n = 0;
      for (const r of rows) if (r.network === network && (r.since ?? -1) > since) n++;
      return n;
    },
  };
}

/**
 * Judges a request against the rows. `counts` reads them (default: a scan of `rows`); a batch
 * passes its {@link AdmissionCounts} index, which must hold the same rows.
 *
 * @example
 * ```ts
 * const verdict = admit(rows, candidate, { perUser: 30, perSender: 60, windowMs: 3_600_000 });
 * if (!verdict.ok) quarantine(verdict.reason);
 * ```
 */
export function admit(
  rows: readonly PeerRow[],
  c: Candidate,
  limits: RateLimits,
  counts: AdmissionCounts = scanCounts(rows),
): Admission {
  const own = counts.own(c.network, c.userId);
  if (own && own.identityKey !== c.identityKey) {
    return {
      ok: false,
      code: "EOWNER",
      reason:
        `request for user id ${c.userId} is signed by another identity key than the user's live row (takeover attempt, or a key change before the row expired)`,
    };
  }
  const repeat = own !== undefined && own.sessionId === c.sessionId;
  if (!repeat && own?.history?.some((h) => h.sessionId === c.sessionId)) {
    return {
      ok: false,
      code: "EREPLAY",
      reason: `session ${c.sessionId} of ${c.userId} was already used (replay)`,
    };
  }
  if (!repeat && own && c.createdAt < own.requestedAt) {
    return {
      ok: false,
      code: "EREPLAY",
      reason:
        `request of ${c.userId} was signed before the user's current one (replay or out of order)`,
    };
  }
  const since = c.now - limits.windowMs;
  let userCount = 0;
  for (const h of own?.history ?? []) if (h.at > since) userCount++;
  if (userCount >= limits.perUser) {
    return {
      ok: false,
      code: "ERATE",
      reason: `user ${c.userId} sent ${userCount} requests within ${
        Math.round(limits.windowMs / 60_000)
      } min (limit ${limits.perUser})`,
    };
  }
  const senderCount = limits.perSender !== Infinity
    ? counts.sender(c.email.toLowerCase(), since)
    : 0;
  if (senderCount >= limits.perSender) {
    return {
      ok: false,
      code: "ERATE",
      reason: `sender ${c.email} sent ${senderCount} requests within ${
        Math.round(limits.windowMs / 60_000)
      } min (limit ${limits.perSender})`,
    };
  }
  const minutes = Math.round(limits.windowMs / 60_000);
  const perHost = limits.perHost ?? Infinity;
  if (perHost !== Infinity) {
    const hostCount = counts.host(c.network, since);
    if (hostCount >= perHost) {
      return {
        ok: false,
        code: "ERATE",
        reason:
          `this host answered ${hostCount} requests within ${minutes} min (limit ${perHost}, host.requests_per_hour)`,
      };
    }
  }
  const newRows = limits.newRows ?? Infinity;
  if (!own && newRows !== Infinity) {
    const made = counts.made(c.network, since);
    if (made >= newRows) {
      return {
        ok: false,
        code: "ERATE",
        reason:
          `network ${c.network} got ${made} new users within ${minutes} min (limit ${newRows}, host.new_rows_per_hour)`,
      };
    }
  }
  return { ok: true, repeat };
}

/**
 * The history a row of this user carries after a request: the old one within `keepMs`, plus
 * this request (a repeat adds an entry too, so it counts against the rates).
 */
export function nextHistory(
  old: PeerRow | undefined,
  entry: { sessionId: string; at: number; from: string },
  keepMs: number,
): { sessionId: string; at: number; from?: string }[] {
  const kept = (old?.history ?? []).filter((h) => h.at > entry.at - keepMs);
  return [...kept, { ...entry, from: entry.from.toLowerCase() }].slice(-MAX_HISTORY);
}
