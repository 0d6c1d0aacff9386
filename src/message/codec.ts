/**
 * Deterministic encoding of the payloads of src/message/types.ts to UTF-8 JSON bytes, and
 * strict decoding that checks every field against src/limits.ts.
 *
 * Byte fields travel as unpadded base64url. Fields are written in a fixed order, so the same
 * payload always gives the same bytes. Unknown fields are ignored when reading (forward
 * compatibility) and never written. Encoding checks the payload with the same rules as
 * decoding, so whatever is sent can be read back.
 *
 * @module
 */
import { MessageError } from "../errors.ts";
import {
  MAX_BLOCK_BYTES,
  MAX_ENDPOINTS,
  MAX_HOST_CARDS,
  MAX_NETWORK_ID_BYTES,
  MAX_REASON_BYTES,
  MAX_USER_ID_BYTES,
} from "../limits.ts";
import { fromBase64Url, toBase64Url } from "./base64.ts";
import { formatHostCard, parseHostCard } from "./host_card.ts";
import type { Endpoint, NoticePayload, PeerEntry, ReplyPayload, RequestPayload } from "./types.ts";

type Obj = Record<string, unknown>;

/** Where a check runs: names the operation and what to do in the error message. */
interface Ctx {
  doing: string;
  advice: string;
}

const utf8 = new TextEncoder();

function fail(ctx: Ctx, what: string, cause?: unknown): never {
  throw new MessageError(
    "EPAYLOAD",
    `${ctx.doing}: ${what}; ${ctx.advice}`,
    cause === undefined ? {} : { cause },
  );
}

function hasControl(text: string): boolean {
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f) || c === 0x2028 || c === 0x2029) return true;
  }
  return false;
}

function textProblem(text: string, maxBytes: number, allowEmpty: boolean): string | undefined {
  if (!allowEmpty && text.length === 0) return "is empty";
  if (!text.isWellFormed()) return "is not valid Unicode";
  if (hasControl(text)) return "contains control characters (such as CR or LF)";
  const bytes = utf8.encode(text).length;
  if (bytes > maxBytes) return `has ${bytes} UTF-8 bytes, more than ${maxBytes}`;
  return undefined;
}

/**
 * Says what is wrong with a user id, or `undefined` when it is valid: 1 to
 * `MAX_USER_ID_BYTES` UTF-8 bytes, no control characters (CR and LF included).
 */
export function userIdProblem(userId: string): string | undefined {
  return textProblem(userId, MAX_USER_ID_BYTES, false);
}

/**
 * Says what is wrong with a network id, or `undefined` when it is valid: 1 to
 * `MAX_NETWORK_ID_BYTES` UTF-8 bytes, no whitespace and no control characters (it appears in
 * mail subjects).
 */
export function networkIdProblem(network: string): string | undefined {
  const problem = textProblem(network, MAX_NETWORK_ID_BYTES, false);
  if (problem !== undefined) return problem;
  if (/\s/u.test(network)) return "contains whitespace";
  return undefined;
}

/** True when `text` is a dotted-quad IPv4 literal (no leading zeros). */
export function isIPv4(text: string): boolean {
  const parts = text.split(".");
  return parts.length === 4 &&
    parts.every((p) => /^(?:0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255);
}

/** True when `text` is an IPv6 literal without brackets or zone (`::1`, `::ffff:1.2.3.4`). */
export function isIPv6(text: string): boolean {
  if (text.length < 2 || text.length > 45) return false;
  let s = text;
  if (s.includes(".")) {
    const lastColon = s.lastIndexOf(":");
    if (lastColon < 0 || !isIPv4(s.slice(lastColon + 1))) return false;
    s = s.slice(0, lastColon + 1) + "0:0";
  }
  const group = (g: string) => /^[0-9A-Fa-f]{1,4}$/.test(g);
  const halves = s.split("::");
  if (halves.length > 2) return false;
  if (halves.length === 1) {
    const groups = s.split(":");
    return groups.length === 8 && groups.every(group);
  }
  const left = halves[0] === "" ? [] : halves[0]!.split(":");
  const right = halves[1] === "" ? [] : halves[1]!.split(":");
  return left.length + right.length <= 7 && [...left, ...right].every(group);
}

// ---- reading --------------------------------------------------------------------------------

function isObj(value: unknown): value is Obj {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function get(ctx: Ctx, obj: Obj, name: string, path: string): unknown {
  if (!Object.hasOwn(obj, name)) fail(ctx, `${path}${name} is missing`);
  return obj[name];
}

function readString(ctx: Ctx, obj: Obj, name: string, path: string): string {
  const value = get(ctx, obj, name, path);
  if (typeof value !== "string") fail(ctx, `${path}${name} is not a string`);
  return value;
}

function readText(
  ctx: Ctx,
  obj: Obj,
  name: string,
  path: string,
  check: (text: string) => string | undefined,
): string {
  const value = readString(ctx, obj, name, path);
  const problem = check(value);
  if (problem !== undefined) fail(ctx, `${path}${name} ${problem}`);
  return value;
}

function readBytes(ctx: Ctx, obj: Obj, name: string, path: string, length: number): Uint8Array {
  const value = readString(ctx, obj, name, path);
  let bytes: Uint8Array;
  try {
    bytes = fromBase64Url(value);
  } catch (err) {
    fail(ctx, `${path}${name} is not base64url`, err);
  }
  if (bytes.length !== length || toBase64Url(bytes) !== value) {
    fail(ctx, `${path}${name} has ${bytes.length} bytes, not ${length}`);
  }
  return bytes;
}

function readCount(ctx: Ctx, obj: Obj, name: string, path: string): number {
  const value = get(ctx, obj, name, path);
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    fail(ctx, `${path}${name} is not a non-negative whole number`);
  }
  return value;
}

function readArray(ctx: Ctx, obj: Obj, name: string, path: string, max: number): unknown[] {
  const value = get(ctx, obj, name, path);
  if (!Array.isArray(value)) fail(ctx, `${path}${name} is not a list`);
  if (value.length > max) fail(ctx, `${path}${name} has ${value.length} entries, more than ${max}`);
  return value;
}

function asObj(ctx: Ctx, value: unknown, path: string): Obj {
  if (!isObj(value)) fail(ctx, `${path} is not an object`);
  return value;
}

function readEndpoint(ctx: Ctx, value: unknown, path: string): Endpoint {
  const obj = asObj(ctx, value, path);
  const p = `${path}.`;
  const transport = readString(ctx, obj, "transport", p);
  if (transport !== "tcp" && transport !== "udp") fail(ctx, `${p}transport is not tcp or udp`);
  const address = readString(ctx, obj, "address", p);
  if (!isIPv4(address) && !isIPv6(address)) {
    fail(ctx, `${p}address is not an IPv4 or IPv6 literal`);
  }
  const port = get(ctx, obj, "port", p);
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) {
    fail(ctx, `${p}port is not a port number from 1 to 65535`);
  }
  return { transport, address, port };
}

function readEndpoints(ctx: Ctx, obj: Obj, path: string): Endpoint[] {
  return readArray(ctx, obj, "endpoints", path, MAX_ENDPOINTS)
    .map((e, i) => readEndpoint(ctx, e, `${path}endpoints[${i}]`));
}

function readHostCards(ctx: Ctx, obj: Obj): string[] {
  return readArray(ctx, obj, "hostCards", "", MAX_HOST_CARDS).map((card, i) => {
    if (typeof card !== "string") fail(ctx, `hostCards[${i}] is not a string`);
    let canonical: string;
    try {
      canonical = formatHostCard(parseHostCard(card));
    } catch (err) {
      fail(ctx, `hostCards[${i}] is not a host card`, err);
    }
    if (canonical !== card) fail(ctx, `hostCards[${i}] is not written in canonical form`);
    return card;
  });
}

function readPeer(ctx: Ctx, value: unknown, path: string): PeerEntry {
  const obj = asObj(ctx, value, path);
  const p = `${path}.`;
  return {
    userId: readText(ctx, obj, "userId", p, userIdProblem),
    identityKey: readBytes(ctx, obj, "identityKey", p, 32),
    endpoints: readEndpoints(ctx, obj, p),
    lastSeen: readCount(ctx, obj, "lastSeen", p),
    failures: readCount(ctx, obj, "failures", p),
  };
}

function readFailure(ctx: Ctx, value: unknown, path: string): NoticePayload["failed"][number] {
  const obj = asObj(ctx, value, path);
  const p = `${path}.`;
  const userId = readText(ctx, obj, "userId", p, userIdProblem);
  const endpoint = Object.hasOwn(obj, "endpoint") && obj.endpoint !== null
    ? readEndpoint(ctx, obj.endpoint, `${p}endpoint`)
    : undefined;
  const reason = readText(ctx, obj, "reason", p, (t) => textProblem(t, MAX_REASON_BYTES, true));
  return endpoint === undefined ? { userId, reason } : { userId, endpoint, reason };
}

function parseJson(ctx: Ctx, bytes: Uint8Array): Obj {
  if (bytes.length > MAX_BLOCK_BYTES) {
    fail(ctx, `it has ${bytes.length} bytes, more than ${MAX_BLOCK_BYTES}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (err) {
    fail(ctx, "it is not UTF-8 JSON", err);
  }
  return asObj(ctx, value, "the payload");
}

function readCtx(kind: string): Ctx {
  return {
    doing: `Cannot read ${kind}`,
    advice: "the sender runs a faulty or incompatible mailpeer; ignore this mail",
  };
}

function encodeCtx(kind: string): Ctx {
  return { doing: `Cannot encode ${kind}`, advice: "correct the value before sending" };
}

// ---- request --------------------------------------------------------------------------------

function requestFromWire(ctx: Ctx, obj: Obj): RequestPayload {
  return {
    network: readText(ctx, obj, "network", "", networkIdProblem),
    userId: readText(ctx, obj, "userId", "", userIdProblem),
    identityKey: readBytes(ctx, obj, "identityKey", "", 32),
    endpoints: readEndpoints(ctx, obj, ""),
    sessionId: readBytes(ctx, obj, "sessionId", "", 16),
    createdAt: readCount(ctx, obj, "createdAt", ""),
    replyKey: readBytes(ctx, obj, "replyKey", "", 32),
    hostCards: readHostCards(ctx, obj),
  };
}

function endpointToWire(e: Endpoint): unknown {
  return isObj(e) ? { transport: e.transport, address: e.address, port: e.port } : e;
}

function b64(bytes: unknown): unknown {
  return bytes instanceof Uint8Array ? toBase64Url(bytes) : bytes;
}

function list<T>(items: T[] | undefined, map: (item: T) => unknown): unknown {
  return Array.isArray(items) ? items.map(map) : items;
}

function encodeChecked<T>(
  kind: string,
  wire: Obj,
  fromWire: (ctx: Ctx, obj: Obj) => T,
): Uint8Array {
  fromWire(encodeCtx(kind), wire);
  return utf8.encode(JSON.stringify(wire));
}

/**
 * Encodes a request payload to deterministic UTF-8 JSON bytes.
 *
 * @throws {MessageError} `EPAYLOAD` when a field breaks the rules decoding enforces.
 */
export function encodeRequest(p: RequestPayload): Uint8Array {
  const wire: Obj = {
    network: p.network,
    userId: p.userId,
    identityKey: b64(p.identityKey),
    endpoints: list(p.endpoints, endpointToWire),
    sessionId: b64(p.sessionId),
    createdAt: p.createdAt,
    replyKey: b64(p.replyKey),
    hostCards: list(p.hostCards, (c) => c),
  };
  return encodeChecked("request", wire, requestFromWire);
}

/**
 * Decodes and checks a request payload.
 *
 * @throws {MessageError} `EPAYLOAD` naming the first field that is wrong.
 */
export function decodeRequest(bytes: Uint8Array): RequestPayload {
  const ctx = readCtx("request");
  return requestFromWire(ctx, parseJson(ctx, bytes));
}

// ---- reply ----------------------------------------------------------------------------------

function replyFromWire(ctx: Ctx, obj: Obj): ReplyPayload {
  return {
    network: readText(ctx, obj, "network", "", networkIdProblem),
    sessionId: readBytes(ctx, obj, "sessionId", "", 16),
    hostId: readBytes(ctx, obj, "hostId", "", 32),
    createdAt: readCount(ctx, obj, "createdAt", ""),
    peers: readArray(ctx, obj, "peers", "", Infinity)
      .map((peer, i) => readPeer(ctx, peer, `peers[${i}]`)),
  };
}

/**
 * Encodes a reply payload to deterministic UTF-8 JSON bytes.
 *
 * @throws {MessageError} `EPAYLOAD` when a field breaks the rules decoding enforces.
 */
export function encodeReply(p: ReplyPayload): Uint8Array {
  const wire: Obj = {
    network: p.network,
    sessionId: b64(p.sessionId),
    hostId: b64(p.hostId),
    createdAt: p.createdAt,
    peers: list(p.peers, (peer) =>
      isObj(peer)
        ? {
          userId: peer.userId,
          identityKey: b64(peer.identityKey),
          endpoints: list(peer.endpoints, endpointToWire),
          lastSeen: peer.lastSeen,
          failures: peer.failures,
        }
        : peer),
  };
  return encodeChecked("reply", wire, replyFromWire);
}

/**
 * Decodes and checks a reply payload.
 *
 * @throws {MessageError} `EPAYLOAD` naming the first field that is wrong.
 */
export function decodeReply(bytes: Uint8Array): ReplyPayload {
  const ctx = readCtx("reply");
  return replyFromWire(ctx, parseJson(ctx, bytes));
}

// ---- notice ---------------------------------------------------------------------------------

function noticeFromWire(ctx: Ctx, obj: Obj): NoticePayload {
  return {
    network: readText(ctx, obj, "network", "", networkIdProblem),
    userId: readText(ctx, obj, "userId", "", userIdProblem),
    identityKey: readBytes(ctx, obj, "identityKey", "", 32),
    sessionId: readBytes(ctx, obj, "sessionId", "", 16),
    createdAt: readCount(ctx, obj, "createdAt", ""),
    failed: readArray(ctx, obj, "failed", "", Infinity)
      .map((f, i) => readFailure(ctx, f, `failed[${i}]`)),
  };
}

/**
 * Encodes a notice payload to deterministic UTF-8 JSON bytes.
 *
 * @throws {MessageError} `EPAYLOAD` when a field breaks the rules decoding enforces.
 */
export function encodeNotice(p: NoticePayload): Uint8Array {
  const wire: Obj = {
    network: p.network,
    userId: p.userId,
    identityKey: b64(p.identityKey),
    sessionId: b64(p.sessionId),
    createdAt: p.createdAt,
    failed: list(
      p.failed,
      (f) =>
        isObj(f)
          ? f.endpoint === undefined
            ? { userId: f.userId, reason: f.reason }
            : { userId: f.userId, endpoint: endpointToWire(f.endpoint), reason: f.reason }
          : f,
    ),
  };
  return encodeChecked("notice", wire, noticeFromWire);
}

/**
 * Decodes and checks a notice payload.
 *
 * @throws {MessageError} `EPAYLOAD` naming the first field that is wrong.
 */
export function decodeNotice(bytes: Uint8Array): NoticePayload {
  const ctx = readCtx("notice");
  return noticeFromWire(ctx, parseJson(ctx, bytes));
}
