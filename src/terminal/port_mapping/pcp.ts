/**
 * PCP client (RFC 6887), MAP opcode only: asks the gateway on UDP port 5351 for a TCP or UDP
 * mapping. The nonce of each mapping is kept, since renewing and deleting need the same one
 * (§11.2). Also the pure codec and the retransmission schedule of §8.1.1.
 *
 * Answers are untrusted datagrams: only those from the gateway's address and port, of version
 * 2, with the R bit, opcode MAP, and this mapping's nonce, protocol and internal port are
 * taken; the epoch reveals a gateway that lost its state (§8.5).
 *
 * @module
 */
import { PeerError } from "../../errors.ts";
import {
  PCP_IRT_MS,
  PCP_MAX_MESSAGE_BYTES,
  PCP_MAX_REQUESTS,
  PCP_MRT_MS,
  PORT_MAPPING_MAX_LIFETIME_S,
  PORT_MAPPING_SERVER_PORT,
} from "../../limits.ts";
import {
  type Backoff,
  type Clock,
  type RandomSource,
  systemClock,
  systemRandom,
} from "../../runtime.ts";
import { GatewaySocket, ipv4ToNumber, NoAnswer } from "./gateway_socket.ts";
import type {
  MappedPort,
  MappingCallOptions,
  MappingTransport,
  PortMappingClient,
  PortMappingRequest,
} from "./types.ts";

/** PCP version (RFC 6887 §7.1). */
export const PCP_VERSION = 2;
/** The MAP opcode (RFC 6887 §11). */
export const PCP_OPCODE_MAP = 1;
/** Length of a MAP request or response without options. */
export const PCP_MAP_BYTES = 60;

/** PCP result codes (RFC 6887 §7.4). */
export const PCP_RESULTS: Readonly<Record<number, string>> = {
  0: "SUCCESS",
  1: "UNSUPP_VERSION",
  2: "NOT_AUTHORIZED",
  3: "MALFORMED_REQUEST",
  4: "UNSUPP_OPCODE",
  5: "UNSUPP_OPTION",
  6: "MALFORMED_OPTION",
  7: "NETWORK_FAILURE",
  8: "NO_RESOURCES",
  9: "UNSUPP_PROTOCOL",
  10: "USER_EX_QUOTA",
  11: "CANNOT_PROVIDE_EXTERNAL",
  12: "ADDRESS_MISMATCH",
  13: "EXCESSIVE_REMOTE_PEERS",
};

/** IANA protocol number of a transport: TCP 6, UDP 17. */
export function pcpProtocolNumber(transport: MappingTransport): 6 | 17 {
  return transport === "udp" ? 17 : 6;
}

/** The fields of a MAP request. */
export interface PcpMapRequest {
  /** 12 random bytes that tie answers, renewals and the deletion to this mapping. */
  nonce: Uint8Array;
  /** `udp` or `tcp`. */
  transport: MappingTransport;
  /** The client's own IPv4 address (the request's source address). */
  clientAddress: string;
  /** Internal port. */
  internalPort: number;
  /** Suggested external port (0 = any). */
  externalPort: number;
  /** Suggested external IPv4 address (`0.0.0.0` = any). */
  externalAddress: string;
  /** Requested lifetime in seconds; 0 deletes. */
  lifetimeS: number;
}

/** A decoded MAP response, or the NAT-PMP "unsupported version" answer of an older gateway. */
export interface PcpMapResponse {
  /** Result code, 0 = SUCCESS. */
  result: number;
  /** Set when a NAT-PMP-only gateway answered (version 0): it does not speak PCP. */
  natPmpOnly?: boolean;
  /** Granted lifetime (or, on error, how long the error lasts), in seconds. */
  lifetimeS: number;
  /** The gateway's epoch time, in seconds. */
  epoch: number;
  /** Assigned external port. */
  externalPort: number;
  /** Assigned external IPv4 address, or undefined when it is not an IPv4-mapped address. */
  externalAddress?: string;
}

function mappedIpv4(bytes: Uint8Array, at: number, address: string): void {
  const n = ipv4ToNumber(address);
  if (n === undefined) throw new TypeError(`Not an IPv4 address: ${JSON.stringify(address)}`);
  bytes.fill(0, at, at + 10);
  bytes[at + 10] = 0xff;
  bytes[at + 11] = 0xff;
  new DataView(bytes.buffer, bytes.byteOffset).setUint32(at + 12, n);
}

function readMappedIpv4(bytes: Uint8Array, at: number): string | undefined {
  for (let i = 0; i < 10; i++) if (bytes[at + i] !== 0) return undefined;
  if (bytes[at + 10] !== 0xff || bytes[at + 11] !== 0xff) return undefined;
  return [...bytes.subarray(at + 12, at + 16)].join(".");
}

/** Encodes a 60-byte MAP request (RFC 6887 §7.1 header, §11.1 MAP opcode). */
export function encodePcpMapRequest(request: PcpMapRequest): Uint8Array {
  if (request.nonce.length !== 12) throw new RangeError("A PCP nonce is 12 bytes");
  const bytes = new Uint8Array(PCP_MAP_BYTES);
  const view = new DataView(bytes.buffer);
  bytes[0] = PCP_VERSION;
  bytes[1] = PCP_OPCODE_MAP;
  view.setUint32(4, request.lifetimeS);
  mappedIpv4(bytes, 8, request.clientAddress);
  bytes.set(request.nonce, 24);
  bytes[36] = pcpProtocolNumber(request.transport);
  view.setUint16(40, request.internalPort);
  view.setUint16(42, request.externalPort);
  mappedIpv4(bytes, 44, request.externalAddress);
  return bytes;
}

/**
 * Decodes the answer to `request`, or undefined when `bytes` does not answer it: wrong
 * version, R bit, opcode, length, nonce, protocol or internal port.
 */
export function decodePcpMapResponse(
  bytes: Uint8Array,
  request: Pick<PcpMapRequest, "nonce" | "transport" | "internalPort">,
): PcpMapResponse | undefined {
  if (bytes.length < 4 || bytes.length > PCP_MAX_MESSAGE_BYTES) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes[0] === 0) {
    // A NAT-PMP gateway answers version 2 with its own format and result 1 (RFC 6887 §9).
    if (bytes[1]! < 128 || view.getUint16(2) !== 1) return undefined;
    return { result: 1, natPmpOnly: true, lifetimeS: 0, epoch: 0, externalPort: 0 };
  }
  if (bytes[0] !== PCP_VERSION || bytes[1] !== (0x80 | PCP_OPCODE_MAP)) return undefined;
  if (bytes.length < PCP_MAP_BYTES || bytes.length % 4 !== 0) return undefined;
  for (let i = 0; i < 12; i++) if (bytes[24 + i] !== request.nonce[i]) return undefined;
  if (bytes[36] !== pcpProtocolNumber(request.transport)) return undefined;
  if (view.getUint16(40) !== request.internalPort) return undefined;
  return {
    result: bytes[3]!,
    lifetimeS: view.getUint32(4),
    epoch: view.getUint32(8),
    externalPort: view.getUint16(42),
    externalAddress: readMappedIpv4(bytes, 44),
  };
}

/**
 * The retransmission schedule of RFC 6887 §8.1.1: RT = (1 + RAND) × IRT, then
 * RT = 2 × RTprev + RAND × RTprev, capped near MRT, with RAND uniform in [-0.1, +0.1].
 */
export function pcpSchedule(random: RandomSource = systemRandom): Backoff {
  const times: number[] = [];
  const rand = () => {
    const bytes = random(2);
    return ((bytes[0]! * 256 + bytes[1]!) / 65535) * 0.2 - 0.1;
  };
  return (attempt) => {
    while (times.length <= attempt) {
      const prev = times.at(-1);
      let rt = prev === undefined ? (1 + rand()) * PCP_IRT_MS : 2 * prev + rand() * prev;
      if (rt > PCP_MRT_MS) rt = PCP_MRT_MS + rand() * PCP_MRT_MS;
      times.push(Math.round(rt));
    }
    return times[attempt]!;
  };
}

/** Options of {@link PcpClient}. */
export interface PcpClientOptions {
  /** Gateway UDP port; default {@link PORT_MAPPING_SERVER_PORT} (5351). */
  port?: number;
  /** Local address to send from (and to name as client); default the interface on the gateway's network. */
  localAddress?: string;
  /** Requests before giving up; default {@link PCP_MAX_REQUESTS}. */
  requests?: number;
  /** Wait after request `attempt`; default {@link pcpSchedule} of `random`. */
  schedule?: Backoff;
  /** Timers and the epoch check; default `systemClock`. */
  clock?: Clock;
  /** Nonces and the schedule's jitter; default `systemRandom`. */
  random?: RandomSource;
}

/**
 * A PCP client for one gateway (MAP opcode).
 *
 * @example
 * ```ts ignore
 * const client = new PcpClient("192.168.1.1");
 * const mapped = await client.map({ transport: "tcp", internalPort: 4000, lifetimeS: 7200 });
 * await client.unmap({ transport: "tcp", internalPort: 4000, lifetimeS: 7200 }); // same nonce
 * await client.close();
 * ```
 */
export class PcpClient implements PortMappingClient {
  readonly protocol = "pcp";
  readonly #gateway: string;
  readonly #options: PcpClientOptions;
  readonly #nonces = new Map<string, Uint8Array>();
  readonly #external = new Map<string, { address: string; port: number }>();
  #socket: Promise<GatewaySocket> | undefined;
  #last: { epoch: number; at: number } | undefined;

  constructor(gateway: string, options: PcpClientOptions = {}) {
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

  /** Creates or renews (same nonce, previous external address suggested) a mapping. */
  async map(request: PortMappingRequest, options: MappingCallOptions = {}): Promise<MappedPort> {
    const key = `${request.transport}/${request.internalPort}`;
    const what = `map ${request.transport.toUpperCase()} port ${request.internalPort}`;
    const socket = await this.#open();
    let nonce = this.#nonces.get(key);
    if (!nonce) {
      nonce = (this.#options.random ?? systemRandom)(12);
      this.#nonces.set(key, nonce);
    }
    const previous = this.#external.get(key);
    const answer = await this.#exchange(
      socket,
      {
        nonce,
        transport: request.transport,
        clientAddress: socket.localAddress,
        internalPort: request.internalPort,
        externalPort: previous?.port ?? request.externalPort ?? request.internalPort,
        externalAddress: previous?.address ?? "0.0.0.0",
        lifetimeS: request.lifetimeS,
      },
      what,
      options,
    );
    const restarted = this.#checkEpoch(answer.epoch);
    if (answer.result !== 0) throw refused(what, this.#gateway, answer);
    if (!answer.externalPort || !answer.lifetimeS || !answer.externalAddress) {
      throw new PeerError(
        "EPORTMAP",
        `Cannot ${what} with PCP: the gateway ${this.#gateway} granted ${
          answer.externalAddress ?? "a non-IPv4 address"
        } port ${answer.externalPort} for ${answer.lifetimeS} s; map the port by hand or use another protocol`,
      );
    }
    const external = { address: answer.externalAddress, port: answer.externalPort };
    this.#external.set(key, external);
    return {
      external,
      internal: { address: socket.localAddress, port: request.internalPort },
      lifetimeS: Math.min(answer.lifetimeS, PORT_MAPPING_MAX_LIFETIME_S),
      gatewayRestarted: restarted,
    };
  }

  /** Deletes the mapping with the nonce that made it (lifetime 0, RFC 6887 §15). */
  async unmap(request: PortMappingRequest, options: MappingCallOptions = {}): Promise<void> {
    const key = `${request.transport}/${request.internalPort}`;
    const nonce = this.#nonces.get(key);
    if (!nonce) return;
    const what =
      `delete the mapping of ${request.transport.toUpperCase()} port ${request.internalPort}`;
    const socket = await this.#open();
    const answer = await this.#exchange(
      socket,
      {
        nonce,
        transport: request.transport,
        clientAddress: socket.localAddress,
        internalPort: request.internalPort,
        externalPort: 0,
        externalAddress: "0.0.0.0",
        lifetimeS: 0,
      },
      what,
      options,
    );
    if (answer.result !== 0) throw refused(what, this.#gateway, answer);
    this.#nonces.delete(key);
    this.#external.delete(key);
  }

  async #exchange(
    socket: GatewaySocket,
    request: PcpMapRequest,
    what: string,
    options: MappingCallOptions,
  ): Promise<PcpMapResponse> {
    try {
      return await socket.exchange(
        encodePcpMapRequest(request),
        (bytes) => decodePcpMapResponse(bytes, request),
        {
          requests: this.#options.requests ?? PCP_MAX_REQUESTS,
          schedule: this.#options.schedule ?? pcpSchedule(this.#options.random),
          clock: this.#options.clock,
          signal: options.signal,
        },
      );
    } catch (err) {
      if (err instanceof NoAnswer) {
        throw new PeerError(
          "ETIMEOUT",
          `Cannot ${what} with PCP: the gateway ${this.#gateway} sent ${err.message}; check that the router offers PCP or use another protocol`,
          { cause: err },
        );
      }
      if (options.signal?.aborted || err instanceof PeerError) throw err;
      throw new PeerError(
        "EPORTMAP",
        `Cannot ${what} with PCP: sending to ${this.#gateway} failed (${
          String(err)
        }); check the gateway address`,
        { cause: err },
      );
    }
  }

  /** Records `epoch`; true when it shows the gateway lost its state (RFC 6887 §8.5). */
  #checkEpoch(epoch: number): boolean {
    const now = (this.#options.clock ?? systemClock).now();
    const last = this.#last;
    this.#last = { epoch, at: now };
    if (!last) return false;
    if (epoch + 1 < last.epoch) return true;
    const client = (now - last.at) / 1000;
    const server = epoch - last.epoch;
    return client + 2 < server - server / 16 || server + 2 < client - client / 16;
  }

  /** Closes the socket (mappings stay until deleted or their lifetime ends). */
  async close(): Promise<void> {
    const socket = await this.#socket?.catch(() => undefined);
    this.#socket = undefined;
    await socket?.close();
  }
}

function refused(what: string, gateway: string, answer: PcpMapResponse): PeerError {
  const name = answer.natPmpOnly
    ? "UNSUPP_VERSION: it speaks NAT-PMP only"
    : PCP_RESULTS[answer.result] ?? "unknown result";
  return new PeerError(
    "EPORTMAP",
    `Cannot ${what} with PCP: the gateway ${gateway} answered result ${answer.result} (${name}); enable PCP on the router, forward the port by hand or use another protocol`,
    { cause: `PCP result ${answer.result}` },
  );
}
