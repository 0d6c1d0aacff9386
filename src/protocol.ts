/**
 * The wire contract's constants: versions, and the sizes and counts every mailpeer peer and host
 * must agree on (docs/design.md "Wire contract"). Changing one changes what other versions of
 * mailpeer accept: bump a version with it. Limits a deployment may tune live in `limits.ts`.
 *
 * @module
 */

/** Version byte of the coded block (peer frames carry `PEER_FRAME_VERSION`). */
export const PROTOCOL_VERSION = 1;

/**
 * Version byte of peer frames, TCP and UDP. Version 2 (issue 12): on UDP, PING, PONG,
 * DISCONNECT and DISCONNECT_ACK are sealed under the session keys, and a listener answers a
 * first CONNECT with a COOKIE. Version 3 (issue 13): UDP DATA is a reliable, ordered stream
 * acknowledged by sealed STREAM_ACK frames. A frame of another version is `EFRAME`.
 */
export const PEER_FRAME_VERSION = 3;

/**
 * Version of request and reply payloads that carry typed candidates (`"version": 2`). A payload
 * without a `version` field is version 1 (endpoints only); any other version is `EPAYLOAD`.
 */
export const CANDIDATES_PAYLOAD_VERSION = 2;

/**
 * What a request can say it reads in a reply (`reads`, docs/protocol.md "Reply extensions"): a
 * host puts an extension's field into the reply only when the request names it, so a terminal
 * that does not name it gets the reply it always got. `role`: who answered in the host role.
 */
export const REPLY_READS_ROLE = "role";

/** Most entries of a request's `reads` list, and the longest entry, in bytes. */
export const MAX_REPLY_READS = 8;
export const MAX_REPLY_READ_BYTES = 32;

/** Highest host role epoch, in a role lease and in a reply's `role` (no overflow, no lock-out). */
export const MAX_ROLE_EPOCH = 2 ** 31 - 1;

/** Largest decoded coded block. */
export const MAX_BLOCK_BYTES = 16 * 1024;

/** Largest number of endpoints one request may carry. */
export const MAX_ENDPOINTS = 8;

/** Largest number of host cards one request may carry. */
export const MAX_HOST_CARDS = 16;

/** Longest user id, in UTF-8 bytes. */
export const MAX_USER_ID_BYTES = 64;

/** Longest network id, in UTF-8 bytes. */
export const MAX_NETWORK_ID_BYTES = 64;

/** Longest notice reason, in UTF-8 bytes. */
export const MAX_REASON_BYTES = 256;

/** Largest peer frame payload. */
export const MAX_FRAME_BYTES = 256 * 1024;

/** Bytes of a UDP listener's CONNECT cookie (a truncated HMAC-SHA256). */
export const COOKIE_BYTES = 16;

/**
 * Largest frame a TCP peer accepts before the handshake is done (the largest CONNECT is under
 * 300 bytes); a longer one is `EFRAME` at once. With {@link MAX_PENDING_TCP_HANDSHAKES}, it
 * bounds what unauthenticated connections hold: 128 × 4 KiB = 512 KiB of read buffers.
 */
export const MAX_HANDSHAKE_FRAME_BYTES = 4 * 1024;

/** SACK ranges one stream ack carries at most (a longer list is `EFRAME`-dropped). */
export const STREAM_MAX_SACK_RANGES = 16;

/** Most peers one notice may report as failed; a longer `failed` list is refused whole. */
export const MAX_NOTICE_FAILED = 16;

/**
 * Most candidates one request (or one peer of a reply) carries, relayed ones included. Equal to
 * `MAX_ENDPOINTS`: the `endpoints` list of a version 2 payload is the projection of the
 * candidates other than `relay`, for older readers.
 */
export const MAX_CANDIDATES = 8;

/**
 * Most `relay` candidates one request (or one peer of a reply or introduction) carries, counted
 * within `MAX_CANDIDATES`: a terminal allocates on one TURN server (two, should IPv6 relays come).
 */
export const MAX_RELAY_CANDIDATES = 2;

/**
 * Most global IPv6 interface addresses a terminal announces as `host` candidates (a host may
 * carry several, e.g. temporary privacy addresses), within `MAX_CANDIDATES`: docs/nat.md "IPv6".
 */
export const MAX_IPV6_HOST_CANDIDATES = 2;

/** Highest candidate priority (ICE, RFC 8445 §5.1.2: a 32-bit value below 2^31). */
export const MAX_CANDIDATE_PRIORITY = 2 ** 31 - 1;

/** Longest punch window an introduction may state, in ms (a longer one is refused). */
export const MAX_PUNCH_WINDOW_MS = 10 * 60 * 1000;
