/**
 * The TCP {@link PeerTransport} (docs/design.md "Peer connection"): length-prefixed frames
 * (`tcp_channel.ts`) over Deno.connect / Deno.listen with TCP_NODELAY, the handshake of
 * `handshake.ts`, then a `SessionLink`. Its listener (`tcp_listener.ts`) also punches (TCP
 * simultaneous open, `tcp_punch.ts`): it dials from its own port with `node:net`, whose socket the
 * same frame channel reads through `NodeSocketConn`.
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
import { DEFAULT_CONNECT_TIMEOUT_MS } from "../limits.ts";
import type { Endpoint } from "../message/types.ts";
import { systemClock, TIMER_CANCELLED } from "../runtime.ts";
import { initiateHandshake } from "./handshake.ts";
import { endpointOf, sessionOf, TcpChannel, type TcpTransportOptions } from "./tcp_channel.ts";
import { TcpPeerListener } from "./tcp_listener.ts";
import type {
  ConnectOptions,
  ListenOptions,
  PeerLink,
  PeerListener,
  PeerTransport,
} from "./types.ts";

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
      return sessionOf(channel, result, local, remote, this.#options);
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
      timer.abort(TIMER_CANCELLED);
      options.signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Listens on `local` (port 0 picks a free port) for peers (standby). */
  listen(local: { address: string; port: number }, options: ListenOptions): Promise<PeerListener> {
    try {
      const listener = Deno.listen({ hostname: local.address, port: local.port, transport: "tcp" });
      return Promise.resolve(new TcpPeerListener(listener, local.address, options, this.#options));
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
