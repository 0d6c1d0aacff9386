/**
 * One TCP connection as a {@link FrameChannel}: length-prefixed frames over a {@link ByteConn}
 * (a `Deno.TcpConn`, or a `node:net` socket through `NodeSocketConn`), and the session link an
 * established channel carries. Shared by `TcpTransport.connect()` and `TcpPeerListener`.
 *
 * @module
 */
import { PeerError } from "../errors.ts";
import { MAX_HANDSHAKE_FRAME_BYTES } from "../protocol.ts";
import type { Endpoint } from "../message/types.ts";
import type { Backoff, Clock, RandomSource } from "../runtime.ts";
import { encodeFrame, type Frame, FrameReader, LENGTH_PREFIX_BYTES } from "./frame.ts";
import type { HandshakeResult } from "./handshake.ts";
import { KeepaliveChannel } from "./keepalive_channel.ts";
import type { ByteConn } from "./node_socket_conn.ts";
import { SessionLink } from "./session_link.ts";
import type { FrameChannel } from "./types.ts";

/** Options of `TcpTransport` (tcp_transport.ts); its channels and listeners take them too. */
export interface TcpTransportOptions {
  /** Source of handshake nonces; default `systemRandom`. */
  random?: RandomSource;
  /** How long `close()` waits for DISCONNECT_ACK; default `DISCONNECT_TIMEOUT_MS`. */
  disconnectTimeoutMs?: number;
  /** Told about every incoming connection a listener drops (for logging); default: none. */
  onDroppedConnection?: (err: unknown, remote: Endpoint) => void;
  /** PING interval on an established link; default `PEER_KEEPALIVE_MS`. */
  keepaliveMs?: number;
  /** Silence after which the peer counts as vanished; default `PEER_IDLE_TIMEOUT_MS`. */
  idleTimeoutMs?: number;
  /** Timers for the connect and handshake timeouts and keepalive; default the system clock. */
  clock?: Clock;
  /**
   * How long a punch gives its n-th connect to a candidate before it dials again (0-based);
   * default 100 ms doubling to 1 s, as the UDP transport's.
   */
  backoff?: Backoff;
  /**
   * Handshakes a listener runs at once; a connection past it is closed at once (and reported
   * to `onDroppedConnection`); default `MAX_PENDING_TCP_HANDSHAKES`.
   */
  maxPendingHandshakes?: number;
}

function keepalive(
  channel: FrameChannel,
  options: TcpTransportOptions,
  peer: string,
): FrameChannel {
  return new KeepaliveChannel(channel, {
    peer: `peer ${peer}`,
    ...(options.keepaliveMs !== undefined ? { keepaliveMs: options.keepaliveMs } : {}),
    ...(options.idleTimeoutMs !== undefined ? { idleTimeoutMs: options.idleTimeoutMs } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
  });
}

/**
 * The established link on a channel whose handshake is done: the session opens each DATA body
 * before it reads the next frame, so bodies may be views into the channel's buffer.
 */
export function sessionOf(
  channel: TcpChannel,
  result: HandshakeResult,
  local: Endpoint,
  remote: Endpoint,
  options: TcpTransportOptions,
  responder = false,
): SessionLink {
  channel.established();
  return new SessionLink(keepalive(channel, options, result.peer.userId), result.cipher, {
    local,
    // A responder learns which of its endpoints the peer dialled from the signed CONNECT.
    remote: {
      ...result.peer,
      endpoint: remote,
      ...(responder ? { dialled: result.connect.destination } : {}),
    },
    transport: "tcp",
    disconnectTimeoutMs: options.disconnectTimeoutMs,
    exclusiveFrames: true,
  });
}

export function endpointOf(addr: Deno.Addr): Endpoint {
  const net = addr as Deno.NetAddr;
  return { transport: "tcp", address: net.hostname, port: net.port };
}

function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then((value) => {
      signal.removeEventListener("abort", onAbort);
      resolve(value);
    }, (err) => {
      signal.removeEventListener("abort", onAbort);
      reject(err);
    });
  });
}

/**
 * Frames over one TCP connection. Reads go straight into one reused buffer (`FrameReader`).
 * During the handshake frames are at most `MAX_HANDSHAKE_FRAME_BYTES` and each received body is
 * a copy; after {@link TcpChannel.established} frames may be as long as `MAX_FRAME_BYTES` and a
 * body is a view into the buffer, valid until the next `receive()`, so a session reading bulk
 * data allocates nothing per frame and opens each body out of place.
 */
export class TcpChannel implements FrameChannel {
  #conn: ByteConn;
  #reader = new FrameReader({
    capacity: LENGTH_PREFIX_BYTES + MAX_HANDSHAKE_FRAME_BYTES,
    maxFrameBytes: MAX_HANDSHAKE_FRAME_BYTES,
  });
  #lend = false;
  #filling: Promise<void> | null = null;
  #writing: Promise<void> = Promise.resolve();
  #failure: unknown = null;
  #eof = false;
  #closed = false;
  #received = false;

  constructor(conn: ByteConn) {
    this.#conn = conn;
  }

  /** True once any byte came from the peer. */
  get received(): boolean {
    return this.#received;
  }

  send(frame: Frame): Promise<void> {
    const bytes = encodeFrame(frame); // `encoded` when the sender built it in place
    const run = this.#writing.then(async () => {
      if (this.#closed) {
        throw new PeerError(
          "EPEER",
          "Cannot send to the peer: the connection is closed; reconnect",
        );
      }
      try {
        for (let at = 0; at < bytes.length;) at += await this.#conn.write(bytes.subarray(at));
      } catch (err) {
        throw new PeerError(
          "EPEER",
          `Cannot send to the peer: ${(err as Error).message}; reconnect or try another peer`,
          { cause: err },
        );
      }
    });
    this.#writing = run.catch(() => {});
    return run;
  }

  /**
   * The handshake is done: frames up to `MAX_FRAME_BYTES` are accepted from now on, and a
   * received body is only valid until the next `receive()` call.
   */
  established(): void {
    this.#reader.allow();
    this.#lend = true;
  }

  async receive(options: { signal?: AbortSignal } = {}): Promise<Frame | null> {
    const { signal } = options;
    while (true) {
      let frame: Frame | null;
      try {
        frame = this.#reader.next(); // frames read before a failure still count
      } catch (err) {
        this.#failure ??= err;
        throw this.#failure;
      }
      if (frame) return this.#lend ? frame : { type: frame.type, body: frame.body.slice() };
      if (this.#failure) throw this.#failure;
      if (this.#closed) return null;
      if (this.#eof) {
        if (this.#reader.buffered === 0) return null;
        this.#failure = new PeerError(
          "EFRAME",
          "Cannot decode a peer frame: the connection ended inside a frame; the peer crashed",
        );
        throw this.#failure;
      }
      signal?.throwIfAborted();
      if (!this.#filling) {
        const filling = this.#fill().finally(() => this.#filling = null);
        filling.catch(() => {});
        this.#filling = filling;
      }
      await (signal ? raceAbort(this.#filling, signal) : this.#filling);
    }
  }

  async #fill(): Promise<void> {
    const space = this.#reader.space();
    let n: number | null;
    try {
      n = await this.#conn.read(space);
    } catch (err) {
      if (this.#closed) return;
      this.#failure = new PeerError(
        "EPEER",
        `Cannot receive from the peer: ${(err as Error).message}; reconnect or try another peer`,
        { cause: err },
      );
      return;
    }
    if (n === null) this.#eof = true;
    else {
      if (n > 0) this.#received = true;
      this.#reader.filled(n);
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // already closed by the runtime
    }
  }

  /** Closes with a RST where the connection can (`ByteConn.reset`): no TIME_WAIT is left. */
  reset(): void {
    if (this.#closed || !this.#conn.reset) return this.close();
    this.#closed = true;
    try {
      this.#conn.reset();
    } catch {
      // already closed by the runtime
    }
  }
}
