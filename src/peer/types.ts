/**
 * The `PeerTransport` seam (docs/design.md "Seams"): how a terminal connects to a peer and how it
 * waits for peers on standby. TCP and UDP implement it and pass one conformance suite.
 *
 * @module
 */
import type { AesGcmEngine } from "./aes_gcm.ts";
import type { Endpoint, TransportKind } from "../message/types.ts";
import type { Frame } from "./frame.ts";
import type { PathControl } from "./link_paths.ts";

/** This terminal's identity: its user id and Ed25519 key pair (raw 32-byte keys). */
export interface PeerIdentity {
  userId: string;
  /** Ed25519 */
  publicKey: Uint8Array;
  privateKey: Uint8Array;
}

/** The other side of a link, with the identity key it proved in the handshake. */
export interface PeerInfo {
  userId: string;
  identityKey: Uint8Array;
  endpoint: Endpoint;
  /**
   * Responder side only: the endpoint the peer says it dialled (its CONNECT's destination, signed
   * into the handshake transcript): which of this side's candidates it reached.
   */
  dialled?: Endpoint;
}

/** Options of {@link PeerLink.receive}. */
export interface ReceiveOptions {
  signal?: AbortSignal;
  /**
   * A buffer the caller reuses from one `receive()` to the next, so a bulk receiver does not
   * get a new array per message. When the message fits, the link may decrypt it straight into
   * `into` and return a view of `into` (a TCP session does when this call was already waiting,
   * or came soon enough, as it does in a receive loop); otherwise, or on a link that ignores
   * `into`, the message comes in a new array, as without the option. Either way the result is
   * the whole message: never truncated, nothing is left behind. Use the returned array, never
   * `into` itself: only the result says how long the message is, and `into` may hold other
   * bytes. Until this call settles, `into` belongs to the link; do not pass a buffer whose
   * earlier result you still read. Default: none (a new array per message).
   *
   * @example A bulk receiver that allocates nothing per message
   * ```ts
   * import type { PeerLink } from "./types.ts";
   *
   * export async function countBytes(link: PeerLink): Promise<number> {
   *   const into = new Uint8Array(256 * 1024);
   *   let total = 0;
   *   for (let m = await link.receive({ into }); m; m = await link.receive({ into })) {
   *     total += m.length; // use m before the next receive(): that one may overwrite it
   *   }
   *   return total;
   * }
   * ```
   */
  into?: Uint8Array;
}

/** An established, encrypted connection. Each `send()` arrives as one `receive()`. */
export interface PeerLink {
  readonly local: Endpoint;
  readonly remote: PeerInfo;
  readonly transport: TransportKind;
  /**
   * Which AES-256-GCM implementation seals this link's frames (`ipsec-mb` or `openssl` where the
   * process may load them, else `webcrypto`): the `connected` event reports it
   * (docs/performance.md).
   */
  readonly cipher?: AesGcmEngine;
  /**
   * Sends one message; rejects with `PeerError` `EPEER` once the link is closed. `data` is read
   * until this resolves (which may be before it is written: a TCP link seals ahead).
   */
  send(data: Uint8Array): Promise<void>;
  /**
   * Next message; null when the peer disconnected (or this side closed the link). With
   * `into` (see {@link ReceiveOptions}) the result may be a view of that buffer.
   */
  receive(options?: ReceiveOptions): Promise<Uint8Array | null>;
  /** DISCONNECT / ACK, idempotent */
  close(): Promise<void>;
  /**
   * The best-effort lane, on links that have one (UDP): at most {@link maxDatagramBytes}, sent in
   * one datagram, never retransmitted; it may be lost or overtake another, never arrive twice.
   * Rejects with `PeerError` `EPEER` once the link is closed. Absent on TCP links.
   */
  sendDatagram?(data: Uint8Array): Promise<void>;
  /** Next datagram of the best-effort lane; null once the link ended. */
  receiveDatagram?(options?: { signal?: AbortSignal }): Promise<Uint8Array | null>;
  /** Longest datagram {@link sendDatagram} takes. */
  readonly maxDatagramBytes?: number;
  /**
   * UDP links of a listener: the paths the link may move between (docs/nat.md "Moving a session
   * to a direct path"). Absent where a link cannot move.
   */
  readonly paths?: PathControl;
}

/** A standby listener; `accept()` returns only links whose handshake succeeded. */
export interface PeerListener {
  readonly endpoint: Endpoint;
  accept(options?: { signal?: AbortSignal }): Promise<PeerLink>;
  close(): Promise<void>;
  /**
   * Punches to one expected peer: UDP from the listener's socket (`udp_punch.ts`), TCP by
   * simultaneous open from the listener's port (`tcp_punch.ts`); docs/nat.md. Absent on
   * transports that cannot punch.
   */
  punch?(options: PunchOptions): Promise<PunchResult>;
  /** Answer every CONNECT (`all`) or only those of peers being punched to (`punched`). */
  admit?(mode: "all" | "punched"): void;
  /** UDP: the listener's own socket for STUN, so STUN learns the mapping peers will use. */
  stunSocket?(): ListenerStunSocket;
  /**
   * UDP: speak through a TURN relay allocated on {@link stunSocket} (docs/relay.md); the
   * listener releases it when its socket closes.
   */
  attachRelay?(relay: ListenerRelay): void;
}

/** Options of {@link PeerTransport.connect}. */
export interface ConnectOptions {
  identity: PeerIdentity;
  /** The identity key the host listed for this peer; any other key → `PeerError` `EIDENTITY`. */
  expectedIdentityKey?: Uint8Array;
  /** This terminal's endpoint as the peer should see it (default: the socket's local address). */
  localEndpoint?: Endpoint;
  /** Default `DEFAULT_CONNECT_TIMEOUT_MS`; covers reaching the peer and the handshake. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Options of {@link PeerTransport.listen}. */
export interface ListenOptions {
  identity: PeerIdentity;
  /** Allow-list hook: false refuses the peer (it gets `PeerError` `EPEER` "refused"). */
  accept?: (peer: { userId: string; identityKey: Uint8Array }) => boolean;
  /** Default `DEFAULT_CONNECT_TIMEOUT_MS`: a silent client is dropped after this. */
  handshakeTimeoutMs?: number;
}

/** A way of reaching peers: TCP or UDP. */
export interface PeerTransport {
  readonly kind: TransportKind;
  connect(remote: Endpoint, options: ConnectOptions): Promise<PeerLink>;
  listen(local: { address: string; port: number }, options: ListenOptions): Promise<PeerListener>;
}

/**
 * A transport's ordered frame pipe to one peer, on which the handshake and the session run.
 * TCP frames it with length prefixes; a datagram transport adds retransmission underneath.
 */
export interface FrameChannel {
  /** Sends one frame. Calls may overlap; frames leave in call order. */
  send(frame: Frame): Promise<void>;
  /**
   * Next frame; null when the peer closed the channel or `close()` was called. An aborted
   * signal rejects with its reason. Calls must not overlap.
   */
  receive(options?: { signal?: AbortSignal }): Promise<Frame | null>;
  /** Releases the channel; idempotent. A pending `receive()` resolves to null. */
  close(): void;
}

// ---- punching and relays: the types UDP and TCP share (udp_punch.ts, tcp_punch.ts, udp_listener.ts)

/** A candidate endpoint of the peer; `kind` says how it was found (default `srflx`). */
export interface PunchCandidate extends Endpoint {
  /**
   * `host`: an address of the peer's own interface (LAN or global, no NAT in between);
   * `srflx`: its mapping as STUN saw it; `mapped`: a router port mapping (UPnP, NAT-PMP, PCP);
   * `relay`: an address a TURN server allocated for the peer (what reaches it is relayed).
   */
  kind?: CandidateKind;
}

/** How a candidate was found: the candidate types of the wire format (src/message/types.ts). */
export type CandidateKind = "host" | "srflx" | "mapped" | "relay";

/** Options of `PeerListener.punch()` (UDP: `UdpPeerListener`, TCP: `tcp_punch.ts`). */
export interface PunchOptions {
  /** The peer's Ed25519 identity key (from the host's reply or introduction). */
  peerKey: Uint8Array;
  /** Where the peer may be reached: 1 to `PUNCH_MAX_CANDIDATES` endpoints of the listener's transport. */
  candidates: readonly PunchCandidate[];
  /** How long to try, in ms; default `PUNCH_DEFAULT_WINDOW_MS`, at most `PUNCH_MAX_WINDOW_MS`. */
  windowMs?: number;
  /**
   * UDP only: ms between the starts of two successive candidates; default `PUNCH_STAGGER_MS`
   * (a race), at least that and at most `PUNCH_MAX_STAGGER_MS`. A stagger as long as a
   * per-candidate timeout tries the candidates one after another (what `scripts/bench-nat`
   * compares the race with); earlier candidates keep trying meanwhile. The TCP punch keeps
   * `PUNCH_STAGGER_MS`.
   */
  staggerMs?: number;
  /** This side's endpoint as the peer should see it; default the listener's socket address. */
  localEndpoint?: Endpoint;
  /** Told about each attempt, learned source and failed candidate (for logs); default none. */
  onEvent?: (event: PunchEvent) => void;
  signal?: AbortSignal;
}

/** What a punch does, as it does it. */
export type PunchEvent =
  | { type: "attempt"; remote: Endpoint; role: PunchRole }
  | { type: "learned"; remote: Endpoint }
  | { type: "failed"; remote: Endpoint; error: unknown }
  /** The listener's relay refused to permit one of the peer's addresses (docs/relay.md). */
  | { type: "permit-failed"; address: string; error: unknown };

/** How the packets of a session travel; see docs/nat.md "Path kinds". */
export type PathKind = "host" | "mapped" | "punched" | "relayed";

/** Which side of the handshake a punch runs; see the module doc. */
export type PunchRole = "controlling" | "controlled";

/** A punch that succeeded. */
export interface PunchResult {
  /** The session, already established and encrypted end to end. */
  link: PeerLink;
  /**
   * The kind of the winning pair (docs/nat.md "Path kinds"): `host`, `mapped` or `relayed` when
   * the remote is one of the peer's candidates of that kind, else `punched` (its NAT's mapping,
   * announced by STUN or seen as a peer-reflexive source).
   */
  path: PathKind;
  role: PunchRole;
  /** This side of the winning pair: the listener's socket. */
  local: Endpoint;
  /** The other side of the winning pair, as actually seen (may be no candidate at all). */
  remote: Endpoint;
  /**
   * Controlling side, when `remote` was learned from the peer's probe: the address of ours that
   * probe was sent to (which of this side's candidates the peer reaches).
   */
  reached?: Endpoint;
  /**
   * TCP only: how the connection came about. `connect`: this side's connect from the listener's
   * port completed (a simultaneous open when the peer's did too); `listener`: the listener
   * accepted the peer's connect.
   */
  via?: "connect" | "listener";
}

/**
 * The relay a listener speaks through: structurally a `TurnClient` (`turn_client.ts`) allocated
 * on this listener's own `stunSocket()`.
 */
export interface ListenerRelay {
  /** The relayed address peers send to. */
  readonly relayed: Endpoint;
  /** Whether the allocation is released or lost. */
  readonly closed: boolean;
  /** Lets `peer`'s address send through the relay. */
  permit(peer: Endpoint | string): Promise<void>;
  /** Binds a channel to `peer` (ChannelData from then on). */
  bindChannel(peer: Endpoint): Promise<number>;
  /** Sends one datagram to `peer` through the relay. */
  send(peer: Endpoint, bytes: Uint8Array): Promise<void>;
  /** Calls `listener` with every datagram a permitted peer sends through the relay. */
  onData(listener: (peer: Endpoint, bytes: Uint8Array) => void): () => void;
  /** Releases the allocation; idempotent. */
  close(): Promise<void>;
}

/**
 * The socket as STUN and TURN need it (structurally `StunSocket` of `src/terminal/stun.ts` and
 * `TurnSocket` of `turn_client.ts`): subscribers get STUN messages and ChannelData, with their
 * source.
 */
export interface ListenerStunSocket {
  readonly localPort: number;
  send(bytes: Uint8Array, host: string, port: number): Promise<void>;
  subscribe(listener: (bytes: Uint8Array, from: Endpoint) => void): () => void;
}
