/**
 * Which peer to try first (docs/design.md "Peer connection"): allow-listed keys first, deny-listed
 * keys never, peers without failures before flagged ones, then the most recently seen.
 *
 * List entries name keys (`fingerprint` or `user@fingerprint`, see key_fingerprint.ts): a user
 * id alone is only a claim, which anyone can make in a request or a CONNECT. An allow entry
 * matches a peer with that key (and that user id, when it names one); a deny entry matches the
 * key whatever user id is claimed with it.
 *
 * @module
 */
import { keyFingerprint, parsePeerRef, type PeerRef } from "../message/key_fingerprint.ts";
import type { PeerEntry } from "../message/types.ts";

/** Allow- and deny-lists of peers: entries `fingerprint` or `user@fingerprint`. */
export interface PeerPolicy {
  allow?: readonly string[];
  deny?: readonly string[];
}

/** A peer as a list sees it: the user id it claims and the key it proves. */
export interface PeerClaim {
  userId: string;
  identityKey: Uint8Array;
}

function refs(list: readonly string[] | undefined, name: string): PeerRef[] {
  return (list ?? []).map((entry) => {
    const ref = parsePeerRef(entry);
    if (!ref) {
      throw new TypeError(
        `Cannot use the ${name}-list entry ${JSON.stringify(entry)}: it names no key; ` +
          'write "user@<fingerprint>" or "<fingerprint>"',
      );
    }
    return ref;
  });
}

class Lists {
  readonly allow: PeerRef[];
  readonly deny: Set<string>;

  constructor(policy: PeerPolicy) {
    this.allow = refs(policy.allow, "allow");
    this.deny = new Set(refs(policy.deny, "deny").map((r) => r.fingerprint));
  }

  denied(fingerprint: string): boolean {
    return this.deny.has(fingerprint);
  }

  allowed(peer: PeerClaim, fingerprint: string): boolean {
    return this.allow.some((r) =>
      r.fingerprint === fingerprint && (r.userId === undefined || r.userId === peer.userId)
    );
  }
}

/** Throws a `TypeError` when an entry of `policy` names no key (checked up front by a terminal). */
export function checkPeerPolicy(policy: PeerPolicy): void {
  new Lists(policy);
}

/** Orders the peers of a reply for connection attempts; never returns a deny-listed key. */
export function choosePeers(peers: readonly PeerEntry[], policy: PeerPolicy = {}): PeerEntry[] {
  const lists = new Lists(policy);
  return peers
    .map((p, index) => ({ p, index, fingerprint: keyFingerprint(p.identityKey) }))
    .filter(({ fingerprint }) => !lists.denied(fingerprint))
    .map((e) => ({ ...e, allowed: lists.allowed(e.p, e.fingerprint) }))
    .sort((a, b) =>
      Number(b.allowed) - Number(a.allowed) ||
      Number(a.p.failures > 0) - Number(b.p.failures > 0) ||
      a.p.failures - b.p.failures ||
      b.p.lastSeen - a.p.lastSeen ||
      a.index - b.index
    )
    .map(({ p }) => p);
}

/**
 * True when a connecting peer may be accepted on standby: its key is not denied and, with an
 * allow-list, the list names its key (and its user id where the entry has one). The key is the
 * one claimed in CONNECT; the handshake then requires the peer to sign with it.
 */
export function acceptsPeer(peer: PeerClaim, policy: PeerPolicy = {}): boolean {
  const lists = new Lists(policy);
  const fingerprint = keyFingerprint(peer.identityKey);
  if (lists.denied(fingerprint)) return false;
  return lists.allow.length === 0 || lists.allowed(peer, fingerprint);
}
