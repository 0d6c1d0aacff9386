/**
 * STUN Binding client for address detection (docs/design.md "Reachability"): the terminal asks a
 * STUN server which address and port its UDP packets come from — behind a NAT, the router's global
 * address. {@link StunAddress} is the {@link AddressDetector}; the pure codec lives in
 * `src/net/stun_message.ts`.
 *
 * @module
 */
import dgram from "node:dgram";
import { PeerError } from "../errors.ts";
import { type Logger, silentLogger } from "../log.ts";
import {
  type Backoff,
  type Clock,
  type RandomSource,
  systemClock,
  systemRandom,
} from "../runtime.ts";
import type { AddressDetector, DetectedAddress } from "./address.ts";
import {
  decodeBindingResponse,
  encodeBindingRequest,
  STUN_DEFAULT_PORT,
  type StunBindingResponse,
  type StunMappedAddress,
} from "../net/stun_message.ts";

/** Initial retransmission timeout, in ms (RFC 8489 §6.2.1 recommends 500). */
export const STUN_DEFAULT_RTO_MS = 500;
/** Binding requests sent to one server before giving up (RFC 8489's Rc is 7; a terminal waits less). */
export const STUN_DEFAULT_REQUESTS = 4;

/** What {@link StunAddress} finds: assignable to {@link DetectedAddress}. */
export interface StunDetectedAddress extends DetectedAddress {
  source: "stun";
  /** The port the server saw (equal to `localPort` when no NAT rewrites it). */
  port: number;
  /** The local UDP port the requests left from. */
  localPort: number;
  /** The server that answered, as configured. */
  server: string;
}

/**
 * A UDP socket owned by someone else (e.g. the peer UDP transport) that {@link StunAddress}
 * may send from, so the mapping it learns is the one peers will use. The owner keeps reading
 * the socket and hands datagrams for which {@link isStunMessage} is true to the subscribers.
 */
export interface StunSocket {
  /** The local UDP port. */
  readonly localPort: number;
  /** Sends one datagram; rejects when it cannot. */
  send(bytes: Uint8Array, host: string, port: number): Promise<void>;
  /** Calls `listener` with every datagram received until the returned function is called. */
  subscribe(listener: (bytes: Uint8Array) => void): () => void;
}

/** A bound node:dgram socket as a {@link StunSocket} (not closed by it). */
export function dgramStunSocket(socket: dgram.Socket): StunSocket {
  return {
    get localPort() {
      return socket.address().port;
    },
    send: (bytes, host, port) =>
      new Promise((resolve, reject) =>
        socket.send(bytes, port, host, (err) => (err ? reject(err) : resolve()))
      ),
    subscribe(listener) {
      const onMessage = (bytes: Uint8Array) => listener(bytes);
      socket.on("message", onMessage);
      return () => socket.off("message", onMessage);
    },
  };
}

/** Options of {@link StunAddress}. */
export interface StunAddressOptions {
  /**
   * A socket to send from, e.g. the peer UDP transport's, so that the mapping found is the one
   * peers will use: a {@link StunSocket} or a bound node:dgram socket. Never closed by
   * StunAddress. Default: a socket of its own, closed after each detection.
   */
  socket?: StunSocket | dgram.Socket;
  /** Local address of the own socket; default `0.0.0.0` (`::` when every server is IPv6). */
  localAddress?: string;
  /** Local port of the own socket; default 0 (any). */
  localPort?: number;
  /** Binding requests per server; default {@link STUN_DEFAULT_REQUESTS}. */
  requests?: number;
  /** Wait after request number `attempt` (0-based); default RTO 500 ms doubling each time. */
  backoff?: Backoff;
  /** Timers; default `systemClock`. */
  clock?: Clock;
  /** Transaction ids; default `systemRandom`. */
  random?: RandomSource;
  /** Default: silent. */
  logger?: Logger;
}

interface Server {
  text: string;
  host: string;
  port: number;
}

/** Parses `host`, `host:port`, `[ipv6]:port` or `stun:host:port` (RFC 7064). */
export function parseStunServer(text: string): { host: string; port: number } {
  const s = text.trim().replace(/^stun:/i, "");
  const m = /^\[([0-9a-f:.]+)\](?::(\d+))?$/i.exec(s) ?? /^([^:\s]+)(?::(\d+))?$/.exec(s) ??
    /^((?:[0-9a-f]{0,4}:)*:[0-9a-f:]*|(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4})()$/i.exec(s);
  const port = m?.[2] ? Number(m[2]) : STUN_DEFAULT_PORT;
  if (!m || !m[1] || port < 1 || port > 0xffff) {
    throw new TypeError(`Not a STUN server "host:port": ${JSON.stringify(text)}`);
  }
  return { host: m[1], port };
}

/**
 * Finds the reflexive address: the address and port a STUN server sees this terminal's UDP
 * packets come from. Asks every server at once, retransmits per RFC 8489 and answers with the
 * first success.
 *
 * @example
 * ```ts
 * const found = await new StunAddress(["127.0.0.1:3478"]).detect();
 * // { address: "127.0.0.1", source: "stun", port: 40123, localPort: 40123, server: "127.0.0.1:3478" }
 * ```
 */
export class StunAddress implements AddressDetector {
  readonly #servers: Server[];
  readonly #options: StunAddressOptions;

  constructor(servers: readonly string[], options: StunAddressOptions = {}) {
    this.#servers = servers.map((text) => ({ text, ...parseStunServer(text) }));
    this.#options = options;
  }

  /** The reflexive address, or `undefined` when STUN gave none (the reason is logged as a warning). */
  async detect(options: { signal?: AbortSignal } = {}): Promise<StunDetectedAddress | undefined> {
    try {
      return await this.query(options);
    } catch (err) {
      if (!(err instanceof PeerError)) throw err;
      (this.#options.logger ?? silentLogger).log("warn", err.message, { code: err.code });
      return undefined;
    }
  }

  /**
   * Like {@link detect} but throws: PeerError `ETIMEOUT` when no server answered, `EADDRESS`
   * when servers refused or could not be reached; the signal's reason when aborted.
   */
  async query(options: { signal?: AbortSignal } = {}): Promise<StunDetectedAddress> {
    const signal = options.signal ?? new AbortController().signal;
    signal.throwIfAborted();
    const what = "Cannot learn the address peers see from STUN";
    if (!this.#servers.length) {
      throw new PeerError(
        "EADDRESS",
        `${what}: no STUN server is configured; set terminal.stun_servers`,
      );
    }
    const given = this.#options.socket;
    const own = given ? undefined : await this.#bind();
    const socket = own
      ? dgramStunSocket(own)
      : given && "subscribe" in given
      ? given
      : dgramStunSocket(given as dgram.Socket);
    const done = new AbortController();
    const stop = AbortSignal.any([signal, done.signal]);
    const transactions = this.#servers.map(async (server) => ({
      server: server.text,
      ...(await this.#transact(socket, server, stop)),
    }));
    try {
      const localPort = socket.localPort;
      const mapped = await Promise.any(transactions);
      return {
        address: mapped.address,
        source: "stun",
        port: mapped.port,
        localPort,
        server: mapped.server,
      };
    } catch (err) {
      signal.throwIfAborted();
      const errors: unknown[] = err instanceof AggregateError ? err.errors : [err];
      const timedOut = errors.every((e) => e instanceof ServerFailure && e.timedOut);
      const detail = errors.map((e) => (e instanceof Error ? e.message : String(e)));
      throw new PeerError(
        timedOut ? "ETIMEOUT" : "EADDRESS",
        `${what}: ${detail.join("; ")}; check terminal.stun_servers or set terminal.address`,
        { cause: err },
      );
    } finally {
      done.abort();
      await Promise.allSettled(transactions);
      if (own) await new Promise<void>((resolve) => own.close(() => resolve()));
    }
  }

  #bind(): Promise<dgram.Socket> {
    const { localAddress, localPort = 0 } = this.#options;
    const v6 = localAddress?.includes(":") ??
      this.#servers.every((s) => s.host.includes(":"));
    const socket = dgram.createSocket(v6 ? "udp6" : "udp4");
    return new Promise((resolve, reject) => {
      socket.once("error", (err) => {
        socket.close();
        reject(
          new PeerError(
            "EADDRESS",
            `Cannot open a UDP socket for STUN on port ${localPort}: ${err.message}; choose another port`,
            { cause: err },
          ),
        );
      });
      socket.bind(localPort, localAddress ?? (v6 ? "::" : "0.0.0.0"), () => {
        socket.removeAllListeners("error");
        resolve(socket);
      });
    });
  }

  /** One Binding transaction (RFC 8489 §6.2.1): retransmit until a response or give up. */
  async #transact(
    socket: StunSocket,
    server: Server,
    stop: AbortSignal,
  ): Promise<StunMappedAddress> {
    const { requests = STUN_DEFAULT_REQUESTS, clock = systemClock, random = systemRandom } =
      this.#options;
    const backoff = this.#options.backoff ?? ((n: number) => STUN_DEFAULT_RTO_MS * 2 ** n);
    const transactionId = random(12);
    const request = encodeBindingRequest(transactionId);
    const answer = awaitResponse(socket, transactionId, stop);
    answer.catch(() => {});
    for (let attempt = 0; attempt < requests; attempt++) {
      stop.throwIfAborted();
      await socket.send(request, server.host, server.port).catch((err) => {
        const why = err instanceof Error ? err.message : String(err);
        throw new ServerFailure(`cannot send to ${server.text} (${why})`, { cause: err });
      });
      const tick = new AbortController();
      const slept = clock.sleep(backoff(attempt), AbortSignal.any([stop, tick.signal])).then(
        () => undefined,
        () => undefined,
      );
      const response = await Promise.race([answer, slept]);
      tick.abort();
      if (!response) continue;
      if (response.ok && response.mapped) return response.mapped;
      const e = response.error;
      throw new ServerFailure(
        `${server.text} answered error ${e?.code ?? "?"} ${e?.reason ?? ""}`.trimEnd(),
      );
    }
    stop.throwIfAborted();
    throw new ServerFailure(`${server.text} did not answer ${requests} Binding requests`, {
      timedOut: true,
    });
  }
}

/** Why one server gave no address (combined into one PeerError by `query`). */
class ServerFailure extends Error {
  readonly timedOut: boolean;
  constructor(message: string, options: { cause?: unknown; timedOut?: boolean } = {}) {
    super(message, { cause: options.cause });
    this.timedOut = options.timedOut ?? false;
  }
}

/** Resolves with the first Binding response to `transactionId` that arrives on `socket`. */
function awaitResponse(
  socket: StunSocket,
  transactionId: Uint8Array,
  signal: AbortSignal,
): Promise<StunBindingResponse> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      off();
      reject(signal.reason);
    };
    const unsubscribe = socket.subscribe((packet) => {
      const response = decodeBindingResponse(packet, { transactionId });
      if (!response) return;
      off();
      resolve(response);
    });
    const off = () => {
      unsubscribe();
      signal.removeEventListener("abort", onAbort);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
