/**
 * Port mapping for a terminal behind a home router (docs/design.md "Reachability"): asks the
 * gateway for a mapping with PCP, then NAT-PMP, then UPnP IGD, keeps the first protocol that grants
 * one, renews the lease at half its lifetime on the injected clock, and deletes the mapping on
 * close or abort. The mapping it returns is one of the terminal's candidates.
 *
 * @module
 */
import { PeerError } from "../../errors.ts";
import {
  PORT_MAPPING_LIFETIME_S,
  PORT_MAPPING_MIN_RENEW_MS,
  PORT_MAPPING_PROTOCOL_TIMEOUT_MS,
  PORT_MAPPING_SERVER_PORT,
} from "../../limits.ts";
import { type Logger, silentLogger } from "../../log.ts";
import { type Clock, type RandomSource, systemClock } from "../../runtime.ts";
import { NatPmpClient } from "./nat_pmp.ts";
import { PcpClient } from "./pcp.ts";
import type {
  MappedPort,
  MappingTransport,
  PortMappingClient,
  PortMappingProtocol,
  PortMappingRequest,
  SocketAddress,
} from "./types.ts";
import { UpnpIgdClient } from "./upnp_igd.ts";

/** A mapping the router granted: a candidate address for peers. */
export interface PortMapping {
  /** The protocol that made it. */
  protocol: PortMappingProtocol;
  /** `udp` or `tcp`. */
  transport: MappingTransport;
  /** The router's external address and port: what peers connect to. */
  external: SocketAddress;
  /** The terminal's LAN address and port the router forwards to. */
  internal: SocketAddress;
  /** Lease granted, in ms; 0 for a permanent UPnP lease (deleted on close). */
  lifetimeMs: number;
}

/** Options of {@link PortMapper}. */
export interface PortMapperOptions {
  /** The router's IPv4 address for PCP and NAT-PMP; without it they are skipped. */
  gateway?: string;
  /** The router's UPnP device description URL (e.g. from SSDP); without it UPnP is skipped. */
  upnpUrl?: string;
  /** Protocols to try, in order; default `["pcp", "nat-pmp", "upnp"]`. */
  protocols?: readonly PortMappingProtocol[];
  /** Clients to try, in order, instead of those made from the options above (tests, seams). */
  clients?: readonly PortMappingClient[];
  /** UDP port of the gateway's PCP and NAT-PMP server; default 5351. */
  gatewayPort?: number;
  /** Local address to send from; default the interface on the gateway's network. */
  localAddress?: string;
  /** Lease to ask for, in seconds; default {@link PORT_MAPPING_LIFETIME_S}. */
  lifetimeS?: number;
  /** Time each protocol gets to answer; default {@link PORT_MAPPING_PROTOCOL_TIMEOUT_MS}. */
  protocolTimeoutMs?: number;
  /** Timers (retransmissions, timeouts, renewals); default `systemClock`. */
  clock?: Clock;
  /** PCP nonces and jitter; default `systemRandom`. */
  random?: RandomSource;
  /** Default: silent. */
  logger?: Logger;
  /** Called when a renewal changed the mapping (another external address or port). */
  onChange?: (mapping: PortMapping) => void;
  /** Called when renewals failed until the lease ended: the mapping is gone. */
  onLost?: (error: PeerError) => void;
  /** Aborting it closes the mapper (the mapping is deleted). */
  signal?: AbortSignal;
}

/** What a terminal asks to have mapped. */
export interface PortMapperRequest {
  /** `udp` or `tcp`. */
  transport: MappingTransport;
  /** The local port peers should reach. */
  internalPort: number;
  /** External port to suggest; default the internal port. */
  externalPort?: number;
}

class ProtocolTimeout extends Error {}

const NAMES: Record<PortMappingProtocol, string> = {
  pcp: "PCP",
  "nat-pmp": "NAT-PMP",
  upnp: "UPnP IGD",
};

/**
 * Maps one port on the home router and keeps the mapping alive until closed.
 *
 * @example
 * ```ts ignore
 * const mapper = new PortMapper({
 *   gateway: "192.168.1.1",
 *   upnpUrl: "http://192.168.1.1:5000/rootDesc.xml",
 * });
 * const mapping = await mapper.map({ transport: "udp", internalPort: 40123 });
 * // { protocol: "pcp", transport: "udp", external: { address: "203.0.113.7", port: 40123 },
 * //   internal: { address: "192.168.1.20", port: 40123 }, lifetimeMs: 7200000 }
 * await mapper.close(); // deletes it
 * ```
 */
export class PortMapper {
  readonly #options: PortMapperOptions;
  readonly #stop = new AbortController();
  #clients: PortMappingClient[] = [];
  #client: PortMappingClient | undefined;
  #request: PortMappingRequest | undefined;
  #mapping: PortMapping | undefined;
  #renewing: Promise<void> | undefined;
  #closed: Promise<void> | undefined;

  constructor(options: PortMapperOptions = {}) {
    this.#options = options;
    options.signal?.addEventListener("abort", () => void this.close(), { once: true });
  }

  /** The current mapping, or undefined before {@link map}, after a loss or after close. */
  get mapping(): PortMapping | undefined {
    return this.#mapping;
  }

  #makeClients(): PortMappingClient[] {
    const o = this.#options;
    if (o.clients) return [...o.clients];
    const clock = o.clock;
    const port = o.gatewayPort ?? PORT_MAPPING_SERVER_PORT;
    const out: PortMappingClient[] = [];
    for (const protocol of o.protocols ?? ["pcp", "nat-pmp", "upnp"]) {
      if (protocol === "pcp" && o.gateway) {
        out.push(
          new PcpClient(o.gateway, { port, clock, random: o.random, localAddress: o.localAddress }),
        );
      } else if (protocol === "nat-pmp" && o.gateway) {
        out.push(new NatPmpClient(o.gateway, { port, clock, localAddress: o.localAddress }));
      } else if (protocol === "upnp" && o.upnpUrl) {
        out.push(new UpnpIgdClient(o.upnpUrl, { clock, internalAddress: o.localAddress }));
      }
    }
    return out;
  }

  /**
   * Asks the router for the mapping, protocol after protocol, and starts renewing it.
   * Rejects with PeerError `EPORTMAP` (or `ETIMEOUT` when no protocol answered at all) that
   * gives each protocol's reason; with the signal's reason when aborted.
   */
  async map(
    request: PortMapperRequest,
    options: { signal?: AbortSignal } = {},
  ): Promise<PortMapping> {
    if (this.#request) throw new Error("PortMapper.map was already called; make another mapper");
    const o = this.#options;
    const what = `Cannot map ${request.transport.toUpperCase()} port ${request.internalPort}`;
    this.#request = {
      transport: request.transport,
      internalPort: request.internalPort,
      externalPort: request.externalPort,
      lifetimeS: o.lifetimeS ?? PORT_MAPPING_LIFETIME_S,
    };
    this.#clients = this.#makeClients();
    if (!this.#clients.length) {
      throw new PeerError(
        "EPORTMAP",
        `${what} on the router: neither a gateway address nor a UPnP URL is known; set them or forward the port by hand`,
      );
    }
    const signal = AbortSignal.any([
      this.#stop.signal,
      ...(options.signal ? [options.signal] : []),
    ]);
    const failures: { client: PortMappingClient; error: unknown }[] = [];
    for (const client of this.#clients) {
      signal.throwIfAborted();
      try {
        const mapped = await this.#withTimeout(
          (s) => client.map(this.#request!, { signal: s }),
          signal,
        );
        this.#client = client;
        this.#mapping = this.#toMapping(client, mapped);
        for (const other of this.#clients) if (other !== client) await other.close();
        this.#clients = [client];
        (o.logger ?? silentLogger).log("info", "port mapped", { ...this.#mapping });
        this.#renewing = this.#renewLoop(mapped.lifetimeS * 1000);
        return this.#mapping;
      } catch (error) {
        if (signal.aborted) {
          await this.#closeClients();
          throw signal.reason;
        }
        failures.push({ client, error });
        (o.logger ?? silentLogger).log("debug", "port mapping protocol failed", {
          protocol: client.protocol,
          error: error instanceof Error ? error.message : String(error),
        });
      }
    }
    await this.#closeClients();
    const reasons = failures.map(({ client, error }) =>
      `${NAMES[client.protocol]}: ${reason(error)}`
    );
    const allSilent = failures.every(({ error }) =>
      error instanceof ProtocolTimeout || (error instanceof PeerError && error.code === "ETIMEOUT")
    );
    throw new PeerError(
      allSilent ? "ETIMEOUT" : "EPORTMAP",
      `${what} on the router: ${
        reasons.join(", ")
      }; enable PCP, NAT-PMP or UPnP on the router, or forward the port by hand`,
      { cause: new AggregateError(failures.map((f) => f.error)) },
    );
  }

  /** Runs `work` with a signal that also aborts after the protocol timeout. */
  async #withTimeout<T>(work: (signal: AbortSignal) => Promise<T>, outer: AbortSignal): Promise<T> {
    const clock = this.#options.clock ?? systemClock;
    const ms = this.#options.protocolTimeoutMs ?? PORT_MAPPING_PROTOCOL_TIMEOUT_MS;
    const timer = new AbortController();
    const done = new AbortController();
    clock.sleep(ms, AbortSignal.any([outer, done.signal])).then(
      () => timer.abort(new ProtocolTimeout(`no answer within ${ms / 1000} s`)),
      () => {},
    );
    try {
      return await work(AbortSignal.any([outer, timer.signal]));
    } catch (err) {
      if (timer.signal.aborted && !outer.aborted) throw timer.signal.reason;
      throw err;
    } finally {
      done.abort();
    }
  }

  #toMapping(client: PortMappingClient, mapped: MappedPort): PortMapping {
    return {
      protocol: client.protocol,
      transport: this.#request!.transport,
      external: mapped.external,
      internal: mapped.internal,
      lifetimeMs: mapped.lifetimeS * 1000,
    };
  }

  /** Renews at half the lease (at least {@link PORT_MAPPING_MIN_RENEW_MS} apart) until closed. */
  async #renewLoop(lifetimeMs: number): Promise<void> {
    const o = this.#options;
    const clock = o.clock ?? systemClock;
    const logger = o.logger ?? silentLogger;
    const stop = this.#stop.signal;
    let lease = lifetimeMs;
    let expiresAt = clock.now() + lease;
    while (!stop.aborted && lease > 0) {
      const remaining = expiresAt - clock.now();
      const wait = Math.max(PORT_MAPPING_MIN_RENEW_MS, remaining > 0 ? remaining / 2 : lease / 2);
      try {
        await clock.sleep(wait, stop);
      } catch {
        return;
      }
      const client = this.#client!;
      try {
        const previous = this.#mapping;
        const mapped = await this.#withTimeout(
          (s) =>
            client.map(
              {
                ...this.#request!,
                externalPort: previous?.external.port ?? this.#request!.externalPort,
              },
              { signal: s },
            ),
          stop,
        );
        const next = this.#toMapping(client, mapped);
        this.#mapping = next;
        lease = next.lifetimeMs;
        expiresAt = clock.now() + lease;
        const changed = !previous || previous.external.address !== next.external.address ||
          previous.external.port !== next.external.port;
        logger.log("debug", "port mapping renewed", { ...next, changed });
        if (changed) o.onChange?.(next);
      } catch (err) {
        if (stop.aborted) return;
        const error = err instanceof PeerError ? err : new PeerError(
          "ETIMEOUT",
          `Cannot renew the port mapping with ${NAMES[client.protocol]}: ${
            reason(err)
          }; check the router`,
          { cause: err },
        );
        logger.log("warn", error.message, { code: error.code });
        if (this.#mapping && clock.now() >= expiresAt) {
          this.#mapping = undefined;
          o.onLost?.(error);
        }
      }
    }
  }

  /**
   * Stops renewing, deletes the mapping on the router (best effort, within the protocol
   * timeout; not when it was already lost) and closes the sockets. Safe to call more than once.
   */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#stop.abort(new Error("PortMapper closed"));
      await this.#renewing;
      const client = this.#client;
      if (client && this.#request && this.#mapping) {
        try {
          await this.#withTimeout(
            (s) => client.unmap(this.#request!, { signal: s }),
            new AbortController().signal,
          );
        } catch (err) {
          (this.#options.logger ?? silentLogger).log("warn", "port mapping not deleted", {
            error: reason(err),
          });
        }
      }
      this.#mapping = undefined;
      await this.#closeClients();
    })();
    return this.#closed;
  }

  async #closeClients(): Promise<void> {
    await Promise.allSettled(this.#clients.map((c) => c.close()));
  }
}

/** The "<what is wrong>" part of an error's message. */
function reason(err: unknown): string {
  if (err instanceof ProtocolTimeout) return err.message;
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/^Cannot [^:]*: /, "").replace(/; [^;]*$/, "");
}
