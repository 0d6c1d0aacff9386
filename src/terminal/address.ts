/**
 * Address detection (docs/design.md "Reachability"): explicit address > global address of a local
 * interface > (later) STUN reflexive address > port mapping. Each detector is an
 * {@link AddressDetector}.
 *
 * @module
 */
import { PeerError } from "../errors.ts";
import { MAX_IPV6_HOST_CANDIDATES } from "../protocol.ts";
import { canonicalAddress, isGlobalAddress } from "../net/address_class.ts";

/** A detected address and how it was found. */
export interface DetectedAddress {
  address: string;
  /** `explicit`, `interface`, `loopback`, `stun`, … */
  source: string;
}

/** Finds the address a terminal advertises to its peers. */
export interface AddressDetector {
  detect(options?: { signal?: AbortSignal }): Promise<DetectedAddress | undefined>;
}

/** Always answers the configured address. */
export class ExplicitAddress implements AddressDetector {
  constructor(readonly address: string) {}
  detect(): Promise<DetectedAddress> {
    return Promise.resolve({ address: this.address, source: "explicit" });
  }
}

/**
 * The first global address of a local network interface (IPv4 preferred), judged by the
 * classification the host applies too (src/net/address_class.ts): benchmarking, documentation
 * and other special-purpose ranges are never global, so a terminal behind a NAT asks STUN.
 */
export class InterfaceAddress implements AddressDetector {
  constructor(
    readonly interfaces: () => Deno.NetworkInterfaceInfo[] = () => Deno.networkInterfaces(),
  ) {}
  detect(): Promise<DetectedAddress | undefined> {
    const all = this.interfaces().filter((i) => isGlobalAddress(i.address));
    const pick = all.find((i) => i.family === "IPv4") ?? all[0];
    return Promise.resolve(pick ? { address: pick.address, source: "interface" } : undefined);
  }
}

/** Tries detectors in order and returns the first answer. */
export async function detectAddress(
  detectors: readonly AddressDetector[],
  options: { signal?: AbortSignal } = {},
): Promise<DetectedAddress> {
  for (const d of detectors) {
    const found = await d.detect(options);
    if (found) return found;
  }
  throw new PeerError(
    "EADDRESS",
    "Cannot find an address for peers to reach: no explicit address is set, no interface has a global address and no STUN server answered; set terminal.address or terminal.stun_servers in the configuration",
  );
}

/**
 * The global IPv6 addresses of the local interfaces, each once, in interface order, at most
 * `MAX_IPV6_HOST_CANDIDATES`: what a dual-stack terminal announces as `host` candidates besides
 * its IPv4 ones (docs/nat.md "IPv6"). Link-local, unique local (fc00::/7), documentation and
 * other non-global addresses are left out, by the classification the host applies too
 * (src/net/address_class.ts); a terminal that should announce one sets `terminal.address`.
 * `boundTo` (default `::`) is the listener's address: a socket bound to one IPv6 address
 * receives on that one only, so no other is announced.
 *
 * @example
 * ```ts ignore
 * globalIPv6Addresses(Deno.networkInterfaces()); // ["2a01:4f8:1:2::10"]
 * ```
 */
export function globalIPv6Addresses(
  interfaces: readonly Pick<Deno.NetworkInterfaceInfo, "family" | "address">[],
  boundTo = "::",
): string[] {
  const bound = canonicalAddress(boundTo);
  const found = new Set<string>();
  for (const i of interfaces) {
    if (i.family !== "IPv6" || !isGlobalAddress(i.address)) continue;
    const address = canonicalAddress(i.address);
    if (bound === "::" || bound === address) found.add(address);
  }
  return [...found].slice(0, MAX_IPV6_HOST_CANDIDATES);
}

/** `Deno.networkInterfaces()`, or none when that is not permitted or fails. */
export function networkInterfaces(): Deno.NetworkInterfaceInfo[] {
  try {
    return Deno.networkInterfaces();
  } catch {
    return [];
  }
}
