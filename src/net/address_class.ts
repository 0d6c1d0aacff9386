/**
 * What kind of address an IP literal is, as far as reaching it from the internet goes: the one
 * classification the terminal (which address to announce, when to ask STUN) and the host
 * (which addresses to hand out, src/host/address_policy.ts) share. After the IANA IPv4 and IPv6
 * special-purpose address registries. Pure functions, no I/O.
 *
 * Decisions:
 * - IPv4 literals are strict dotted decimal (`1.2.3.4`); leading zeros (`01.2.3.4`), hex and
 *   short forms are malformed, as in `node:net` `isIPv4`.
 * - IPv6 literals may have an `%zone` suffix (ignored); brackets are malformed.
 * - IPv4-mapped (`::ffff:0:0/96`) and NAT64 well-known-prefix (`64:ff9b::/96`, RFC 6052)
 *   addresses are classified by their embedded IPv4 address: both reach that IPv4 host.
 *   6to4 (`2002::/16`) is `global` when its embedded IPv4 is global, else `reserved`.
 *   The NAT64 local-use prefix `64:ff9b:1::/48` (RFC 8215) is `private`.
 * - Within `2001::/23` (IETF protocol assignments) only the blocks the IANA registry marks
 *   globally reachable are `global` (PCP and TURN anycast, AMT, AS112-v6, ORCHIDv2, DETs);
 *   the rest, Teredo `2001::/32` included, is `reserved`.
 * - Benchmarking (`198.18.0.0/15`) and documentation ranges (`192.0.2.0/24`,
 *   `198.51.100.0/24`, `203.0.113.0/24`, `2001:db8::/32`, `3fff::/20`) are `reserved`: never
 *   global, whoever asks.
 * - Deprecated site-local `fec0::/10` and everything else outside `2000::/3` is `reserved`.
 *
 * @module
 */

/** What kind of address an IP literal is, as far as reaching it from the internet goes. */
export type AddressClass =
  | "global"
  | "loopback"
  | "private"
  | "link-local"
  | "multicast"
  | "unspecified"
  | "broadcast"
  | "reserved";

/** One row of a prefix table: addresses starting with `bits` bits of `prefix` are `cls`. */
interface V4Rule {
  prefix: number;
  bits: number;
  cls: AddressClass;
}

interface V6Rule {
  prefix: readonly number[];
  bits: number;
  cls: AddressClass | "embedded-v4" | "6to4";
}

const V4_OCTET = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]\d|\d)$/;
const V6_GROUP = /^[0-9a-fA-F]{1,4}$/;
const V6_ZONE = /^[0-9A-Za-z._~:-]+$/;

/** IPv4 rules; the first match wins, so more specific prefixes come first. */
const V4_TABLE: readonly (readonly [string, number, V4Rule["cls"]])[] = [
  ["0.0.0.0", 32, "unspecified"],
  ["255.255.255.255", 32, "broadcast"],
  ["0.0.0.0", 8, "reserved"], // "this network"
  ["10.0.0.0", 8, "private"],
  ["100.64.0.0", 10, "private"], // CGNAT shared address space (RFC 6598)
  ["127.0.0.0", 8, "loopback"],
  ["169.254.0.0", 16, "link-local"],
  ["172.16.0.0", 12, "private"],
  ["192.0.0.0", 24, "reserved"], // IETF protocol assignments
  ["192.0.2.0", 24, "reserved"], // TEST-NET-1
  ["192.88.99.0", 24, "reserved"], // deprecated 6to4 relay anycast
  ["192.168.0.0", 16, "private"],
  ["198.18.0.0", 15, "reserved"], // benchmarking
  ["198.51.100.0", 24, "reserved"], // TEST-NET-2
  ["203.0.113.0", 24, "reserved"], // TEST-NET-3
  ["224.0.0.0", 4, "multicast"],
  ["240.0.0.0", 4, "reserved"],
];
const V4_RULES: readonly V4Rule[] = V4_TABLE.map(([p, bits, cls]) => ({
  prefix: parseV4(p)!,
  bits,
  cls,
}));

/** IPv6 rules; the first match wins. Anything matching none is `reserved`. */
const V6_TABLE: readonly (readonly [string, number, V6Rule["cls"]])[] = [
  ["::", 128, "unspecified"],
  ["::1", 128, "loopback"],
  ["::ffff:0:0", 96, "embedded-v4"], // IPv4-mapped
  ["64:ff9b::", 96, "embedded-v4"], // NAT64 well-known prefix
  ["64:ff9b:1::", 48, "private"], // NAT64 local use
  ["fe80::", 10, "link-local"],
  ["fc00::", 7, "private"], // unique local addresses
  ["ff00::", 8, "multicast"],
  ["2001:1::1", 128, "global"], // PCP anycast
  ["2001:1::2", 128, "global"], // TURN anycast
  ["2001:3::", 32, "global"], // AMT
  ["2001:4:112::", 48, "global"], // AS112-v6
  ["2001:20::", 28, "global"], // ORCHIDv2
  ["2001:30::", 28, "global"], // drone remote ID (DET)
  ["2001::", 23, "reserved"], // IETF protocol assignments, Teredo, benchmarking, ORCHID
  ["2001:db8::", 32, "reserved"], // documentation
  ["3fff::", 20, "reserved"], // documentation (RFC 9637)
  ["2002::", 16, "6to4"],
  ["2000::", 3, "global"],
];
const V6_RULES: readonly V6Rule[] = V6_TABLE.map(([p, bits, cls]) => ({
  prefix: parseV6(p)!,
  bits,
  cls,
}));

/** Parses strict dotted decimal into an unsigned 32-bit number, or undefined. */
function parseV4(text: string): number | undefined {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((p) => V4_OCTET.test(p))) return undefined;
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
}

/** Parses an IPv6 literal (no zone) into eight 16-bit groups, or undefined. */
function parseV6(text: string): number[] | undefined {
  if (text.length > 45) return undefined;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const side = (s: string) => (s === "" ? [] : s.split(":"));
  const head = side(halves[0]!);
  const tail = halves.length === 2 ? side(halves[1]!) : [];
  const groups: number[] = [];
  const last = halves.length === 2 ? tail : head;
  const lastWord = last[last.length - 1];
  let v4: number | undefined;
  if (lastWord !== undefined && lastWord.includes(".")) {
    v4 = parseV4(lastWord);
    if (v4 === undefined) return undefined;
    last.pop();
  }
  const words = [...head, ...tail];
  if (!words.every((w) => V6_GROUP.test(w))) return undefined;
  const count = words.length + (v4 === undefined ? 0 : 2);
  if (halves.length === 2 ? count > 7 : count !== 8) return undefined;
  groups.push(...head.map((w) => parseInt(w, 16)));
  if (halves.length === 2) {
    for (let i = count; i < 8; i++) groups.push(0);
    groups.push(...tail.map((w) => parseInt(w, 16)));
  }
  if (v4 !== undefined) groups.push(Math.floor(v4 / 65536), v4 % 65536);
  return groups;
}

function inV4(addr: number, rule: V4Rule): boolean {
  const size = 2 ** (32 - rule.bits);
  return Math.floor(addr / size) === Math.floor(rule.prefix / size);
}

function inV6(groups: readonly number[], rule: V6Rule): boolean {
  for (let i = 0, bits = rule.bits; bits > 0; i++, bits -= 16) {
    const shift = Math.max(0, 16 - bits);
    if (groups[i]! >> shift !== rule.prefix[i]! >> shift) return false;
  }
  return true;
}

function classifyV4(addr: number): AddressClass {
  return V4_RULES.find((r) => inV4(addr, r))?.cls ?? "global";
}

function classifyV6(groups: readonly number[]): AddressClass {
  const rule = V6_RULES.find((r) => inV6(groups, r));
  if (rule === undefined) return "reserved";
  if (rule.cls === "embedded-v4") return classifyV4(groups[6]! * 65536 + groups[7]!);
  if (rule.cls === "6to4") {
    return classifyV4(groups[1]! * 65536 + groups[2]!) === "global" ? "global" : "reserved";
  }
  return rule.cls;
}

/**
 * Sorts an IPv4 or IPv6 literal into an {@linkcode AddressClass}.
 *
 * IPv6 may use any valid textual form (`::` compression, upper or lower case, a trailing
 * dotted IPv4, a `%zone` suffix). IPv4-mapped and NAT64 (`64:ff9b::/96`) addresses are
 * classified by the IPv4 address they embed.
 *
 * @example Classify a few addresses
 * ```ts
 * import assert from "node:assert/strict";
 * import { classifyAddress } from "./address_class.ts";
 *
 * assert.equal(classifyAddress("8.8.8.8"), "global");
 * assert.equal(classifyAddress("192.168.1.10"), "private");
 * assert.equal(classifyAddress("::ffff:127.0.0.1"), "loopback");
 * assert.equal(classifyAddress("2001:db8::1"), "reserved"); // documentation
 * ```
 *
 * @param ip An IP address literal without brackets or port.
 * @returns The class of the address.
 * @throws {TypeError} When `ip` is not a valid IPv4 or IPv6 literal.
 */
export function classifyAddress(ip: string): AddressClass {
  if (typeof ip === "string") {
    const v4 = parseV4(ip);
    if (v4 !== undefined) return classifyV4(v4);
    const zoneAt = ip.indexOf("%");
    const zone = zoneAt < 0 ? undefined : ip.slice(zoneAt + 1);
    if (zone === undefined || V6_ZONE.test(zone)) {
      const groups = parseV6(zoneAt < 0 ? ip : ip.slice(0, zoneAt));
      if (groups !== undefined) return classifyV6(groups);
    }
  }
  const shown = String(ip).slice(0, 60);
  throw new TypeError(
    `Cannot classify address: ${JSON.stringify(shown)} is not an IPv4 or IPv6 literal; ` +
      "give the address without brackets or port",
  );
}

/**
 * True for an IP literal that is reachable on the internet (class `global`); false for every
 * other class and for text that is no IP literal (never throws).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isGlobalAddress } from "./address_class.ts";
 *
 * assert.equal(isGlobalAddress("8.8.8.8"), true);
 * assert.equal(isGlobalAddress("198.18.0.1"), false); // benchmarking
 * ```
 */
export function isGlobalAddress(ip: string): boolean {
  try {
    return classifyAddress(ip) === "global";
  } catch {
    return false;
  }
}

/**
 * An IP literal in one textual form, so that addresses compare as strings: IPv4 as given,
 * IPv6 in RFC 5952 form (lower case, no leading zeros, the longest run of two or more zero
 * groups as `::`, an IPv4-mapped address with its dotted tail), the form the socket API reports
 * sources in. Text that is no IP literal, or carries a `%zone`, comes back unchanged.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { canonicalAddress } from "./address_class.ts";
 *
 * assert.equal(canonicalAddress("2001:0DB8:0:0:0:0:0:10"), "2001:db8::10");
 * assert.equal(canonicalAddress("::FFFF:C612:1"), "::ffff:198.18.0.1");
 * assert.equal(canonicalAddress("198.18.0.1"), "198.18.0.1");
 * ```
 */
export function canonicalAddress(ip: string): string {
  if (parseV4(ip) !== undefined || ip.includes("%")) return ip;
  const groups = parseV6(ip);
  if (groups === undefined) return ip;
  if (groups.slice(0, 6).join(",") === "0,0,0,0,0,65535") {
    const v4 = [groups[6]! >> 8, groups[6]! & 255, groups[7]! >> 8, groups[7]! & 255];
    return `::ffff:${v4.join(".")}`;
  }
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j > i ? j : i + 1;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLen).join(":")}`;
}
