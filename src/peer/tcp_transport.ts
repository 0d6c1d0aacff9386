/**
 * The TCP {@link PeerTransport} (docs/design.md §6): length-prefixed frames over Deno.connect /
 * Deno.listen with TCP_NODELAY, the handshake of `handshake.ts`, then a {@link SessionLink}.
 *
 * Before the handshake is done a connection accepts frames of at most
 * `MAX_HANDSHAKE_FRAME_BYTES` into a buffer of that size (a longer announced frame is `EFRAME`
 * at once), and a listener runs at most `maxPendingHandshakes` handshakes: a connection past
 * that is closed at once. So unauthenticated connections hold at most about
 * `maxPendingHandshakes × MAX_HANDSHAKE_FRAME_BYTES` of read buffers.
 *
 * @module
 */
import { PeerError } from "../errors.ts";
import {
  DEFAULT_CONNECT_TIMEOUT_MS,
  MAX_HANDSHAKE_FRAME_BYTES,
  MAX_PENDING_TCP_HANDSHAKES,
} from "../limits.ts";
import type { Endpoint } from "../message/types.ts";
import { type Clock, type RandomSource, systemClock } from "../runtime.ts";
import { encodeFrame, type Frame, FrameReader, LENGTH_PREFIX_BYTES } from "./frame.ts";
import { initiateHandshake, respondHandshake } from "./handshake.ts";
import { KeepaliveChannel } from "./keepalive_channel.ts";
import { Handoff } from "./handoff.ts";
import { SessionLink } from "./session_link.ts";
import type {
  ConnectOptions,
  FrameChannel,
  ListenOptions,
  PeerLink,
  PeerListener,
  PeerTransport,
} from "./types.ts";

/** Options of {@link TcpTransport}. */
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

function endpointOf(addr: Deno.Addr): Endpoint {
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
class TcpChannel implements FrameChannel {
  #conn: Deno.TcpConn;
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

  constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
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
    else this.#reader.filled(n);
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
}

/**
 * Connects to and listens for peers over TCP.
 *
 * @example
 * ```ts
 * const tcp = new TcpTransport();
 * const link = await tcp.connect(peer.endpoint, { identity, expectedIdentityKey: peer.identityKey });
 * await link.send(new TextEncoder().encode("hello"));
 * await link.close();
 * ```
 */
export class TcpTransport implements PeerTransport {
  readonly kind = "tcp" as const;
  #options: TcpTransportOptions;

  constructor(options: TcpTransportOptions = {}) {
    const max = options.maxPendingHandshakes;
    if (max !== undefined && !(Number.isInteger(max) && max > 0)) {
      throw new RangeError(`maxPendingHandshakes ${max} must be a whole number ≥ 1`);
    }
    this.#options = options;
  }

  /** Dials `remote`, runs the handshake as initiator and returns the established link. */
  async connect(remote: Endpoint, options: ConnectOptions): Promise<PeerLink> {
    if (remote.transport !== "tcp") {
      throw new TypeError(`TcpTransport cannot reach a ${remote.transport} endpoint`);
    }
    options.signal?.throwIfAborted();
    const where = `${remote.address}:${remote.port}`;
    const timeoutMs = options.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const phase = new AbortController();
    const onAbort = () => phase.abort(options.signal?.reason);
    options.signal?.addEventListener("abort", onAbort, { once: true });
    const timer = new AbortController();
    (this.#options.clock ?? systemClock).sleep(timeoutMs, timer.signal).then(() =>
      phase.abort(
        new PeerError(
          "ETIMEOUT",
          `Cannot connect to peer at ${where}: no answer in ${timeoutMs} ms; try another peer`,
        ),
      ), () => {});
    let channel: TcpChannel | undefined;
    try {
      const conn = await Deno.connect({
        hostname: remote.address,
        port: remote.port,
        transport: "tcp",
        signal: phase.signal,
      });
      conn.setNoDelay(true);
      channel = new TcpChannel(conn);
      const local = options.localEndpoint ?? endpointOf(conn.localAddr);
      const result = await initiateHandshake(channel, {
        identity: options.identity,
        local,
        remote,
        expectedIdentityKey: options.expectedIdentityKey,
        random: this.#options.random,
        signal: phase.signal,
      });
      channel.established(); // the session opens each DATA body before it reads the next frame
      return new SessionLink(keepalive(channel, this.#options, result.peer.userId), result.cipher, {
        local,
        remote: { ...result.peer, endpoint: remote },
        transport: "tcp",
        disconnectTimeoutMs: this.#options.disconnectTimeoutMs,
        exclusiveFrames: true,
      });
    } catch (err) {
      channel?.close();
      if (phase.signal.aborted) throw phase.signal.reason;
      if (err instanceof PeerError) throw err;
      if (err instanceof Deno.errors.ConnectionRefused) {
        throw new PeerError(
          "EPEER",
          `Cannot connect to peer at ${where}: connection refused; ` +
            "the peer is not listening, try another peer",
          { cause: err },
        );
      }
      throw new PeerError(
        "EPEER",
        `Cannot connect to peer at ${where}: ${(err as Error).message}; try another peer`,
        { cause: err },
      );
    } finally {
      timer.abort();
      options.signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Listens on `local` (port 0 picks a free port) for peers (standby). */
  listen(local: { address: string; port: number }, options: ListenOptions): Promise<PeerListener> {
    try {
      const listener = Deno.listen({ hostname: local.address, port: local.port, transport: "tcp" });
      return Promise.resolve(new TcpPeerListener(listener, options, this.#options));
    } catch (err) {
      return Promise.reject(
        new PeerError(
          "EPEER",
          `Cannot listen on ${local.address}:${local.port}: ${(err as Error).message}; ` +
            "choose another address or port",
          { cause: err },
        ),
      );
    }
  }
}

interface Handshake {
  abort: AbortController;
  channel: TcpChannel;
  done?: Promise<void>;
}

/** Accepts connections, runs each handshake on its own, hands out only valid links. */
class TcpPeerListener implements PeerListener {
  readonly endpoint: Endpoint;
  #listener: Deno.TcpListener;
  #options: ListenOptions;
  #transport: TcpTransportOptions;
  #accepted = new Handoff<SessionLink>();
  #handshakes = new Set<Handshake>();
  #failure: PeerError | null = null;
  #closed = false;
  #loop: Promise<void>;
  #closing: Promise<void> | null = null;

  constructor(listener: Deno.TcpListener, options: ListenOptions, transport: TcpTransportOptions) {
    this.#listener = listener;
    this.#options = options;
    this.#transport = transport;
    this.endpoint = endpointOf(listener.addr);
    this.#loop = this.#acceptLoop();
  }

  accept(options: { signal?: AbortSignal } = {}): Promise<PeerLink> {
    return this.#accepted.take(
      options.signal,
      () => this.#closed || this.#failure ? this.#closedError() : undefined,
    );
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    try {
      this.#listener.close();
    } catch {
      // already closed
    }
    for (const h of this.#handshakes) {
      h.abort.abort();
      h.channel.close();
    }
    await this.#loop;
    await Promise.all([...this.#handshakes].map((h) => h.done));
    const unclaimed = this.#accepted.drain();
    await Promise.all(unclaimed.map((l) => l.close()));
    this.#accepted.fail(this.#closedError());
  }

  #closedError(): PeerError {
    const where = `${this.endpoint.address}:${this.endpoint.port}`;
    return this.#failure ?? new PeerError(
      "EPEER",
      `Cannot accept a peer on ${where}: the listener is closed; listen again`,
    );
  }

  async #acceptLoop(): Promise<void> {
    while (!this.#closed) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch (err) {
        if (this.#closed) return;
        if (err instanceof Deno.errors.ConnectionAborted) continue;
        this.#failure = new PeerError(
          "EPEER",
          `Cannot accept a peer on ${this.endpoint.address}:${this.endpoint.port}: ` +
            `${(err as Error).message}; listen again`,
          { cause: err },
        );
        this.#accepted.fail(this.#failure);
        return;
      }
      if (this.#closed) {
        conn.close();
        return;
      }
      this.#handshake(conn);
    }
  }

  #handshake(conn: Deno.TcpConn): void {
    const remote = endpointOf(conn.remoteAddr);
    const max = this.#transport.maxPendingHandshakes ?? MAX_PENDING_TCP_HANDSHAKES;
    if (this.#handshakes.size >= max) {
      try {
        conn.close();
      } catch {
        // already closed by the runtime
      }
      this.#transport.onDroppedConnection?.(
        new PeerError(
          "EPEER",
          `Cannot accept peer at ${remote.address}:${remote.port}: ${max} handshakes are ` +
            "already running; it may try again",
        ),
        remote,
      );
      return;
    }
    conn.setNoDelay(true);
    const timeoutMs = this.#options.handshakeTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const h: Handshake = { abort: new AbortController(), channel: new TcpChannel(conn) };
    const timer = new AbortController();
    (this.#transport.clock ?? systemClock).sleep(timeoutMs, timer.signal).then(() =>
      h.abort.abort(
        new PeerError(
          "ETIMEOUT",
          `Cannot accept peer at ${remote.address}:${remote.port}: no handshake in ` +
            `${timeoutMs} ms; nothing to do, the connection was dropped`,
        ),
      ), () => {});
    this.#handshakes.add(h);
    h.done = (async () => {
      try {
        const result = await respondHandshake(h.channel, {
          identity: this.#options.identity,
          accept: this.#options.accept,
          random: this.#transport.random,
          signal: h.abort.signal,
        });
        h.channel.established();
        const link = new SessionLink(
          keepalive(h.channel, this.#transport, result.peer.userId),
          result.cipher,
          {
            local: endpointOf(conn.localAddr),
            remote: { ...result.peer, endpoint: remote, dialled: result.connect.destination },
            transport: "tcp",
            disconnectTimeoutMs: this.#transport.disconnectTimeoutMs,
            exclusiveFrames: true,
          },
        );
        if (this.#closed) await link.close();
        else this.#accepted.put(link);
      } catch (err) {
        h.channel.close();
        if (!this.#closed) this.#transport.onDroppedConnection?.(err, remote);
      } finally {
        timer.abort();
        this.#handshakes.delete(h);
      }
    })();
  }
}
