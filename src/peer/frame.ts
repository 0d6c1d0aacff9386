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
import {
  COOKIE_BYTES,
  MAX_FRAME_BYTES,
  MAX_REASON_BYTES,
  MAX_USER_ID_BYTES,
  PEER_FRAME_VERSION,
} from "../protocol.ts";
import type { Endpoint } from "../message/types.ts";

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

/** Bytes of the handshake nonces. */
export const NONCE_BYTES = 16;
/** Bytes of an Ed25519 signature. */
export const SIGNATURE_BYTES = 64;
const KEY_BYTES = 32;
const MAX_ADDRESS_BYTES = 64;

/** The one-line error of a malformed frame. */
export function frameError(what: string): PeerError {
  return new PeerError(
    "EFRAME",
    `Cannot decode a peer frame: ${what}; the peer is not a compatible mailpeer peer`,
  );
}

/** Body of CONNECT (step 1: initiator → responder). */
export interface ConnectBody {
  /** The responder's endpoint as the initiator dialled it. */
  destination: Endpoint;
  /** The initiator's own endpoint. */
  source: Endpoint;
  userId: string;
  /** Ed25519 identity public key (32 bytes). */
  identityKey: Uint8Array;
  /** Random nonce (16 bytes). */
  nonce: Uint8Array;
  /** Ephemeral X25519 public key (32 bytes). */
  ephemeralKey: Uint8Array;
}

/** Body of CONNECT_ACK without its signature (what the transcript covers). */
export interface ConnectAckFields {
  userId: string;
  /** Ed25519 identity public key (32 bytes). */
  identityKey: Uint8Array;
  /** Random nonce (16 bytes). */
  nonce: Uint8Array;
  /** Ephemeral X25519 public key (32 bytes). */
  ephemeralKey: Uint8Array;
}

/** Body of CONNECT_ACK (step 2: responder → initiator). */
export interface ConnectAckBody extends ConnectAckFields {
  /** Responder's Ed25519 signature over the transcript (64 bytes). */
  signature: Uint8Array;
}

/** Body of a DATA frame. */
export interface DataBody {
  sequence: bigint;
  ciphertext: Uint8Array;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

class Writer {
  parts: Uint8Array[] = [];
  bytes(b: Uint8Array, length: number, what: string): void {
    if (b.length !== length) throw new RangeError(`${what} must have ${length} bytes`);
    this.parts.push(b);
  }
  short(text: string, max: number, what: string): void {
    const b = encoder.encode(text);
    if (b.length === 0 || b.length > max) {
      throw new RangeError(`${what} must have 1 to ${max} UTF-8 bytes`);
    }
    this.parts.push(Uint8Array.of(b.length), b);
  }
  endpoint(e: Endpoint): void {
    if (!Number.isInteger(e.port) || e.port < 0 || e.port > 0xffff) {
      throw new RangeError(`Port ${e.port} is not in 0..65535`);
    }
    this.parts.push(Uint8Array.of(e.transport === "udp" ? 1 : 0));
    this.short(e.address, MAX_ADDRESS_BYTES, "An endpoint address");
    this.parts.push(Uint8Array.of(e.port >> 8, e.port & 0xff));
  }
  done(): Uint8Array {
    const out = new Uint8Array(this.parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

class Reader {
  at = 0;
  constructor(readonly b: Uint8Array, readonly what: string) {}
  take(n: number): Uint8Array {
    if (this.at + n > this.b.length) throw frameError(`${this.what} body is truncated`);
    const out = this.b.slice(this.at, this.at + n);
    this.at += n;
    return out;
  }
  u8(): number {
    return this.take(1)[0]!;
  }
  short(max: number, field: string): string {
    const n = this.u8();
    if (n === 0 || n > max) throw frameError(`${this.what} ${field} has ${n} bytes`);
    try {
      return decoder.decode(this.take(n));
    } catch {
      throw frameError(`${this.what} ${field} is not UTF-8`);
    }
  }
  endpoint(): Endpoint {
    const t = this.u8();
    if (t > 1) throw frameError(`${this.what} endpoint has transport ${t}`);
    const address = this.short(MAX_ADDRESS_BYTES, "address");
    const p = this.take(2);
    return { transport: t === 1 ? "udp" : "tcp", address, port: (p[0]! << 8) | p[1]! };
  }
  end(): void {
    if (this.at !== this.b.length) throw frameError(`${this.what} body has trailing bytes`);
  }
}

/** Encodes a CONNECT body. Throws `RangeError` on fields of the wrong size. */
export function encodeConnect(body: ConnectBody): Uint8Array {
  const w = new Writer();
  w.endpoint(body.destination);
  w.endpoint(body.source);
  w.short(body.userId, MAX_USER_ID_BYTES, "A user id");
  w.bytes(body.identityKey, KEY_BYTES, "An identity key");
  w.bytes(body.nonce, NONCE_BYTES, "A nonce");
  w.bytes(body.ephemeralKey, KEY_BYTES, "An ephemeral key");
  return w.done();
}

function readConnect(r: Reader): ConnectBody {
  return {
    destination: r.endpoint(),
    source: r.endpoint(),
    userId: r.short(MAX_USER_ID_BYTES, "user id"),
    identityKey: r.take(KEY_BYTES),
    nonce: r.take(NONCE_BYTES),
    ephemeralKey: r.take(KEY_BYTES),
  };
}

/** Decodes a CONNECT body. */
export function decodeConnect(bytes: Uint8Array): ConnectBody {
  const r = new Reader(bytes, "CONNECT");
  const body = readConnect(r);
  r.end();
  return body;
}

/** A UDP CONNECT body: the CONNECT body, then the listener's cookie when it has one. */
export interface ConnectWithCookie {
  connect: ConnectBody;
  /** The CONNECT body alone (what the handshake transcript covers). */
  connectBytes: Uint8Array;
  /** {@link COOKIE_BYTES} bytes, or null on a first CONNECT. */
  cookie: Uint8Array | null;
}

/** Encodes a UDP CONNECT body: `connectBytes` (an encoded CONNECT body), then the cookie. */
export function encodeConnectWithCookie(connectBytes: Uint8Array, cookie: Uint8Array): Uint8Array {
  const w = new Writer();
  w.parts.push(connectBytes);
  w.bytes(cookie, COOKIE_BYTES, "A cookie");
  return w.done();
}

/** Decodes a UDP CONNECT body, with or without a cookie after the CONNECT fields. */
export function decodeConnectWithCookie(bytes: Uint8Array): ConnectWithCookie {
  const r = new Reader(bytes, "CONNECT");
  const connect = readConnect(r);
  const end = r.at;
  const rest = bytes.length - end;
  if (rest !== 0 && rest !== COOKIE_BYTES) throw frameError(`CONNECT cookie has ${rest} bytes`);
  return {
    connect,
    connectBytes: bytes.subarray(0, end),
    cookie: rest === 0 ? null : bytes.slice(end),
  };
}

/** Encodes a COOKIE body: the cookie itself. */
export function encodeCookie(cookie: Uint8Array): Uint8Array {
  const w = new Writer();
  w.bytes(cookie, COOKIE_BYTES, "A cookie");
  return w.done();
}

/** Decodes a COOKIE body into the cookie. */
export function decodeCookie(bytes: Uint8Array): Uint8Array {
  const r = new Reader(bytes, "COOKIE");
  const cookie = r.take(COOKIE_BYTES);
  r.end();
  return cookie;
}

/** Encodes the CONNECT_ACK fields that precede the signature. */
export function encodeConnectAckFields(fields: ConnectAckFields): Uint8Array {
  const w = new Writer();
  w.short(fields.userId, MAX_USER_ID_BYTES, "A user id");
  w.bytes(fields.identityKey, KEY_BYTES, "An identity key");
  w.bytes(fields.nonce, NONCE_BYTES, "A nonce");
  w.bytes(fields.ephemeralKey, KEY_BYTES, "An ephemeral key");
  return w.done();
}

/** Encodes a CONNECT_ACK body: the fields, then the signature. */
export function encodeConnectAck(body: ConnectAckBody): Uint8Array {
  const w = new Writer();
  w.parts.push(encodeConnectAckFields(body));
  w.bytes(body.signature, SIGNATURE_BYTES, "A signature");
  return w.done();
}

/** Decodes a CONNECT_ACK body. */
export function decodeConnectAck(bytes: Uint8Array): ConnectAckBody {
  const r = new Reader(bytes, "CONNECT_ACK");
  const body: ConnectAckBody = {
    userId: r.short(MAX_USER_ID_BYTES, "user id"),
    identityKey: r.take(KEY_BYTES),
    nonce: r.take(NONCE_BYTES),
    ephemeralKey: r.take(KEY_BYTES),
    signature: r.take(SIGNATURE_BYTES),
  };
  r.end();
  return body;
}

/** Encodes an ACK body (the initiator's signature). */
export function encodeAck(signature: Uint8Array): Uint8Array {
  const w = new Writer();
  w.bytes(signature, SIGNATURE_BYTES, "A signature");
  return w.done();
}

/** Decodes an ACK body into the initiator's signature. */
export function decodeAck(bytes: Uint8Array): Uint8Array {
  const r = new Reader(bytes, "ACK");
  const signature = r.take(SIGNATURE_BYTES);
  r.end();
  return signature;
}

/** Encodes a DATA body. */
export function encodeData(body: DataBody): Uint8Array {
  if (body.sequence < 0n || body.sequence > 0xffff_ffff_ffff_ffffn) {
    throw new RangeError(`Sequence ${body.sequence} is not a u64`);
  }
  const out = new Uint8Array(8 + body.ciphertext.length);
  new DataView(out.buffer).setBigUint64(0, body.sequence);
  out.set(body.ciphertext, 8);
  return out;
}

/** Decodes a DATA body. */
export function decodeData(bytes: Uint8Array): DataBody {
  if (bytes.length < 8) throw frameError("DATA body is truncated");
  const sequence = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0);
  return { sequence, ciphertext: bytes.slice(8) };
}

/** Encodes a DISCONNECT body: a short UTF-8 reason, possibly empty (truncated to the limit). */
export function encodeDisconnect(reason = ""): Uint8Array {
  const b = encoder.encode(reason);
  if (b.length <= MAX_REASON_BYTES) return b;
  let end = MAX_REASON_BYTES;
  while (end > 0 && (b[end]! & 0xc0) === 0x80) end--; // do not cut a UTF-8 sequence
  return b.slice(0, end);
}

/** Decodes a DISCONNECT body into its reason ("" when none). */
export function decodeDisconnect(bytes: Uint8Array): string {
  if (bytes.length > MAX_REASON_BYTES) throw frameError("DISCONNECT reason is too long");
  try {
    return decoder.decode(bytes);
  } catch {
    throw frameError("DISCONNECT reason is not UTF-8");
  }
}

/**
 * Plaintext of a STREAM_ACK (UDP, sealed like the other control frames):
 * `[u48 BE cumulative][u32 BE window][u8 count][count × (u48 BE start, u32 BE length)]`.
 * Segment numbers fit 48 bits (2^48 datagrams is ~300 PB per link).
 */
export interface StreamAckBody {
  cumulative: number;
  window: number;
  ranges: [number, number][];
}

const MAX_U48 = 2 ** 48 - 1;

function setU48(view: DataView, at: number, value: number): void {
  view.setUint16(at, Math.floor(value / 2 ** 32));
  view.setUint32(at + 2, value >>> 0);
}

function getU48(view: DataView, at: number): number {
  return view.getUint16(at) * 2 ** 32 + view.getUint32(at + 2);
}

/** Encodes a STREAM_ACK plaintext; at most `maxRanges` ranges. */
export function encodeStreamAck(body: StreamAckBody, maxRanges: number): Uint8Array {
  if (body.ranges.length > maxRanges || body.ranges.length > 255) {
    throw new RangeError(`${body.ranges.length} SACK ranges exceed ${maxRanges}`);
  }
  const out = new Uint8Array(11 + 10 * body.ranges.length);
  const view = new DataView(out.buffer);
  const u48 = (at: number, v: number) => {
    if (!Number.isInteger(v) || v < 0 || v > MAX_U48) throw new RangeError(`${v} is not a u48`);
    setU48(view, at, v);
  };
  u48(0, body.cumulative);
  view.setUint32(6, Math.min(body.window, 0xffff_ffff));
  out[10] = body.ranges.length;
  body.ranges.forEach(([start, end], i) => {
    u48(11 + 10 * i, start);
    view.setUint32(17 + 10 * i, end - start);
  });
  return out;
}

/** Decodes a STREAM_ACK plaintext; `EFRAME` when malformed or with more than `maxRanges`. */
export function decodeStreamAck(bytes: Uint8Array, maxRanges: number): StreamAckBody {
  if (bytes.length < 11) throw frameError("STREAM_ACK is truncated");
  const count = bytes[10]!;
  if (count > maxRanges) throw frameError(`STREAM_ACK carries ${count} SACK ranges`);
  if (bytes.length !== 11 + 10 * count) throw frameError("STREAM_ACK has the wrong length");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const ranges: [number, number][] = [];
  for (let i = 0; i < count; i++) {
    const start = getU48(view, 11 + 10 * i);
    const length = view.getUint32(17 + 10 * i);
    if (length === 0) throw frameError("STREAM_ACK has an empty SACK range");
    ranges.push([start, start + length]);
  }
  return { cumulative: getU48(view, 0), window: view.getUint32(6), ranges };
}

// ---- path frames (link_paths.ts) ------------------------------------------------------------

/** Bytes of a path id, the clear prefix of every PATH_* frame body. */
export const PATH_ID_BYTES = 8;
/** Bytes of a PATH_CHALLENGE token. */
export const PATH_TOKEN_BYTES = 8;

/**
 * Plaintext of a PATH_CHALLENGE: a fresh token and the endpoint it was sent to (which of the
 * receiver's addresses it reached); of a PATH_RESPONSE: the token echoed and the source the
 * challenge came from (how the responder sees the challenger: a reflexive address).
 */
export interface PathProbeBody {
  token: Uint8Array;
  endpoint: Endpoint;
}

/** Encodes a PATH_CHALLENGE or PATH_RESPONSE plaintext: `[token (8)][endpoint]`. */
export function encodePathProbe(body: PathProbeBody): Uint8Array {
  const w = new Writer();
  w.bytes(body.token, PATH_TOKEN_BYTES, "A path token");
  w.endpoint(body.endpoint);
  return w.done();
}

/** Decodes a PATH_CHALLENGE or PATH_RESPONSE plaintext; `EFRAME` when malformed. */
export function decodePathProbe(bytes: Uint8Array): PathProbeBody {
  const r = new Reader(bytes, "PATH probe");
  const token = r.take(PATH_TOKEN_BYTES);
  const endpoint = r.endpoint();
  r.end();
  return { token, endpoint };
}

/**
 * Encodes a PATH_CANDIDATES plaintext, the sender's current UDP candidates:
 * `[u8 count][count × ([u8 kind][endpoint])]`, kind 0 host, 1 srflx, 2 mapped (a relay is not
 * offered: the session already has one). At most `max` candidates (`RangeError`).
 */
export function encodePathCandidates(
  candidates: readonly (Endpoint & { kind?: "host" | "srflx" | "mapped" })[],
  max: number,
): Uint8Array {
  if (candidates.length > max || candidates.length > 255) {
    throw new RangeError(`${candidates.length} path candidates exceed ${max}`);
  }
  const w = new Writer();
  w.parts.push(Uint8Array.of(candidates.length));
  for (const c of candidates) {
    w.parts.push(Uint8Array.of(c.kind === "host" ? 0 : c.kind === "mapped" ? 2 : 1));
    w.endpoint(c);
  }
  return w.done();
}

/** Decodes a PATH_CANDIDATES plaintext; `EFRAME` when malformed or with more than `max`. */
export function decodePathCandidates(
  bytes: Uint8Array,
  max: number,
): (Endpoint & { kind: "host" | "srflx" | "mapped" })[] {
  const r = new Reader(bytes, "PATH_CANDIDATES");
  const count = r.u8();
  if (count > max) throw frameError(`PATH_CANDIDATES carries ${count} candidates`);
  const out: (Endpoint & { kind: "host" | "srflx" | "mapped" })[] = [];
  for (let i = 0; i < count; i++) {
    const k = r.u8();
    if (k > 2) throw frameError(`PATH_CANDIDATES candidate has kind ${k}`);
    const e = r.endpoint();
    if (e.transport !== "udp") throw frameError("PATH_CANDIDATES candidate is not udp");
    out.push({ ...e, kind: k === 0 ? "host" : k === 2 ? "mapped" : "srflx" });
  }
  r.end();
  return out;
}
