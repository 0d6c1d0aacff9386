/**
 * Payload types of the mailpeer wire format (DESIGN §2). Pure data, no I/O.
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

/** Kinds of coded block. The number is the kind byte on the wire. */
export const BlockKind = {
  request: 1,
  reply: 2,
  notice: 3,
  sync: 4,
} as const;
/** Name of a block kind. */
export type BlockKindName = keyof typeof BlockKind;

/** What a terminal asks a host (sealed to the host's X25519 key, signed by the identity key). */
export interface RequestPayload {
  network: string;
  userId: string;
  /** The terminal's Ed25519 identity public key (32 bytes). */
  identityKey: Uint8Array;
  endpoints: Endpoint[];
  /** Random 128-bit session id (16 bytes). */
  sessionId: Uint8Array;
  /** Milliseconds since the epoch. */
  createdAt: number;
  /** Ephemeral X25519 public key the reply is sealed to (32 bytes). */
  replyKey: Uint8Array;
  /** Host cards (as strings) this request was sent to. */
  hostCards: string[];
}

/** One peer in a reply. Never carries an e-mail address. */
export interface PeerEntry {
  userId: string;
  /** The peer's Ed25519 identity public key (32 bytes). */
  identityKey: Uint8Array;
  endpoints: Endpoint[];
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
