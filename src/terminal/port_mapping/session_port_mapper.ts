/**
 * The router mapping of one terminal session (docs/port-mapping.md, docs/design.md "Reachability"):
 * the {@link CandidateMapper} the terminal's candidate gathering asks, on top of
 * {@link PortMapper}. It finds what the configuration leaves out (the default route's gateway, the
 * UPnP URL by SSDP; gateway_discovery.ts), maps the listening port for the lease the terminal asks
 * for, keeps it renewed while the session lasts, logs a refusal or a lost lease as a warning, and
 * deletes the mapping when the session's owner closes it.
 *
 * @module
 */
import { PeerError } from "../../errors.ts";
import { type Logger, silentLogger } from "../../log.ts";
import type { CandidateMapper, CandidateMappingRequest } from "../gather_candidates.ts";
import { defaultGateway, discoverUpnpUrl } from "./gateway_discovery.ts";
import { PortMapper, type PortMapperOptions, type PortMapping } from "./port_mapper.ts";
import type { PortMappingProtocol } from "./types.ts";

/** Options of {@link SessionPortMapper}. */
export interface SessionPortMapperOptions
  extends Omit<PortMapperOptions, "lifetimeS" | "signal" | "gateway" | "upnpUrl"> {
  /** The router for PCP and NAT-PMP (and the SSDP search); default `findGateway()`. */
  gateway?: string;
  /** The router's UPnP description URL; default `findUpnpUrl(gateway)` when UPnP is tried. */
  upnpUrl?: string;
  /** Finds the gateway; default {@link defaultGateway} (the default route, Linux). */
  findGateway?: (options: { logger: Logger }) => Promise<string | undefined>;
  /** Finds the UPnP URL at the gateway; default {@link discoverUpnpUrl} (SSDP). */
  findUpnpUrl?: (
    gateway: string,
    options: { logger: Logger; signal: AbortSignal },
  ) => Promise<string | undefined>;
}

const ALL: readonly PortMappingProtocol[] = ["pcp", "nat-pmp", "upnp"];

/**
 * Maps the terminal's listening port on the home router for one session.
 *
 * @example
 * ```ts ignore
 * const mapper = new SessionPortMapper({ onLost: (e) => console.warn(e.message) });
 * mapper.prepare(); // find the router while the terminal listens and asks STUN
 * const terminal = new Terminal({ ...options, portMapper: mapper });
 * try {
 *   const { link } = await terminal.rendezvous();
 *   // ... chat over the link; peers may reach us through the mapping ...
 * } finally {
 *   await mapper.close(); // the router forgets the mapping
 * }
 * ```
 */
export class SessionPortMapper implements CandidateMapper {
  readonly #options: SessionPortMapperOptions;
  readonly #logger: Logger;
  readonly #stop = new AbortController();
  #found: Promise<{ gateway?: string; upnpUrl?: string }> | undefined;
  #mapper: PortMapper | undefined;
  #asked = false;
  #closed: Promise<void> | undefined;

  constructor(options: SessionPortMapperOptions = {}) {
    this.#options = options;
    this.#logger = options.logger ?? silentLogger;
  }

  /** The current mapping, or undefined before one is granted, after a loss or after close. */
  get mapping(): PortMapping | undefined {
    return this.#mapper?.mapping;
  }

  /**
   * Starts finding the gateway and the UPnP URL (what the options leave out), so that
   * {@link map} need not wait for it. Resolves when done; never rejects.
   */
  prepare(): Promise<void> {
    return this.#discover().then(() => {}, () => {});
  }

  #discover(): Promise<{ gateway?: string; upnpUrl?: string }> {
    this.#found ??= (async () => {
      const o = this.#options;
      const protocols = o.protocols ?? ALL;
      const logger = this.#logger;
      const wanted = (p: PortMappingProtocol) => protocols.includes(p);
      let gateway = o.gateway;
      let upnpUrl = o.upnpUrl;
      const needGateway = wanted("pcp") || wanted("nat-pmp") || (wanted("upnp") && !upnpUrl);
      if (gateway === undefined && needGateway) {
        gateway = await this.#safely(
          "no default gateway",
          () => (o.findGateway ?? defaultGateway)({ logger }),
        );
      }
      this.#stop.signal.throwIfAborted();
      if (upnpUrl === undefined && wanted("upnp") && gateway !== undefined) {
        const at = gateway;
        upnpUrl = await this.#safely(
          "no UPnP URL",
          () =>
            (o.findUpnpUrl ?? ((g, opts) => discoverUpnpUrl(g, { ...opts, clock: o.clock })))(
              at,
              { logger, signal: this.#stop.signal },
            ),
        );
      }
      return {
        ...(gateway !== undefined ? { gateway } : {}),
        ...(upnpUrl !== undefined ? { upnpUrl } : {}),
      };
    })();
    return this.#found;
  }

  /** Runs one discovery step; a failure is logged and counts as nothing found. */
  async #safely<T>(what: string, step: () => Promise<T>): Promise<T | undefined> {
    try {
      return await step();
    } catch (err) {
      this.#stop.signal.throwIfAborted();
      this.#logger.log("info", `${what}: ${err instanceof Error ? err.message : String(err)}`);
      return undefined;
    }
  }

  /**
   * Finds the router (unless configured), asks it for the mapping and keeps it renewed until
   * {@link close}. Rejects with `PeerError` (`EPORTMAP`, `ETIMEOUT`) when no router grants one;
   * with the closing reason when closed meanwhile. Once per session.
   */
  async map(
    request: CandidateMappingRequest,
    options: { signal?: AbortSignal } = {},
  ): Promise<{ external: { address: string; port: number } }> {
    if (this.#asked) throw new Error("SessionPortMapper.map was already called; make another");
    this.#asked = true;
    const { gateway, upnpUrl } = await this.#discover();
    this.#stop.signal.throwIfAborted();
    const o = this.#options;
    const { findGateway: _g, findUpnpUrl: _u, ...mapperOptions } = o;
    this.#mapper = new PortMapper({
      ...mapperOptions,
      ...(gateway !== undefined ? { gateway } : {}),
      ...(upnpUrl !== undefined ? { upnpUrl } : {}),
      lifetimeS: request.lifetimeS,
      signal: this.#stop.signal,
      onLost: (error: PeerError) => {
        this.#logger.log("warn", `port mapping lost: ${error.message}`, { code: error.code });
        o.onLost?.(error);
      },
    });
    try {
      return await this.#mapper.map(
        { transport: request.transport, internalPort: request.internalPort },
        options.signal ? { signal: options.signal } : {},
      );
    } catch (err) {
      if (err instanceof PeerError && !this.#stop.signal.aborted && !options.signal?.aborted) {
        this.#logger.log("warn", err.message, { code: err.code });
      }
      throw err;
    }
  }

  /**
   * Ends the session's mapping: stops discovery and renewals, deletes the mapping on the router
   * (best effort) and closes the sockets. Safe to call more than once, and before {@link map}.
   */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#stop.abort(new Error("the port mapping was closed with its session"));
      await this.#mapper?.close();
    })();
    return this.#closed;
  }
}
