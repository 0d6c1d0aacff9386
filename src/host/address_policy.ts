/**
 * Which peer addresses a host accepts into its control table.
 *
 * A request carries endpoints that the host hands to other terminals, who then connect to them.
 * A hostile request could list `127.0.0.1:25` or `10.0.0.1:22` and turn every terminal into a
 * port scanner of its own machine or LAN. {@linkcode endpointProblem} applies the policy to the
 * class {@linkcode classifyAddress} (src/net/address_class.ts) gives an address:
 *
 * | class                                              | accepted                     |
 * | -------------------------------------------------- | ---------------------------- |
 * | `global`                                           | always                       |
 * | `loopback`, `private`, `link-local`, `reserved`    | only with `allowPrivate`     |
 * | `multicast`, `unspecified`, `broadcast`            | never                        |
 * | IPv6 `link-local` (fe80::/10)                      | never                        |
 *
 * Port 0 (or anything but an integer 1–65535) is never accepted. Documentation and
 * benchmarking ranges are `reserved`, so tests that use them need `allowPrivate`: the NAT lab's
 * 198.18.0.0/15 and 2001:db8:4d50::/48 alike. An IPv6 link-local address is refused even then:
 * the wire format carries no zone (`%eth0`), and without one no peer can dial it, so it could
 * only point other terminals at their own link (docs/nat.md "IPv6").
 *
 * @module
 */
import { type AddressClass, canonicalAddress, classifyAddress } from "../net/address_class.ts";

/** Describes an endpoint well enough for {@linkcode endpointProblem}. */
export interface EndpointLike {
  /** An IPv4 or IPv6 literal, without brackets. */
  address: string;
  /** A port number, 1–65535. */
  port: number;
  /** `"tcp"` or `"udp"`; not judged here (the codec checks it). */
  transport: string;
}

/** Options of {@linkcode endpointProblem}. */
export interface EndpointPolicyOptions {
  /**
   * Accept loopback, private (incl. CGNAT and ULA), link-local and reserved (incl. the
   * documentation ranges) addresses, e.g. for a LAN party or tests. Multicast, unspecified
   * and broadcast addresses, IPv6 link-local ones and port 0 are refused even then.
   */
  allowPrivate: boolean;
}

/** `::ffff:a.b.c.d` in any textual form: an IPv4 address, judged as one. */
function isMappedV4(address: string): boolean {
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/.test(canonicalAddress(address));
}

const ALWAYS_REFUSED: ReadonlySet<AddressClass> = new Set([
  "multicast",
  "unspecified",
  "broadcast",
]);

/**
 * Says why a host must not hand out an endpoint, or `undefined` when it may.
 *
 * `global` addresses are always fine; `loopback`, `private`, `link-local` and `reserved` ones
 * only with `allowPrivate`; `multicast`, `unspecified`, `broadcast` and IPv6 link-local never;
 * a port outside 1–65535 never. A malformed address is a problem too (this function never
 * throws).
 *
 * @example Refuse a loopback endpoint on an internet host
 * ```ts
 * import assert from "node:assert/strict";
 * import { endpointProblem } from "./address_policy.ts";
 *
 * const endpoint = { address: "127.0.0.1", port: 7000, transport: "tcp" };
 * const problem = endpointProblem(endpoint, { allowPrivate: false });
 * assert.equal(problem, "127.0.0.1 is a loopback address");
 * assert.equal(endpointProblem(endpoint, { allowPrivate: true }), undefined);
 * ```
 *
 * @param endpoint The endpoint a request lists.
 * @param options Whether non-global addresses are acceptable.
 * @returns A one-line reason, or `undefined` when the endpoint is acceptable.
 */
export function endpointProblem(
  endpoint: EndpointLike,
  options: EndpointPolicyOptions,
): string | undefined {
  const { address, port } = endpoint;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    return `port ${port} is not a port number from 1 to 65535`;
  }
  let cls: AddressClass;
  try {
    cls = classifyAddress(address);
  } catch {
    return `${JSON.stringify(String(address).slice(0, 60))} is not an IPv4 or IPv6 literal`;
  }
  if (cls === "global") return undefined;
  if (cls === "link-local" && address.includes(":") && !isMappedV4(address)) {
    return `${address} is a link-local IPv6 address, which no peer can dial without its zone`;
  }
  if (!ALWAYS_REFUSED.has(cls) && options.allowPrivate) return undefined;
  const article = cls === "unspecified" ? "an" : "a";
  return `${address} is ${article} ${cls} address`;
}
