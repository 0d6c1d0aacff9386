/**
 * The order in which a terminal punches to a peer's candidates when both address families may
 * be in play (docs/nat.md "IPv6", docs/decisions.md "Dual-stack candidates"): Happy Eyeballs
 * (RFC 8305) over the punch's stagger. The punch starts candidate _i_ at `i × PUNCH_STAGGER_MS`
 * and the first pair that completes the handshake wins, so the order is the race's head start:
 *
 * - only the families the listener's socket can send to (a socket on `0.0.0.0` cannot reach
 *   IPv6, one on a specific IPv6 address cannot reach IPv4; `::` is dual-stack);
 * - IPv4-mapped addresses as the IPv4 address they are, IPv6 in one textual form (what the
 *   socket reports sources in, so the listener's demultiplexer finds the answers);
 * - direct candidates by priority within each family, then interleaved **IPv6 first**: IPv6,
 *   IPv4, IPv6, IPv4, … (RFC 8305 §4 with a "First Address Family Count" of 1): IPv4 starts
 *   one stagger (50 ms) behind, and whichever answers first wins;
 * - `relay` candidates last, in priority order (the punch delays them anyway).
 *
 * Pure functions.
 *
 * @module
 */
import { canonicalAddress } from "../net/address_class.ts";
import { byPriority } from "../message/candidate.ts";
import type { Candidate } from "../message/types.ts";

/** An IP address family. */
export type AddressFamily = "IPv4" | "IPv6";

const MAPPED_V4 = /^::ffff:(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})$/;

/**
 * `IPv6` for an IPv6 literal other than an IPv4-mapped one, else `IPv4`.
 *
 * @example
 * ```ts
 * addressFamily("2001:db8::1"); // "IPv6"
 * addressFamily("::ffff:198.18.0.1"); // "IPv4"
 * ```
 */
export function addressFamily(address: string): AddressFamily {
  return address.includes(":") && !MAPPED_V4.test(canonicalAddress(address)) ? "IPv6" : "IPv4";
}

/**
 * The families a socket bound to `address` sends to: both for `::` (dual-stack, Linux's
 * default `net.ipv6.bindv6only = 0`), IPv6 only for any other IPv6 address, IPv4 only for an
 * IPv4 address.
 */
export function socketFamilies(address: string): ReadonlySet<AddressFamily> {
  if (canonicalAddress(address) === "::") return new Set(["IPv4", "IPv6"]);
  return new Set([addressFamily(address)]);
}

/** `::ffff:a.b.c.d` as `a.b.c.d`, IPv6 in RFC 5952 form, IPv4 as given. */
function normalised(address: string): string {
  const canonical = canonicalAddress(address);
  return MAPPED_V4.exec(canonical)?.[1] ?? canonical;
}

/**
 * A peer's candidates in punch order (see the module doc): those of `families` only, addresses
 * normalised, the direct ones interleaved IPv6 first, `relay` ones last. Duplicates after
 * normalisation (the same address and port twice) are dropped.
 *
 * @example
 * ```ts ignore
 * const order = punchOrder(peer.candidates, { families: socketFamilies("::") });
 * // [v6 host, v4 srflx, v6 srflx, v4 host, …, relay]
 * ```
 */
export function punchOrder(
  candidates: readonly Candidate[],
  options: { families?: ReadonlySet<AddressFamily> } = {},
): Candidate[] {
  const families = options.families ?? new Set<AddressFamily>(["IPv4", "IPv6"]);
  const seen = new Set<string>();
  const direct: Record<AddressFamily, Candidate[]> = { IPv4: [], IPv6: [] };
  const relays: Candidate[] = [];
  for (const c of byPriority(candidates)) {
    const address = normalised(c.address);
    const family = addressFamily(address);
    const key = `${c.transport}|${address}|${c.port}`;
    if (!families.has(family) || seen.has(key)) continue;
    seen.add(key);
    (c.type === "relay" ? relays : direct[family]).push({ ...c, address });
  }
  const order: Candidate[] = [];
  const { IPv4: v4, IPv6: v6 } = direct;
  for (let i = 0; i < Math.max(v4.length, v6.length); i++) {
    if (i < v6.length) order.push(v6[i]!);
    if (i < v4.length) order.push(v4[i]!);
  }
  return [...order, ...relays];
}
