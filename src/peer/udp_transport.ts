/**
 * The UDP {@link PeerTransport} (docs/design.md "Peer connection"): one frame per datagram over
 * Deno.listenDatagram, the handshake of `handshake.ts` made loss-proof by
 * {@link DatagramFrameChannel}, then a {@link ReliableLink} whose DATA datagrams are at most
 * `maxDatagramBytes` long.
 *
 * - A listener (`udp_listener.ts`) has one socket and tells peers apart by their address and
 *   port; it answers a first CONNECT with a stateless COOKIE and starts a handshake only for a
 *   CONNECT that brings the cookie back; it answers late duplicates of a finished handshake or
 *   DISCONNECT without starting anything new.
 * - `connect()` opens its own socket (port 0) and takes datagrams from the dialled endpoint
 *   only.
 * - Data is a reliable, ordered stream ({@link ReliableLink}, issue 13): segments are acked
 *   by sealed STREAM_ACK frames and sent again when lost. Handshake frames and DISCONNECT are
 *   retransmitted; links send PING and end with `EPEER` "the peer vanished" after silence.
 * - A datagram forged with the right addresses and ports changes nothing: DATA that does not
 *   authenticate is dropped without moving the replay watermark.
 *
 * Needs `--unstable-net` (deno.json `"unstable": ["net"]`).
 *
 * @module
 */
import { PeerError } from "../errors.ts";
import { DEFAULT_CONNECT_TIMEOUT_MS } from "../limits.ts";
import type { Endpoint } from "../message/types.ts";
import {
  type Backoff,
  type Clock,
  exponentialBackoff,
  type RandomSource,
  systemClock,
  TIMER_CANCELLED,
} from "../runtime.ts";
import { DatagramFrameChannel } from "./datagram_channel.ts";
import { FRAME_HEADER_BYTES } from "./frame.ts";
import { initiateHandshake } from "./handshake.ts";
import { ReliableLink } from "./reliable_link.ts";
import type { ConnectOptions, ListenOptions, PeerLink, PeerTransport } from "./types.ts";
import { decodeUdpDatagram, UdpPeerListener, type UdpSettings, UdpSocket } from "./udp_listener.ts";

/** Default largest datagram: fits a 1280-byte IPv6 path with room for IP and UDP headers. */
export const DEFAULT_MAX_DATAGRAM_BYTES = 1200;
/** Default interval of PING on a UDP link, in ms. */
export const DEFAULT_KEEPALIVE_MS = 15_000;
/** Default silence after which a UDP peer is declared gone, in ms. */
export const DEFAULT_IDLE_TIMEOUT_MS = 45_000;
/** Frame header, u64 sequence, GCM tag and fragment flag around each DATA fragment. */
const DATA_OVERHEAD_BYTES = FRAME_HEADER_BYTES + 8 + 16 + 1;

/** Options of {@link UdpTransport}; every field has a default. */
export interface UdpTransportOptions {
  /** Source of handshake nonces; default `systemRandom`. */
  random?: RandomSource;
  /** Timers of retransmission, timeouts and keepalive; default `systemClock`. */
  clock?: Clock;
  /** Delay before each retransmission; default `exponentialBackoff(100, 1000)`. */
  backoff?: Backoff;
  /** PING interval once connected; default {@link DEFAULT_KEEPALIVE_MS}. */
  keepaliveMs?: number;
  /** Silence that ends a link, EPEER "vanished"; default {@link DEFAULT_IDLE_TIMEOUT_MS}. */
  idleTimeoutMs?: number;
  /** How long `close()` waits for DISCONNECT_ACK; default `DISCONNECT_TIMEOUT_MS`. */
  disconnectTimeoutMs?: number;
  /** Largest DATA datagram; default {@link DEFAULT_MAX_DATAGRAM_BYTES} (at least 128). */
  maxDatagramBytes?: number;
  /** Loss injection for tests: return true to drop a datagram ("in" or "out"); default none. */
  lossy?: (direction: "in" | "out", bytes: Uint8Array) => boolean;
  /** Told about every datagram or handshake a listener drops (for logging); default: none. */
  onDropped?: (err: unknown, remote: Endpoint) => void;
}

function bindAddressFor(remote: Endpoint): string {
  if (remote.address.includes(":")) return remote.address === "::1" ? "::1" : "::";
  return remote.address.startsWith("127.") ? "127.0.0.1" : "0.0.0.0";
}

/**
 * Connects to and listens for peers over UDP.
 *
 * @example
 * ```ts
 * const udp = new UdpTransport();
 * const link = await udp.connect(peer.endpoint, { identity, expectedIdentityKey: peer.identityKey });
 * await link.send(new TextEncoder().encode("state 42")); // reliable and ordered
 * await link.close();
 * ```
 */
export class UdpTransport implements PeerTransport {
  readonly kind = "udp" as const;
  #settings: UdpSettings;

  constructor(options: UdpTransportOptions = {}) {
    const maxDatagram = options.maxDatagramBytes ?? DEFAULT_MAX_DATAGRAM_BYTES;
    if (!Number.isInteger(maxDatagram) || maxDatagram < 128) {
      throw new RangeError(`maxDatagramBytes ${maxDatagram} must be a whole number ≥ 128`);
    }
    const { keepaliveMs, idleTimeoutMs, disconnectTimeoutMs } = options;
    for (const [name, ms] of Object.entries({ keepaliveMs, idleTimeoutMs, disconnectTimeoutMs })) {
      if (ms !== undefined && !(ms > 0)) {
        throw new RangeError(`${name} ${ms} must be a positive number of milliseconds`);
      }
    }
    this.#settings = {
      random: options.random,
      clock: options.clock ?? systemClock,
      backoff: options.backoff ?? exponentialBackoff(100, 1000),
      keepaliveMs: options.keepaliveMs ?? DEFAULT_KEEPALIVE_MS,
      idleTimeoutMs: options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
      disconnectTimeoutMs: options.disconnectTimeoutMs,
      maxFragmentBytes: maxDatagram - DATA_OVERHEAD_BYTES,
      lossy: options.lossy,
      onDropped: options.onDropped,
    };
  }

  /**
   * Runs the handshake with `remote` from a fresh socket, retransmitting until answered or
   * `timeoutMs` (`ETIMEOUT`; a UDP peer that is not there never says so).
   */
  async connect(remote: Endpoint, options: ConnectOptions): Promise<PeerLink> {
    if (remote.transport !== "udp") {
      throw new TypeError(`UdpTransport cannot reach a ${remote.transport} endpoint`);
    }
    options.signal?.throwIfAborted();
    const s = this.#settings;
    const where = `${remote.address}:${remote.port}`;
    const timeoutMs = options.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const phase = new AbortController();
    const onAbort = () => phase.abort(options.signal?.reason);
    options.signal?.addEventListener("abort", onAbort, { once: true });
    const timer = new AbortController();
    s.clock.sleep(timeoutMs, timer.signal).then(() =>
      phase.abort(
        new PeerError(
          "ETIMEOUT",
          `Cannot connect to peer at ${where}: no answer in ${timeoutMs} ms; try another peer`,
        ),
      ), () => {});
    let socket: UdpSocket | undefined;
    let channel: DatagramFrameChannel | undefined;
    try {
      socket = UdpSocket.open({ address: bindAddressFor(remote), port: 0 }, s.lossy);
      const own = socket;
      channel = new DatagramFrameChannel({
        role: "initiator",
        remote,
        sendDatagram: (bytes) => own.send(bytes, remote),
        clock: s.clock,
        backoff: s.backoff,
        keepaliveMs: s.keepaliveMs,
        idleTimeoutMs: s.idleTimeoutMs,
        onClose: () => own.close(),
      });
      const ch = channel;
      own.run((bytes, from) => {
        if (from.address !== remote.address || from.port !== remote.port) return;
        try {
          ch.deliver(decodeUdpDatagram(bytes), bytes);
        } catch {
          // not a mailpeer frame: dropped
        }
      });
      const local = options.localEndpoint ?? own.endpoint;
      const result = await initiateHandshake(channel, {
        identity: options.identity,
        local,
        remote,
        expectedIdentityKey: options.expectedIdentityKey,
        random: s.random,
        ordered: false,
        signal: phase.signal,
      });
      channel.establish(result.cipher);
      return new ReliableLink(channel, result.cipher, {
        local,
        remote: { ...result.peer, endpoint: remote },
        disconnectTimeoutMs: s.disconnectTimeoutMs,
        maxFragmentBytes: s.maxFragmentBytes,
        clock: s.clock,
      });
    } catch (err) {
      if (channel) channel.close();
      else socket?.close();
      if (phase.signal.aborted) throw phase.signal.reason;
      if (err instanceof PeerError) throw err;
      throw new PeerError(
        "EPEER",
        `Cannot connect to peer at ${where}: ${(err as Error).message}; try another peer`,
        { cause: err },
      );
    } finally {
      timer.abort(TIMER_CANCELLED);
      options.signal?.removeEventListener("abort", onAbort);
    }
  }

  /**
   * Listens on `local` (port 0 picks a free port) for peers (standby). The listener can also
   * punch a hole to an expected peer from its socket (`UdpPeerListener.punch`, `udp_punch.ts`).
   */
  listen(
    local: { address: string; port: number },
    options: ListenOptions,
  ): Promise<UdpPeerListener> {
    try {
      const socket = UdpSocket.open(local, this.#settings.lossy);
      return Promise.resolve(new UdpPeerListener(socket, options, this.#settings));
    } catch (err) {
      return Promise.reject(err);
    }
  }
}
