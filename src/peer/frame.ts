/**
 * Peer frames (docs/protocol.md "Peer frames"): a pure codec with encode/decode pairs, no I/O.
 *
 * On TCP a frame is `[u32 BE length][version u8][type u8][body]`, where `length` counts the
 * version, type and body bytes and is at most {@link MAX_FRAME_BYTES}. A datagram (UDP) carries
 * one frame without the length prefix. Anything malformed throws `PeerError` `EFRAME`.
 *
 * Bodies:
 * - CONNECT: destination endpoint, source endpoint, user id, identity key (32), nonce (16),
 *   ephemeral X25519 key (32).
 * - CONNECT_ACK: user id, identity key (32), nonce (16), ephemeral key (32), signature (64).
 * - ACK: signature (64).
 * - DATA: `[u64 BE sequence][ciphertext]`.
 * - COOKIE (UDP only): the listener's cookie (16 bytes), which the initiator appends to the
 *   CONNECT body it sends again (`encodeConnectWithCookie`).
 * - DISCONNECT: an optional UTF-8 reason; DISCONNECT_ACK, PING, PONG: opaque bytes. On UDP,
 *   once the session is up, these four are sealed like DATA (`SessionCipher.sealControl`):
 *   `[u64 BE control sequence][ciphertext]`.
 * - STREAM_ACK (UDP only, version 3): sealed like those four; its plaintext acknowledges DATA
 *   segments of the reliable stream (`encodeStreamAck`).
 * - DATAGRAM (UDP only, version 3): sealed likewise; its plaintext is one best-effort
 *   application datagram (`PeerLink.sendDatagram`).
 * - PATH_CHALLENGE, PATH_RESPONSE, PATH_CANDIDATES (UDP only): `[path id (8)][sealed body]`, the
 *   body sealed like the control frames; the path id in clear lets a listener find the link
 *   when the datagram comes from an address it does not know yet (`link_paths.ts`, docs/nat.md
 *   "Moving a session to a direct path"). Plaintexts: `encodePathChallenge`,
 *   `encodePathResponse`, `encodePathCandidates`.
 *
 * An endpoint is `[u8 transport: 0 tcp, 1 udp][u8 length][address, ASCII][u16 BE port]`, a user
 * id `[u8 length][UTF-8]`.
 *
 * @module
 */
import { PeerError } from "../errors.ts";
import { MAX_FRAME_BYTES, PEER_FRAME_VERSION } from "../limits.ts";
import { frameError } from "./frame_bodies.ts";

/**
 * Bytes that are no mailpeer frame at all (an absurd length, a version byte mailpeer never
 * used): another service answered, or the bytes were damaged. Never blamed on a version.
 */
function notMailpeer(what: string): PeerError {
  return new PeerError(
    "EFRAME",
    `Cannot decode a peer frame: ${what}; the other end does not speak mailpeer ` +
      "(another program at that address, or damaged data)",
  );
}

/**
 * A version byte other than ours. Only 1 up to two past ours is another mailpeer version (docs/
 * cli.md "Honest errors"): anything else is {@link notMailpeer}.
 */
function versionError(version: number): PeerError {
  if (version < 1 || version > PEER_FRAME_VERSION + 2) {
    return notMailpeer(`its version byte is ${version}, no mailpeer version`);
  }
  return new PeerError(
    "EFRAME",
    `Cannot decode a peer frame: the peer speaks frame version ${version}, this mailpeer ` +
      `version ${PEER_FRAME_VERSION}; run the same mailpeer version on both ends`,
  );
}

/** Frame types; the number is the type byte on the wire. */
export const FrameType = {
  CONNECT: 1,
  CONNECT_ACK: 2,
  ACK: 3,
  DATA: 4,
  DISCONNECT: 5,
  DISCONNECT_ACK: 6,
  PING: 7,
  PONG: 8,
  COOKIE: 9,
  STREAM_ACK: 10,
  DATAGRAM: 11,
  PATH_CHALLENGE: 12,
  PATH_RESPONSE: 13,
  PATH_CANDIDATES: 14,
} as const;
/** A frame type byte. */
export type FrameType = typeof FrameType[keyof typeof FrameType];

/** One decoded frame. */
export interface Frame {
  type: FrameType;
  body: Uint8Array;
  /**
   * The same frame already encoded for a stream (what {@link encodeFrame} returns), with
   * `body` a view into it: lets the sender build a frame in place and a stream transport
   * write it without copying. Datagram transports ignore it.
   */
  encoded?: Uint8Array;
}

/** Bytes of the length prefix of a TCP frame. */
export const LENGTH_PREFIX_BYTES = 4;
/** Bytes of the version and type header that every frame starts with. */
export const FRAME_HEADER_BYTES = 2;
/** Longest body a frame may carry. */
export const MAX_FRAME_BODY_BYTES = MAX_FRAME_BYTES - FRAME_HEADER_BYTES;
const TYPE_VALUES = new Set<number>(Object.values(FrameType));

function header(type: FrameType, bodyLength: number): void {
  if (!TYPE_VALUES.has(type)) throw new RangeError(`Unknown frame type ${type}`);
  if (bodyLength > MAX_FRAME_BODY_BYTES) {
    throw new RangeError(`Frame body of ${bodyLength} bytes exceeds ${MAX_FRAME_BODY_BYTES}`);
  }
}

/** Encodes a frame for a byte stream (TCP): with its u32 length prefix. */
export function encodeFrame(frame: Frame): Uint8Array {
  header(frame.type, frame.body.length);
  if (frame.encoded) return frame.encoded;
  const length = FRAME_HEADER_BYTES + frame.body.length;
  const out = new Uint8Array(LENGTH_PREFIX_BYTES + length);
  new DataView(out.buffer).setUint32(0, length);
  out[4] = PEER_FRAME_VERSION;
  out[5] = frame.type;
  out.set(frame.body, 6);
  return out;
}

/** Encodes a frame as one datagram (UDP): no length prefix. */
export function encodeDatagram(frame: Frame): Uint8Array {
  header(frame.type, frame.body.length);
  const out = new Uint8Array(FRAME_HEADER_BYTES + frame.body.length);
  out[0] = PEER_FRAME_VERSION;
  out[1] = frame.type;
  out.set(frame.body, 2);
  return out;
}

function checkHeader(version: number, type: number): FrameType {
  if (version !== PEER_FRAME_VERSION) throw versionError(version);
  if (!TYPE_VALUES.has(type)) throw notMailpeer(`its type byte ${type} is no frame type`);
  return type as FrameType;
}

/** Decodes one whole datagram (UDP) into a frame. */
export function decodeDatagram(bytes: Uint8Array): Frame {
  if (bytes.length < FRAME_HEADER_BYTES) throw frameError("datagram shorter than its header");
  if (bytes.length > MAX_FRAME_BYTES) throw frameError(`datagram of ${bytes.length} bytes`);
  const type = checkHeader(bytes[0]!, bytes[1]!);
  return { type, body: bytes.slice(2) };
}

/** Decodes exactly one length-prefixed frame; trailing or missing bytes are an error. */
export function decodeFrame(bytes: Uint8Array): Frame {
  const decoder = new FrameDecoder();
  const frames = decoder.push(bytes);
  if (frames.length !== 1 || decoder.buffered !== 0) {
    throw frameError(frames.length === 0 ? "truncated frame" : "bytes after the frame");
  }
  return frames[0]!;
}

/** First size of a {@link FrameReader}'s buffer: handshake and chat frames fit. */
const FIRST_READ_BUFFER_BYTES = 64 * 1024;
/**
 * Size a {@link FrameReader}'s buffer grows to once a frame does not fit: four largest frames,
 * so one read takes in several (fewer read calls) and a frame cut at the end of the buffer is
 * moved to its start only about once per four frames.
 */
const BULK_READ_BUFFER_BYTES = 4 * (LENGTH_PREFIX_BYTES + MAX_FRAME_BYTES);
/** Reads smaller than this are avoided by moving the unread bytes to the start first. */
const MIN_READ_BYTES = 16 * 1024;

/** Options of {@link FrameReader}. */
export interface FrameReaderOptions {
  /** First size of the buffer; default 64 KiB. */
  capacity?: number;
  /** Longest frame accepted (a longer announced length is `EFRAME`); default `MAX_FRAME_BYTES`. */
  maxFrameBytes?: number;
}

/**
 * Decodes a byte stream (TCP) in one reused buffer, with no copy: the transport reads into
 * {@link FrameReader.space}, reports how much with {@link FrameReader.filled}, and takes the
 * frames out with {@link FrameReader.next}. A frame's body is a view into the buffer, valid
 * until the next `space()` call (which may move or overwrite it). A bad header throws `EFRAME`
 * as soon as it is in, without waiting for an announced oversize body. The buffer starts at
 * 64 KiB and grows once to about 1 MiB (four largest frames) when a frame does not fit. A
 * reader made with a small `maxFrameBytes` and `capacity` (a TCP handshake) never grows past
 * them until {@link FrameReader.allow} raises them.
 */
export class FrameReader {
  #buf: Uint8Array;
  #max: number;
  #start = 0;
  #end = 0;

  constructor(options: FrameReaderOptions = {}) {
    this.#buf = new Uint8Array(options.capacity ?? FIRST_READ_BUFFER_BYTES);
    this.#max = Math.min(options.maxFrameBytes ?? MAX_FRAME_BYTES, MAX_FRAME_BYTES);
  }

  /**
   * Raises the longest frame accepted and the buffer's size (keeping what it holds); the
   * defaults are those of a new reader.
   */
  allow(options: FrameReaderOptions = {}): void {
    this.#max = Math.min(options.maxFrameBytes ?? MAX_FRAME_BYTES, MAX_FRAME_BYTES);
    const capacity = options.capacity ?? FIRST_READ_BUFFER_BYTES;
    if (capacity <= this.#buf.length) return;
    const next = new Uint8Array(capacity);
    next.set(this.#buf.subarray(this.#start, this.#end));
    this.#end -= this.#start;
    this.#start = 0;
    this.#buf = next;
  }

  /** Bytes received that do not yet form a whole frame (or were not taken out yet). */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /** Where the next read goes, once `next()` returned null: the free end of the buffer. */
  space(): Uint8Array {
    const buffered = this.#end - this.#start;
    if (buffered === 0) this.#start = this.#end = 0;
    const frame = buffered >= LENGTH_PREFIX_BYTES ? LENGTH_PREFIX_BYTES + this.#length() : 0;
    if (frame > this.#buf.length) {
      const next = new Uint8Array(Math.max(frame, BULK_READ_BUFFER_BYTES));
      next.set(this.#buf.subarray(this.#start, this.#end));
      this.#buf = next;
      this.#start = 0;
      this.#end = buffered;
    } else if (
      this.#start > 0 &&
      this.#buf.length - this.#end < Math.max(frame - buffered, MIN_READ_BYTES)
    ) {
      this.#buf.copyWithin(0, this.#start, this.#end);
      this.#start = 0;
      this.#end = buffered;
    }
    return this.#buf.subarray(this.#end);
  }

  /** Counts `n` bytes just read into {@link FrameReader.space}. */
  filled(n: number): void {
    if (n < 0 || this.#end + n > this.#buf.length) throw new RangeError(`Cannot fill ${n} bytes`);
    this.#end += n;
  }

  /** The next whole frame, its body a view into the buffer; null until one is complete. */
  next(): Frame | null {
    const buffered = this.#end - this.#start;
    if (buffered < LENGTH_PREFIX_BYTES) return null;
    const length = this.#length();
    if (buffered > LENGTH_PREFIX_BYTES) checkVersion(this.#buf[this.#start + LENGTH_PREFIX_BYTES]!);
    if (buffered < LENGTH_PREFIX_BYTES + length) return null;
    const at = this.#start + LENGTH_PREFIX_BYTES;
    const type = checkHeader(this.#buf[at]!, this.#buf[at + 1]!);
    this.#start = at + length;
    return { type, body: this.#buf.subarray(at + FRAME_HEADER_BYTES, at + length) };
  }

  /** The checked length of the frame at the start (its prefix must be in). */
  #length(): number {
    const b = this.#buf;
    const at = this.#start;
    const length = ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
    if (length < FRAME_HEADER_BYTES) throw notMailpeer(`it announces a frame of ${length} bytes`);
    if (length > this.#max) {
      throw notMailpeer(`it announces a frame of ${length} bytes, more than ${this.#max}`);
    }
    return length;
  }
}

/**
 * Decodes a byte stream (TCP) into frames: push chunks as they arrive, split anywhere, and get
 * back every frame they complete, each body a copy of its own. Throws `EFRAME` as soon as a
 * header is invalid, without waiting for an announced oversize body.
 */
export class FrameDecoder {
  #reader = new FrameReader();

  /** Bytes received that do not yet form a whole frame. */
  get buffered(): number {
    return this.#reader.buffered;
  }

  /** Adds a chunk and returns the frames now complete, in order. */
  push(chunk: Uint8Array): Frame[] {
    const frames: Frame[] = [];
    let at = 0;
    do {
      const space = this.#reader.space();
      const n = Math.min(space.length, chunk.length - at);
      space.set(chunk.subarray(at, at + n));
      this.#reader.filled(n);
      at += n;
      for (let frame = this.#reader.next(); frame; frame = this.#reader.next()) {
        frames.push({ type: frame.type, body: frame.body.slice() });
      }
    } while (at < chunk.length);
    return frames;
  }
}

function checkVersion(version: number): void {
  if (version !== PEER_FRAME_VERSION) throw versionError(version);
}
