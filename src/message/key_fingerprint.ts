/**
 * Key fingerprints and the peer references of allow- and deny-lists (docs/config.md).
 *
 * A fingerprint is the unpadded base64url of the SHA-256 of the raw 32-byte Ed25519 identity
 * key: 43 characters, the whole digest (no truncation, so finding a second key with the same
 * fingerprint costs 2^256 work). A list entry is a fingerprint, or `user@fingerprint` (split at
 * the last `@`: a user id may itself hold `@`). A bare user id names no key and is refused.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { toBase64Url } from "./base64.ts";

/** Length of a fingerprint in characters. */
export const FINGERPRINT_LENGTH = 43;
const FINGERPRINT = /^[A-Za-z0-9_-]{43}$/;

/** A parsed allow- or deny-list entry: the key's fingerprint, and the user id if one is named. */
export interface PeerRef {
  fingerprint: string;
  userId?: string;
}

/**
 * The fingerprint of an Ed25519 identity key (synchronous: the standby accept hook is).
 *
 * @example
 * ```ts
 * import { keyFingerprint } from "./key_fingerprint.ts";
 * keyFingerprint(new Uint8Array(32)); // "Zmh6rfhivXdsj8GLjp-OIAiXFIVu4jOzkCpZHQ1fKSU"
 * ```
 */
export function keyFingerprint(identityKey: Uint8Array): string {
  return toBase64Url(new Uint8Array(createHash("sha256").update(identityKey).digest()));
}

/** Parses `fingerprint` or `user@fingerprint`; undefined when the entry names no key. */
export function parsePeerRef(entry: string): PeerRef | undefined {
  const at = entry.lastIndexOf("@");
  const fingerprint = entry.slice(at + 1);
  if (!FINGERPRINT.test(fingerprint)) return undefined;
  if (at < 0) return { fingerprint };
  const userId = entry.slice(0, at);
  return userId === "" ? undefined : { fingerprint, userId };
}

/** `user@fingerprint`, the form `keygen` and `table` print for lists. */
export function formatPeerRef(userId: string, identityKey: Uint8Array): string {
  return `${userId}@${keyFingerprint(identityKey)}`;
}
