/**
 * A latest-state datagram channel for game state over an established {@link PeerLink}.
 *
 * Every datagram is `[u8 tag 3][u64 BE sequence][state]`; the sender numbers them 0, 1, 2, …
 * (64 bits: it never wraps in practice). The receiver keeps only the newest state: a datagram
 * at or below the newest sequence seen is stale and dropped, and a state not yet read when a
 * newer one arrives is replaced. On a link with a best-effort lane (UDP:
 * `PeerLink.sendDatagram`) the channel uses that lane, so a lost state is not sent again and the
 * link's reliable stream stays free for chat or files; over TCP every datagram arrives on the
 * stream, but out-of-date ones are still skipped.
 *
 * @module
 */
import { PeerError } from "../errors.ts";
import type { PeerLink } from "../peer/types.ts";

/** Tag byte of a datagram message (1 and 2 belong to file transfer). */
export const DATAGRAM_TAG = 3;
const HEADER_BYTES = 9;
const MAX_SEQUENCE = 2n ** 64n - 1n;
/** Default largest state over UDP: one datagram on a 1280-byte IPv6 path with headroom. */
export const DEFAULT_MAX_UDP_STATE_BYTES = 1024;
/** Default largest state over TCP. */
export const DEFAULT_MAX_TCP_STATE_BYTES = 64 * 1024;

/** One received state and its sequence number. */
export interface Datagram {
  sequence: bigint;
  data: Uint8Array;
}

/** What a channel did so far. */
export interface DatagramChannelStats {
  sent: number;
  /** Datagrams accepted as the newest state. */
  received: number;
  /** Datagrams dropped because a newer one had arrived before them. */
  stale: number;
  /** Accepted states replaced by a newer one before anyone read them. */
  superseded: number;
}

/** Options of {@link openDatagramChannel}. */
export interface DatagramChannelOptions {
  /**
   * Largest state `send()` accepts; default {@link DEFAULT_MAX_UDP_STATE_BYTES} over UDP,
   * {@link DEFAULT_MAX_TCP_STATE_BYTES} over TCP.
   */
  maxStateBytes?: number;
}

/** A latest-state channel: `send()` states, iterate (or `receive()`) the newest ones. */
export interface DatagramChannel extends AsyncIterable<Datagram> {
  /** Sends one state with the next sequence number. */
  send(state: Uint8Array): Promise<void>;
  /** The newest unread state, waiting for one; null once the link ended. */
  receive(options?: { signal?: AbortSignal }): Promise<Datagram | null>;
  readonly stats: Readonly<DatagramChannelStats>;
  /** Closes the link (DISCONNECT) and ends iteration; idempotent. */
  close(): Promise<void>;
}

/**
 * Encodes one datagram message.
 *
 * @example
 * ```ts
 * const bytes = encodeDatagram(7n, Uint8Array.of(1, 2));
 * decodeDatagram(bytes); // { sequence: 7n, data: Uint8Array [1, 2] }
 * ```
 */
export function encodeDatagram(sequence: bigint, data: Uint8Array): Uint8Array {
  if (sequence < 0n || sequence > MAX_SEQUENCE) {
    throw new RangeError(`Datagram sequence ${sequence} is outside 0..2^64-1`);
  }
  const out = new Uint8Array(HEADER_BYTES + data.length);
  out[0] = DATAGRAM_TAG;
  new DataView(out.buffer).setBigUint64(1, sequence);
  out.set(data, HEADER_BYTES);
  return out;
}

/**
 * Decodes one datagram message; `PeerError` `EFRAME` when it is not one.
 *
 * @example
 * ```ts
 * const { sequence, data } = decodeDatagram(message);
 * ```
 */
export function decodeDatagram(message: Uint8Array): Datagram {
  if (message.length < HEADER_BYTES || message[0] !== DATAGRAM_TAG) {
    throw new PeerError(
      "EFRAME",
      "Cannot read a datagram: it is not a mailpeer datagram message; " +
        "the peer is not running the same application",
    );
  }
  const view = new DataView(message.buffer, message.byteOffset, message.byteLength);
  return { sequence: view.getBigUint64(1), data: message.subarray(HEADER_BYTES) };
}

interface Waiter {
  resolve(datagram: Datagram | null): void;
  reject(err: unknown): void;
}

class LatestStateChannel implements DatagramChannel {
  #link: PeerLink;
  #maxStateBytes: number;
  #nextSequence = 0n;
  #newest = -1n;
  #slot: Datagram | null = null;
  #waiters: Waiter[] = [];
  #ended = false;
  #error: unknown = null;
  #stats: DatagramChannelStats = { sent: 0, received: 0, stale: 0, superseded: 0 };
  #pumpDone: Promise<void>;
  #closing: Promise<void> | null = null;

  constructor(link: PeerLink, options: DatagramChannelOptions) {
    this.#link = link;
    const lane = link.maxDatagramBytes === undefined
      ? Infinity
      : link.maxDatagramBytes - HEADER_BYTES; // one datagram of the link's best-effort lane
    this.#maxStateBytes = options.maxStateBytes ??
      Math.min(
        link.transport === "udp" ? DEFAULT_MAX_UDP_STATE_BYTES : DEFAULT_MAX_TCP_STATE_BYTES,
        lane,
      );
    this.#pumpDone = this.#pump();
  }

  get stats(): Readonly<DatagramChannelStats> {
    return { ...this.#stats };
  }

  send(state: Uint8Array): Promise<void> {
    if (state.length > this.#maxStateBytes) {
      return Promise.reject(
        new RangeError(
          `State of ${state.length} bytes exceeds maxStateBytes ${this.#maxStateBytes}`,
        ),
      );
    }
    const message = encodeDatagram(this.#nextSequence++, state);
    this.#stats.sent++;
    return this.#link.sendDatagram ? this.#link.sendDatagram(message) : this.#link.send(message);
  }

  receive(options: { signal?: AbortSignal } = {}): Promise<Datagram | null> {
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const ready = this.#slot;
    if (ready) {
      this.#slot = null;
      return Promise.resolve(ready);
    }
    if (this.#ended) return this.#error ? Promise.reject(this.#error) : Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(signal?.reason);
      };
      const waiter: Waiter = {
        resolve: (d) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(d);
        },
        reject: (err) => {
          signal?.removeEventListener("abort", onAbort);
          reject(err);
        },
      };
      this.#waiters.push(waiter);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Datagram> {
    while (true) {
      const datagram = await this.receive();
      if (datagram === null) return;
      yield datagram;
    }
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#link.close();
      this.#end(null);
      await this.#pumpDone;
    })();
    return this.#closing;
  }

  async #pump(): Promise<void> {
    try {
      while (!this.#ended) {
        const message = this.#link.receiveDatagram
          ? await this.#link.receiveDatagram()
          : await this.#link.receive();
        if (message === null) break;
        this.#accept(decodeDatagram(message));
      }
      this.#end(null);
    } catch (err) {
      this.#end(this.#closing ? null : err);
    }
  }

  #accept(datagram: Datagram): void {
    if (datagram.sequence <= this.#newest) {
      this.#stats.stale++;
      return;
    }
    this.#newest = datagram.sequence;
    this.#stats.received++;
    const waiter = this.#waiters.shift();
    if (waiter) {
      waiter.resolve(datagram);
      return;
    }
    if (this.#slot) this.#stats.superseded++;
    this.#slot = datagram;
  }

  #end(error: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = error;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) error ? w.reject(error) : w.resolve(null);
  }
}

/**
 * Opens a latest-state datagram channel on `link`. The channel reads the link from now on:
 * its best-effort lane when it has one (UDP), else its stream; on a link without that lane do
 * not call `link.receive()` yourself while the channel is open.
 *
 * @example
 * ```ts
 * const channel = openDatagramChannel(link);
 * await channel.send(new TextEncoder().encode(JSON.stringify({ x: 3, y: 4 })));
 * for await (const { sequence, data } of channel) render(sequence, data);
 * await channel.close();
 * ```
 */
export function openDatagramChannel(
  link: PeerLink,
  options: DatagramChannelOptions = {},
): DatagramChannel {
  return new LatestStateChannel(link, options);
}
