/**
 * The UDP socket wrapper and the standby listener of `UdpTransport`: one socket for every
 * peer, datagrams demultiplexed by source address and port, one {@link DatagramFrameChannel}
 * per peer. A first CONNECT from a new address is answered, statelessly, with a COOKIE
 * (`connect_cookie.ts`); only a CONNECT that carries a valid cookie back starts a handshake, so
 * spoofed CONNECTs neither amplify nor take handshake slots. After a link or a refused handshake ends, the listener remembers the peer for
 * `TOMBSTONE_MS`: a late duplicate CONNECT gets the same refusal again (never a second
 * handshake) and a repeated DISCONNECT gets its DISCONNECT_ACK again.
 *
 * The listener's socket also *initiates*: {@link UdpPeerListener.punch} punches a hole to one
 * expected peer from it (`udp_punch.ts`), and {@link UdpPeerListener.stunSocket} lets STUN learn
 * the mapping of this very socket and a TURN client (`turn_client.ts`) keep a relay on it: STUN
 * messages and TURN ChannelData are handed over with their source, never decoded as frames.
 *
 * A listener can also speak through that relay ({@link UdpPeerListener.attachRelay}): what the
 * relay delivers from peer P enters the demultiplexer as if it came from P's address (the
 * address the TURN server saw), under a key of its own ("the relay route"), so the same cookie,
 * handshake and link rules apply, and everything to that peer goes back through the relay
 * (ChannelData once a channel is bound). P needs nothing TURN-aware: it sends to the relayed
 * address like to any candidate. Permissions: each punch permits its candidates' addresses.
 *
 * @module
 */
import { TIMER_CANCELLED } from "../runtime.ts";
import { PeerError } from "../errors.ts";
import { toBase64 } from "../message/base64.ts";
import { bytesEqual } from "../message/bytes.ts";
import { DEFAULT_CONNECT_TIMEOUT_MS, LISTENER_MAX_AUX_SOCKETS } from "../limits.ts";
import { ConnectCookies } from "./connect_cookie.ts";
import type { Endpoint } from "../message/types.ts";
import type { Backoff, Clock, RandomSource } from "../runtime.ts";
import { DatagramFrameChannel } from "./datagram_channel.ts";
import { type ConnectWithCookie, decodeConnectWithCookie, encodeCookie } from "./frame.ts";
import { decodeDatagram, encodeDatagram, type Frame, FrameType } from "./frame.ts";
import { initiateHandshake, respondHandshake } from "./handshake.ts";
import { Handoff } from "./handoff.ts";
import { ReliableLink } from "./reliable_link.ts";
import type { SessionCipher } from "./session_crypto.ts";
import type {
  ListenerRelay,
  ListenerStunSocket,
  ListenOptions,
  PeerLink,
  PeerListener,
  PunchOptions,
  PunchResult,
} from "./types.ts";
import { addPunch, UdpPunch } from "./udp_punch.ts";
import {
  isPathFrame,
  type LinkPath,
  LinkPaths,
  pathIdOf,
  pathKey,
  type Route,
} from "./link_paths.ts";
import { FRAME_HEADER_BYTES, PATH_ID_BYTES } from "./frame.ts";
import { MAX_FRAME_BYTES, PEER_FRAME_VERSION } from "../protocol.ts";

/** `UdpTransportOptions` with their defaults applied, shared by connect and listeners. */
export interface UdpSettings {
  random?: RandomSource;
  clock: Clock;
  backoff: Backoff;
  keepaliveMs: number;
  idleTimeoutMs: number;
  disconnectTimeoutMs?: number;
  maxFragmentBytes: number;
  lossy?: (direction: "in" | "out", bytes: Uint8Array) => boolean;
  onDropped?: (err: unknown, remote: Endpoint) => void;
}

// ---- socket ---------------------------------------------------------------------------------

type Lossy = UdpSettings["lossy"];
/** Consecutive receive errors after which a socket is treated as broken. */
const MAX_RECEIVE_ERRORS = 100;
/** The largest UDP payload (65,535 − 8 − 20), as Deno's own receive buffer. */
const RECEIVE_BUFFER_BYTES = 65_507;
/** The slab that received DATA datagrams are copied into, one after another (`UdpSocket.run`). */
const DATA_SLAB_BYTES = 16 * 1024;

/**
 * `decodeDatagram`, but a DATA frame's body is a view of `bytes` rather than a copy: `bytes`
 * comes from {@link UdpSocket.run} (or a relay that takes it from there) and is never
 * overwritten. Anything else is decoded, and checked, as `decodeDatagram` does.
 */
export function decodeUdpDatagram(bytes: Uint8Array): Frame {
  if (
    bytes[0] === PEER_FRAME_VERSION && bytes[1] === FrameType.DATA &&
    bytes.length <= MAX_FRAME_BYTES
  ) {
    return { type: FrameType.DATA, body: bytes.subarray(FRAME_HEADER_BYTES) };
  }
  return decodeDatagram(bytes);
}

/**
 * An IPv4-mapped IPv6 address (`::ffff:198.18.0.1`, how a dual-stack socket bound to `::` sees
 * an IPv4 source on Linux) as the IPv4 address it is; any other address as given. So a
 * listener on `::` keys, cookies and compares IPv4 peers exactly as one on `0.0.0.0` does
 * (docs/nat.md "IPv6").
 */
export function unmapIPv4(address: string): string {
  const m = /^::ffff:(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})$/i.exec(address);
  return m ? m[1]! : address;
}

/**
 * One UDP socket with the loss hook applied in both directions. Bound to `::`, it is
 * dual-stack on Linux (`net.ipv6.bindv6only = 0`): IPv4 sources come in as plain IPv4
 * ({@link unmapIPv4}), and sending to an IPv4 address works as it is.
 */
export class UdpSocket {
  readonly endpoint: Endpoint;
  #conn: Deno.DatagramConn;
  #lossy: Lossy;
  #closed = false;

  private constructor(conn: Deno.DatagramConn, lossy: Lossy) {
    this.#conn = conn;
    this.#lossy = lossy;
    const addr = conn.addr as Deno.NetAddr;
    this.endpoint = { transport: "udp", address: addr.hostname, port: addr.port };
  }

  /** Binds a socket; `EPEER` when the address is taken or unusable. */
  static open(local: { address: string; port: number }, lossy: Lossy): UdpSocket {
    try {
      const conn = Deno.listenDatagram({
        transport: "udp",
        hostname: local.address,
        port: local.port,
      });
      return new UdpSocket(conn, lossy);
    } catch (err) {
      throw new PeerError(
        "EPEER",
        `Cannot open a UDP socket on ${local.address}:${local.port}: ${(err as Error).message}; ` +
          "choose another address or port",
        { cause: err },
      );
    }
  }

  /** Sends one datagram unless the loss hook drops it. */
  async send(bytes: Uint8Array, to: Endpoint): Promise<void> {
    if (this.#lossy?.("out", bytes)) return;
    try {
      await this.#conn.send(bytes, { transport: "udp", hostname: to.address, port: to.port });
    } catch (err) {
      throw new PeerError(
        "EPEER",
        `Cannot send to peer at ${to.address}:${to.port}: ${(err as Error).message}; ` +
          "try another peer",
        { cause: err },
      );
    }
  }

  /**
   * Reads datagrams until the socket closes. Each is read into one reused buffer and handed on
   * as a copy of its own, never overwritten (docs/performance.md "UDP stream": `receive()`
   * without a buffer allocates and zeroes 64 KiB per datagram, and a buffer of its own per
   * datagram costs about as much as the socket). A DATA datagram's copy is a piece of a shared
   * {@link DATA_SLAB_BYTES} slab: DATA is opened at once and not kept (`datagram_channel.ts`
   * copies what it holds before the handshake ends), so a slab is not held for long.
   */
  async run(onDatagram: (bytes: Uint8Array, from: Endpoint) => void): Promise<void> {
    let errors = 0;
    const buffer = new Uint8Array(RECEIVE_BUFFER_BYTES);
    let slab = new Uint8Array(0);
    let slabAt = 0;
    while (!this.#closed && errors < MAX_RECEIVE_ERRORS) {
      let bytes: Uint8Array;
      let addr: Deno.NetAddr;
      try {
        const [b, a] = await this.#conn.receive(buffer);
        if (b[1] === FrameType.DATA && b.length <= DATA_SLAB_BYTES) {
          if (slab.length - slabAt < b.length) {
            [slab, slabAt] = [new Uint8Array(DATA_SLAB_BYTES), 0];
          }
          bytes = slab.subarray(slabAt, slabAt += b.length);
          bytes.set(b);
        } else bytes = b.slice();
        [addr, errors] = [a as Deno.NetAddr, 0];
      } catch {
        errors++; // closed, or an ICMP error some systems report on UDP sockets
        continue;
      }
      if (this.#lossy?.("in", bytes)) continue;
      const address = unmapIPv4(addr.hostname);
      onDatagram(bytes, { transport: "udp", address, port: addr.port });
    }
  }

  /** Closes the socket; idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
  }
}

// ---- listener -------------------------------------------------------------------------------

/** Handshakes a listener runs at once; more CONNECTs from new addresses are dropped. */
const MAX_PENDING_HANDSHAKES = 256;
/** Peers a listener remembers after their link ended, and for how long (ms). */
const MAX_TOMBSTONES = 1024;
const TOMBSTONE_MS = 30_000;

interface Peer {
  channel: DatagramFrameChannel;
  /** Set while the handshake runs. */
  handshake: AbortController | null;
  done?: Promise<void>;
  /** The path frames to this peer take (it changes when the link moves, `link_paths.ts`). */
  path: LinkPath;
  /** The demultiplexer keys of this peer: the first path's, then each path admitted. */
  keys: Set<string>;
  /** Once the link is up: its paths, and the path id that finds it from an unknown address. */
  paths?: LinkPaths;
  pathId?: string;
  /** Local ports of the auxiliary sockets this link's sprays opened and still hold. */
  aux: Set<number>;
}

/** A STUN message: first two bits zero, magic cookie 0x2112A442 at byte 4 (RFC 8489 §5). */
function isStun(b: Uint8Array): boolean {
  return b.length >= 20 && b[0]! < 2 && b[4] === 0x21 && b[5] === 0x12 && b[6] === 0xa4 &&
    b[7] === 0x42;
}

/**
 * TURN ChannelData (RFC 8656 §12.4): the first byte is 0x40–0x4F (RFC 7983), which no peer
 * frame starts with (a datagram starts with the frame version).
 */
function isChannelData(b: Uint8Array): boolean {
  return b.length >= 4 && b[0]! >= 0x40 && b[0]! <= 0x4f;
}

/** The demultiplexer's key: the source address and port, and the route they came by. */
function keyOf(e: Endpoint, route: Route = "direct"): string {
  return pathKey({ route, remote: e });
}

function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  return a.address === b.address && a.port === b.port;
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array): boolean {
  return a !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);
}

/** One socket for every peer: demultiplexes datagrams by source address and port. */
export class UdpPeerListener implements PeerListener {
  readonly endpoint: Endpoint;
  #socket: UdpSocket;
  #options: ListenOptions;
  #s: UdpSettings;
  #peers = new Map<string, Peer>();
  #tombstones = new Map<string, { record: DatagramFrameChannel["record"]; until: number }>();
  #accepted = new Handoff<ReliableLink>();
  #cookies: ConnectCookies;
  #closed = false;
  #closing: Promise<void> | null = null;
  #loop: Promise<void>;
  #punches = new Map<string, UdpPunch>();
  #admit: "all" | "punched" = "all";
  #stun = new Set<(bytes: Uint8Array, from: Endpoint) => void>();
  #relay: ListenerRelay | null = null;
  #relayOff: (() => void) | null = null;
  /** Established links by path id (base64), for PATH_* frames from addresses not known yet. */
  #byPathId = new Map<string, Peer>();
  /** Auxiliary sockets of sprays (`link_paths.ts`), by local port. */
  #aux = new Map<number, UdpSocket>();

  constructor(socket: UdpSocket, options: ListenOptions, settings: UdpSettings) {
    this.#socket = socket;
    this.#options = options;
    this.#s = settings;
    this.#cookies = new ConnectCookies({ clock: settings.clock, random: settings.random });
    this.endpoint = socket.endpoint;
    this.#loop = socket.run((bytes, from) => this.#datagram(bytes, from));
  }

  accept(options: { signal?: AbortSignal } = {}): Promise<PeerLink> {
    return this.#accepted.take(
      options.signal,
      () => this.#closed ? this.#closedError() : undefined,
    );
  }

  /**
   * Punches a hole to one expected peer from this listener's socket (docs/nat.md "UDP hole
   * punching"); the peer punches back at the same time. Resolves with the first link that proves
   * `peerKey`; `PeerError` `ETIMEOUT` when the window ends first, `EPEER` when the listener is
   * closed or already punching to that key; `RangeError` / `TypeError` for bad options. Once it
   * settles, no attempt or probe of this punch sends anything more. The roles, the pacing and the
   * bounds are in `udp_punch.ts`. A link with another peer still goes to `accept()`; a link with
   * this peer that is waiting for `accept()` when the punch starts (its handshake came first) is
   * the punch's result at once.
   *
   * @example
   * ```ts
   * const listener = await new UdpTransport().listen({ address: "0.0.0.0", port: 0 }, { identity });
   * const { link, path } = await listener.punch({ peerKey, candidates, windowMs: 10_000 });
   * ```
   */
  async punch(options: PunchOptions): Promise<PunchResult> {
    options.signal?.throwIfAborted();
    const s = this.#s;
    const punch = new UdpPunch({
      identity: this.#options.identity,
      local: this.endpoint,
      clock: s.clock,
      backoff: s.backoff,
      random: s.random,
      initiate: (remote, expectedKey, signal, route, claim) =>
        this.#initiate(remote, expectedKey, options, signal, route, claim),
      send: (bytes, to) => this.#socket.send(bytes, to),
    }, options);
    const id = addPunch(this.#punches, options.peerKey, punch, {
      closed: this.#closed,
      what: "Cannot punch a hole to peer",
    });
    try {
      this.#permitCandidates(options);
      const result = punch.run();
      // The peer's handshake may have come before this punch (its introduction came first):
      // the link waiting for accept() is the punch's.
      const early = this.#accepted.claim((l) => bytesEqual(l.remote.identityKey, options.peerKey));
      if (early && !punch.offer(early)) this.#accepted.put(early);
      const won = await result;
      // A path to one of the peer's relay candidates is relayed: a direct one may replace it.
      for (const c of options.candidates) if (c.kind === "relay") won.link.paths?.markRelayed(c);
      // Through our own relay: every packet goes through the TURN server (docs/nat.md).
      const relayed = this.#relay?.relayed;
      return relayed && sameEndpoint(won.local, relayed) ? { ...won, path: "relayed" } : won;
    } finally {
      this.#punches.delete(id);
      await punch.stopped(); // settled means nothing of this punch sends any more
    }
  }

  /**
   * With a relay attached, permits the address of every candidate of the punch's peer, so that
   * what the peer sends to the relayed address (its probes, its CONNECTs) is relayed to us: a
   * permission is per IP address (RFC 8656 §9), so one per distinct address, and the relay
   * caps them (`TURN_MAX_PERMISSIONS`). Not awaited: the punch's retransmissions cover the
   * round trip; a refusal is told through `onEvent` and the punch goes on without that address.
   */
  #permitCandidates(options: PunchOptions): void {
    const relay = this.#relay;
    if (!relay || relay.closed) return;
    const addresses = new Set(options.candidates.map((c) => c.address));
    for (const address of addresses) {
      relay.permit(address).catch((error) => {
        options.onEvent?.({ type: "permit-failed", address, error });
      });
    }
  }

  /**
   * Speaks through `relay`, a TURN allocation on this listener's own socket (`stunSocket()`):
   * what it delivers from a peer enters the demultiplexer as that peer's datagrams on the relay
   * route (cookie, handshake and link as for any peer), and frames to a peer whose datagrams
   * came that way go back through `relay.send` (ChannelData once the channel this listener binds
   * for it is up). From now on every punch permits its candidates' addresses on the relay. The
   * listener owns the relay: it releases it before its socket closes (after the last link).
   * `EPEER` when the listener is closed or has a relay already.
   *
   * @example
   * ```ts ignore
   * const turn = await TurnClient.allocate(server, { socket: listener.stunSocket() });
   * listener.attachRelay(turn); // announce turn.relayed as a relay candidate
   * ```
   */
  attachRelay(relay: ListenerRelay): void {
    if (this.#closed || this.#relay) {
      throw new PeerError(
        "EPEER",
        `Cannot attach a relay to the listener on ${this.endpoint.address}:${this.endpoint.port}: ` +
          (this.#closed ? "the listener is closed; listen again" : "it has one already"),
      );
    }
    this.#relay = relay;
    this.#relayOff = relay.onData((peer, bytes) => this.#datagram(bytes, peer, "relay"));
  }

  /** The relay attached with {@link attachRelay}, if any. */
  get relay(): ListenerRelay | undefined {
    return this.#relay ?? undefined;
  }

  /** A peer in the demultiplexer under `key`, with its frame channel sending by its path. */
  #peer(role: "initiator" | "responder", remote: Endpoint, key: string, route: Route): Peer {
    const s = this.#s;
    const peer = {
      handshake: new AbortController(),
      path: { route, remote },
      keys: new Set([key]),
      aux: new Set<number>(),
    } as Peer;
    peer.channel = new DatagramFrameChannel({
      role,
      remote,
      sendDatagram: (b, path) => {
        const p = path ?? peer.path;
        return this.#sendVia(p.route, b, p.remote, p.via);
      },
      onPathFrame: (type, plaintext, via) => peer.paths?.received(type, plaintext, via),
      clock: s.clock,
      backoff: s.backoff,
      keepaliveMs: s.keepaliveMs,
      idleTimeoutMs: s.idleTimeoutMs,
      onClose: (c) => this.#released(key, c),
    });
    this.#peers.set(key, peer);
    this.#tombstones.delete(key);
    return peer;
  }

  /**
   * The handshake with `peer` succeeded: its channel seals from now on, and its paths
   * (`link_paths.ts`) may move it; the path id finds it from addresses not known yet.
   */
  async #established(peer: Peer, cipher: SessionCipher, transcriptHash: Uint8Array) {
    const s = this.#s;
    const pathId = await pathIdOf(transcriptHash);
    peer.channel.establish(cipher, pathId);
    peer.handshake = null;
    peer.paths = new LinkPaths({
      clock: s.clock,
      backoff: s.backoff,
      random: s.random,
      send: (type, plaintext, path) => peer.channel.sendPath(type, plaintext, path),
      admit: (path) => this.#admitPath(peer, path),
      forget: (path) => {
        const key = pathKey(path);
        if (this.#peers.get(key) === peer && peer.keys.delete(key)) this.#peers.delete(key);
      },
      use: (path) => peer.path = path,
      heardAt: () => peer.channel.lastHeard,
      openSockets: (count) => {
        const ports = this.#openAux(count);
        for (const p of ports) peer.aux.add(p);
        return ports;
      },
      closeSockets: (ports) => {
        for (const p of ports) peer.aux.delete(p);
        this.#closeAux(ports);
      },
    }, peer.path);
    const id = toBase64(pathId);
    if (!this.#byPathId.has(id)) {
      peer.pathId = id;
      this.#byPathId.set(id, peer);
    }
    return peer.paths;
  }

  /** Datagrams from `path` reach `peer` from now on, unless its key is another peer's. */
  #admitPath(peer: Peer, path: LinkPath): boolean {
    const key = pathKey(path);
    const holder = this.#peers.get(key);
    if (holder) return holder === peer;
    peer.keys.add(key);
    this.#peers.set(key, peer);
    this.#tombstones.delete(key);
    return true;
  }

  /**
   * Opens up to `count` auxiliary sockets on the listener's address (a spray's), whose
   * datagrams enter the demultiplexer with their port as `via`; fewer once
   * `LISTENER_MAX_AUX_SOCKETS` are open or the system refuses. Their local ports.
   */
  #openAux(count: number): number[] {
    const ports: number[] = [];
    if (this.#closed && this.#peers.size === 0) return ports;
    while (ports.length < count && this.#aux.size < LISTENER_MAX_AUX_SOCKETS) {
      let socket: UdpSocket;
      try {
        socket = UdpSocket.open({ address: this.endpoint.address, port: 0 }, this.#s.lossy);
      } catch {
        break; // out of ports or descriptors: spray with what there is
      }
      const port = socket.endpoint.port;
      this.#aux.set(port, socket);
      socket.run((bytes, from) => this.#datagram(bytes, from, "direct", port)).catch(() => {});
      ports.push(port);
    }
    return ports;
  }

  #closeAux(ports: Iterable<number>): void {
    for (const port of [...ports]) {
      this.#aux.get(port)?.close();
      this.#aux.delete(port);
    }
  }

  #sendVia(route: Route, bytes: Uint8Array, to: Endpoint, via?: number): Promise<void> {
    if (via !== undefined) {
      const aux = this.#aux.get(via);
      if (aux) return aux.send(bytes, to);
      return Promise.reject(
        new PeerError(
          "EPEER",
          `Cannot send to peer at ${to.address}:${to.port}: socket ${via} is closed`,
        ),
      );
    }
    if (route === "direct") return this.#socket.send(bytes, to);
    const relay = this.#relay;
    if (!relay) {
      return Promise.reject(
        new PeerError(
          "EPEER",
          `Cannot send to peer at ${to.address}:${to.port} through a relay: the listener has ` +
            "none; attach one with attachRelay()",
        ),
      );
    }
    return relay.send(to, bytes);
  }

  /** A channel to a peer on the relay route gets a TURN channel (ChannelData: 4 bytes, not 36). */
  #bindRelayChannel(remote: Endpoint): void {
    this.#relay?.bindChannel(remote).catch((err) => this.#s.onDropped?.(err, remote));
  }

  /** Releases the relay (best effort), then closes the socket. */
  async #closeSocket(): Promise<void> {
    this.#closeAux(this.#aux.keys());
    this.#relayOff?.();
    await this.#relay?.close().catch(() => {});
    this.#socket.close();
  }

  /**
   * Whom this listener answers. `all` (the default, standby): every CONNECT gets its COOKIE and
   * handshake. `punched`: only CONNECTs claiming the identity key of a peer this listener is
   * punching to; any other is ignored without an answer, so its sender keeps retransmitting and
   * is answered once the listener stands by (`all`) again. A terminal sets `punched` while it
   * tries the peers of its reply one by one, so a peer it is not trying yet cannot end up with a
   * link this terminal will never use (docs/nat.md "The terminal punches").
   */
  admit(mode: "all" | "punched"): void {
    this.#admit = mode;
  }

  /**
   * This socket for `StunAddress` (option `socket`), so it learns the mapping peers use, and for
   * `TurnClient` (option `socket`), so the relay starts from the same socket as the punch.
   */
  stunSocket(): ListenerStunSocket {
    const socket = this.#socket;
    const subscribers = this.#stun;
    return {
      localPort: this.endpoint.port,
      send: (bytes, host, port) => socket.send(bytes, { transport: "udp", address: host, port }),
      subscribe(listener) {
        subscribers.add(listener);
        return () => subscribers.delete(listener);
      },
    };
  }

  /** The initiator handshake of a punch, from this socket (its datagrams come in by source). */
  async #initiate(
    remote: Endpoint,
    expectedKey: Uint8Array,
    options: PunchOptions,
    signal: AbortSignal,
    route: Route = "direct",
    claim?: () => boolean,
  ): Promise<PeerLink> {
    const s = this.#s;
    const key = keyOf(remote, route);
    if (this.#closed || this.#peers.has(key)) {
      throw new PeerError(
        "EPEER",
        `Cannot punch to ${remote.address}:${remote.port}: ` +
          (this.#closed ? "the listener is closed; listen again" : "a link to it is already up"),
      );
    }
    if (route === "relay") this.#bindRelayChannel(remote);
    const peer = this.#peer("initiator", remote, key, route);
    const channel = peer.channel;
    const abort = AbortSignal.any([signal, peer.handshake!.signal]);
    let done!: () => void;
    peer.done = new Promise((resolve) => done = resolve);
    try {
      const relayed = route === "relay" ? this.#relay?.relayed : undefined;
      const local = relayed ?? options.localEndpoint ?? this.endpoint;
      const result = await initiateHandshake(channel, {
        identity: this.#options.identity,
        local,
        remote,
        expectedIdentityKey: expectedKey,
        random: s.random,
        ordered: false,
        signal: abort,
        ...(claim ? { claim } : {}),
      });
      const paths = await this.#established(peer, result.cipher, result.transcriptHash);
      return new ReliableLink(channel, result.cipher, {
        local: relayed ?? this.endpoint,
        remote: { ...result.peer, endpoint: remote },
        paths,
        disconnectTimeoutMs: s.disconnectTimeoutMs,
        maxFragmentBytes: s.maxFragmentBytes,
        clock: s.clock,
      });
    } catch (err) {
      channel.close();
      throw err;
    } finally {
      done();
    }
  }

  /** Stops accepting; the socket stays open until every link accepted on it has closed. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    const handshakes = [...this.#peers.values()].filter((p) => p.handshake);
    for (const p of handshakes) {
      p.handshake?.abort();
      p.channel.close();
    }
    await Promise.all(handshakes.map((p) => p.done));
    const unclaimed = this.#accepted.drain();
    await Promise.all(unclaimed.map((l) => l.close()));
    if (this.#peers.size === 0) {
      await this.#closeSocket();
      await this.#loop;
    }
    this.#accepted.fail(this.#closedError());
  }

  #closedError(): PeerError {
    return new PeerError(
      "EPEER",
      `Cannot accept a peer on ${this.endpoint.address}:${this.endpoint.port}: the listener ` +
        "is closed; listen again",
    );
  }

  #datagram(bytes: Uint8Array, from: Endpoint, route: Route = "direct", via?: number): void {
    if (
      route === "direct" && via === undefined && this.#stun.size > 0 &&
      (isStun(bytes) || isChannelData(bytes))
    ) {
      for (const listener of this.#stun) listener(bytes, from);
      return;
    }
    let frame: Frame;
    try {
      frame = decodeUdpDatagram(bytes);
    } catch (err) {
      this.#s.onDropped?.(err, from);
      return;
    }
    const key = pathKey({ route, remote: from, ...(via !== undefined ? { via } : {}) });
    const peer = this.#peers.get(key);
    if (isPathFrame(frame.type)) {
      // A path frame finds its link by path id, from wherever it comes (link_paths.ts).
      const id = toBase64(frame.body.subarray(0, PATH_ID_BYTES));
      const owner = frame.body.length > PATH_ID_BYTES ? this.#byPathId.get(id) : undefined;
      if (owner && (!peer || peer === owner)) {
        owner.channel.deliver(frame, bytes, {
          route,
          remote: from,
          ...(via !== undefined ? { via } : {}),
        });
      }
      return;
    }
    if (peer) return peer.channel.deliver(frame, bytes);
    if (via !== undefined) return; // an auxiliary socket carries admitted paths only
    if (this.#answerLate(key, frame, bytes, from, route)) return;
    if (frame.type !== FrameType.CONNECT || this.#closed) return; // stray or late: dropped
    let connect: ConnectWithCookie;
    try {
      connect = decodeConnectWithCookie(frame.body);
    } catch (err) {
      this.#s.onDropped?.(err, from);
      return;
    }
    const { nonce } = connect.connect;
    const punch = this.#punches.get(toBase64(connect.connect.identityKey));
    if (!punch && this.#admit === "punched") return; // answered once we stand by again
    if (punch?.role === "controlling" && !connect.cookie) {
      // The peer's probe: learn where it comes from, answer with our own CONNECT (not COOKIE).
      punch.learn(from, connect.connect.destination, route);
      return;
    }
    if (!connect.cookie || !this.#cookies.check(from, nonce, connect.cookie)) {
      // Stateless: nothing is kept, and the answer is smaller than the CONNECT.
      const body = encodeCookie(this.#cookies.issue(from, nonce));
      this.#sendVia(route, encodeDatagram({ type: FrameType.COOKIE, body }), from).catch(() => {});
      return;
    }
    const pending = [...this.#peers.values()].filter((p) => p.handshake).length;
    if (pending >= MAX_PENDING_HANDSHAKES) {
      this.#s.onDropped?.(
        new PeerError(
          "EPEER",
          `Cannot accept peer at ${from.address}:${from.port}: ${pending} handshakes are ` +
            "already running; it may try again",
        ),
        from,
      );
      return;
    }
    const connectFrame = { type: FrameType.CONNECT, body: connect.connectBytes };
    this.#handshake(key, from, connectFrame, bytes, route);
  }

  /** Answers a repeated CONNECT or DISCONNECT from a peer whose link already ended. */
  #answerLate(
    key: string,
    frame: Frame,
    bytes: Uint8Array,
    from: Endpoint,
    route: Route,
  ): boolean {
    const tombstone = this.#tombstones.get(key);
    if (!tombstone) return false;
    if (tombstone.until <= this.#s.clock.now()) {
      this.#tombstones.delete(key);
      return false;
    }
    const { record } = tombstone;
    let answer: Uint8Array | undefined;
    if (frame.type === FrameType.CONNECT) {
      // A new attempt from the same port: its handshake replaces the tombstone.
      if (!sameBytes(record.connect, bytes)) return false;
      answer = record.refusal;
    } else if (frame.type === FrameType.DISCONNECT && sameBytes(record.disconnect, bytes)) {
      answer = record.disconnectAck;
    }
    if (answer) this.#sendVia(route, answer, from).catch(() => {});
    return true;
  }

  #handshake(key: string, from: Endpoint, frame: Frame, bytes: Uint8Array, route: Route): void {
    const s = this.#s;
    if (route === "relay") this.#bindRelayChannel(from);
    const relayed = route === "relay" ? this.#relay?.relayed : undefined;
    const peer = this.#peer("responder", from, key, route);
    const channel = peer.channel;
    const abort = peer.handshake!;
    channel.deliver(frame, bytes);
    const timeoutMs = this.#options.handshakeTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const timer = new AbortController();
    s.clock.sleep(timeoutMs, timer.signal).then(() =>
      abort.abort(
        new PeerError(
          "ETIMEOUT",
          `Cannot accept peer at ${from.address}:${from.port}: no handshake in ${timeoutMs} ms; ` +
            "nothing to do, the attempt was dropped",
        ),
      ), () => {});
    peer.done = (async () => {
      try {
        const result = await respondHandshake(channel, {
          identity: this.#options.identity,
          // The peer a punch expects is let in: the caller asked for it by key. Its ACK
          // signature proves the key before the punch takes the link.
          accept: (p) =>
            this.#punches.get(toBase64(p.identityKey))?.role === "controlled" ||
            (this.#options.accept ? this.#options.accept(p) : true),
          random: s.random,
          ordered: false,
          signal: abort.signal,
        });
        const paths = await this.#established(peer, result.cipher, result.transcriptHash);
        const link = new ReliableLink(channel, result.cipher, {
          local: relayed ?? this.endpoint,
          remote: { ...result.peer, endpoint: from, dialled: result.connect.destination },
          paths,
          disconnectTimeoutMs: s.disconnectTimeoutMs,
          maxFragmentBytes: s.maxFragmentBytes,
          clock: s.clock,
        });
        if (this.#closed) await link.close();
        else if (!this.#punches.get(toBase64(result.peer.identityKey))?.offer(link)) {
          this.#accepted.put(link);
        }
      } catch (err) {
        channel.close();
        if (!this.#closed) s.onDropped?.(err, from);
      } finally {
        timer.abort(TIMER_CANCELLED);
      }
    })();
  }

  #released(key: string, channel: DatagramFrameChannel): void {
    const peer = this.#peers.get(key);
    if (peer?.channel === channel) {
      for (const k of peer.keys) if (this.#peers.get(k) === peer) this.#peers.delete(k);
      if (peer.pathId && this.#byPathId.get(peer.pathId) === peer) {
        this.#byPathId.delete(peer.pathId);
      }
      peer.paths?.close();
      this.#closeAux(peer.aux);
      peer.aux.clear();
    }
    if (channel.record.connect) {
      if (this.#tombstones.size >= MAX_TOMBSTONES) {
        const oldest = this.#tombstones.keys().next().value;
        if (oldest !== undefined) this.#tombstones.delete(oldest);
      }
      this.#tombstones.set(key, {
        record: channel.record,
        until: this.#s.clock.now() + TOMBSTONE_MS,
      });
    }
    if (this.#closed && this.#peers.size === 0) void this.#closeSocket();
  }
}
