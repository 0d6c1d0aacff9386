/**
 * A TURN allocation (RFC 8656) seen from the client: a relayed transport address on a TURN
 * server through which peers that cannot be reached directly exchange datagrams with this
 * terminal. {@link TurnClient.allocate} authenticates with long-term credentials (401 → REALM
 * and NONCE → MESSAGE-INTEGRITY, 438 Stale Nonce followed), {@link TurnClient.permit} installs
 * a permission per peer address, {@link TurnClient.bindChannel} binds a channel for the bulk
 * path (ChannelData, 4 bytes of overhead), and {@link TurnClient.send} falls back to Send
 * indications before a channel is bound. Allocation, permissions and channels are refreshed
 * on the injected clock; {@link TurnClient.close} releases the allocation (Refresh, LIFETIME 0).
 *
 * It runs over a socket given to it ({@link TurnSocket}: the shape of the peer listener's
 * `stunSocket()`), so one UDP socket can carry the punch and the relay. It sees only what it
 * relays: the session above it seals every frame end to end.
 *
 * Attacker's view: every answer must come from the server (when the socket says where from),
 * match a transaction id this client sent and, for success responses, carry a
 * MESSAGE-INTEGRITY made with the long-term key; anything else is dropped. An unauthenticated
 * error can fail a transaction but never redirect it: credentials go only to the configured
 * server (300 Try Alternate is not followed) and a realm other than the configured one is
 * refused. Permissions and channels are capped (`TURN_MAX_PERMISSIONS`, `TURN_MAX_CHANNELS`).
 *
 * @module
 */
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { PeerError } from "../errors.ts";
import {
  TURN_ALLOCATION_MARGIN_MS,
  TURN_CHANNEL_REFRESH_MS,
  TURN_DEFAULT_LIFETIME_S,
  TURN_MAX_CHANNELS,
  TURN_MAX_DATA_BYTES,
  TURN_MAX_MESSAGE_BYTES,
  TURN_MAX_NONCE_RETRIES,
  TURN_MAX_PERMISSIONS,
  TURN_PERMISSION_REFRESH_MS,
  TURN_REFRESH_TICK_MS,
  TURN_REQUESTS,
} from "../limits.ts";
import { type Logger, silentLogger } from "../log.ts";
import type { Endpoint } from "../message/types.ts";
import {
  checkStunIntegrity,
  decodeChannelData,
  decodeErrorCode,
  decodeStunMessage,
  decodeText,
  decodeUint32,
  decodeXorAddress,
  encodeChannelData,
  encodeChannelNumber,
  encodeRequestedTransport,
  encodeStunMessage,
  encodeText,
  encodeUint32,
  encodeXorAddress,
  longTermKey,
  STUN_DEFAULT_PORT,
  STUN_MAX_USERNAME_BYTES,
  StunAttr,
  type StunAttribute,
  stunAttribute,
  StunClass,
  type StunMappedAddress,
  type StunMessage,
  StunMethod,
  TURN_CHANNEL_MIN,
} from "../net/stun_message.ts";
import { UdpSocket } from "./udp_listener.ts";
import {
  type Backoff,
  type Clock,
  type RandomSource,
  systemClock,
  systemRandom,
  TIMER_CANCELLED,
} from "../runtime.ts";

/**
 * The UDP socket a {@link TurnClient} talks to its server over: the peer listener's
 * `stunSocket()` or any other. The owner keeps reading it and hands the client the datagrams
 * that may be STUN or ChannelData; with `from`, the client drops those not from its server.
 */
export interface TurnSocket {
  /** Sends one datagram; rejects when it cannot. */
  send(bytes: Uint8Array, host: string, port: number): Promise<void>;
  /** Calls `listener` with every datagram received until the returned function is called. */
  subscribe(
    listener: (bytes: Uint8Array, from?: { address: string; port: number }) => void,
  ): () => void;
}

/** A TURN server and the long-term credentials for it. */
export interface TurnServer {
  /** `turn:host[:port]` (RFC 7065; UDP only), `host:port` or `[ipv6]:port`. */
  url: string;
  user: string;
  password: string;
  /** The realm the server must name; default: whatever its first 401 names. */
  realm?: string;
}

/** Options of {@link TurnClient.allocate}. */
export interface TurnClientOptions {
  /** The socket to talk to the server over (never closed by the client). */
  socket: TurnSocket;
  /** Allocation lifetime to ask for, in seconds; default {@link TURN_DEFAULT_LIFETIME_S}. */
  lifetimeSeconds?: number;
  /** Requests per transaction; default {@link TURN_REQUESTS}. */
  requests?: number;
  /** Wait after request number `attempt` (0-based); default RTO 500 ms doubling each time. */
  backoff?: Backoff;
  /** Timers and refresh schedule; default `systemClock`. */
  clock?: Clock;
  /** Transaction ids; default `systemRandom`. */
  random?: RandomSource;
  /** Default: silent. */
  logger?: Logger;
  /** Called once when the allocation is lost (a refresh failed); the client is then closed. */
  onLost?: (err: PeerError) => void;
  /** Called after each refresh round (every {@link TURN_REFRESH_TICK_MS}): what it refreshed. */
  onMaintained?: (report: TurnMaintenance) => void;
  /** Cancels the allocation while it is being made. */
  signal?: AbortSignal;
}

/** What one refresh round did. */
export interface TurnMaintenance {
  allocation: boolean;
  permissions: number;
  channels: number;
}

/** One peer's datagrams through the relay: plugs under a datagram frame channel. */
export interface TurnPeerDatagrams {
  readonly peer: Endpoint;
  /** Sends one datagram to the peer through the relay. */
  send(bytes: Uint8Array): Promise<void>;
  /** Calls `listener` with every datagram the peer sends through the relay. */
  subscribe(listener: (bytes: Uint8Array) => void): () => void;
}

/** A {@link TurnSocket} on a UDP socket of its own, for a relay not kept on a listener's socket. */
export interface OwnTurnSocket extends TurnSocket {
  /** The local address and port. */
  readonly endpoint: Endpoint;
  /** Closes the socket (after the client's close, which releases the allocation). */
  close(): Promise<void>;
}

/**
 * Opens a UDP socket as a {@link TurnSocket}; default local address `0.0.0.0` (`::` for an IPv6
 * `towards` address), any port. `PeerError` `EPEER` when it cannot be bound.
 */
export function openTurnSocket(
  options: { address?: string; port?: number; towards?: string } = {},
): OwnTurnSocket {
  const v6 = options.towards?.includes(":") ?? false;
  const socket = UdpSocket.open(
    { address: options.address ?? (v6 ? "::" : "0.0.0.0"), port: options.port ?? 0 },
    undefined,
  );
  const listeners = new Set<(bytes: Uint8Array, from: Endpoint) => void>();
  const loop = socket.run((bytes, from) => {
    for (const listener of listeners) listener(bytes, from);
  });
  return {
    endpoint: socket.endpoint,
    send: (bytes, host, port) => socket.send(bytes, { transport: "udp", address: host, port }),
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async close() {
      socket.close();
      await loop;
    },
  };
}

/** Parses `turn:host[:port][?transport=udp]`, `host[:port]` or `[ipv6]:port` (RFC 7065). */
export function parseTurnUrl(text: string): { host: string; port: number } {
  const bad = (why: string) =>
    new TypeError(`Not a TURN server URL ${JSON.stringify(text)}: ${why}`);
  let s = text.trim();
  if (/^turns:/i.test(s)) throw bad("turns: (TLS) is not supported; use turn:");
  s = s.replace(/^turn:/i, "");
  const q = s.indexOf("?");
  if (q >= 0) {
    if (!/^transport=udp$/i.test(s.slice(q + 1))) throw bad("only ?transport=udp is supported");
    s = s.slice(0, q);
  }
  const m = /^\[([0-9a-f:.]+)\](?::(\d+))?$/i.exec(s) ?? /^([^:\s/[\]]+)(?::(\d+))?$/.exec(s);
  const port = m?.[2] ? Number(m[2]) : STUN_DEFAULT_PORT;
  if (!m || !m[1] || port < 1 || port > 0xffff) throw bad('expected "turn:host:port"');
  return { host: m[1], port };
}

interface Pending {
  resolve: (answer: { message: StunMessage; packet: Uint8Array }) => void;
}

interface Permission {
  refreshedAt: number;
}

interface Channel {
  number: number;
  peer: Endpoint;
  refreshedAt: number;
  /** False until the server confirmed the first ChannelBind. */
  bound: boolean;
  /** True while its first ChannelBind holds a permission slot for the peer's address. */
  permitting: boolean;
}

/** Why a transaction failed, before it becomes a one-line PeerError. */
class TurnFailure extends Error {
  constructor(readonly code: number | undefined, message: string) {
    super(message);
  }
}

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const keyOf = (e: { address: string; port: number }) => `${e.address}|${e.port}`;
const familyOf = (address: string): "IPv4" | "IPv6" => (address.includes(":") ? "IPv6" : "IPv4");
const toEndpoint = (a: StunMappedAddress): Endpoint => ({
  transport: "udp",
  address: a.address,
  port: a.port,
});

/**
 * A TURN allocation on one server, over a socket given to it.
 *
 * @example
 * ```ts ignore
 * const turn = await TurnClient.allocate(
 *   { url: "turn:127.0.0.1:3478", user: "mailpeer", password: "secret" },
 *   { socket: listener.stunSocket() },
 * );
 * await turn.bindChannel(peer); // permission + channel: the bulk path
 * const off = turn.onData((from, bytes) => console.log(from, bytes.length));
 * await turn.send(peer, bytes);
 * await turn.close(); // releases the allocation
 * ```
 */
export class TurnClient {
  /** The relayed transport address peers send to. */
  readonly relayed: Endpoint;
  /** This socket's address as the server sees it (server-reflexive). */
  readonly mapped: Endpoint;
  /** The server's address (a configured name resolved) and port. */
  readonly server: { host: string; port: number };
  readonly #where: string;
  readonly #socket: TurnSocket;
  readonly #options: TurnClientOptions;
  readonly #clock: Clock;
  readonly #tx: TurnTransactions;
  #expiresAt: number;
  #lifetimeMs: number;
  readonly #permissions = new Map<string, Permission>();
  /** Addresses whose first CreatePermission is under way (counted against the cap). */
  readonly #permitting = new Set<string>();
  readonly #channels = new Map<string, Channel>();
  readonly #byNumber = new Map<number, Channel>();
  readonly #listeners = new Set<(peer: Endpoint, bytes: Uint8Array) => void>();
  #unsubscribe: () => void;
  readonly #stop = new AbortController();
  #loop: Promise<void> = Promise.resolve();
  #closing: Promise<void> | undefined;

  private constructor(
    init: {
      server: { host: string; port: number };
      where: string;
      options: TurnClientOptions;
      tx: TurnTransactions;
      unsubscribe: () => void;
      relayed: Endpoint;
      mapped: Endpoint;
      lifetimeMs: number;
    },
  ) {
    this.server = init.server;
    this.#where = init.where;
    this.#socket = init.options.socket;
    this.#options = init.options;
    this.#clock = init.options.clock ?? systemClock;
    this.#tx = init.tx;
    this.#unsubscribe = init.unsubscribe;
    this.relayed = init.relayed;
    this.mapped = init.mapped;
    this.#lifetimeMs = init.lifetimeMs;
    this.#expiresAt = this.#clock.now() + init.lifetimeMs;
  }

  /**
   * Allocates a relayed address on `server` (RFC 8656 §7). Throws `PeerError` `ERELAY` when
   * the server refuses (wrong credentials, quota, an allocation already held on this socket),
   * `ETIMEOUT` when it does not answer; `TypeError` for a malformed URL.
   */
  static async allocate(server: TurnServer, options: TurnClientOptions): Promise<TurnClient> {
    const named = parseTurnUrl(server.url);
    const where = `${named.host}:${named.port}`;
    const what = `Cannot allocate a TURN relay on ${where}`;
    if (new TextEncoder().encode(server.user).length > STUN_MAX_USERNAME_BYTES) {
      throw new TypeError(`${what}: the user name is longer than ${STUN_MAX_USERNAME_BYTES} bytes`);
    }
    // Answers are matched by source address: a name is resolved once, to the address used.
    const at = { host: await resolveHost(named.host, what), port: named.port };
    const pending = new Map<string, Pending>();
    const unsubscribe = options.socket.subscribe((bytes, from) => {
      if (from && (from.port !== at.port || from.address !== at.host)) return;
      if (bytes.length < 20 || bytes[0]! >= 0x40) return; // ChannelData: no client yet
      dispatchResponse(pending, bytes);
    });
    const lifetime = options.lifetimeSeconds ?? TURN_DEFAULT_LIFETIME_S;
    const attrs: StunAttribute[] = [
      [StunAttr.REQUESTED_TRANSPORT, encodeRequestedTransport()],
      [StunAttr.LIFETIME, encodeUint32(lifetime)],
    ];
    const signal = options.signal ?? new AbortController().signal;
    try {
      // 1. Without credentials: the server answers 401 with its REALM and a NONCE.
      const tid = (options.random ?? systemRandom)(12);
      const first = await transact(
        options.socket,
        at,
        pending,
        encodeStunMessage(StunMethod.allocate, StunClass.request, {
          transactionId: tid,
          attributes: attrs,
        }),
        tid,
        { ...options, signal },
      );
      if (first.message.class === StunClass.success) {
        throw new TurnFailure(
          undefined,
          "the server allocated without asking for credentials, so its answers cannot be " +
            "authenticated; configure a TURN server with long-term credentials",
        );
      }
      const challenge = readChallenge(first.message);
      if (!challenge) throw errorFailure(first.message, "allocate");
      if (server.realm !== undefined && challenge.realm !== server.realm) {
        throw new TurnFailure(
          401,
          `the server names realm ${JSON.stringify(challenge.realm)}, not the configured ${
            JSON.stringify(server.realm)
          }; check terminal.turn_servers' realm and url`,
        );
      }
      // 2. With credentials (a 438 Stale Nonce is followed there).
      const tx = new TurnTransactions({
        socket: options.socket,
        server: at,
        pending,
        options,
        user: server.user,
        realm: challenge.realm,
        key: longTermKey(server.user, challenge.realm, server.password),
        nonce: challenge.nonce,
      });
      const message = await tx.request(StunMethod.allocate, attrs, { signal });
      const relayed = address(message, StunAttr.XOR_RELAYED_ADDRESS);
      const mapped = address(message, StunAttr.XOR_MAPPED_ADDRESS);
      const granted = decodeUint32(stunAttribute(message, StunAttr.LIFETIME) ?? new Uint8Array());
      if (!relayed || !mapped || granted === undefined || granted === 0) {
        throw new TurnFailure(
          undefined,
          "the success response lacks XOR-RELAYED-ADDRESS, XOR-MAPPED-ADDRESS or LIFETIME",
        );
      }
      const client = new TurnClient({
        server: at,
        where,
        options,
        tx,
        unsubscribe,
        relayed: toEndpoint(relayed),
        mapped: toEndpoint(mapped),
        lifetimeMs: granted * 1000,
      });
      client.#start();
      return client;
    } catch (err) {
      unsubscribe();
      throw toPeerError(err, what, options.signal);
    }
  }

  /** When the allocation ends unless refreshed (ms since the epoch, on the client's clock). */
  get expiresAt(): number {
    return this.#expiresAt;
  }

  /** Peer addresses with a permission. */
  get permissions(): string[] {
    return [...this.#permissions.keys()];
  }

  /** Whether the client is closed (released or lost). */
  get closed(): boolean {
    return this.#stop.signal.aborted;
  }

  /**
   * Lets `peer`'s address send to the relayed address (CreatePermission, RFC 8656 §9; the
   * port does not matter). Refreshed every {@link TURN_PERMISSION_REFRESH_MS} until close.
   * `ERELAY` past {@link TURN_MAX_PERMISSIONS} peer addresses or when the server refuses.
   */
  async permit(peer: Endpoint | string): Promise<void> {
    const ip = typeof peer === "string" ? peer : peer.address;
    const what = `Cannot permit ${ip} on the TURN relay ${this.#where}`;
    this.#checkOpen(what);
    const fresh = !this.#permissions.has(ip) && !this.#permitting.has(ip);
    if (fresh) this.#reservePermission(what, ip);
    try {
      await this.#request(StunMethod.createPermission, [], what, {
        xorPeer: { address: ip, port: 0 },
      });
      this.#permissions.set(ip, { refreshedAt: this.#clock.now() });
    } finally {
      if (fresh) this.#permitting.delete(ip);
    }
  }

  /** Counts a new peer address against {@link TURN_MAX_PERMISSIONS}, or throws `ERELAY`. */
  #reservePermission(what: string, ip: string): void {
    if (this.#permissions.size + this.#permitting.size >= TURN_MAX_PERMISSIONS) {
      throw new PeerError(
        "ERELAY",
        `${what}: the allocation already permits ${TURN_MAX_PERMISSIONS} peer addresses; ` +
          "close relayed sessions that ended",
      );
    }
    this.#permitting.add(ip);
  }

  /**
   * Binds a channel to `peer` (ChannelBind, RFC 8656 §11), which also permits its address;
   * from then on {@link send} uses ChannelData. Returns the channel number; binding a bound
   * peer again refreshes it. `ERELAY` past {@link TURN_MAX_CHANNELS} channels or when refused.
   */
  async bindChannel(peer: Endpoint): Promise<number> {
    const what = `Cannot bind a TURN channel to ${peer.address}:${peer.port} on ${this.#where}`;
    this.#checkOpen(what);
    let channel = this.#channels.get(keyOf(peer));
    const fresh = !channel;
    if (!channel) {
      if (this.#channels.size >= TURN_MAX_CHANNELS) {
        throw new PeerError(
          "ERELAY",
          `${what}: the allocation already binds ${TURN_MAX_CHANNELS} channels; ` +
            "send to this peer without a channel (Send indications)",
        );
      }
      const permitting = !this.#permissions.has(peer.address) &&
        !this.#permitting.has(peer.address);
      if (permitting) this.#reservePermission(what, peer.address);
      // The number is taken now, so that two binds at once never ask for the same one.
      channel = {
        number: this.#freeChannel(),
        peer: { ...peer, transport: "udp" },
        refreshedAt: this.#clock.now(),
        bound: false,
        permitting,
      };
      this.#channels.set(keyOf(peer), channel);
      this.#byNumber.set(channel.number, channel);
    }
    try {
      await this.#request(
        StunMethod.channelBind,
        [[StunAttr.CHANNEL_NUMBER, encodeChannelNumber(channel.number)]],
        what,
        { xorPeer: peer },
      );
    } catch (err) {
      if (fresh) {
        this.#channels.delete(keyOf(peer));
        this.#byNumber.delete(channel.number);
      }
      throw err;
    } finally {
      if (channel.permitting) this.#permitting.delete(peer.address);
      channel.permitting = false;
    }
    const now = this.#clock.now();
    channel.refreshedAt = now;
    channel.bound = true;
    this.#permissions.set(peer.address, { refreshedAt: now });
    return channel.number;
  }

  /**
   * Sends one datagram to `peer` through the relay: ChannelData when a channel is bound, else
   * a Send indication (unacknowledged, as UDP is). `ERELAY` when the peer has no permission;
   * `RangeError` past {@link TURN_MAX_DATA_BYTES}.
   */
  async send(peer: Endpoint, bytes: Uint8Array): Promise<void> {
    const what =
      `Cannot send to ${peer.address}:${peer.port} through the TURN relay ${this.#where}`;
    this.#checkOpen(what);
    if (bytes.length > TURN_MAX_DATA_BYTES) {
      throw new RangeError(`${what}: ${bytes.length} bytes is over ${TURN_MAX_DATA_BYTES}`);
    }
    const channel = this.#channels.get(keyOf(peer));
    if (channel?.bound) {
      return await this.#socket.send(
        encodeChannelData(channel.number, bytes),
        this.server.host,
        this.server.port,
      );
    }
    if (!this.#permissions.has(peer.address)) {
      throw new PeerError(
        "ERELAY",
        `${what}: the relay has no permission for ${peer.address}; call permit() or bindChannel() first`,
      );
    }
    const tid = (this.#options.random ?? systemRandom)(12);
    const packet = encodeStunMessage(StunMethod.send, StunClass.indication, {
      transactionId: tid,
      attributes: [
        [StunAttr.XOR_PEER_ADDRESS, encodeXorAddress(mappedOf(peer), tid)],
        [StunAttr.DATA, bytes],
      ],
    });
    await this.#socket.send(packet, this.server.host, this.server.port);
  }

  /** Calls `listener` with every datagram a permitted peer sends through the relay. */
  onData(listener: (peer: Endpoint, bytes: Uint8Array) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** `peer`'s datagrams through the relay, as a channel of their own. */
  datagrams(peer: Endpoint): TurnPeerDatagrams {
    const want = keyOf(peer);
    return {
      peer,
      send: (bytes) => this.send(peer, bytes),
      subscribe: (listener) =>
        this.onData((from, bytes) => keyOf(from) === want && listener(bytes)),
    };
  }

  /**
   * Releases the allocation (Refresh with LIFETIME 0, RFC 8656 §7.2: its permissions and
   * channels go with it) and stops refreshing. Idempotent; a server that does not answer
   * lets the allocation expire on its own.
   */
  close(): Promise<void> {
    this.#closing ??= this.#release();
    return this.#closing;
  }

  async #release(): Promise<void> {
    const wasOpen = !this.#stop.signal.aborted;
    this.#stop.abort();
    await this.#loop;
    try {
      if (wasOpen) {
        await this.#request(
          StunMethod.refresh,
          [[StunAttr.LIFETIME, encodeUint32(0)]],
          `Cannot release the TURN relay on ${this.#where}`,
          { requests: 2, release: true },
        );
      }
    } catch (err) {
      // 437: already gone; no answer: it expires on its own.
      const why = err instanceof Error ? err.message : String(err);
      (this.#options.logger ?? silentLogger).log("debug", why);
    } finally {
      this.#unsubscribe();
      this.#listeners.clear();
    }
  }

  #checkOpen(what: string): void {
    if (this.#stop.signal.aborted) {
      throw new PeerError(
        "ERELAY",
        `${what}: the allocation is closed or lost; allocate again`,
      );
    }
  }

  #freeChannel(): number {
    for (let n = TURN_CHANNEL_MIN; n < TURN_CHANNEL_MIN + TURN_MAX_CHANNELS; n++) {
      if (!this.#byNumber.has(n)) return n;
    }
    throw new Error("no free channel number below TURN_MAX_CHANNELS"); // bounded by the caller
  }

  /** Starts reading relayed data and refreshing. */
  #start(): void {
    this.#unsubscribe();
    this.#unsubscribe = this.#socket.subscribe((bytes, from) => {
      if (from && (from.port !== this.server.port || from.address !== this.server.host)) return;
      this.#datagram(bytes);
    });
    this.#loop = this.#maintain();
  }

  #datagram(bytes: Uint8Array): void {
    if (bytes.length >= 4 && bytes[0]! >= 0x40 && bytes[0]! < 0x80) {
      const data = decodeChannelData(bytes);
      // A channel being bound counts: the server may use it before its answer is read here.
      const channel = data && this.#byNumber.get(data.channel);
      if (data && channel) this.#deliver(channel.peer, data.data);
      return;
    }
    if (dispatchResponse(this.#tx.pending, bytes)) return;
    const message = decodeStunMessage(bytes, { maxBytes: TURN_MAX_MESSAGE_BYTES });
    if (message?.method !== StunMethod.data || message.class !== StunClass.indication) return;
    const peer = address(message, StunAttr.XOR_PEER_ADDRESS);
    const data = stunAttribute(message, StunAttr.DATA);
    // The server relays only from permitted addresses (or ones being permitted); a Data
    // indication naming another one did not come from it.
    if (!peer || !data) return;
    if (!this.#permissions.has(peer.address) && !this.#permitting.has(peer.address)) return;
    if (data.length > TURN_MAX_DATA_BYTES) return;
    this.#deliver(toEndpoint(peer), data);
  }

  /** Hands a datagram to every listener; one that throws neither stops the others nor the socket. */
  #deliver(peer: Endpoint, bytes: Uint8Array): void {
    for (const listener of this.#listeners) {
      try {
        listener(peer, bytes);
      } catch (err) {
        const why = err instanceof Error ? err.message : String(err);
        (this.#options.logger ?? silentLogger).log(
          "warn",
          `A TURN data listener threw: ${why}`,
        );
      }
    }
  }

  /** Every tick: refresh the allocation, permissions and channels that are due. */
  async #maintain(): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      const tick = Math.min(TURN_REFRESH_TICK_MS, Math.max(1_000, this.#lifetimeMs / 4));
      try {
        await this.#clock.sleep(tick, signal);
      } catch {
        return;
      }
      const report: TurnMaintenance = { allocation: false, permissions: 0, channels: 0 };
      const now = this.#clock.now();
      const margin = Math.min(TURN_ALLOCATION_MARGIN_MS, this.#lifetimeMs / 2);
      try {
        if (this.#expiresAt - now <= margin) {
          await this.#refresh();
          report.allocation = true;
        }
      } catch (err) {
        if (signal.aborted) return;
        // No answer while there is time for another round: try again then. A refusal, or no
        // answer at the last round, is the allocation lost.
        const silent = err instanceof PeerError && err.code === "ETIMEOUT";
        if (!silent || this.#expiresAt - this.#clock.now() <= tick) {
          this.#lose(err);
          return;
        }
        (this.#options.logger ?? silentLogger).log("warn", (err as Error).message);
      }
      for (const [ip, permission] of this.#permissions) {
        if (now - permission.refreshedAt < TURN_PERMISSION_REFRESH_MS) continue;
        if (await this.#tryRefresh(() => this.permit(ip))) report.permissions++;
      }
      for (const channel of this.#channels.values()) {
        if (!channel.bound || now - channel.refreshedAt < TURN_CHANNEL_REFRESH_MS) continue;
        if (await this.#tryRefresh(() => this.bindChannel(channel.peer))) report.channels++;
      }
      if (signal.aborted) return;
      this.#options.onMaintained?.(report);
    }
  }

  async #tryRefresh(run: () => Promise<unknown>): Promise<boolean> {
    try {
      await run();
      return true;
    } catch (err) {
      if (this.#stop.signal.aborted) return false;
      const why = err instanceof Error ? err.message : String(err);
      (this.#options.logger ?? silentLogger).log("warn", why);
      return false;
    }
  }

  async #refresh(): Promise<void> {
    const seconds = Math.round(this.#lifetimeMs / 1000);
    const answer = await this.#request(
      StunMethod.refresh,
      [[StunAttr.LIFETIME, encodeUint32(seconds)]],
      `Cannot refresh the TURN relay on ${this.#where}`,
    );
    const granted = decodeUint32(stunAttribute(answer, StunAttr.LIFETIME) ?? new Uint8Array()) ??
      seconds;
    if (granted === 0) {
      throw new PeerError(
        "ERELAY",
        `Cannot refresh the TURN relay on ${this.#where}: the server ended the allocation ` +
          "(LIFETIME 0); allocate again",
      );
    }
    this.#lifetimeMs = granted * 1000;
    this.#expiresAt = this.#clock.now() + this.#lifetimeMs;
  }

  #lose(err: unknown): void {
    const lost = err instanceof PeerError
      ? err
      : new PeerError("ERELAY", `The TURN relay on ${this.#where} was lost`, { cause: err });
    (this.#options.logger ?? silentLogger).log("warn", lost.message, { code: lost.code });
    this.#stop.abort();
    this.#closing ??= Promise.resolve().then(() => {
      this.#unsubscribe();
      this.#listeners.clear();
    });
    this.#options.onLost?.(lost);
  }

  /** One authenticated request ({@link TurnTransactions.request}) as a one-line PeerError. */
  async #request(
    method: number,
    attributes: StunAttribute[],
    what: string,
    opts: { xorPeer?: { address: string; port: number }; requests?: number; release?: boolean } =
      {},
  ): Promise<StunMessage> {
    // The release runs after the rounds stopped; everything else ends with them.
    const signal = opts.release ? new AbortController().signal : this.#stop.signal;
    try {
      return await this.#tx.request(method, attributes, { ...opts, signal });
    } catch (err) {
      if (signal.aborted) {
        throw new PeerError("ERELAY", `${what}: the allocation was closed or lost meanwhile`, {
          cause: err,
        });
      }
      throw toPeerError(err, what);
    }
  }
}

/**
 * The authenticated transactions of one allocation: the long-term credentials, the current
 * nonce and the open transactions (whose responses the socket's subscriber hands over).
 */
class TurnTransactions {
  readonly pending: Map<string, Pending>;
  readonly #c: {
    socket: TurnSocket;
    server: { host: string; port: number };
    options: TurnClientOptions;
    user: Uint8Array;
    realm: Uint8Array;
    key: Uint8Array;
  };
  #realm: string;
  #nonce: Uint8Array;

  constructor(init: {
    socket: TurnSocket;
    server: { host: string; port: number };
    pending: Map<string, Pending>;
    options: TurnClientOptions;
    user: string;
    realm: string;
    key: Uint8Array;
    nonce: Uint8Array;
  }) {
    this.pending = init.pending;
    this.#c = {
      socket: init.socket,
      server: init.server,
      options: init.options,
      user: encodeText(init.user, STUN_MAX_USERNAME_BYTES),
      realm: encodeText(init.realm),
      key: init.key,
    };
    this.#realm = init.realm;
    this.#nonce = init.nonce;
  }

  /**
   * One request with USERNAME, REALM, NONCE and MESSAGE-INTEGRITY: retransmitted per RFC 8489,
   * a 438 Stale Nonce retried with the new nonce, a success response accepted only with a valid
   * MESSAGE-INTEGRITY. Returns the success response; throws `TurnFailure` or the signal's reason.
   */
  async request(
    method: number,
    attributes: readonly StunAttribute[],
    opts: { xorPeer?: { address: string; port: number }; requests?: number; signal: AbortSignal },
  ): Promise<StunMessage> {
    const { socket, server, options, user, realm, key } = this.#c;
    for (let retry = 0;; retry++) {
      const tid = (options.random ?? systemRandom)(12);
      const attrs: StunAttribute[] = [...attributes];
      if (opts.xorPeer) {
        attrs.unshift([StunAttr.XOR_PEER_ADDRESS, encodeXorAddress(mappedOf(opts.xorPeer), tid)]);
      }
      attrs.push([StunAttr.USERNAME, user], [StunAttr.REALM, realm], [StunAttr.NONCE, this.#nonce]);
      const packet = encodeStunMessage(method, StunClass.request, {
        transactionId: tid,
        attributes: attrs,
        integrityKey: key,
      });
      const { message } = await transact(
        socket,
        server,
        this.pending,
        packet,
        tid,
        { ...options, requests: opts.requests ?? options.requests, signal: opts.signal },
        // A success without this key's MESSAGE-INTEGRITY is not the server's: dropped.
        (m, p) => m.class !== StunClass.success || checkStunIntegrity(p, m, key),
      );
      if (message.class === StunClass.success) return message;
      const stale = errorCode(message) === 438 ? readChallenge(message) : undefined;
      if (!stale || stale.realm !== this.#realm || retry >= TURN_MAX_NONCE_RETRIES) {
        throw errorFailure(message, method === StunMethod.allocate ? "allocate" : "other");
      }
      this.#nonce = stale.nonce;
    }
  }
}

/** An IP literal as it is; a name resolved (IPv4 preferred), or `ERELAY` naming it. */
async function resolveHost(host: string, what: string): Promise<string> {
  if (isIP(host)) return host;
  try {
    const all = await lookup(host, { all: true });
    const pick = all.find((a) => a.family === 4) ?? all[0];
    if (pick) return pick.address;
    throw new Error("no address");
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new PeerError(
      "ERELAY",
      `${what}: ${host} does not resolve (${why}); check terminal.turn_servers' url`,
      { cause: err },
    );
  }
}

/** Hands a response to the transaction waiting for it; true when one was. */
function dispatchResponse(pending: Map<string, Pending>, bytes: Uint8Array): boolean {
  if (pending.size === 0 || bytes.length < 20) return false;
  const waiting = pending.get(hex(bytes.subarray(8, 20)));
  if (!waiting) return false;
  const message = decodeStunMessage(bytes, { maxBytes: TURN_MAX_MESSAGE_BYTES });
  if (!message || (message.class !== StunClass.success && message.class !== StunClass.error)) {
    return false;
  }
  waiting.resolve({ message, packet: bytes });
  return true;
}

/**
 * One transaction (RFC 8489 §6.2.1): send, retransmit on the backoff, resolve with the first
 * response to `tid` that `accept` takes (a success response failing MESSAGE-INTEGRITY is
 * dropped as spoofed and the wait goes on).
 */
async function transact(
  socket: TurnSocket,
  server: { host: string; port: number },
  pending: Map<string, Pending>,
  packet: Uint8Array,
  tid: Uint8Array,
  options: {
    requests?: number | undefined;
    backoff?: Backoff | undefined;
    clock?: Clock | undefined;
    signal: AbortSignal;
  },
  accept: (message: StunMessage, packet: Uint8Array) => boolean = () => true,
): Promise<{ message: StunMessage; packet: Uint8Array }> {
  const requests = options.requests ?? TURN_REQUESTS;
  const backoff = options.backoff ?? ((n: number) => 500 * 2 ** n);
  const clock = options.clock ?? systemClock;
  const id = hex(tid);
  let resolveAnswer!: (a: { message: StunMessage; packet: Uint8Array }) => void;
  const answer = new Promise<{ message: StunMessage; packet: Uint8Array }>((resolve) => {
    resolveAnswer = resolve;
  });
  pending.set(id, {
    resolve: (a) => {
      if (accept(a.message, a.packet)) resolveAnswer(a);
    },
  });
  try {
    for (let attempt = 0; attempt < requests; attempt++) {
      options.signal.throwIfAborted();
      await socket.send(packet, server.host, server.port).catch((err) => {
        const why = err instanceof Error ? err.message : String(err);
        throw new TurnFailure(undefined, `cannot send to the server (${why})`);
      });
      const tick = new AbortController();
      const slept = clock.sleep(backoff(attempt), AbortSignal.any([options.signal, tick.signal]))
        .then(() => undefined, () => undefined);
      const got = await Promise.race([answer, slept]);
      tick.abort(TIMER_CANCELLED);
      if (got) return got;
    }
    options.signal.throwIfAborted();
    throw new TurnFailure(
      undefined,
      `the server did not answer ${requests} requests; check terminal.turn_servers' url and that the server runs`,
    );
  } finally {
    pending.delete(id);
  }
}

function errorCode(message: StunMessage): number | undefined {
  const value = stunAttribute(message, StunAttr.ERROR_CODE);
  return value && decodeErrorCode(value)?.code;
}

/** REALM and NONCE of a 401 or 438 answer, when both are there and well-formed. */
function readChallenge(message: StunMessage): { realm: string; nonce: Uint8Array } | undefined {
  const code = errorCode(message);
  if (message.class !== StunClass.error || (code !== 401 && code !== 438)) return undefined;
  const realmValue = stunAttribute(message, StunAttr.REALM);
  const nonce = stunAttribute(message, StunAttr.NONCE);
  const realm = realmValue && decodeText(realmValue);
  if (realm === undefined || !nonce || nonce.length === 0 || decodeText(nonce) === undefined) {
    return undefined;
  }
  return { realm, nonce: new Uint8Array(nonce) };
}

function address(message: StunMessage, type: number): StunMappedAddress | undefined {
  const value = stunAttribute(message, type);
  return value && decodeXorAddress(value, message.transactionId);
}

function mappedOf(peer: { address: string; port: number }): StunMappedAddress {
  return { family: familyOf(peer.address), address: peer.address, port: peer.port };
}

/** An error response as "what is wrong; what to do". */
function errorFailure(message: StunMessage, kind: "allocate" | "other"): TurnFailure {
  const value = stunAttribute(message, StunAttr.ERROR_CODE);
  const error = value && decodeErrorCode(value);
  if (!error) {
    return new TurnFailure(undefined, "the server answered an error without a valid code");
  }
  const said = `(${error.code} ${error.reason.replace(/[^\x20-\x7e]/g, "?").slice(0, 80)})`
    .replace(" )", ")");
  switch (error.code) {
    case 401:
    case 441:
      return new TurnFailure(
        error.code,
        `the server refused the credentials ${said}; check terminal.turn_servers' user and password`,
      );
    case 437:
      return new TurnFailure(
        error.code,
        kind === "allocate"
          ? `the server already holds an allocation for this socket ${said}; release it or use another socket`
          : `the server holds no allocation for this socket ${said}; allocate again`,
      );
    case 300:
      return new TurnFailure(
        error.code,
        `the server redirects to another one ${said}, which mailpeer does not follow; configure that server in terminal.turn_servers`,
      );
    case 403:
      return new TurnFailure(
        error.code,
        `the server refuses to relay to that peer ${said}; the peer's address may be one it does not relay to`,
      );
    case 442:
      return new TurnFailure(
        error.code,
        `the server does not relay UDP ${said}; use another TURN server`,
      );
    case 486:
    case 508:
      return new TurnFailure(
        error.code,
        `the server has no room for another allocation ${said}; close other sessions or use another TURN server`,
      );
    default:
      return new TurnFailure(error.code, `the server answered error ${said}; try again later`);
  }
}

function toPeerError(err: unknown, what: string, signal?: AbortSignal): unknown {
  if (signal?.aborted && !(err instanceof TurnFailure)) return signal.reason;
  if (err instanceof PeerError) return err;
  if (err instanceof TurnFailure) {
    const timedOut = err.code === undefined && err.message.includes("did not answer");
    return new PeerError(timedOut ? "ETIMEOUT" : "ERELAY", `${what}: ${err.message}`, {
      cause: err,
    });
  }
  return err;
}
