/**
 * STUN (RFC 8489) and TURN (RFC 8656) messages: a pure codec, no I/O. Decodes XOR-MAPPED-ADDRESS
 * and the RFC 3489 MAPPED-ADDRESS, IPv4 and IPv6, checks the magic cookie, the transaction id
 * and an optional FINGERPRINT. For TURN it encodes and decodes any method and class with the
 * attributes a TURN client needs (XOR-RELAYED-ADDRESS, XOR-PEER-ADDRESS, CHANNEL-NUMBER,
 * LIFETIME, REQUESTED-TRANSPORT, DATA, REALM, NONCE, USERNAME, ERROR-CODE), computes and checks
 * MESSAGE-INTEGRITY (HMAC-SHA1 with the long-term key MD5(user:realm:password), RFC 8489 §9.2)
 * and frames ChannelData (RFC 8656 §12.4). The Binding client is `src/terminal/stun.ts`, the
 * TURN client `src/peer/turn_client.ts`.
 *
 * @module
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto";

/** The magic cookie of every RFC 5389/8489 message. */
export const STUN_MAGIC_COOKIE = 0x2112a442;
/** The default STUN port (RFC 8489 §9). */
export const STUN_DEFAULT_PORT = 3478;
/** Largest STUN message accepted by default (Binding; TURN passes its own `maxBytes`). */
export const STUN_MAX_MESSAGE_BYTES = 1500;
/** Most attributes one message may carry; a message with more is not decoded. */
export const STUN_MAX_ATTRIBUTES = 32;
/** Longest REALM and NONCE value (RFC 8489 §14.9, §14.10: < 128 characters, ≤ 763 bytes). */
export const STUN_MAX_TEXT_BYTES = 763;
/** Longest USERNAME value (RFC 8489 §14.3). */
export const STUN_MAX_USERNAME_BYTES = 513;
/** The first and last TURN channel number (RFC 8656 §12: 0x4000–0x4FFF). */
export const TURN_CHANNEL_MIN = 0x4000;
export const TURN_CHANNEL_MAX = 0x4fff;

const HEADER_BYTES = 20;
const BINDING_REQUEST = 0x0001;
const BINDING_SUCCESS = 0x0101;
const BINDING_ERROR = 0x0111;
const ATTR_MAPPED_ADDRESS = 0x0001;
const ATTR_MESSAGE_INTEGRITY = 0x0008;
const ATTR_ERROR_CODE = 0x0009;
const ATTR_XOR_MAPPED_ADDRESS = 0x0020;
const ATTR_FINGERPRINT = 0x8028;
const FINGERPRINT_XOR = 0x5354554e;
const INTEGRITY_BYTES = 20;

/** STUN methods (RFC 8489 §18.2, RFC 8656 §17). */
export const StunMethod = {
  binding: 0x001,
  allocate: 0x003,
  refresh: 0x004,
  send: 0x006,
  data: 0x007,
  createPermission: 0x008,
  channelBind: 0x009,
} as const;

/** STUN message classes, as their bits in the message type (RFC 8489 §5). */
export const StunClass = {
  request: 0x0000,
  indication: 0x0010,
  success: 0x0100,
  error: 0x0110,
} as const;
/** One of {@link StunClass}'s values. */
export type StunClassBits = (typeof StunClass)[keyof typeof StunClass];

/** STUN and TURN attribute types (RFC 8489 §18.3, RFC 8656 §18). */
export const StunAttr = {
  MAPPED_ADDRESS: ATTR_MAPPED_ADDRESS,
  USERNAME: 0x0006,
  MESSAGE_INTEGRITY: ATTR_MESSAGE_INTEGRITY,
  ERROR_CODE: ATTR_ERROR_CODE,
  CHANNEL_NUMBER: 0x000c,
  LIFETIME: 0x000d,
  XOR_PEER_ADDRESS: 0x0012,
  DATA: 0x0013,
  REALM: 0x0014,
  NONCE: 0x0015,
  XOR_RELAYED_ADDRESS: 0x0016,
  REQUESTED_TRANSPORT: 0x0019,
  XOR_MAPPED_ADDRESS: ATTR_XOR_MAPPED_ADDRESS,
  FINGERPRINT: ATTR_FINGERPRINT,
} as const;

/** One attribute: its type and value (unpadded). */
export type StunAttribute = [type: number, value: Uint8Array];

/** An address and port as carried by (XOR-)MAPPED-ADDRESS. */
export interface StunMappedAddress {
  family: "IPv4" | "IPv6";
  address: string;
  port: number;
}

/** A decoded Binding success or error response. */
export interface StunBindingResponse {
  transactionId: Uint8Array;
  /** True for a success response, false for an error response. */
  ok: boolean;
  /** XOR-MAPPED-ADDRESS when present, else MAPPED-ADDRESS (RFC 3489 servers). */
  mapped?: StunMappedAddress;
  /** ERROR-CODE of an error response. */
  error?: { code: number; reason: string };
}

/** Encodes a Binding request with the given 12-byte transaction id. */
export function encodeBindingRequest(
  transactionId: Uint8Array,
  options: { fingerprint?: boolean } = {},
): Uint8Array {
  return encodeMessage(BINDING_REQUEST, transactionId, [], {
    fingerprint: options.fingerprint ?? false,
  });
}

/** The transaction id of a Binding request, or `undefined` when `packet` is not one. */
export function decodeBindingRequest(packet: Uint8Array): Uint8Array | undefined {
  const msg = parseMessage(packet);
  return msg?.type === BINDING_REQUEST ? msg.transactionId : undefined;
}

/**
 * Encodes a Binding success response carrying `mapped` as XOR-MAPPED-ADDRESS (or as the
 * RFC 3489 MAPPED-ADDRESS with `legacy: true`). Used by test servers and round trips.
 */
export function encodeBindingResponse(
  transactionId: Uint8Array,
  mapped: StunMappedAddress,
  options: { fingerprint?: boolean; legacy?: boolean } = {},
): Uint8Array {
  const legacy = options.legacy ?? false;
  const value = encodeAddress(mapped, legacy ? undefined : transactionId);
  const type = legacy ? ATTR_MAPPED_ADDRESS : ATTR_XOR_MAPPED_ADDRESS;
  return encodeMessage(
    BINDING_SUCCESS,
    transactionId,
    [[type, value]],
    { fingerprint: options.fingerprint ?? true },
  );
}

/**
 * True when `packet` is a well-formed STUN message (any method): lets a socket shared with
 * peer traffic hand STUN responses to `StunSocket` subscribers (RFC 7983 demultiplexing,
 * tightened by the magic cookie, length and FINGERPRINT checks).
 */
export function isStunMessage(packet: Uint8Array): boolean {
  return parseMessage(packet) !== undefined;
}

/**
 * Decodes a Binding success or error response. Returns `undefined` — never throws — for
 * anything else: another message type, a bad header, magic cookie, length or FINGERPRINT,
 * a truncated attribute, or (with `transactionId`) a response to another transaction.
 */
export function decodeBindingResponse(
  packet: Uint8Array,
  options: { transactionId?: Uint8Array } = {},
): StunBindingResponse | undefined {
  const msg = parseMessage(packet);
  if (!msg || (msg.type !== BINDING_SUCCESS && msg.type !== BINDING_ERROR)) return undefined;
  const want = options.transactionId;
  if (want && !msg.transactionId.every((b, i) => b === want[i])) return undefined;
  const response: StunBindingResponse = {
    transactionId: msg.transactionId,
    ok: msg.type === BINDING_SUCCESS,
  };
  let legacy: StunMappedAddress | undefined;
  for (const [type, value] of msg.attributes) {
    if (type === ATTR_XOR_MAPPED_ADDRESS) {
      response.mapped ??= decodeAddress(value, msg.transactionId);
    } else if (type === ATTR_MAPPED_ADDRESS) {
      legacy ??= decodeAddress(value);
    } else if (type === ATTR_ERROR_CODE) {
      response.error ??= decodeErrorCode(value);
    }
  }
  response.mapped ??= legacy;
  if (response.ok && !response.mapped) return undefined;
  return response;
}

// ---------------------------------------------------------------------------------------
// any message: layout, integrity, attributes (TURN)
// ---------------------------------------------------------------------------------------

/** A decoded STUN message of any method and class. */
export interface StunMessage {
  /** The 14-bit message type (method and class bits). */
  type: number;
  /** The method ({@link StunMethod}). */
  method: number;
  /** The class ({@link StunClass}). */
  class: StunClassBits;
  transactionId: Uint8Array;
  /** Attributes in order, up to MESSAGE-INTEGRITY (later ones except FINGERPRINT ignored). */
  attributes: StunAttribute[];
  /** Byte offset of MESSAGE-INTEGRITY, when present (for {@link checkStunIntegrity}). */
  integrityAt?: number;
}

/** The message type of `method` in class `cls` (RFC 8489 §5: class bits C1 C0 interleaved). */
export function stunType(method: number, cls: StunClassBits): number {
  return (method & 0x000f) | ((method & 0x0070) << 1) | ((method & 0x0f80) << 2) | cls;
}

/** The long-term credential key, MD5(username ":" realm ":" password) (RFC 8489 §9.2.2). */
export function longTermKey(username: string, realm: string, password: string): Uint8Array {
  return new Uint8Array(createHash("md5").update(`${username}:${realm}:${password}`).digest());
}

/**
 * Encodes a message of any method and class. With `integrityKey`, MESSAGE-INTEGRITY
 * (HMAC-SHA1, RFC 8489 §14.5) follows the attributes; with `fingerprint`, FINGERPRINT ends it.
 * Throws `RangeError` for a transaction id that is not 12 bytes or an attribute over 65535 bytes.
 */
export function encodeStunMessage(
  method: number,
  cls: StunClassBits,
  options: {
    transactionId: Uint8Array;
    attributes?: readonly StunAttribute[];
    integrityKey?: Uint8Array;
    fingerprint?: boolean;
  },
): Uint8Array {
  return encodeMessage(stunType(method, cls), options.transactionId, options.attributes ?? [], {
    integrityKey: options.integrityKey,
    fingerprint: options.fingerprint ?? false,
  });
}

/**
 * Decodes a STUN message of any method and class, or `undefined` — never throws — for a bad
 * header, magic cookie, length or FINGERPRINT, a truncated attribute, more than
 * {@link STUN_MAX_ATTRIBUTES} attributes, or more than `maxBytes` (default
 * {@link STUN_MAX_MESSAGE_BYTES}) bytes. MESSAGE-INTEGRITY is located, not checked: see
 * {@link checkStunIntegrity}.
 */
export function decodeStunMessage(
  packet: Uint8Array,
  options: { maxBytes?: number } = {},
): StunMessage | undefined {
  return parseMessage(packet, options.maxBytes ?? STUN_MAX_MESSAGE_BYTES);
}

/** True when `message` (decoded from `packet`) carries a MESSAGE-INTEGRITY made with `key`. */
export function checkStunIntegrity(
  packet: Uint8Array,
  message: StunMessage,
  key: Uint8Array,
): boolean {
  const at = message.integrityAt;
  if (at === undefined || at + 4 + INTEGRITY_BYTES > packet.length) return false;
  const expected = integrity(packet.subarray(0, at), key, at + 4 + INTEGRITY_BYTES);
  return timingSafeEqual(expected, packet.subarray(at + 4, at + 4 + INTEGRITY_BYTES));
}

/** The value of the first attribute of `type`, if any. */
export function stunAttribute(message: StunMessage, type: number): Uint8Array | undefined {
  return message.attributes.find(([t]) => t === type)?.[1];
}

/** An XOR-*-ADDRESS value (XOR-MAPPED, XOR-PEER, XOR-RELAYED: RFC 8489 §14.2). */
export function encodeXorAddress(
  address: StunMappedAddress,
  transactionId: Uint8Array,
): Uint8Array {
  return encodeAddress(address, transactionId);
}

/** Decodes an XOR-*-ADDRESS value; `undefined` when malformed. */
export function decodeXorAddress(
  value: Uint8Array,
  transactionId: Uint8Array,
): StunMappedAddress | undefined {
  return decodeAddress(value, transactionId);
}

/** A 32-bit unsigned value (LIFETIME, in seconds). */
export function encodeUint32(value: number): Uint8Array {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new RangeError(`Not a 32-bit unsigned value: ${value}`);
  }
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value);
  return out;
}

/** Decodes a 32-bit value (LIFETIME); `undefined` unless exactly 4 bytes. */
export function decodeUint32(value: Uint8Array): number | undefined {
  if (value.length !== 4) return undefined;
  return new DataView(value.buffer, value.byteOffset, 4).getUint32(0);
}

/** CHANNEL-NUMBER: the number, then 2 bytes RFFU (RFC 8656 §18.1). */
export function encodeChannelNumber(channel: number): Uint8Array {
  if (!isChannelNumber(channel)) throw new RangeError(`Not a TURN channel number: ${channel}`);
  return Uint8Array.of(channel >> 8, channel & 0xff, 0, 0);
}

/** Decodes CHANNEL-NUMBER; `undefined` when malformed or out of 0x4000–0x4FFF. */
export function decodeChannelNumber(value: Uint8Array): number | undefined {
  if (value.length !== 4) return undefined;
  const channel = (value[0]! << 8) | value[1]!;
  return isChannelNumber(channel) ? channel : undefined;
}

/** REQUESTED-TRANSPORT: the protocol number (17, UDP) and 3 bytes RFFU (RFC 8656 §18.7). */
export function encodeRequestedTransport(protocol = 17): Uint8Array {
  return Uint8Array.of(protocol & 0xff, 0, 0, 0);
}

/** A UTF-8 attribute (USERNAME, REALM, NONCE, SOFTWARE); `RangeError` past `maxBytes`. */
export function encodeText(text: string, maxBytes = STUN_MAX_TEXT_BYTES): Uint8Array {
  const bytes = new TextEncoder().encode(text);
  if (bytes.length > maxBytes) {
    throw new RangeError(`A STUN text attribute has at most ${maxBytes} bytes`);
  }
  return bytes;
}

/** Decodes a UTF-8 attribute; `undefined` when longer than `maxBytes` or not UTF-8. */
export function decodeText(value: Uint8Array, maxBytes = STUN_MAX_TEXT_BYTES): string | undefined {
  if (value.length > maxBytes) return undefined;
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(value);
  } catch {
    return undefined;
  }
}

/** ERROR-CODE (RFC 8489 §14.8): class and number, then a UTF-8 reason phrase. */
export function encodeErrorCode(code: number, reason: string): Uint8Array {
  if (!Number.isInteger(code) || code < 300 || code > 699) {
    throw new RangeError(`Not a STUN error code: ${code}`);
  }
  const text = encodeText(reason, STUN_MAX_TEXT_BYTES);
  const out = new Uint8Array(4 + text.length);
  out[2] = Math.floor(code / 100);
  out[3] = code % 100;
  out.set(text, 4);
  return out;
}

/** Decodes ERROR-CODE; `undefined` when shorter than 4 bytes or the code is out of 300–699. */
export function decodeErrorCode(
  value: Uint8Array,
): { code: number; reason: string } | undefined {
  if (value.length < 4 || value.length > 4 + STUN_MAX_TEXT_BYTES || value[3]! > 99) {
    return undefined;
  }
  const code = (value[2]! & 0x7) * 100 + value[3]!;
  if (code < 300 || code > 699) return undefined;
  return { code, reason: new TextDecoder().decode(value.subarray(4)) };
}

/** True for a TURN channel number (RFC 8656 §12: 0x4000–0x4FFF). */
export function isChannelNumber(channel: number): boolean {
  return Number.isInteger(channel) && channel >= TURN_CHANNEL_MIN && channel <= TURN_CHANNEL_MAX;
}

/** One ChannelData message (RFC 8656 §12.4): channel number, length, data (unpadded, UDP). */
export function encodeChannelData(channel: number, data: Uint8Array): Uint8Array {
  if (!isChannelNumber(channel)) throw new RangeError(`Not a TURN channel number: ${channel}`);
  if (data.length > 0xffff) throw new RangeError("ChannelData carries at most 65535 bytes");
  const out = new Uint8Array(4 + data.length);
  out[0] = channel >> 8;
  out[1] = channel & 0xff;
  out[2] = data.length >> 8;
  out[3] = data.length & 0xff;
  out.set(data, 4);
  return out;
}

/**
 * Decodes a ChannelData message, or `undefined` — never throws — when the channel number is
 * out of range or the length field says more than the datagram holds (padding up to 3 bytes is
 * allowed after the data).
 */
export function decodeChannelData(
  packet: Uint8Array,
): { channel: number; data: Uint8Array } | undefined {
  if (packet.length < 4) return undefined;
  const channel = (packet[0]! << 8) | packet[1]!;
  const length = (packet[2]! << 8) | packet[3]!;
  if (!isChannelNumber(channel) || 4 + length > packet.length || packet.length - 4 - length > 3) {
    return undefined;
  }
  return { channel, data: packet.subarray(4, 4 + length) };
}

// ---------------------------------------------------------------------------------------
// message layout
// ---------------------------------------------------------------------------------------

function encodeMessage(
  type: number,
  transactionId: Uint8Array,
  attributes: readonly StunAttribute[],
  options: { fingerprint: boolean; integrityKey?: Uint8Array | undefined },
): Uint8Array {
  if (transactionId.length !== 12) throw new RangeError("A STUN transaction id has 12 bytes");
  const padded = (n: number) => (n + 3) & ~3;
  const body = attributes.reduce((sum, [, v]) => {
    if (v.length > 0xffff) throw new RangeError("A STUN attribute has at most 65535 bytes");
    return sum + 4 + padded(v.length);
  }, 0);
  const key = options.integrityKey;
  const out = new Uint8Array(
    HEADER_BYTES + body + (key ? 4 + INTEGRITY_BYTES : 0) + (options.fingerprint ? 8 : 0),
  );
  if (out.length - HEADER_BYTES > 0xffff) throw new RangeError("A STUN message is too long");
  const view = new DataView(out.buffer);
  view.setUint16(0, type);
  view.setUint16(2, out.length - HEADER_BYTES);
  view.setUint32(4, STUN_MAGIC_COOKIE);
  out.set(transactionId, 8);
  let at = HEADER_BYTES;
  for (const [attr, value] of attributes) {
    view.setUint16(at, attr);
    view.setUint16(at + 2, value.length);
    out.set(value, at + 4);
    at += 4 + padded(value.length);
  }
  if (key) {
    view.setUint16(at, ATTR_MESSAGE_INTEGRITY);
    view.setUint16(at + 2, INTEGRITY_BYTES);
    out.set(integrity(out.subarray(0, at), key, at + 4 + INTEGRITY_BYTES), at + 4);
    at += 4 + INTEGRITY_BYTES;
  }
  if (options.fingerprint) {
    view.setUint16(at, ATTR_FINGERPRINT);
    view.setUint16(at + 2, 4);
    view.setUint32(at + 4, (crc32(out.subarray(0, at)) ^ FINGERPRINT_XOR) >>> 0);
  }
  return out;
}

/**
 * HMAC-SHA1 over `head` (the message up to MESSAGE-INTEGRITY) with its length field set as if
 * the message ended right after MESSAGE-INTEGRITY (`end` bytes in all).
 */
function integrity(head: Uint8Array, key: Uint8Array, end: number): Uint8Array {
  const copy = new Uint8Array(head);
  new DataView(copy.buffer).setUint16(2, end - HEADER_BYTES);
  return new Uint8Array(createHmac("sha1", key).update(copy).digest());
}

function parseMessage(
  packet: Uint8Array,
  maxBytes = STUN_MAX_MESSAGE_BYTES,
): StunMessage | undefined {
  if (packet.length < HEADER_BYTES || packet.length > maxBytes) return undefined;
  const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
  const type = view.getUint16(0);
  const length = view.getUint16(2);
  if (type & 0xc000 || length % 4 !== 0 || length !== packet.length - HEADER_BYTES) {
    return undefined;
  }
  if (view.getUint32(4) !== STUN_MAGIC_COOKIE) return undefined;
  const attributes: StunAttribute[] = [];
  let integrityAt: number | undefined;
  let count = 0;
  let at = HEADER_BYTES;
  while (at < packet.length) {
    if (at + 4 > packet.length || ++count > STUN_MAX_ATTRIBUTES) return undefined;
    const attr = view.getUint16(at);
    const len = view.getUint16(at + 2);
    const end = at + 4 + len;
    if (end > packet.length) return undefined;
    if (attr === ATTR_FINGERPRINT) {
      // FINGERPRINT is last and covers everything before it.
      if (len !== 4 || end !== packet.length) return undefined;
      const expected = (crc32(packet.subarray(0, at)) ^ FINGERPRINT_XOR) >>> 0;
      if (view.getUint32(at + 4) !== expected) return undefined;
    } else if (attr === ATTR_MESSAGE_INTEGRITY && integrityAt === undefined) {
      if (len !== INTEGRITY_BYTES) return undefined;
      integrityAt = at;
    }
    // Unknown attributes are skipped by their readers; after MESSAGE-INTEGRITY only
    // FINGERPRINT counts (RFC 8489 §14.5).
    if (integrityAt === undefined || at === integrityAt) {
      attributes.push([attr, packet.subarray(at + 4, end)]);
    }
    at += 4 + ((len + 3) & ~3);
  }
  const method = (type & 0x000f) | ((type & 0x00e0) >> 1) | ((type & 0x3e00) >> 2);
  const message: StunMessage = {
    type,
    method,
    class: (type & 0x0110) as StunClassBits,
    transactionId: new Uint8Array(packet.subarray(8, 20)),
    attributes,
  };
  if (integrityAt !== undefined) message.integrityAt = integrityAt;
  return message;
}

/** (XOR-)MAPPED-ADDRESS value; XORed with the cookie (and transaction id) when given one. */
function encodeAddress(mapped: StunMappedAddress, transactionId?: Uint8Array): Uint8Array {
  const bytes = mapped.family === "IPv4" ? parseIPv4(mapped.address) : parseIPv6(mapped.address);
  if (!bytes || !Number.isInteger(mapped.port) || mapped.port < 0 || mapped.port > 0xffff) {
    throw new TypeError(
      `Not an ${mapped.family} address and port: ${mapped.address}:${mapped.port}`,
    );
  }
  const out = new Uint8Array(4 + bytes.length);
  out[1] = mapped.family === "IPv4" ? 1 : 2;
  new DataView(out.buffer).setUint16(2, mapped.port);
  out.set(bytes, 4);
  return transactionId ? xorAddress(out, transactionId) : out;
}

function decodeAddress(
  value: Uint8Array,
  transactionId?: Uint8Array,
): StunMappedAddress | undefined {
  const family = value[1] === 1 ? "IPv4" : value[1] === 2 ? "IPv6" : undefined;
  if (!family || value.length !== (family === "IPv4" ? 8 : 20)) return undefined;
  const plain = transactionId ? xorAddress(value, transactionId) : value;
  const port = (plain[2]! << 8) | plain[3]!;
  const ip = plain.subarray(4);
  return { family, address: family === "IPv4" ? ip.join(".") : formatIPv6(ip), port };
}

function xorAddress(value: Uint8Array, transactionId: Uint8Array): Uint8Array {
  const key = new Uint8Array(16);
  new DataView(key.buffer).setUint32(0, STUN_MAGIC_COOKIE);
  key.set(transactionId, 4);
  // Port: the cookie's high 16 bits; address: cookie (IPv4) or cookie + transaction id (IPv6).
  return value.map((b, i) => (i < 2 ? b : i < 4 ? b ^ key[i - 2]! : b ^ key[i - 4]!));
}

function parseIPv4(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) < 256)) {
    return undefined;
  }
  return Uint8Array.from(parts, Number);
}

function parseIPv6(text: string): Uint8Array | undefined {
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = halves.map((h) => (h === "" ? [] : h.split(":")));
  const missing = 8 - groups.flat().length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const all = halves.length === 1
    ? groups[0]!
    : [...groups[0]!, ...Array(missing).fill("0"), ...groups[1]!];
  if (!all.every((g) => /^[0-9a-f]{1,4}$/i.test(g))) return undefined;
  const out = new Uint8Array(16);
  all.forEach((g, i) => new DataView(out.buffer).setUint16(i * 2, parseInt(g, 16)));
  return out;
}

/** RFC 5952 text: lower case, no leading zeros, the longest run of 2+ zero groups as `::`. */
function formatIPv6(bytes: Uint8Array): string {
  const groups = Array.from({ length: 8 }, (_, i) => (bytes[i * 2]! << 8) | bytes[i * 2 + 1]!);
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j > i ? j : i + 1;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLen).join(":")}`;
}

const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

/** CRC-32 (ISO 3309 / zlib), as FINGERPRINT uses. */
function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
