/**
 * Gathering a terminal's candidates (docs/design.md "Reachability"): the announced address
 * (`host`), the STUN mapping of the listening port (`srflx`, with the NAT's mapping behaviour when
 * known), a router mapping (`mapped`, through the {@link CandidateMapper} seam that the port
 * mapping clients of src/terminal/port_mapping/ fill) and a TURN relay's address (`relay`, last),
 * each with an ICE priority. Duplicates (a STUN mapping equal to the announced address) are
 * dropped; at most `MAX_CANDIDATES`. A dual-stack terminal adds its global IPv6 interface addresses
 * as `host` candidates and the IPv6 STUN mapping, which is a `host` candidate too when it is one of
 * the machine's own addresses at the listening port: no NAT66 in between (docs/nat.md "IPv6").
 *
 * @module
 */
import { PeerError } from "../errors.ts";
import { MAX_CANDIDATES } from "../protocol.ts";
import type { Logger } from "../log.ts";
import { candidatePriority } from "../message/candidate.ts";
import { canonicalAddress } from "../net/address_class.ts";
import type { Candidate, TransportKind } from "../message/types.ts";
import type { ReflexiveAddress } from "./reflexive.ts";

/** What a terminal asks its router for: the same shape the port mapping clients take. */
export interface CandidateMappingRequest {
  transport: TransportKind;
  /** The local port the terminal listens on. */
  internalPort: number;
  /** Lifetime to ask for, in seconds. */
  lifetimeS: number;
}

/**
 * Asks the router to forward a port (UPnP IGD, NAT-PMP, PCP): the seam the port mapping work
 * implements. Rejects with `PeerError` when no gateway grants one.
 */
export interface CandidateMapper {
  map(
    request: CandidateMappingRequest,
    options?: { signal?: AbortSignal },
  ): Promise<{ external: { address: string; port: number } }>;
}

/** Lifetime of the router mapping a terminal asks for: its standby at most, in seconds. */
export const CANDIDATE_MAPPING_LIFETIME_S = 3600;

/** What {@link gatherCandidates} combines. */
export interface GatherInput {
  transport: TransportKind;
  /** The port the peer listener got. */
  listenPort: number;
  /** The announced address (explicit or a global interface address), if any. */
  advertise?: string;
  /** The STUN mapping of the listening port, if STUN answered. */
  reflexive?: ReflexiveAddress;
  /**
   * More addresses of this machine announced as `host` candidates after `advertise`: the global
   * IPv6 interface addresses of a dual-stack terminal (`globalIPv6Addresses`, address.ts).
   */
  hostAddresses?: readonly string[];
  /** The IPv6 STUN mapping of the listening port (a dual-stack socket's second family). */
  reflexiveV6?: ReflexiveAddress;
  /**
   * Every address of the local interfaces: an IPv6 STUN mapping that is one of them, at the
   * listening port, is announced as `host` (nothing rewrote it). Default none.
   */
  localAddresses?: readonly string[];
  /**
   * The relayed address of a TURN allocation on the listening socket, if one was made: a
   * `relay` candidate, after the others (UDP only).
   */
  relayed?: { address: string; port: number };
  /** The router mapping seam; default none. */
  mapper?: CandidateMapper;
  logger?: Logger;
  signal?: AbortSignal;
}

/**
 * The candidates of one listening port, best first.
 *
 * @example
 * ```ts ignore
 * const candidates = await gatherCandidates({ transport: "udp", listenPort: 7000, advertise });
 * ```
 */
export async function gatherCandidates(input: GatherInput): Promise<Candidate[]> {
  const { transport, listenPort } = input;
  const found: Candidate[] = [];
  const add = (candidate: Candidate) => {
    const c = { ...candidate, address: canonicalAddress(candidate.address) };
    const same = found.some((f) =>
      f.transport === c.transport && f.address === c.address && f.port === c.port
    );
    if (!same && found.length < MAX_CANDIDATES) found.push(c);
  };
  if (input.advertise !== undefined) {
    add({
      transport,
      address: input.advertise,
      port: listenPort,
      type: "host",
      priority: candidatePriority("host"),
    });
  }
  for (const address of input.hostAddresses ?? []) {
    add({
      transport,
      address,
      port: listenPort,
      type: "host",
      priority: candidatePriority("host"),
    });
  }
  if (input.mapper) {
    try {
      const mapped = await input.mapper.map(
        { transport, internalPort: listenPort, lifetimeS: CANDIDATE_MAPPING_LIFETIME_S },
        input.signal ? { signal: input.signal } : {},
      );
      add({
        transport,
        address: mapped.external.address,
        port: mapped.external.port,
        type: "mapped",
        priority: candidatePriority("mapped"),
      });
    } catch (err) {
      if (!(err instanceof PeerError) || input.signal?.aborted) throw err;
      input.logger?.log("info", `no router mapping: ${err.message}`, { code: err.code });
    }
  }
  const r = input.reflexive;
  if (r) {
    // UDP: the mapping of the listening port itself; TCP: the NAT's address with our port
    // (reachable when the NAT keeps ports, or a forwarded port).
    add({
      transport,
      address: r.address,
      port: transport === "udp" ? r.port : listenPort,
      type: "srflx",
      priority: candidatePriority("srflx"),
      ...(r.mapping ? { mapping: r.mapping } : {}),
    });
  }
  const r6 = input.reflexiveV6;
  if (r6) {
    const port = transport === "udp" ? r6.port : listenPort;
    const own = port === listenPort &&
      (input.localAddresses ?? []).some((a) =>
        canonicalAddress(a) === canonicalAddress(r6.address)
      );
    const type = own ? "host" : "srflx";
    add({
      transport,
      address: r6.address,
      port,
      type,
      priority: candidatePriority(type),
      ...(!own && r6.mapping ? { mapping: r6.mapping } : {}),
    });
  }
  if (input.relayed && transport === "udp") {
    add({
      transport,
      address: input.relayed.address,
      port: input.relayed.port,
      type: "relay",
      priority: candidatePriority("relay"),
    });
  }
  return found;
}
