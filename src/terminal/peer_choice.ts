/**
 * Which peer to try first (DESIGN §6): allow-listed users first, deny-listed users never,
 * peers without failures before flagged ones, then the most recently seen.
 *
 * @module
 */
import type { PeerEntry } from "../message/types.ts";

/** Allow- and deny-lists of user ids. */
export interface PeerPolicy {
  allow?: readonly string[];
  deny?: readonly string[];
}

/** Orders the peers of a reply for connection attempts; never returns a deny-listed user. */
export function choosePeers(peers: readonly PeerEntry[], policy: PeerPolicy = {}): PeerEntry[] {
  const allow = new Set(policy.allow ?? []);
  const deny = new Set(policy.deny ?? []);
  return peers
    .filter((p) => !deny.has(p.userId))
    .map((p, index) => ({ p, index }))
    .sort((a, b) =>
      Number(allow.has(b.p.userId)) - Number(allow.has(a.p.userId)) ||
      Number(a.p.failures > 0) - Number(b.p.failures > 0) ||
      a.p.failures - b.p.failures ||
      b.p.lastSeen - a.p.lastSeen ||
      a.index - b.index
    )
    .map(({ p }) => p);
}

/** True when a connecting user may be accepted on standby. */
export function acceptsUser(userId: string, policy: PeerPolicy = {}): boolean {
  if ((policy.deny ?? []).includes(userId)) return false;
  const allow = policy.allow ?? [];
  return allow.length === 0 || allow.includes(userId);
}
