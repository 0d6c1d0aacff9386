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
 *
 * Port 0 (or anything but an integer 1–65535) is never accepted. Documentation and
 * benchmarking ranges are `reserved`, so tests that use them need `allowPrivate`.
 *
 * @module
 */
import { type AddressClass, classifyAddress } from "../net/address_class.ts";

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
   * and broadcast addresses and port 0 are refused even then.
   */
  allowPrivate: boolean;
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
 * only with `allowPrivate`; `multicast`, `unspecified` and `broadcast` never; a port outside
 * 1–65535 never. A malformed address is a problem too (this function never throws).
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
  if (!ALWAYS_REFUSED.has(cls) && options.allowPrivate) return undefined;
  const article = cls === "unspecified" ? "an" : "a";
  return `${address} is ${article} ${cls} address`;
}
