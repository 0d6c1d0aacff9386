/**
 * Gathering a terminal's candidates (docs/design.md §7): the announced address (`host`), the STUN
 * mapping of the listening port (`srflx`, with the NAT's mapping behaviour when known), a router
 * mapping (`mapped`, through the {@link CandidateMapper} seam that the port mapping clients of
 * src/terminal/port_mapping/ fill) and a TURN relay's address (`relay`, last), each with an ICE
 * priority. Duplicates (a STUN mapping equal to the announced address) are dropped; at most
 * `MAX_CANDIDATES`.
 *
 * @module
 */
import { PeerError } from "../errors.ts";
import { MAX_CANDIDATES } from "../limits.ts";
import type { Logger } from "../log.ts";
import { candidatePriority } from "../message/candidate.ts";
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
  const add = (c: Candidate) => {
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
