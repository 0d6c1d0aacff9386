/**
 * STUN (RFC 8489) Binding messages: a pure codec, no I/O. Decodes XOR-MAPPED-ADDRESS and the
 * RFC 3489 MAPPED-ADDRESS, IPv4 and IPv6, checks the magic cookie, the transaction id and an
 * optional FINGERPRINT. The client is `stun.ts`.
 *
 * @module
 */

/** The magic cookie of every RFC 5389/8489 message. */
export const STUN_MAGIC_COOKIE = 0x2112a442;
/** The default STUN port (RFC 8489 §9). */
export const STUN_DEFAULT_PORT = 3478;
/** Largest STUN message accepted. */
export const STUN_MAX_MESSAGE_BYTES = 1500;

const HEADER_BYTES = 20;
const BINDING_REQUEST = 0x0001;
const BINDING_SUCCESS = 0x0101;
const BINDING_ERROR = 0x0111;
const ATTR_MAPPED_ADDRESS = 0x0001;
const ATTR_ERROR_CODE = 0x0009;
const ATTR_XOR_MAPPED_ADDRESS = 0x0020;
const ATTR_FINGERPRINT = 0x8028;
const FINGERPRINT_XOR = 0x5354554e;

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
  return encodeMessage(BINDING_REQUEST, transactionId, [], options.fingerprint ?? false);
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
    options.fingerprint ?? true,
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
    } else if (type === ATTR_ERROR_CODE && value.length >= 4) {
      const code = (value[2]! & 0x7) * 100 + value[3]!;
      response.error = { code, reason: new TextDecoder().decode(value.subarray(4)) };
    }
  }
  response.mapped ??= legacy;
  if (response.ok && !response.mapped) return undefined;
  return response;
}

// ---------------------------------------------------------------------------------------
// message layout
// ---------------------------------------------------------------------------------------

interface StunMessage {
  type: number;
  transactionId: Uint8Array;
  attributes: [number, Uint8Array][];
}

function encodeMessage(
  type: number,
  transactionId: Uint8Array,
  attributes: [number, Uint8Array][],
  fingerprint: boolean,
): Uint8Array {
  if (transactionId.length !== 12) throw new RangeError("A STUN transaction id has 12 bytes");
  const padded = (n: number) => (n + 3) & ~3;
  const body = attributes.reduce((sum, [, v]) => sum + 4 + padded(v.length), 0);
  const out = new Uint8Array(HEADER_BYTES + body + (fingerprint ? 8 : 0));
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
  if (fingerprint) {
    view.setUint16(at, ATTR_FINGERPRINT);
    view.setUint16(at + 2, 4);
    view.setUint32(at + 4, (crc32(out.subarray(0, at)) ^ FINGERPRINT_XOR) >>> 0);
  }
  return out;
}

function parseMessage(packet: Uint8Array): StunMessage | undefined {
  if (packet.length < HEADER_BYTES || packet.length > STUN_MAX_MESSAGE_BYTES) return undefined;
  const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
  const type = view.getUint16(0);
  const length = view.getUint16(2);
  if (type & 0xc000 || length % 4 !== 0 || length !== packet.length - HEADER_BYTES) {
    return undefined;
  }
  if (view.getUint32(4) !== STUN_MAGIC_COOKIE) return undefined;
  const attributes: [number, Uint8Array][] = [];
  let at = HEADER_BYTES;
  while (at < packet.length) {
    if (at + 4 > packet.length) return undefined;
    const attr = view.getUint16(at);
    const len = view.getUint16(at + 2);
    const end = at + 4 + len;
    if (end > packet.length) return undefined;
    if (attr === ATTR_FINGERPRINT) {
      // FINGERPRINT is last and covers everything before it.
      if (len !== 4 || end !== packet.length) return undefined;
      const expected = (crc32(packet.subarray(0, at)) ^ FINGERPRINT_XOR) >>> 0;
      if (view.getUint32(at + 4) !== expected) return undefined;
    }
    // Unknown attributes are skipped: only the address matters here.
    attributes.push([attr, packet.subarray(at + 4, end)]);
    at += 4 + ((len + 3) & ~3);
  }
  return { type, transactionId: new Uint8Array(packet.subarray(8, 20)), attributes };
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
