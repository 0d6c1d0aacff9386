/**
 * Candidates (docs/design.md "Reachability"): what a terminal offers its peers, ICE-style.
 * Priorities follow RFC 8445 §5.1.2 with one component: `2^24 × type preference + 2^8 × local
 * preference + 255`, type preference `host` 126, `mapped` 110, `srflx` 100 (a router mapping is as
 * direct as a STUN mapping and does not depend on the NAT's mapping behaviour), `relay` 0 (RFC
 * 8445's recommendation: a relayed path is the last resort). Pure functions.
 *
 * A version 2 payload carries both `candidates` and `endpoints`, the projection of the direct
 * candidates (transport, address, port, same order), so that readers of version 1 still find the
 * addresses; a version 1 payload has endpoints only, read as `host` candidates. `relay`
 * candidates travel in a list of their own (`relayCandidates`) and are in no `endpoints`.
 *
 * @module
 */
import type { Candidate, CandidateType, Endpoint } from "./types.ts";

const TYPE_PREFERENCE: Record<CandidateType, number> = {
  host: 126,
  mapped: 110,
  srflx: 100,
  relay: 0,
};

/**
 * The priority of a candidate of `type`; `localPreference` (0–65535, default 65535) orders
 * candidates of one type (e.g. IPv6 over IPv4).
 *
 * @example
 * ```ts
 * candidatePriority("host"); // 2130706431
 * candidatePriority("srflx") < candidatePriority("host"); // true
 * candidatePriority("relay"); // 16777215, below every other type
 * ```
 * @throws {RangeError} when `localPreference` is not a whole number from 0 to 65535.
 */
export function candidatePriority(type: CandidateType, localPreference = 65535): number {
  if (!Number.isInteger(localPreference) || localPreference < 0 || localPreference > 65535) {
    throw new RangeError(`localPreference ${localPreference} must be a whole number 0-65535`);
  }
  return TYPE_PREFERENCE[type] * 2 ** 24 + localPreference * 2 ** 8 + 255;
}

/**
 * The version 1 view of `candidates`: transport, address and port of those other than `relay`,
 * in the same order (a relayed address is reached through the relay, not dialled like these).
 */
export function endpointsOf(candidates: readonly Candidate[]): Endpoint[] {
  return candidates.filter((c) => c.type !== "relay")
    .map((c) => ({ transport: c.transport, address: c.address, port: c.port }));
}

/**
 * The candidates of a request or reply peer: its typed candidates, or (version 1) its endpoints
 * as `host` candidates, earlier ones preferred.
 */
export function candidatesOf(
  p: { endpoints: readonly Endpoint[]; candidates?: readonly Candidate[] },
): Candidate[] {
  if (p.candidates !== undefined) return p.candidates.map((c) => ({ ...c }));
  return p.endpoints.map((e, i) => ({
    transport: e.transport,
    address: e.address,
    port: e.port,
    type: "host",
    priority: candidatePriority("host", Math.max(0, 65535 - i)),
  }));
}

/** Candidates best first: higher priority, then the order given. */
export function byPriority(candidates: readonly Candidate[]): Candidate[] {
  return candidates.map((c, i) => ({ c, i }))
    .sort((a, b) => b.c.priority - a.c.priority || a.i - b.i)
    .map(({ c }) => c);
}
