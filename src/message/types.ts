/**
 * Payload types of the mailpeer wire format (docs/design.md "Wire contract"). Pure data, no I/O.
 *
 * Keys travel as raw bytes: X25519 and Ed25519 public keys are 32 bytes each.
 *
 * @module
 */

/** Transport of a peer endpoint. */
export type TransportKind = "tcp" | "udp";

/** One address at which a terminal accepts peer connections. */
export interface Endpoint {
  transport: TransportKind;
  /** An IPv4 or IPv6 literal, without brackets. */
  address: string;
  port: number;
}

/** How a terminal learned a candidate address (docs/design.md "Reachability"). */
export type CandidateType =
  /** An address of a local interface, or the configured address (LAN or global). */
  | "host"
  /** Server-reflexive: the NAT's public side of the listening port, as STUN saw it. */
  | "srflx"
  /** A port the router opened on request (UPnP IGD, NAT-PMP, PCP). */
  | "mapped"
  /**
   * Relayed (ICE's "relayed"): an address a TURN server allocated for the terminal (RFC 8656);
   * what is sent to it reaches the terminal through the relay. UDP only. On the wire it travels
   * in `relayCandidates`, apart from the others, so that readers of earlier versions skip it
   * (docs/protocol.md "Relayed candidates").
   */
  | "relay";

/** How a NAT maps one local port: the same towards every destination (RFC 4787), or not. */
export type NatMapping = "endpoint-independent" | "endpoint-dependent";

/** An endpoint with how it was found and how much its owner prefers it (ICE-style). */
export interface Candidate extends Endpoint {
  type: CandidateType;
  /** 1 to `MAX_CANDIDATE_PRIORITY`; higher is tried first (RFC 8445 §5.1.2). */
  priority: number;
  /** `srflx` only: the NAT's mapping behaviour, when two STUN answers told it. */
  mapping?: NatMapping;
}

/** Kinds of coded block. The number is the kind byte on the wire. */
export const BlockKind = {
  request: 1,
  reply: 2,
  notice: 3,
  sync: 4,
  introduction: 5,
} as const;
/** Name of a block kind. */
export type BlockKindName = keyof typeof BlockKind;

/** What a terminal asks a host (sealed to the host's X25519 key, signed by the identity key). */
export interface RequestPayload {
  network: string;
  userId: string;
  /** The terminal's Ed25519 identity public key (32 bytes). */
  identityKey: Uint8Array;
  /** Version 1 view: the candidates' transport, address and port, in the same order. */
  endpoints: Endpoint[];
  /**
   * Typed candidates (payload version 2); absent in a version 1 request, whose endpoints then
   * count as `host` candidates (see `candidatesOf`).
   */
  candidates?: Candidate[];
  /** Random 128-bit session id (16 bytes). */
  sessionId: Uint8Array;
  /** Milliseconds since the epoch. */
  createdAt: number;
  /** Ephemeral X25519 public key the reply is sealed to (32 bytes). */
  replyKey: Uint8Array;
  /** Host cards (as strings) this request was sent to. */
  hostCards: string[];
  /**
   * Version 2: an X25519 public key (32 bytes) the host seals introductions to while this
   * request's row lives; absent: the terminal wants none.
   */
  introductionKey?: Uint8Array;
  /**
   * The reply extensions this terminal reads (docs/protocol.md "Reply extensions"), e.g.
   * `["role"]`; absent: none. A host of an earlier version ignores the field.
   */
  reads?: string[];
}

/**
 * What a host mails a listed terminal B when it lists B to requester A (docs/design.md
 * "Reachability"): A's user id, key and candidates, and when both ends punch. Sealed to B's
 * introduction key, signed by the host's Ed25519 key. Never carries an e-mail address.
 */
export interface IntroductionPayload {
  network: string;
  /** The host's Ed25519 public key (32 bytes). */
  hostId: Uint8Array;
  /** The session id of B's own request (whose row the host listed): B's check it is current. */
  sessionId: Uint8Array;
  createdAt: number;
  /** The requester A. */
  peer: { userId: string; identityKey: Uint8Array; candidates: Candidate[] };
  /** A's session id (16 bytes): names this rendezvous in both ends' logs. */
  peerSessionId: Uint8Array;
  /** When both ends start and stop sending to each other's candidates, ms since the epoch. */
  punchStart: number;
  punchEnd: number;
}

/** One peer in a reply. Never carries an e-mail address. */
export interface PeerEntry {
  userId: string;
  /** The peer's Ed25519 identity public key (32 bytes). */
  identityKey: Uint8Array;
  /** Version 1 view of `candidates` (transport, address, port, same order). */
  endpoints: Endpoint[];
  /** The peer's typed candidates, when its request carried them (reply version 2). */
  candidates?: Candidate[];
  /** Milliseconds since the epoch of the peer's latest request. */
  lastSeen: number;
  /** How many notices reported this peer as unreachable. */
  failures: number;
}

/** What a host answers (sealed to the request's reply key, signed by the host's Ed25519 key). */
export interface ReplyPayload {
  network: string;
  /** Echo of the request's session id. */
  sessionId: Uint8Array;
  /** The host's Ed25519 public key, identifying the host (32 bytes). */
  hostId: Uint8Array;
  createdAt: number;
  peers: PeerEntry[];
  /**
   * Who answered in the host role of a group with no standing host (docs/decisions.md "First
   * receiver becomes host"); only in a reply to a request that `reads` `role`.
   */
  role?: ReplyRole;
}

/** The `role` of a reply: the member holding the host role as it answered, and where to mail. */
export interface ReplyRole {
  /** The holder's member name (its terminal's user id). */
  holder: string;
  /** The lease's epoch, 1 to `MAX_ROLE_EPOCH`. */
  epoch: number;
  /** When the holder's lease ends unless renewed, ms since the epoch. */
  until: number;
  /** The address later requests go to: the holder's host card's e-mail (the shared mailbox). */
  address: string;
}

/** A terminal's report of peers it could not reach (sealed to the host, signed by the reporter). */
export interface NoticePayload {
  network: string;
  userId: string;
  /** The reporter's Ed25519 identity public key (32 bytes). */
  identityKey: Uint8Array;
  /** Session id of the request whose reply listed the failed peers. */
  sessionId: Uint8Array;
  createdAt: number;
  failed: { userId: string; endpoint?: Endpoint; reason: string }[];
}

/** The signed request behind a control table row (host/pool/request_proof.ts checks it). */
export interface RequestProof {
  /** The request payload as the terminal encoded it (codec bytes). */
  body: Uint8Array;
  /** The terminal's Ed25519 signature (64 bytes). */
  signature: Uint8Array;
  /** The X25519 public key of the host the request was sealed to (32 bytes). */
  recipient: Uint8Array;
}
