/**
 * Which introductions a host mails (docs/design.md "Reachability", issue 13): when a reply lists
 * peer B to requester A, B is told of A, provided B's request announced an introduction key, B is
 * not A, the host knows B's mail address (a row learned by sync does not carry it), and neither B's
 * limit (`INTRODUCTIONS_PER_TARGET_PER_HOUR`) nor the host's (`INTRODUCTIONS_PER_HOUR`) is reached.
 * Pure: the plan is made inside the table update that answers the requests, and each planned
 * introduction is recorded in its target's row (`introduced`), so the limits hold across processes
 * and runs.
 *
 * @module
 */
import type { PeerRow } from "./types.ts";
import { cloneRow } from "./table.ts";

/** The limits of {@link planIntroductions}. */
export interface IntroductionLimits {
  perTarget: number;
  perHour: number;
  windowMs: number;
}

/** One introduction to mail: tell `target` (a row) of the requester of `requestIndex`. */
export interface PlannedIntroduction {
  requestIndex: number;
  target: PeerRow;
}

/**
 * Plans the introductions for the peers each request is answered with, in request order, and
 * records them in the targets' rows.
 */
export function planIntroductions(
  rows: readonly PeerRow[],
  answered: readonly {
    requestIndex: number;
    requester: string;
    network: string;
    peers: string[];
  }[],
  o: IntroductionLimits & { now: number },
): { rows: PeerRow[]; plans: PlannedIntroduction[] } {
  const since = o.now - o.windowMs;
  const recent = (r: PeerRow) => (r.introduced ?? []).filter((t) => t > since);
  let live = rows.map((r) => r);
  let hostWide = live.reduce((n, r) => n + recent(r).length, 0);
  const plans: PlannedIntroduction[] = [];
  for (const a of answered) {
    for (const peer of a.peers) {
      if (peer === a.requester || hostWide >= o.perHour) continue;
      const at = live.findIndex((r) => r.network === a.network && r.userId === peer);
      const target = live[at];
      if (target === undefined || target.introductionKey === undefined || target.email === "") {
        continue;
      }
      const times = recent(target);
      if (times.length >= o.perTarget) continue;
      const next = { ...cloneRow(target), introduced: [...times, o.now] };
      live = live.map((r, i) => (i === at ? next : r));
      hostWide++;
      plans.push({ requestIndex: a.requestIndex, target: next });
    }
  }
  return { rows: live, plans };
}
