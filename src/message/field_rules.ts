/**
 * The text and address rules of the wire format: what makes a user id, a network id, an IPv4
 * or an IPv6 literal valid. Pure functions, shared by the payload codecs (codec.ts,
 * host/pool/sync_payload.ts), key files and mail subjects.
 *
 * @module
 */
import { MAX_NETWORK_ID_BYTES, MAX_USER_ID_BYTES } from "../protocol.ts";

const utf8 = new TextEncoder();

function hasControl(text: string): boolean {
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f) || c === 0x2028 || c === 0x2029) return true;
  }
  return false;
}

/**
 * Says what is wrong with a text field, or `undefined` when it is valid: well-formed Unicode
 * without control characters, at most `maxBytes` UTF-8 bytes, and not empty unless allowed.
 */
export function textProblem(
  text: string,
  maxBytes: number,
  allowEmpty: boolean,
): string | undefined {
  if (!allowEmpty && text.length === 0) return "is empty";
  if (!text.isWellFormed()) return "is not valid Unicode";
  if (hasControl(text)) return "contains control characters (such as CR or LF)";
  const bytes = utf8.encode(text).length;
  if (bytes > maxBytes) return `has ${bytes} UTF-8 bytes, more than ${maxBytes}`;
  return undefined;
}

/**
 * Says what is wrong with a user id, or `undefined` when it is valid: 1 to
 * `MAX_USER_ID_BYTES` UTF-8 bytes, no control characters (CR and LF included).
 */
export function userIdProblem(userId: string): string | undefined {
  return textProblem(userId, MAX_USER_ID_BYTES, false);
}

/**
 * Says what is wrong with a network id, or `undefined` when it is valid: 1 to
 * `MAX_NETWORK_ID_BYTES` UTF-8 bytes, no whitespace and no control characters (it appears in
 * mail subjects).
 */
export function networkIdProblem(network: string): string | undefined {
  const problem = textProblem(network, MAX_NETWORK_ID_BYTES, false);
  if (problem !== undefined) return problem;
  if (/\s/u.test(network)) return "contains whitespace";
  return undefined;
}

/** True when `text` is a dotted-quad IPv4 literal (no leading zeros). */
export function isIPv4(text: string): boolean {
  const parts = text.split(".");
  return parts.length === 4 &&
    parts.every((p) => /^(?:0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255);
}

/** True when `text` is an IPv6 literal without brackets or zone (`::1`, `::ffff:1.2.3.4`). */
export function isIPv6(text: string): boolean {
  if (text.length < 2 || text.length > 45) return false;
  let s = text;
  if (s.includes(".")) {
    const lastColon = s.lastIndexOf(":");
    if (lastColon < 0 || !isIPv4(s.slice(lastColon + 1))) return false;
    s = s.slice(0, lastColon + 1) + "0:0";
  }
  const group = (g: string) => /^[0-9A-Fa-f]{1,4}$/.test(g);
  const halves = s.split("::");
  if (halves.length > 2) return false;
  if (halves.length === 1) {
    const groups = s.split(":");
    return groups.length === 8 && groups.every(group);
  }
  const left = halves[0] === "" ? [] : halves[0]!.split(":");
  const right = halves[1] === "" ? [] : halves[1]!.split(":");
  return left.length + right.length <= 7 && [...left, ...right].every(group);
}
