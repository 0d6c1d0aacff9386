/**
 * NAT-PMP client (RFC 6886): asks the gateway on UDP port 5351 for its external address and
 * for a TCP or UDP port mapping; the pure codec and {@link NatPmpClient}.
 *
 * Answers are untrusted datagrams: only those from the gateway's address and port, of the
 * right version, opcode and internal port, are taken; the epoch reveals a gateway restart.
 *
 * @module
 */
import { PeerError } from "../../errors.ts";
import {
  NAT_PMP_INITIAL_RTO_MS,
  NAT_PMP_MAX_REQUESTS,
  PORT_MAPPING_MAX_LIFETIME_S,
  PORT_MAPPING_SERVER_PORT,
} from "../../limits.ts";
import { type Backoff, type Clock, systemClock } from "../../runtime.ts";
import { GatewaySocket, NoAnswer } from "./gateway_socket.ts";
import type {
  MappedPort,
  MappingCallOptions,
  MappingTransport,
  PortMappingClient,
  PortMappingRequest,
} from "./types.ts";

/** NAT-PMP result codes (RFC 6886 §3.5). */
export const NAT_PMP_RESULTS: Readonly<Record<number, string>> = {
  0: "success",
  1: "unsupported version",
  2: "not authorized or refused",
  3: "network failure",
  4: "out of resources",
  5: "unsupported opcode",
};

/** Opcode of a mapping request: 1 for UDP, 2 for TCP (RFC 6886 §3.3). */
export function natPmpOpcode(transport: MappingTransport): 1 | 2 {
  return transport === "udp" ? 1 : 2;
}

/** The 2-byte external address request (RFC 6886 §3.2). */
export function encodeNatPmpAddressRequest(): Uint8Array {
  return new Uint8Array([0, 0]);
}

/** A decoded NAT-PMP answer (external address or mapping). */
export interface NatPmpAnswer {
  /** Result code, 0 = success. */
  result: number;
  /** Seconds since the gateway's start of epoch. */
  epoch: number;
  /** External address (address answers only, when result is 0). */
  externalAddress?: string;
  /** Internal port (mapping answers). */
  internalPort?: number;
  /** External port (mapping answers). */
  externalPort?: number;
  /** Lifetime in seconds (mapping answers). */
  lifetimeS?: number;
}

/**
 * Decodes an external address answer (opcode 128), or undefined when `bytes` is not one:
 * wrong version, opcode or length.
 */
export function decodeNatPmpAddressResponse(bytes: Uint8Array): NatPmpAnswer | undefined {
  if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 128) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const result = view.getUint16(2);
  const epoch = view.getUint32(4);
  if (result !== 0) return { result, epoch };
  if (bytes.length !== 12) return undefined;
  return { result, epoch, externalAddress: [...bytes.subarray(8, 12)].join(".") };
}

/** A 12-byte mapping request (RFC 6886 §3.3); lifetime 0 and external port 0 delete it. */
export function encodeNatPmpMapRequest(
  transport: MappingTransport,
  fields: { internalPort: number; externalPort: number; lifetimeS: number },
): Uint8Array {
  const bytes = new Uint8Array(12);
  const view = new DataView(bytes.buffer);
  bytes[1] = natPmpOpcode(transport);
  view.setUint16(4, fields.internalPort);
  view.setUint16(6, fields.externalPort);
  view.setUint32(8, fields.lifetimeS);
  return bytes;
}

/**
 * Decodes a mapping answer for `transport` and `internalPort`, or undefined when `bytes` is
 * not one: wrong version, opcode, length or internal port.
 */
export function decodeNatPmpMapResponse(
  bytes: Uint8Array,
  transport: MappingTransport,
  internalPort: number,
): NatPmpAnswer | undefined {
  if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 128 + natPmpOpcode(transport)) {
    return undefined;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const result = view.getUint16(2);
  const epoch = view.getUint32(4);
  if (bytes.length !== 16) return result === 0 ? undefined : { result, epoch };
  if (view.getUint16(8) !== internalPort) return undefined;
  return {
    result,
    epoch,
    internalPort,
    externalPort: view.getUint16(10),
    lifetimeS: view.getUint32(12),
  };
}

/** The retransmission schedule of RFC 6886 §3.1: 250 ms, doubling after each request. */
export const natPmpSchedule: Backoff = (attempt) => NAT_PMP_INITIAL_RTO_MS * 2 ** attempt;

/** Options of {@link NatPmpClient}. */
export interface NatPmpClientOptions {
  /** Gateway UDP port; default {@link PORT_MAPPING_SERVER_PORT} (5351). */
  port?: number;
  /** Local address to send from; default the interface on the gateway's network. */
  localAddress?: string;
  /** Requests before giving up; default {@link NAT_PMP_MAX_REQUESTS}. */
  requests?: number;
  /** Wait after request `attempt`; default {@link natPmpSchedule}. */
  schedule?: Backoff;
  /** Timers and the epoch check; default `systemClock`. */
  clock?: Clock;
}

/**
 * A NAT-PMP client for one gateway.
 *
 * @example
 * ```ts ignore
 * const client = new NatPmpClient("192.168.1.1");
 * const mapped = await client.map({ transport: "udp", internalPort: 4000, lifetimeS: 7200 });
 * // mapped.external = { address: "203.0.113.7", port: 4000 }
 * await client.unmap({ transport: "udp", internalPort: 4000, lifetimeS: 7200 });
 * await client.close();
 * ```
 */
export class NatPmpClient implements PortMappingClient {
  readonly protocol = "nat-pmp";
  readonly #gateway: string;
  readonly #options: NatPmpClientOptions;
  #socket: Promise<GatewaySocket> | undefined;
  #externalAddress: string | undefined;
  #last: { epoch: number; at: number } | undefined;

  constructor(gateway: string, options: NatPmpClientOptions = {}) {
    this.#gateway = gateway;
    this.#options = options;
  }

  #open(): Promise<GatewaySocket> {
    this.#socket ??= GatewaySocket.open(
      this.#gateway,
      this.#options.port ?? PORT_MAPPING_SERVER_PORT,
      { localAddress: this.#options.localAddress },
    );
    this.#socket.catch(() => (this.#socket = undefined));
    return this.#socket;
  }

  /** The gateway's external IPv4 address (RFC 6886 §3.2). */
  async externalAddress(options: MappingCallOptions = {}): Promise<string> {
    const socket = await this.#open();
    const answer = await this.#exchange(
      socket,
      encodeNatPmpAddressRequest(),
      decodeNatPmpAddressResponse,
      "learn the external address",
      options,
    );
    this.#checkEpoch(answer.epoch);
    if (answer.result !== 0 || !answer.externalAddress) {
      throw refused("learn the external address", this.#gateway, answer.result);
    }
    this.#externalAddress = answer.externalAddress;
    return answer.externalAddress;
  }

  /** Creates or renews a mapping (RFC 6886 §3.3). */
  async map(request: PortMappingRequest, options: MappingCallOptions = {}): Promise<MappedPort> {
    const what = `map ${request.transport.toUpperCase()} port ${request.internalPort}`;
    const socket = await this.#open();
    const answer = await this.#exchange(
      socket,
      encodeNatPmpMapRequest(request.transport, {
        internalPort: request.internalPort,
        externalPort: request.externalPort ?? request.internalPort,
        lifetimeS: request.lifetimeS,
      }),
      (bytes) => decodeNatPmpMapResponse(bytes, request.transport, request.internalPort),
      what,
      options,
    );
    const restarted = this.#checkEpoch(answer.epoch);
    if (answer.result !== 0) throw refused(what, this.#gateway, answer.result);
    if (!answer.externalPort || !answer.lifetimeS) {
      throw new PeerError(
        "EPORTMAP",
        `Cannot ${what} with NAT-PMP: the gateway ${this.#gateway} granted external port ${answer.externalPort} for ${answer.lifetimeS} s; map the port by hand or use another protocol`,
      );
    }
    if (restarted || !this.#externalAddress) await this.externalAddress(options);
    return {
      external: { address: this.#externalAddress!, port: answer.externalPort },
      internal: { address: socket.localAddress, port: request.internalPort },
      lifetimeS: Math.min(answer.lifetimeS, PORT_MAPPING_MAX_LIFETIME_S),
      gatewayRestarted: restarted,
    };
  }

  /** Deletes the mapping: lifetime 0 and external port 0 (RFC 6886 §3.4). */
  async unmap(request: PortMappingRequest, options: MappingCallOptions = {}): Promise<void> {
    const what =
      `delete the mapping of ${request.transport.toUpperCase()} port ${request.internalPort}`;
    const socket = await this.#open();
    const answer = await this.#exchange(
      socket,
      encodeNatPmpMapRequest(request.transport, {
        internalPort: request.internalPort,
        externalPort: 0,
        lifetimeS: 0,
      }),
      (bytes) => decodeNatPmpMapResponse(bytes, request.transport, request.internalPort),
      what,
      options,
    );
    if (answer.result !== 0) throw refused(what, this.#gateway, answer.result);
  }

  async #exchange<T>(
    socket: GatewaySocket,
    request: Uint8Array,
    accept: (bytes: Uint8Array) => T | undefined,
    what: string,
    options: MappingCallOptions,
  ): Promise<T> {
    try {
      return await socket.exchange(request, accept, {
        requests: this.#options.requests ?? NAT_PMP_MAX_REQUESTS,
        schedule: this.#options.schedule ?? natPmpSchedule,
        clock: this.#options.clock,
        signal: options.signal,
      });
    } catch (err) {
      if (err instanceof NoAnswer) {
        throw new PeerError(
          "ETIMEOUT",
          `Cannot ${what} with NAT-PMP: the gateway ${this.#gateway} sent ${err.message}; check that the router offers NAT-PMP or use another protocol`,
          { cause: err },
        );
      }
      if (options.signal?.aborted || err instanceof PeerError) throw err;
      throw new PeerError(
        "EPORTMAP",
        `Cannot ${what} with NAT-PMP: sending to ${this.#gateway} failed (${
          String(err)
        }); check the gateway address`,
        { cause: err },
      );
    }
  }

  /** Records `epoch`; true when it shows the gateway restarted (RFC 6886 §3.6). */
  #checkEpoch(epoch: number): boolean {
    const now = (this.#options.clock ?? systemClock).now();
    const last = this.#last;
    this.#last = { epoch, at: now };
    if (!last) return false;
    const elapsedS = (now - last.at) / 1000;
    return epoch < last.epoch + (elapsedS * 7) / 8 - 2;
  }

  /** Closes the socket (mappings stay until their lifetime ends). */
  async close(): Promise<void> {
    const socket = await this.#socket?.catch(() => undefined);
    this.#socket = undefined;
    await socket?.close();
  }
}

function refused(what: string, gateway: string, result: number): PeerError {
  const text = NAT_PMP_RESULTS[result] ?? "unknown result";
  return new PeerError(
    "EPORTMAP",
    `Cannot ${what} with NAT-PMP: the gateway ${gateway} answered result ${result} (${text}); enable NAT-PMP on the router, forward the port by hand or use another protocol`,
    { cause: `NAT-PMP result ${result}` },
  );
}
