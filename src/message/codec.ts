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
import {
  CANDIDATES_PAYLOAD_VERSION,
  MAX_REASON_BYTES,
  MAX_REPLY_READ_BYTES,
  MAX_REPLY_READS,
  MAX_ROLE_EPOCH,
} from "../protocol.ts";
import { toBase64Url } from "./base64.ts";
import { networkIdProblem, textProblem, userIdProblem } from "./field_rules.ts";
import { emailProblem } from "./host_card.ts";
import type {
  Candidate,
  Endpoint,
  NoticePayload,
  PeerEntry,
  ReplyPayload,
  ReplyRole,
  RequestPayload,
} from "./types.ts";
import {
  asObj,
  type Ctx,
  encodeCtx,
  fail,
  get,
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

/** An extension name in `reads`: lower-case letters, digits and `-`, starting with a letter. */
const READ_NAME = new RegExp(`^[a-z][a-z0-9-]{0,${MAX_REPLY_READ_BYTES - 1}}$`);

/**
 * The optional `reads` list of a request (docs/protocol.md "Reply extensions"): at most
 * `MAX_REPLY_READS` names, none repeated. Names this mailpeer does not know are kept (a host
 * puts in only the extensions it has).
 */
function readsOf(ctx: Ctx, obj: Obj): { reads?: string[] } {
  if (!Object.hasOwn(obj, "reads")) return {};
  const reads = readArray(ctx, obj, "reads", "", MAX_REPLY_READS).map((name, i) => {
    if (typeof name !== "string" || !READ_NAME.test(name)) {
      fail(
        ctx,
        `reads[${i}] is not an extension name (a-z, 0-9 and -, at most ${MAX_REPLY_READ_BYTES} bytes)`,
      );
    }
    return name;
  });
  const repeated = reads.findIndex((name, i) => reads.indexOf(name) !== i);
  if (repeated >= 0) fail(ctx, `reads[${repeated}] repeats ${reads[repeated]}`);
  return { reads };
}

/** The fields of a reply's `role`, in wire order; any other field is an error. */
const ROLE_FIELDS: ReadonlySet<string> = new Set(["holder", "epoch", "until", "address"]);

/**
 * The optional `role` of a reply (docs/protocol.md "Reply extensions"). Its shape is fixed by
 * the `role` extension a request names, so a field it does not have is refused, not skipped: a
 * host sends a changed shape only under a new extension name.
 */
function roleOf(ctx: Ctx, obj: Obj): { role?: ReplyRole } {
  if (!Object.hasOwn(obj, "role")) return {};
  const role = asObj(ctx, obj.role, "role");
  const unknown = Object.keys(role).find((key) => !ROLE_FIELDS.has(key));
  if (unknown !== undefined) fail(ctx, `role.${unknown} is not a field of role`);
  const holder = readText(ctx, role, "holder", "role.", userIdProblem);
  const epoch = get(ctx, role, "epoch", "role.");
  if (
    typeof epoch !== "number" || !Number.isInteger(epoch) || epoch < 1 || epoch > MAX_ROLE_EPOCH
  ) {
    fail(ctx, `role.epoch is not a whole number from 1 to ${MAX_ROLE_EPOCH}`);
  }
  const until = readCount(ctx, role, "until", "role.");
  const address = readText(ctx, role, "address", "role.", (text) => {
    const problem = emailProblem(text);
    return problem === undefined ? undefined : `is not an e-mail address: ${problem}`;
  });
  return { role: { holder, epoch, until, address } };
}

function roleToWire(role: ReplyRole): unknown {
  return isObj(role)
    ? { holder: role.holder, epoch: role.epoch, until: role.until, address: role.address }
    : role;
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
    ...readsOf(ctx, obj),
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
    ...(p.reads !== undefined ? { reads: list(p.reads, (r) => r) } : {}),
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
    ...roleOf(ctx, obj),
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
    ...(p.role !== undefined ? { role: roleToWire(p.role) } : {}),
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
