/**
 * Strict reading of the JSON wire objects of requests, replies and notices (codec.ts): each
 * reader checks one field against src/limits.ts and fails with `MessageError` `EPAYLOAD`
 * naming the field, in a message whose head and advice come from a {@link Ctx}.
 *
 * @module
 */
import { MessageError } from "../errors.ts";
import {
  CANDIDATES_PAYLOAD_VERSION,
  MAX_BLOCK_BYTES,
  MAX_CANDIDATE_PRIORITY,
  MAX_CANDIDATES,
  MAX_ENDPOINTS,
  MAX_HOST_CARDS,
  MAX_RELAY_CANDIDATES,
} from "../protocol.ts";
import { fromBase64Url, toBase64Url } from "./base64.ts";
import { isIPv4, isIPv6 } from "./field_rules.ts";
import { formatHostCard, parseHostCard } from "./host_card.ts";
import type { Candidate, Endpoint } from "./types.ts";

/** A JSON object on the wire. */
export type Obj = Record<string, unknown>;

/** Where a check runs: names the operation and what to do in the error message. */
export interface Ctx {
  doing: string;
  advice: string;
}

/** Throws the `EPAYLOAD` error of `ctx` about `what`. */
export function fail(ctx: Ctx, what: string, cause?: unknown): never {
  throw new MessageError(
    "EPAYLOAD",
    `${ctx.doing}: ${what}; ${ctx.advice}`,
    cause === undefined ? {} : { cause },
  );
}

/** True for a JSON object (not null, not a list). */
export function isObj(value: unknown): value is Obj {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The field `name` of `obj`; missing is an error (`path` prefixes the field name). */
export function get(ctx: Ctx, obj: Obj, name: string, path: string): unknown {
  if (!Object.hasOwn(obj, name)) fail(ctx, `${path}${name} is missing`);
  return obj[name];
}

/** A string field. */
export function readString(ctx: Ctx, obj: Obj, name: string, path: string): string {
  const value = get(ctx, obj, name, path);
  if (typeof value !== "string") fail(ctx, `${path}${name} is not a string`);
  return value;
}

/** A string field that passes `check` (which says what is wrong, or `undefined`). */
export function readText(
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

/** A base64url field (canonical, unpadded) of exactly `length` bytes. */
export function readBytes(
  ctx: Ctx,
  obj: Obj,
  name: string,
  path: string,
  length: number,
): Uint8Array {
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

/** A non-negative safe integer field. */
export function readCount(ctx: Ctx, obj: Obj, name: string, path: string): number {
  const value = get(ctx, obj, name, path);
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    fail(ctx, `${path}${name} is not a non-negative whole number`);
  }
  return value;
}

/** A list field of at most `max` entries. */
export function readArray(ctx: Ctx, obj: Obj, name: string, path: string, max: number): unknown[] {
  const value = get(ctx, obj, name, path);
  if (!Array.isArray(value)) fail(ctx, `${path}${name} is not a list`);
  if (value.length > max) fail(ctx, `${path}${name} has ${value.length} entries, more than ${max}`);
  return value;
}

/** `value` as a JSON object; anything else is an error naming `path`. */
export function asObj(ctx: Ctx, value: unknown, path: string): Obj {
  if (!isObj(value)) fail(ctx, `${path} is not an object`);
  return value;
}

/** One endpoint: tcp or udp, an IP literal, a port from 1 to 65535. */
export function readEndpoint(ctx: Ctx, value: unknown, path: string): Endpoint {
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

/** The `endpoints` list, at most `MAX_ENDPOINTS`. */
export function readEndpoints(ctx: Ctx, obj: Obj, path: string): Endpoint[] {
  return readArray(ctx, obj, "endpoints", path, MAX_ENDPOINTS)
    .map((e, i) => readEndpoint(ctx, e, `${path}endpoints[${i}]`));
}

/**
 * The payload `version`: absent is 1, `CANDIDATES_PAYLOAD_VERSION` is 2; anything else is an
 * error (a newer mailpeer's payload this one cannot read whole).
 */
export function readVersion(ctx: Ctx, obj: Obj): 1 | 2 {
  if (!Object.hasOwn(obj, "version")) return 1;
  if (obj.version !== CANDIDATES_PAYLOAD_VERSION) {
    fail(
      ctx,
      `version ${
        JSON.stringify(obj.version)
      } is not one this mailpeer reads (1 or ${CANDIDATES_PAYLOAD_VERSION})`,
    );
  }
  return 2;
}

/**
 * One candidate of the `candidates` list (`host`, `srflx` or `mapped`) or of the
 * `relayCandidates` list (`relay` over UDP), as `list` says: an endpoint, a priority and (srflx
 * only) a NAT mapping.
 */
export function readCandidate(
  ctx: Ctx,
  value: unknown,
  path: string,
  list: "candidates" | "relayCandidates" = "candidates",
): Candidate {
  const endpoint = readEndpoint(ctx, value, path);
  const obj = value as Obj;
  const p = `${path}.`;
  const type = readString(ctx, obj, "type", p);
  if (list === "relayCandidates") {
    if (type !== "relay") fail(ctx, `${p}type is not relay`);
    if (endpoint.transport !== "udp") fail(ctx, `${p}transport of a relay candidate is not udp`);
  } else if (type !== "host" && type !== "srflx" && type !== "mapped") {
    fail(
      ctx,
      type === "relay"
        ? `${p}type is relay, which belongs in relayCandidates`
        : `${p}type is not host, srflx or mapped`,
    );
  }
  const priority = get(ctx, obj, "priority", p);
  if (
    typeof priority !== "number" || !Number.isInteger(priority) || priority < 1 ||
    priority > MAX_CANDIDATE_PRIORITY
  ) {
    fail(ctx, `${p}priority is not a whole number from 1 to ${MAX_CANDIDATE_PRIORITY}`);
  }
  const candidate: Candidate = { ...endpoint, type, priority };
  if (Object.hasOwn(obj, "mapping")) {
    if (type !== "srflx") fail(ctx, `${p}mapping is given for a ${type} candidate`);
    const mapping = obj.mapping;
    if (mapping !== "endpoint-independent" && mapping !== "endpoint-dependent") {
      fail(ctx, `${p}mapping is not endpoint-independent or endpoint-dependent`);
    }
    candidate.mapping = mapping;
  }
  return candidate;
}

/**
 * The candidates of a version 2 object (`candidates`, then `relayCandidates`), checked as by
 * {@link readCandidateList}, and `endpoints` exactly the projection of `candidates` (same
 * order), so a version 1 reader sees the same direct addresses.
 */
export function readCandidates(
  ctx: Ctx,
  obj: Obj,
  path: string,
  endpoints: readonly Endpoint[],
): Candidate[] {
  const candidates = readCandidateList(ctx, obj, path);
  const direct = candidates.filter((c) => c.type !== "relay");
  const same = endpoints.length === direct.length &&
    direct.every((c, i) =>
      c.transport === endpoints[i]!.transport && c.address === endpoints[i]!.address &&
      c.port === endpoints[i]!.port
    );
  if (!same) fail(ctx, `${path}endpoints are not the candidates' addresses in the same order`);
  return candidates;
}

/**
 * The `candidates` list and the optional `relayCandidates` list, one after the other: at most
 * `MAX_RELAY_CANDIDATES` relayed ones, at most `MAX_CANDIDATES` in all, no two with one
 * transport, address and port. Relayed candidates travel apart so that a reader of an earlier
 * version 2, which knows no `relay` type and ignores unknown fields, skips them and reads the
 * rest (docs/protocol.md "Relayed candidates").
 */
export function readCandidateList(ctx: Ctx, obj: Obj, path: string): Candidate[] {
  const direct = readArray(ctx, obj, "candidates", path, MAX_CANDIDATES)
    .map((c, i) => readCandidate(ctx, c, `${path}candidates[${i}]`));
  const relayed = Object.hasOwn(obj, "relayCandidates")
    ? readArray(ctx, obj, "relayCandidates", path, MAX_RELAY_CANDIDATES)
      .map((c, i) => readCandidate(ctx, c, `${path}relayCandidates[${i}]`, "relayCandidates"))
    : [];
  const candidates = [...direct, ...relayed];
  if (candidates.length > MAX_CANDIDATES) {
    fail(
      ctx,
      `${path}candidates and relayCandidates have ${candidates.length} entries, more than ${MAX_CANDIDATES}`,
    );
  }
  const seen = new Set<string>();
  for (const [i, c] of candidates.entries()) {
    const key = `${c.transport} ${c.address} ${c.port}`;
    const at = i < direct.length ? `candidates[${i}]` : `relayCandidates[${i - direct.length}]`;
    if (seen.has(key)) fail(ctx, `${path}${at} repeats ${c.address} port ${c.port}`);
    seen.add(key);
  }
  return candidates;
}

/** The `hostCards` list: at most `MAX_HOST_CARDS` host cards in canonical form. */
export function readHostCards(ctx: Ctx, obj: Obj): string[] {
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

/** Parses a payload of at most `MAX_BLOCK_BYTES` as a UTF-8 JSON object. */
export function parseJson(ctx: Ctx, bytes: Uint8Array): Obj {
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

/** The context of decoding a `kind` payload. */
export function readCtx(kind: string): Ctx {
  return {
    doing: `Cannot read ${kind}`,
    advice: "the sender runs a faulty or incompatible mailpeer; ignore this mail",
  };
}

/** The context of checking a `kind` payload before encoding it. */
export function encodeCtx(kind: string): Ctx {
  return { doing: `Cannot encode ${kind}`, advice: "correct the value before sending" };
}
