/**
 * Which notices the host acts on (issue 12), as pure functions over rows: a notice flags a peer
 * only when its reporter has a row with the key that signed it, the notice is fresh, new (not a
 * replay), within the reporter's notice rate, within the cap on its `failed` list, and names
 * only peers the host listed to that reporter, in the reply to the notice's session, recently.
 * What each reply listed is remembered in the requester's row ({@link recordListed}, bounded by
 * `MAX_LISTED_REPLIES`), and the notices a reporter sent in its row (`notices`).
 *
 * @module
 */
import {
  MAX_CLOCK_SKEW_MS,
  MAX_LISTED_REPLIES,
  NOTICE_MAX_AGE_MS,
  NOTICES_PER_USER_PER_HOUR,
  RATE_WINDOW_MS,
} from "../limits.ts";
import { MAX_NOTICE_FAILED } from "../protocol.ts";
import { toBase64Url } from "../message/base64.ts";
import type { NoticePayload } from "../message/types.ts";
import { cloneRow, flagFailure } from "./table.ts";
import type { PeerRow } from "./types.ts";

/** What the host does with one notice: flag these peers, or refuse it and why. */
export type NoticeVerdict =
  | { ok: true; flagged: string[] }
  | {
    ok: false;
    code: "ESIGNATURE" | "EPAYLOAD" | "ESTALE" | "EREPLAY" | "ERATE" | "EPOLICY";
    reason: string;
    disposal: "quarantine" | "delete";
  };

/** Options of {@link applyNotices}. */
export interface NoticeOptions {
  network: string;
  /** Most notices per reporter per `RATE_WINDOW_MS`; default `NOTICES_PER_USER_PER_HOUR`. */
  perUser?: number;
}

/**
 * Applies notices in order (each one sees the effects of those before it): the verdict of
 * each, and the rows with the accepted ones' failure flags and the reporters' notice records.
 */
export function applyNotices(
  rows: readonly PeerRow[],
  notices: readonly { notice: NoticePayload; at: number }[],
  options: NoticeOptions,
): { rows: PeerRow[]; verdicts: NoticeVerdict[] } {
  let next = [...rows];
  const verdicts = notices.map(({ notice, at }) => {
    const verdict = judge(next, notice, at, options);
    if (!verdict.ok) return verdict;
    const i = next.findIndex((r) => r.network === options.network && r.userId === notice.userId);
    const reporter = cloneRow(next[i]!);
    reporter.notices = [
      ...(reporter.notices ?? []).filter((n) => n.at > at - keepMs()),
      { id: noticeId(notice), at },
    ];
    next[i] = reporter;
    for (const userId of verdict.flagged) {
      next = flagFailure(next, { userId, network: options.network }, at);
    }
    return verdict;
  });
  return { rows: next, verdicts };
}

/** How long a reporter's notices are remembered: the longer of the freshness and rate windows. */
function keepMs(): number {
  return Math.max(NOTICE_MAX_AGE_MS, RATE_WINDOW_MS);
}

/** One notice's identity: the session it reports on and its signed creation time. */
function noticeId(notice: NoticePayload): string {
  return `${toBase64Url(notice.sessionId)}@${notice.createdAt}`;
}

function judge(
  rows: readonly PeerRow[],
  notice: NoticePayload,
  at: number,
  options: NoticeOptions,
): NoticeVerdict {
  const who = notice.userId;
  const refuse = (
    code: Exclude<NoticeVerdict, { ok: true }>["code"],
    reason: string,
    disposal: "quarantine" | "delete" = "quarantine",
  ): NoticeVerdict => ({ ok: false, code, reason, disposal });
  const reporter = rows.find((r) => r.network === options.network && r.userId === who);
  if (!reporter || reporter.identityKey !== toBase64Url(notice.identityKey)) {
    return refuse("ESIGNATURE", `notice from ${who}, who has no row with that identity key`);
  }
  if (notice.failed.length > MAX_NOTICE_FAILED) {
    return refuse(
      "EPAYLOAD",
      `notice from ${who} reports ${notice.failed.length} failed peers, more than ${MAX_NOTICE_FAILED}`,
    );
  }
  if (notice.createdAt > at + MAX_CLOCK_SKEW_MS) {
    return refuse("ESTALE", `notice from ${who} is dated in the future`);
  }
  if (notice.createdAt < at - NOTICE_MAX_AGE_MS) {
    return refuse(
      "ESTALE",
      `notice from ${who} was signed more than ${NOTICE_MAX_AGE_MS / 60_000} min ago`,
      "delete",
    );
  }
  const id = noticeId(notice);
  if (reporter.notices?.some((n) => n.id === id)) {
    return refuse("EREPLAY", `notice from ${who} was already received (replay)`);
  }
  const perUser = options.perUser ?? NOTICES_PER_USER_PER_HOUR;
  const recent = (reporter.notices ?? []).filter((n) => n.at > at - RATE_WINDOW_MS).length;
  if (recent >= perUser) {
    return refuse(
      "ERATE",
      `user ${who} sent ${recent} notices within ${RATE_WINDOW_MS / 60_000} min (limit ${perUser})`,
    );
  }
  const session = toBase64Url(notice.sessionId);
  const listed = reporter.listed?.find((l) =>
    l.sessionId === session && l.at >= at - NOTICE_MAX_AGE_MS
  );
  const flagged = [...new Set(notice.failed.map((f) => f.userId))];
  const unlisted = flagged.filter((u) => !listed?.peers.includes(u));
  if (unlisted.length > 0) {
    return refuse(
      "EPOLICY",
      `notice from ${who} flags ${
        unlisted.join(", ")
      }, whom this host did not list to ${who} for that session in the last ${
        NOTICE_MAX_AGE_MS / 60_000
      } min`,
    );
  }
  return { ok: true, flagged };
}

/**
 * Remembers that the reply to `requester`'s session `sessionId` listed `peers` (user ids):
 * at most `MAX_LISTED_REPLIES` replies per user, none older than `NOTICE_MAX_AGE_MS`. A row
 * that is not there (another key, or gone) is left alone.
 */
export function recordListed(
  rows: readonly PeerRow[],
  requester: { network: string; userId: string; identityKey: string },
  listing: { sessionId: string; at: number; peers: string[] },
): PeerRow[] {
  const i = rows.findIndex((r) =>
    r.network === requester.network && r.userId === requester.userId &&
    r.identityKey === requester.identityKey
  );
  if (i < 0) return [...rows];
  const next = [...rows];
  const row = cloneRow(rows[i]!);
  row.listed = [
    ...(row.listed ?? []).filter((l) =>
      l.sessionId !== listing.sessionId && l.at > listing.at - NOTICE_MAX_AGE_MS
    ),
    { sessionId: listing.sessionId, at: listing.at, peers: [...listing.peers] },
  ].slice(-MAX_LISTED_REPLIES);
  next[i] = row;
  return next;
}
