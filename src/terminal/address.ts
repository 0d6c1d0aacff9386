/**
 * Address detection (DESIGN §7): explicit address > global address of a local interface >
 * (later) STUN reflexive address > port mapping. Each detector is an {@link AddressDetector}.
 *
 * @module
 */
import { PeerError } from "../errors.ts";

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

/** True for an IPv4 or IPv6 address that is routable on the internet. */
export function isGlobalAddress(address: string): boolean {
  const v4 = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(address);
  if (v4) {
    const [a, b] = [Number(v4[1]), Number(v4[2])];
    return !(a === 0 || a === 10 || a === 127 || a >= 224 || (a === 100 && b >= 64 && b < 128) ||
      (a === 169 && b === 254) || (a === 172 && b >= 16 && b < 32) || (a === 192 && b === 168));
  }
  const lower = address.toLowerCase();
  return lower.includes(":") && /^[23]/.test(lower) && !lower.startsWith("2001:db8");
}

/** The first global address of a local network interface (IPv4 preferred). */
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
