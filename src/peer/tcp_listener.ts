/**
 * The standby listener of `TcpTransport`: accepts connections, runs each handshake on its own,
 * hands out only valid links; and punches (TCP simultaneous open, `tcp_punch.ts`) from its own
 * port, which it gives up for a moment per connect (docs/nat.md "TCP simultaneous open").
 *
 * @module
 */
import { connect, type Socket } from "node:net";
import { PeerError } from "../errors.ts";
import { toBase64 } from "../message/base64.ts";
import { bytesEqual } from "../message/bytes.ts";
import {
  DEFAULT_CONNECT_TIMEOUT_MS,
  MAX_PENDING_TCP_HANDSHAKES,
  PUNCH_TCP_QUIET_MS,
} from "../limits.ts";
import type { Endpoint } from "../message/types.ts";
import { exponentialBackoff, systemClock, systemRandom, TIMER_CANCELLED } from "../runtime.ts";
import { type HandshakeResult, initiateHandshake, respondHandshake } from "./handshake.ts";
import { Handoff } from "./handoff.ts";
import { NodeSocketConn } from "./node_socket_conn.ts";
import type { SessionLink } from "./session_link.ts";
import { endpointOf, sessionOf, TcpChannel, type TcpTransportOptions } from "./tcp_channel.ts";
import { TcpPunch } from "./tcp_punch.ts";
import type { ListenOptions, PeerLink, PeerListener, PunchOptions, PunchResult } from "./types.ts";
import { addPunch } from "./udp_punch.ts";

interface Handshake {
  abort: AbortController;
  /** Aborted when a controlling punch takes this connection over (it sent nothing yet). */
  takeover: AbortController;
  channel: TcpChannel;
  remote: Endpoint;
  /** The punch whose handshake runs on this connection instead of the responder's. */
  punch?: TcpPunch;
  done?: Promise<void>;
}

/** Resolves on the next macrotask: `net.connect` has bound its port and sent its SYN by then. */
function nextTask(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/**
 * Accepts connections, runs each handshake on its own, hands out only valid links; punches
 * (TCP simultaneous open, `tcp_punch.ts`) from its own port.
 */
export class TcpPeerListener implements PeerListener {
  readonly endpoint: Endpoint;
  #listener: Deno.TcpListener;
  #hostname: string;
  #options: ListenOptions;
  #transport: TcpTransportOptions;
  #accepted = new Handoff<SessionLink>();
  #handshakes = new Set<Handshake>();
  #failure: PeerError | null = null;
  #closed = false;
  #loop: Promise<void>;
  #closing: Promise<void> | null = null;
  #punches = new Map<string, TcpPunch>();
  #admit: "all" | "punched" = "all";
  /** Connects that take the port from the listener, one after the other. */
  #aside: Promise<void> = Promise.resolve();
  /**
   * While a punch's connect binds the port: `halted` resolves once the accept loop let go of
   * the closed listener (a pending accept holds its socket open), `resumed` once it listens again.
   */
  #paused: {
    halted: Promise<void>;
    halt: () => void;
    resumed: Promise<void>;
    resume: () => void;
  } | null = null;

  constructor(
    listener: Deno.TcpListener,
    hostname: string,
    options: ListenOptions,
    transport: TcpTransportOptions,
  ) {
    this.#listener = listener;
    this.#hostname = hostname;
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

  /**
   * TCP simultaneous open to one expected peer from this listener's port (docs/nat.md "TCP
   * simultaneous open"); the peer punches back at the same time. Resolves with the first link
   * that proves `peerKey`; `PeerError` `ETIMEOUT` when the window ends first, `EPEER` when the
   * listener is closed or already punching to that key; `RangeError` / `TypeError` for bad
   * options (TCP candidates only). The listener keeps accepting meanwhile: it stops listening
   * only while a connect binds its port, a moment per attempt. Once it settles, nothing of this
   * punch dials any more. The roles, the pacing and the bounds are in `tcp_punch.ts`.
   *
   * @example
   * ```ts
   * const listener = await new TcpTransport().listen({ address: "0.0.0.0", port: 0 }, { identity });
   * const { link, path } = await listener.punch!({ peerKey, candidates, windowMs: 10_000 });
   * ```
   */
  async punch(options: PunchOptions): Promise<PunchResult> {
    options.signal?.throwIfAborted();
    const punch: TcpPunch = new TcpPunch({
      ownKey: this.#options.identity.publicKey,
      clock: this.#transport.clock ?? systemClock,
      backoff: this.#transport.backoff ?? exponentialBackoff(100, 1000),
      random: this.#transport.random ?? systemRandom,
      dial: (remote, connectMs, signal) => this.#dial(punch, remote, connectMs, signal),
    }, options);
    const id = addPunch(this.#punches, options.peerKey, punch, {
      closed: this.#closed || this.#failure !== null,
      what: "Cannot open a TCP connection to peer",
    });
    try {
      const result = punch.run();
      // The peer's handshake may have come before this punch: the link waiting for accept()
      // is the punch's.
      const early = this.#accepted.claim((l) => bytesEqual(l.remote.identityKey, options.peerKey));
      if (early && !punch.offer(early)) this.#accepted.put(early);
      // The peer's connect may have reached this listener before the punch, waiting for the
      // CONNECT that only a controlling side sends: this side sends it now.
      if (punch.role === "controlling") {
        for (const h of this.#handshakes) {
          if (h.punch || h.channel.received) continue;
          this.#takeOver(h, punch);
        }
      }
      return await result;
    } finally {
      this.#punches.delete(id);
      await punch.stopped(); // settled means nothing of this punch dials any more
    }
  }

  /**
   * Whom this listener lets in. `all` (the default, standby): every peer the `accept` hook
   * allows. `punched`: only peers this listener is punching to; another's connection is closed
   * without an answer (not refused), so a punching peer dials again and is let in once the
   * listener stands by again. A terminal sets `punched` while it tries the peers of its reply
   * one by one.
   */
  admit(mode: "all" | "punched"): void {
    this.#admit = mode;
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
    this.#paused?.halt();
    this.#paused?.resume();
    for (const punch of this.#punches.values()) punch.cancel(this.#closedError());
    for (const h of this.#handshakes) {
      h.abort.abort();
      h.channel.close();
    }
    await this.#loop;
    await Promise.all([...this.#punches.values()].map((p) => p.stopped()));
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
      const listener = this.#listener;
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept();
      } catch (err) {
        if (this.#closed) return;
        if (this.#paused) {
          // A punch's connect is binding the port.
          const paused = this.#paused;
          paused.halt();
          await paused.resumed;
          continue;
        }
        if (listener !== this.#listener) continue;
        if (err instanceof Deno.errors.ConnectionAborted) continue;
        this.#failure ??= new PeerError(
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

  /**
   * Starts a connect from this listener's port: a listening socket holds the port against any
   * bind, so the listener steps aside until `net.connect` has bound it (both are SO_REUSEADDR,
   * so the listener may then take the port again beside the connecting socket); one connect at
   * a time. Resolves with the socket and its connect outcome.
   */
  #connectFrom(
    remote: Endpoint,
    signal: AbortSignal,
  ): Promise<{ socket: Socket; connected: Promise<void> }> {
    const turn = this.#aside.then(async () => {
      if (this.#closed || this.#failure) throw this.#closedError();
      signal.throwIfAborted(); // the punch ended while this connect waited for its turn
      let halt!: () => void, resume!: () => void;
      const halted = new Promise<void>((r) => halt = r);
      const resumed = new Promise<void>((r) => resume = r);
      this.#paused = { halted, halt, resumed, resume };
      try {
        this.#listener.close();
      } catch {
        // already closed
      }
      try {
        await halted;
        const socket = connect({
          host: remote.address,
          port: remote.port,
          localAddress: this.#hostname,
          localPort: this.endpoint.port,
        });
        socket.on("error", () => {}); // told through `connected` and the channel
        const connected = new Promise<void>((ok, fail) => {
          socket.once("connect", ok);
          socket.once("error", fail);
        });
        connected.catch(() => {});
        await nextTask();
        return { socket, connected };
      } finally {
        this.#listenAgain();
        this.#paused = null;
        resume();
      }
    });
    this.#aside = turn.then(() => {}, () => {});
    return turn;
  }

  #listenAgain(): void {
    if (this.#closed) return;
    const { port } = this.endpoint;
    try {
      this.#listener = Deno.listen({ hostname: this.#hostname, port, transport: "tcp" });
    } catch (err) {
      this.#failure ??= new PeerError(
        "EPEER",
        `Cannot listen on ${this.#hostname}:${port} again after a punch's connect: ` +
          `${(err as Error).message}; listen again`,
        { cause: err },
      );
      this.#accepted.fail(this.#failure);
      for (const punch of this.#punches.values()) punch.cancel(this.#failure);
    }
  }

  /** One connect of a punch from this port, then the punch's handshake on it. */
  async #dial(
    punch: TcpPunch,
    remote: Endpoint,
    connectMs: number,
    signal: AbortSignal,
  ): Promise<PeerLink> {
    signal.throwIfAborted();
    const { socket, connected } = await this.#connectFrom(remote, signal);
    const timer = new AbortController();
    const giveUp = new Promise<never>((_, reject) => {
      if (signal.aborted) return reject(signal.reason); // ended while the port was taken
      const onAbort = () => reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      timer.signal.addEventListener("abort", () => signal.removeEventListener("abort", onAbort));
      (this.#transport.clock ?? systemClock).sleep(connectMs, timer.signal).then(
        () => reject(new Error(`no answer in ${connectMs} ms`)),
        () => {},
      );
    });
    giveUp.catch(() => {});
    try {
      await Promise.race([connected, giveUp]);
    } catch (err) {
      socket.resetAndDestroy();
      throw err;
    } finally {
      timer.abort(TIMER_CANCELLED);
    }
    socket.setNoDelay(true);
    const channel = new TcpChannel(new NodeSocketConn(socket));
    const local: Endpoint = {
      transport: "tcp",
      address: socket.localAddress ?? this.endpoint.address,
      port: socket.localPort ?? this.endpoint.port,
    };
    return await this.#punchHandshake(punch, channel, local, remote, signal);
  }

  /**
   * The punch's handshake on one of its connections: initiator on the controlling side,
   * responder on the other; the peer must prove the punch's key (`EIDENTITY`).
   */
  async #punchHandshake(
    punch: TcpPunch,
    channel: TcpChannel,
    local: Endpoint,
    remote: Endpoint,
    signal: AbortSignal,
    accepted = false,
  ): Promise<PeerLink> {
    const where = `${remote.address}:${remote.port}`;
    const timeoutMs = this.#options.handshakeTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const timer = new AbortController();
    const phase = new AbortController();
    (this.#transport.clock ?? systemClock).sleep(timeoutMs, timer.signal).then(() =>
      phase.abort(
        new PeerError(
          "ETIMEOUT",
          `Cannot complete the handshake with ${where}: nothing came in ${timeoutMs} ms; ` +
            "nothing to do, the punch dials again",
        ),
      ), () => {});
    const abort = AbortSignal.any([signal, punch.signal, phase.signal]);
    let other: { userId: string; identityKey: Uint8Array } | null = null;
    try {
      const identity = this.#options.identity;
      const result = punch.role === "controlling"
        ? await initiateHandshake(channel, {
          identity,
          local: punch.options.localEndpoint ?? this.endpoint,
          remote,
          expectedIdentityKey: punch.peerKey,
          random: this.#transport.random,
          signal: abort,
        })
        : await this.#respondOrDial(punch, channel, remote, abort, (p) => {
          if (bytesEqual(p.identityKey, punch.peerKey)) return true;
          other = p;
          return false;
        }, accepted);
      return sessionOf(channel, result, local, remote, this.#transport);
    } catch (err) {
      // A RST: the punch may dial this candidate from this port again at once.
      channel.reset();
      if (abort.aborted) throw abort.reason;
      const claimed = other as { userId: string; identityKey: Uint8Array } | null;
      if (claimed) {
        throw new PeerError(
          "EIDENTITY",
          `Cannot accept peer ${claimed.userId} at ${where}: it has identity key ` +
            `${toBase64(claimed.identityKey)}, not the one this punch expects; ` +
            "report it and try another peer",
          { cause: err },
        );
      }
      throw err;
    } finally {
      timer.abort(TIMER_CANCELLED);
    }
  }

  /**
   * The controlled side's handshake on a punch's connection: responder; but on a connection it
   * dialled (not `accepted`) that stays silent for `PUNCH_TCP_QUIET_MS`, it sends CONNECT
   * itself, since the connect reached a listener that is not punching (`tcp_punch.ts`).
   */
  async #respondOrDial(
    punch: TcpPunch,
    channel: TcpChannel,
    remote: Endpoint,
    signal: AbortSignal,
    accept: (peer: { userId: string; identityKey: Uint8Array }) => boolean,
    accepted: boolean,
  ): Promise<HandshakeResult> {
    const random = this.#transport.random;
    const identity = this.#options.identity;
    if (accepted) return await respondHandshake(channel, { identity, accept, random, signal });
    const quiet = new AbortController();
    const watching = new AbortController();
    (this.#transport.clock ?? systemClock).sleep(PUNCH_TCP_QUIET_MS, watching.signal).then(
      () => channel.received || quiet.abort(),
      () => {},
    );
    try {
      return await respondHandshake(channel, {
        identity,
        accept,
        random,
        signal: AbortSignal.any([signal, quiet.signal]),
      });
    } catch (err) {
      if (signal.aborted || !quiet.signal.aborted) throw err;
    } finally {
      watching.abort(TIMER_CANCELLED);
    }
    return await initiateHandshake(channel, {
      identity,
      local: punch.options.localEndpoint ?? this.endpoint,
      remote,
      expectedIdentityKey: punch.peerKey,
      random,
      signal,
    });
  }

  /** The `accept` hook of the responder on an accepted connection, with `admit` applied. */
  #admits(peer: { userId: string; identityKey: Uint8Array }, channel: TcpChannel): boolean {
    const punch = this.#punches.get(toBase64(peer.identityKey));
    // The peer a controlled punch expects is let in: the caller asked for it by key, and its
    // ACK signature proves the key before the punch takes the link.
    if (punch?.role === "controlled") return true;
    if (this.#admit === "punched" && !punch) {
      // Not refused: closed without an answer, so a punching peer dials again and is let in
      // once this listener stands by again.
      channel.close();
      return false;
    }
    return this.#options.accept ? this.#options.accept(peer) : true;
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
    const h: Handshake = {
      abort: new AbortController(),
      takeover: new AbortController(),
      channel: new TcpChannel(conn),
      remote,
    };
    // A connection from a candidate of a controlling punch is that punch's.
    for (const punch of this.#punches.values()) {
      if (punch.role === "controlling" && punch.claims(remote)) {
        h.punch = punch;
        break;
      }
    }
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
    const local = endpointOf(conn.localAddr);
    h.done = (async () => {
      try {
        let result: HandshakeResult | null = null;
        if (!h.punch) {
          try {
            result = await respondHandshake(h.channel, {
              identity: this.#options.identity,
              accept: (p) => this.#admits(p, h.channel),
              random: this.#transport.random,
              signal: AbortSignal.any([h.abort.signal, h.takeover.signal]),
            });
          } catch (err) {
            if (!h.punch || h.abort.signal.aborted) throw err;
          }
        }
        if (!result) {
          // A punch's connection: its handshake role, its key.
          const punch = h.punch!;
          const link = await this.#punchHandshake(
            punch,
            h.channel,
            local,
            remote,
            h.abort.signal,
            true,
          );
          if (this.#closed || !punch.offer(link)) await link.close();
          return;
        }
        const link = sessionOf(h.channel, result, local, remote, this.#transport, true);
        if (this.#closed) await link.close();
        else if (!this.#punches.get(toBase64(result.peer.identityKey))?.offer(link)) {
          this.#accepted.put(link);
        }
      } catch (err) {
        h.channel.close();
        if (!this.#closed) this.#transport.onDroppedConnection?.(err, remote);
      } finally {
        timer.abort(TIMER_CANCELLED);
        this.#handshakes.delete(h);
      }
    })();
  }

  /** A controlling punch runs its handshake on `h` instead of the responder. */
  #takeOver(h: Handshake, punch: TcpPunch): void {
    if (h.punch || h.channel.received || !punch.claims(h.remote)) return;
    h.punch = punch;
    h.takeover.abort();
  }
}
