/**
 * Types shared by the port mapping protocols (UPnP IGD, NAT-PMP, PCP) and the mapper that
 * chooses between them (docs/design.md "Reachability": a mapping from the router is one of a
 * terminal's candidates).
 *
 * @module
 */

/** Transport protocol of a mapping. */
export type MappingTransport = "udp" | "tcp";

/** The protocols a gateway may speak, in the mapper's order of preference. */
export type PortMappingProtocol = "pcp" | "nat-pmp" | "upnp";

/** An IP address and a port. */
export interface SocketAddress {
  /** IPv4 address in dotted form. */
  address: string;
  /** Port, 1–65535. */
  port: number;
}

/** What a terminal asks its router for. */
export interface PortMappingRequest {
  /** `udp` or `tcp`. */
  transport: MappingTransport;
  /** The local port the terminal listens on. */
  internalPort: number;
  /** External port to suggest; default the internal port (the router may choose another). */
  externalPort?: number;
  /** Lifetime to ask for, in seconds. */
  lifetimeS: number;
}

/** A mapping as one protocol's gateway granted it. */
export interface MappedPort {
  /** The router's external address and the port it forwards. */
  external: SocketAddress;
  /** The terminal's address and port the router forwards to. */
  internal: SocketAddress;
  /** Granted lifetime in seconds; 0 means "until deleted" (UPnP permanent leases). */
  lifetimeS: number;
  /**
   * True when the gateway's epoch shows it restarted (lost its mappings) since the previous
   * answer of this client (NAT-PMP, PCP): the mapping was just made again, perhaps on another
   * external port.
   */
  gatewayRestarted: boolean;
}

/** Options of one request to a gateway. */
export interface MappingCallOptions {
  /** Cancels the request; the promise then rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** One port mapping protocol spoken to one gateway: the seam the mapper drives. */
export interface PortMappingClient {
  /** Which protocol this client speaks. */
  readonly protocol: PortMappingProtocol;
  /**
   * Creates or renews (same request again) a mapping. Rejects with a `PeerError`: `EPORTMAP`
   * when the gateway refuses or does not speak the protocol, `ETIMEOUT` when it does not answer.
   */
  map(request: PortMappingRequest, options?: MappingCallOptions): Promise<MappedPort>;
  /** Deletes the mapping made for `request` (best effort; rejects like {@link map}). */
  unmap(request: PortMappingRequest, options?: MappingCallOptions): Promise<void>;
  /** Releases the client's sockets. Mappings are not deleted by this. */
  close(): Promise<void>;
}
