/**
 * Deterministic encoding of the payloads of src/message/types.ts to UTF-8 JSON bytes, and
 * strict decoding that checks every field against src/limits.ts.
 *
 * Byte fields travel as unpadded base64url. Fields are written in a fixed order, so the same
 * payload always gives the same bytes. Unknown fields are ignored when reading (forward
 * compatibility) and never written. Encoding checks the payload with the same rules as
 * decoding, so whatever is sent can be read back.
 *
 * The field readers are in wire_reader.ts; the text and address rules are in field_rules.ts
 * and re-exported here.
 *
 * @module
 */
import { CANDIDATES_PAYLOAD_VERSION, MAX_REASON_BYTES } from "../protocol.ts";
import { toBase64Url } from "./base64.ts";
import { networkIdProblem, textProblem, userIdProblem } from "./field_rules.ts";
import type {
  Candidate,
  Endpoint,
  NoticePayload,
  PeerEntry,
  ReplyPayload,
  RequestPayload,
} from "./types.ts";
import {
  asObj,
  type Ctx,
  encodeCtx,
  fail,
  isObj,
  type Obj,
  parseJson,
  readArray,
  readBytes,
  readCandidates,
  readCount,
  readCtx,
  readEndpoint,
  readEndpoints,
  readHostCards,
  readText,
  readVersion,
} from "./wire_reader.ts";

const utf8 = new TextEncoder();

function readPeer(ctx: Ctx, value: unknown, path: string, version: 1 | 2): PeerEntry {
  const obj = asObj(ctx, value, path);
  const p = `${path}.`;
  const userId = readText(ctx, obj, "userId", p, userIdProblem);
  const identityKey = readBytes(ctx, obj, "identityKey", p, 32);
  const endpoints = readEndpoints(ctx, obj, p);
  const candidates = optionalCandidates(ctx, obj, p, endpoints, version);
  return {
    userId,
    identityKey,
    endpoints,
    ...(candidates ? { candidates } : {}),
    lastSeen: readCount(ctx, obj, "lastSeen", p),
    failures: readCount(ctx, obj, "failures", p),
  };
}

/** The candidates of a version 2 object (optional in reply peers); none in version 1. */
function optionalCandidates(
  ctx: Ctx,
  obj: Obj,
  path: string,
  endpoints: Endpoint[],
  version: 1 | 2,
): Candidate[] | undefined {
  if (!Object.hasOwn(obj, "candidates")) {
    if (Object.hasOwn(obj, "relayCandidates")) fail(ctx, `${path}relayCandidates needs candidates`);
    return undefined;
  }
  if (version === 1) {
    fail(ctx, `${path}candidates needs payload version ${CANDIDATES_PAYLOAD_VERSION}`);
  }
  return readCandidates(ctx, obj, path, endpoints);
}

/** The optional introduction key of a version 2 request. */
function introductionKeyOf(ctx: Ctx, obj: Obj, version: 1 | 2): { introductionKey?: Uint8Array } {
  if (!Object.hasOwn(obj, "introductionKey")) return {};
  if (version === 1) {
    fail(ctx, `introductionKey needs payload version ${CANDIDATES_PAYLOAD_VERSION}`);
  }
  return { introductionKey: readBytes(ctx, obj, "introductionKey", "", 32) };
}

/**
 * The wire fields of a candidate list: `candidates` (all but `relay`, in order) and, when there
 * are any, `relayCandidates` (the `relay` ones, in order), where a reader of an earlier version 2
 * does not look (docs/protocol.md "Relayed candidates").
 */
export function candidatesToWire(candidates: readonly Candidate[] | undefined): Obj {
  if (!Array.isArray(candidates)) return { candidates };
  const isRelay = (c: Candidate) => isObj(c) && c.type === "relay";
  const relayed = candidates.filter(isRelay);
  return {
    candidates: candidates.filter((c) => !isRelay(c)).map(candidateToWire),
    ...(relayed.length > 0 ? { relayCandidates: relayed.map(candidateToWire) } : {}),
  };
}

/** A candidate as written on the wire (fixed key order). */
export function candidateToWire(c: Candidate): unknown {
  if (!isObj(c)) return c;
  const wire: Obj = {
    type: c.type,
    transport: c.transport,
    address: c.address,
    port: c.port,
    priority: c.priority,
  };
  if (c.mapping !== undefined) wire.mapping = c.mapping;
  return wire;
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

// ---- request --------------------------------------------------------------------------------

function requestFromWire(ctx: Ctx, obj: Obj): RequestPayload {
  const version = readVersion(ctx, obj);
  const network = readText(ctx, obj, "network", "", networkIdProblem);
  const userId = readText(ctx, obj, "userId", "", userIdProblem);
  const identityKey = readBytes(ctx, obj, "identityKey", "", 32);
  const endpoints = readEndpoints(ctx, obj, "");
  if (version === 2 && !Object.hasOwn(obj, "candidates")) fail(ctx, "candidates is missing");
  const candidates = optionalCandidates(ctx, obj, "", endpoints, version);
  return {
    network,
    userId,
    identityKey,
    endpoints,
    ...(candidates ? { candidates } : {}),
    sessionId: readBytes(ctx, obj, "sessionId", "", 16),
    createdAt: readCount(ctx, obj, "createdAt", ""),
    replyKey: readBytes(ctx, obj, "replyKey", "", 32),
    hostCards: readHostCards(ctx, obj),
    ...introductionKeyOf(ctx, obj, version),
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
    ...(p.candidates !== undefined ? { version: CANDIDATES_PAYLOAD_VERSION } : {}),
    network: p.network,
    userId: p.userId,
    identityKey: b64(p.identityKey),
    endpoints: list(p.endpoints, endpointToWire),
    ...(p.candidates !== undefined ? candidatesToWire(p.candidates) : {}),
    sessionId: b64(p.sessionId),
    createdAt: p.createdAt,
    replyKey: b64(p.replyKey),
    hostCards: list(p.hostCards, (c) => c),
    ...(p.introductionKey !== undefined ? { introductionKey: b64(p.introductionKey) } : {}),
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
  const version = readVersion(ctx, obj);
  return {
    network: readText(ctx, obj, "network", "", networkIdProblem),
    sessionId: readBytes(ctx, obj, "sessionId", "", 16),
    hostId: readBytes(ctx, obj, "hostId", "", 32),
    createdAt: readCount(ctx, obj, "createdAt", ""),
    peers: readArray(ctx, obj, "peers", "", Infinity)
      .map((peer, i) => readPeer(ctx, peer, `peers[${i}]`, version)),
  };
}

/**
 * Encodes a reply payload to deterministic UTF-8 JSON bytes.
 *
 * @throws {MessageError} `EPAYLOAD` when a field breaks the rules decoding enforces.
 */
export function encodeReply(p: ReplyPayload): Uint8Array {
  const typed = Array.isArray(p.peers) &&
    p.peers.some((peer) => isObj(peer) && peer.candidates !== undefined);
  const wire: Obj = {
    ...(typed ? { version: CANDIDATES_PAYLOAD_VERSION } : {}),
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
          ...(peer.candidates !== undefined ? candidatesToWire(peer.candidates) : {}),
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
