/**
 * The UDP socket NAT-PMP, PCP and the SSDP search speak over: requests to the gateway's port, retransmitted on
 * an injected schedule, and answers accepted only from the gateway's address and port, only up
 * to {@link PCP_MAX_MESSAGE_BYTES}, and only when the protocol's parser matches them to the
 * request. Everything else that arrives (anyone may send datagrams) is dropped unread.
 *
 * @module
 */
import dgram from "node:dgram";
import { PeerError } from "../../errors.ts";
import { PCP_MAX_MESSAGE_BYTES } from "../../limits.ts";
import { type Backoff, type Clock, systemClock } from "../../runtime.ts";

/** Options of {@link GatewaySocket.open}. */
export interface GatewaySocketOptions {
  /**
   * Local IPv4 address to send from; default the address of the interface whose network holds
   * the gateway (see {@link localAddressFor}).
   */
  localAddress?: string;
  /**
   * Where answers must come from; default the address and port requests go to. Without `port`,
   * any port of that address: SSDP answers a search from another port than 1900, and answers a
   * multicast search from the device's own address.
   */
  answersFrom?: { address: string; port?: number };
  /** Longest datagram read; longer ones are dropped. Default {@link PCP_MAX_MESSAGE_BYTES}. */
  maxAnswerBytes?: number;
}

/** Options of one {@link GatewaySocket.exchange}. */
export interface ExchangeOptions {
  /** Requests to send before giving up. */
  requests: number;
  /** Wait after request number `attempt` (0-based), in ms. */
  schedule: Backoff;
  /** Timers; default `systemClock`. */
  clock?: Clock;
  /** Cancels the exchange; it then rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** Sent when nothing matching arrived after the last request's wait. */
export class NoAnswer extends Error {
  /** Requests sent. */
  readonly requests: number;
  /** Total wait, in ms. */
  readonly waitedMs: number;
  constructor(requests: number, waitedMs: number) {
    super(`no answer to ${requests} requests in ${waitedMs / 1000} s`);
    this.requests = requests;
    this.waitedMs = waitedMs;
  }
}

/**
 * The local IPv4 address of the interface whose network holds `gateway`, or undefined when no
 * interface does (e.g. no permission to list interfaces).
 */
export function localAddressFor(gateway: string): string | undefined {
  const target = ipv4ToNumber(gateway);
  if (target === undefined) return undefined;
  let interfaces: Deno.NetworkInterfaceInfo[];
  try {
    interfaces = Deno.networkInterfaces();
  } catch {
    return undefined;
  }
  for (const nic of interfaces) {
    if (nic.family !== "IPv4") continue;
    const address = ipv4ToNumber(nic.address);
    const mask = ipv4ToNumber(nic.netmask);
    if (address === undefined || mask === undefined) continue;
    if (((address ^ target) & mask) === 0) return nic.address;
  }
  return undefined;
}

/** A dotted IPv4 address as an unsigned 32-bit number, or undefined when it is not one. */
export function ipv4ToNumber(text: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return parts.reduce((n, p) => n * 256 + p, 0) >>> 0;
}

/** A UDP socket bound for talking to one gateway port. */
export class GatewaySocket {
  readonly #socket: dgram.Socket;
  readonly #gateway: string;
  readonly #port: number;
  readonly #listeners = new Set<(bytes: Uint8Array) => void>();

  private constructor(
    socket: dgram.Socket,
    gateway: string,
    port: number,
    options: GatewaySocketOptions,
  ) {
    this.#socket = socket;
    this.#gateway = gateway;
    this.#port = port;
    const from = options.answersFrom ?? { address: gateway, port };
    const maxBytes = options.maxAnswerBytes ?? PCP_MAX_MESSAGE_BYTES;
    socket.on("message", (bytes: Uint8Array, sender: dgram.RemoteInfo) => {
      if (sender.address !== from.address) return;
      if (from.port !== undefined && sender.port !== from.port) return;
      if (bytes.length > maxBytes) return;
      for (const listener of this.#listeners) listener(bytes);
    });
    socket.on("error", () => {});
  }

  /** Binds a socket for `gateway:port`. Rejects with PeerError `EADDRESS` when it cannot. */
  static async open(
    gateway: string,
    port: number,
    options: GatewaySocketOptions = {},
  ): Promise<GatewaySocket> {
    if (ipv4ToNumber(gateway) === undefined) {
      throw new TypeError(`Not an IPv4 gateway address: ${JSON.stringify(gateway)}`);
    }
    const local = options.localAddress ?? localAddressFor(gateway);
    if (!local) {
      throw new PeerError(
        "EADDRESS",
        `Cannot ask the gateway ${gateway} for a port mapping: no local interface is on its network; set the local address to send from`,
      );
    }
    const socket = dgram.createSocket("udp4");
    await new Promise<void>((resolve, reject) => {
      socket.once("error", (err) => {
        socket.close();
        reject(
          new PeerError(
            "EADDRESS",
            `Cannot open a UDP socket on ${local} for port mapping: ${err.message}; check the local address`,
            { cause: err },
          ),
        );
      });
      socket.bind(0, local, () => {
        socket.removeAllListeners("error");
        resolve();
      });
    });
    return new GatewaySocket(socket, gateway, port, options);
  }

  /** The local address requests leave from. */
  get localAddress(): string {
    return this.#socket.address().address;
  }

  /** The local port requests leave from. */
  get localPort(): number {
    return this.#socket.address().port;
  }

  /**
   * Sends `request` until `accept` returns a value for an answer from the gateway, or the
   * schedule runs out ({@link NoAnswer}). `accept` returns undefined for datagrams to ignore.
   */
  async exchange<T>(
    request: Uint8Array,
    accept: (bytes: Uint8Array) => T | undefined,
    options: ExchangeOptions,
  ): Promise<T> {
    const { requests, schedule, clock = systemClock } = options;
    const signal = options.signal ?? new AbortController().signal;
    signal.throwIfAborted();
    let resolveAnswer!: (value: T) => void;
    const answer = new Promise<T>((resolve) => (resolveAnswer = resolve));
    let accepted = false;
    const listener = (bytes: Uint8Array) => {
      if (accepted) return;
      const value = accept(bytes);
      if (value === undefined) return;
      accepted = true;
      resolveAnswer(value);
    };
    this.#listeners.add(listener);
    let waitedMs = 0;
    try {
      for (let attempt = 0; attempt < requests; attempt++) {
        signal.throwIfAborted();
        await this.#send(request);
        const wait = schedule(attempt);
        const tick = new AbortController();
        const slept = clock.sleep(wait, AbortSignal.any([signal, tick.signal])).then(
          () => undefined,
          () => undefined,
        );
        const got = await Promise.race([answer.then((value) => ({ value })), slept]);
        tick.abort();
        if (got) return got.value;
        signal.throwIfAborted();
        waitedMs += wait;
      }
      throw new NoAnswer(requests, waitedMs);
    } finally {
      this.#listeners.delete(listener);
    }
  }

  #send(bytes: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) =>
      this.#socket.send(bytes, this.#port, this.#gateway, (err) => (err ? reject(err) : resolve()))
    );
  }

  /** Closes the socket. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      try {
        this.#socket.close(() => resolve());
      } catch {
        resolve();
      }
    });
  }
}
