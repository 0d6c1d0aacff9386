/**
 * Sync blocks (docs/design.md "Host pool"): what one host of a pool mails another, a table request
 * or a table snapshot, sealed to the receiving host's X25519 key and signed by the sending host's
 * Ed25519 key with the layout of block.ts (block kind `sync`).
 *
 * ```
 * table-request = network, hostId, createdAt, kind "table-request", card (the sender's own)
 * snapshot      = network, hostId, createdAt, kind "snapshot", rows, cards (incl. the sender's)
 * row           = userId, network, identityKey, endpoints, sessionId, requestedAt, failures,
 *                 lastFailureAt?, proof?, hops?
 * proof         = body (the terminal's request payload, base64url), signature (64 bytes),
 *                 recipient (the X25519 key of the host it was sealed to, 32 bytes)
 * ```
 *
 * `hops` (linked hosts, docs/protocol.md "Linked hosts") counts the host-to-host hops the row has
 * made when it arrives, this one included: 1 from the host the terminal mailed. Absent (a host of
 * an earlier version) it reads as 1. Readers of earlier versions ignore it, so the payload keeps
 * its shape and needs no new version.
 *
 * `proof` is the terminal's signed request (host/pool/request_proof.ts): a receiving host merges only
 * rows whose proof verifies and matches the row, so no host can inject or alter a row.
 *
 * A sync block never carries a terminal's e-mail address: a row has no such field, and
 * unknown fields are neither written nor read. Snapshots of a large table may exceed the 16 KiB
 * limit of requests and replies, so sync blocks have their own limit, `MAX_SYNC_BLOCK_BYTES`,
 * and their own armor reader, `dearmorSync`.
 *
 * This module is the wire format (types, encoding, decoding); host/pool/sync_seal.ts signs, seals, opens
 * and dearmors sync blocks.
 *
 * @module
 */
import { MessageError } from "../../errors.ts";
import { MAX_BLOCK_BYTES, MAX_ENDPOINTS, MAX_HOST_CARDS } from "../../protocol.ts";
import { fromBase64Url, toBase64Url } from "../../message/base64.ts";
import { bytesEqual } from "../../message/bytes.ts";
import { isIPv4, isIPv6, networkIdProblem, userIdProblem } from "../../message/field_rules.ts";
import { formatHostCard, parseHostCard } from "../../message/host_card.ts";
import type { Endpoint, RequestProof } from "../../message/types.ts";

/** Largest sync block (proposed for limits.ts). A snapshot that would be larger is split. */
export const MAX_SYNC_BLOCK_BYTES = 1024 * 1024;
/** Most rows one snapshot carries (proposed for limits.ts). */
export const MAX_SYNC_ROWS = 2000;
/** Largest hop count a sync row carries on the wire; each host refuses more than its own cap. */
export const MAX_WIRE_HOPS = 255;

/** One control-table row as hosts exchange it: never an e-mail address. */
export interface SyncRow {
  userId: string;
  network: string;
  /** The terminal's Ed25519 identity public key (32 bytes). */
  identityKey: Uint8Array;
  endpoints: Endpoint[];
  /** Session id of the user's latest request (16 bytes), so the same request is one row. */
  sessionId: Uint8Array;
  /** When the latest request was made, ms since the epoch. */
  requestedAt: number;
  failures: number;
  lastFailureAt?: number;
  /** The terminal's signed request behind the row; rows without one are not merged. */
  proof?: RequestProof;
  /** Host-to-host hops made on arrival, this one included (1 to MAX_WIRE_HOPS); absent: 1. */
  hops?: number;
}

interface SyncBase {
  network: string;
  /** The sending host's Ed25519 public key (32 bytes). */
  hostId: Uint8Array;
  /** Milliseconds since the epoch. */
  createdAt: number;
}

/** A new or restarted host asks another for its table. */
export interface TableRequestPayload extends SyncBase {
  kind: "table-request";
  /** The sender's own host card (its `ed25519` is `hostId`): where to mail the snapshot. */
  card: string;
}

/** A host's live rows and the host cards it trusts, its own included. */
export interface SnapshotPayload extends SyncBase {
  kind: "snapshot";
  rows: SyncRow[];
  /** Canonical host cards; one of them is the sender's own (its `ed25519` is `hostId`). */
  cards: string[];
}

/** What one host mails another. */
export type SyncPayload = TableRequestPayload | SnapshotPayload;

type Obj = Record<string, unknown>;
const utf8 = new TextEncoder();

function fail(doing: string, what: string, cause?: unknown): never {
  const advice = doing.startsWith("Cannot encode")
    ? "correct the value before sending"
    : "the sending host runs a faulty or incompatible mailpeer; ignore this mail";
  throw new MessageError(
    "EPAYLOAD",
    `${doing}: ${what}; ${advice}`,
    cause === undefined ? {} : { cause },
  );
}

function isObj(value: unknown): value is Obj {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Reads the fields of the wire object `obj`, failing with `doing` as the message head. */
class Reader {
  constructor(readonly doing: string) {}

  fail(what: string, cause?: unknown): never {
    return fail(this.doing, what, cause);
  }

  get(obj: Obj, name: string, path: string): unknown {
    if (!Object.hasOwn(obj, name)) this.fail(`${path}${name} is missing`);
    return obj[name];
  }

  obj(value: unknown, path: string): Obj {
    if (!isObj(value)) this.fail(`${path} is not an object`);
    return value;
  }

  text(obj: Obj, name: string, path: string, check: (t: string) => string | undefined): string {
    const value = this.get(obj, name, path);
    if (typeof value !== "string") this.fail(`${path}${name} is not a string`);
    const problem = check(value);
    if (problem !== undefined) this.fail(`${path}${name} ${problem}`);
    return value;
  }

  bytes(obj: Obj, name: string, path: string, length: number): Uint8Array {
    const value = this.text(obj, name, path, () => undefined);
    let bytes: Uint8Array;
    try {
      bytes = fromBase64Url(value);
    } catch (err) {
      this.fail(`${path}${name} is not base64url`, err);
    }
    if (bytes.length !== length || toBase64Url(bytes) !== value) {
      this.fail(`${path}${name} has ${bytes.length} bytes, not ${length}`);
    }
    return bytes;
  }

  /** Base64url bytes of any length up to `max` (canonical encoding only). */
  blob(obj: Obj, name: string, path: string, max: number): Uint8Array {
    const value = this.text(obj, name, path, () => undefined);
    let bytes: Uint8Array;
    try {
      bytes = fromBase64Url(value);
    } catch (err) {
      this.fail(`${path}${name} is not base64url`, err);
    }
    if (toBase64Url(bytes) !== value) this.fail(`${path}${name} is not canonical base64url`);
    if (bytes.length < 1 || bytes.length > max) {
      this.fail(`${path}${name} has ${bytes.length} bytes, not 1 to ${max}`);
    }
    return bytes;
  }

  proof(value: unknown, path: string): RequestProof {
    const obj = this.obj(value, path);
    const p = `${path}.`;
    const extra = Object.keys(obj).find((k) => !["body", "signature", "recipient"].includes(k));
    if (extra !== undefined) this.fail(`${p}${extra} is not a field of a proof`);
    return {
      body: this.blob(obj, "body", p, MAX_BLOCK_BYTES),
      signature: this.bytes(obj, "signature", p, 64),
      recipient: this.bytes(obj, "recipient", p, 32),
    };
  }

  count(obj: Obj, name: string, path: string): number {
    const value = this.get(obj, name, path);
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
      this.fail(`${path}${name} is not a non-negative whole number`);
    }
    return value;
  }

  list(obj: Obj, name: string, path: string, max: number): unknown[] {
    const value = this.get(obj, name, path);
    if (!Array.isArray(value)) this.fail(`${path}${name} is not a list`);
    if (value.length > max) {
      this.fail(`${path}${name} has ${value.length} entries, more than ${max}`);
    }
    return value;
  }

  endpoint(value: unknown, path: string): Endpoint {
    const obj = this.obj(value, path);
    const p = `${path}.`;
    const transport = this.get(obj, "transport", p);
    if (transport !== "tcp" && transport !== "udp") this.fail(`${p}transport is not tcp or udp`);
    const address = this.get(obj, "address", p);
    if (typeof address !== "string" || (!isIPv4(address) && !isIPv6(address))) {
      this.fail(`${p}address is not an IPv4 or IPv6 literal`);
    }
    const port = this.get(obj, "port", p);
    if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) {
      this.fail(`${p}port is not a port number from 1 to 65535`);
    }
    return { transport, address, port };
  }

  card(value: unknown, path: string): string {
    if (typeof value !== "string") this.fail(`${path} is not a string`);
    let canonical: string;
    try {
      canonical = formatHostCard(parseHostCard(value));
    } catch (err) {
      this.fail(`${path} is not a host card`, err);
    }
    if (canonical !== value) this.fail(`${path} is not written in canonical form`);
    return value;
  }

  row(value: unknown, path: string): SyncRow {
    const obj = this.obj(value, path);
    const p = `${path}.`;
    const row: SyncRow = {
      userId: this.text(obj, "userId", p, userIdProblem),
      network: this.text(obj, "network", p, networkIdProblem),
      identityKey: this.bytes(obj, "identityKey", p, 32),
      endpoints: this.list(obj, "endpoints", p, MAX_ENDPOINTS)
        .map((e, i) => this.endpoint(e, `${p}endpoints[${i}]`)),
      sessionId: this.bytes(obj, "sessionId", p, 16),
      requestedAt: this.count(obj, "requestedAt", p),
      failures: this.count(obj, "failures", p),
    };
    if (Object.hasOwn(obj, "lastFailureAt") && obj.lastFailureAt !== null) {
      row.lastFailureAt = this.count(obj, "lastFailureAt", p);
    }
    if (Object.hasOwn(obj, "proof") && obj.proof !== null) {
      row.proof = this.proof(obj.proof, `${p}proof`);
    }
    if (Object.hasOwn(obj, "hops") && obj.hops !== null) {
      const hops = this.count(obj, "hops", p);
      if (hops < 1 || hops > MAX_WIRE_HOPS) this.fail(`${p}hops is not from 1 to ${MAX_WIRE_HOPS}`);
      row.hops = hops;
    }
    return row;
  }
}

function cardKey(card: string): Uint8Array {
  return parseHostCard(card).ed25519;
}

function fromWire(r: Reader, obj: Obj): SyncPayload {
  const base = {
    network: r.text(obj, "network", "", networkIdProblem),
    hostId: r.bytes(obj, "hostId", "", 32),
    createdAt: r.count(obj, "createdAt", ""),
  };
  const kind = r.get(obj, "kind", "");
  if (kind === "table-request") {
    const card = r.card(r.get(obj, "card", ""), "card");
    if (!bytesEqual(cardKey(card), base.hostId)) {
      r.fail("card is not the card of the sending host (its Ed25519 key is not hostId)");
    }
    return { ...base, kind, card };
  }
  if (kind !== "snapshot") r.fail(`kind is not "table-request" or "snapshot"`);
  const cards = r.list(obj, "cards", "", MAX_HOST_CARDS).map((c, i) => r.card(c, `cards[${i}]`));
  if (!cards.some((c) => bytesEqual(cardKey(c), base.hostId))) {
    r.fail("cards does not hold the sending host's own card");
  }
  const rows = r.list(obj, "rows", "", MAX_SYNC_ROWS).map((row, i) => r.row(row, `rows[${i}]`));
  const seen = new Set<string>();
  for (const [i, row] of rows.entries()) {
    const key = JSON.stringify([row.network, row.userId]);
    if (seen.has(key)) r.fail(`rows[${i}] repeats user "${row.userId}" of ${row.network}`);
    seen.add(key);
  }
  return { ...base, kind, rows, cards };
}

function b64(value: unknown): unknown {
  return value instanceof Uint8Array ? toBase64Url(value) : value;
}

function rowToWire(row: SyncRow): unknown {
  if (!isObj(row)) return row;
  const wire: Obj = {
    userId: row.userId,
    network: row.network,
    identityKey: b64(row.identityKey),
    endpoints: Array.isArray(row.endpoints)
      ? row.endpoints.map((e) =>
        isObj(e) ? { transport: e.transport, address: e.address, port: e.port } : e
      )
      : row.endpoints,
    sessionId: b64(row.sessionId),
    requestedAt: row.requestedAt,
    failures: row.failures,
  };
  if (row.lastFailureAt !== undefined) wire.lastFailureAt = row.lastFailureAt;
  if (row.proof !== undefined) {
    const proof = row.proof;
    wire.proof = isObj(proof)
      ? {
        body: b64(proof.body),
        signature: b64(proof.signature),
        recipient: b64(proof.recipient),
      }
      : proof;
  }
  if (row.hops !== undefined) wire.hops = row.hops;
  return wire;
}

/**
 * Encodes a sync payload to deterministic UTF-8 JSON bytes (fields in a fixed order; no field
 * that decoding would not read, so no e-mail address can slip in).
 *
 * @example
 * ```ts
 * import { formatHostCard } from "../../message/host_card.ts";
 * import { generateHostKeys, hostCardOf } from "../../message/key_file.ts";
 * import { encodeSyncPayload } from "./sync_payload.ts";
 *
 * const keys = await generateHostKeys("a@hosts.example");
 * const bytes = encodeSyncPayload({
 *   network: "lan-party",
 *   hostId: keys.ed25519.publicKey,
 *   createdAt: Date.now(),
 *   kind: "table-request",
 *   card: formatHostCard(hostCardOf(keys)),
 * });
 * ```
 * @throws {MessageError} `EPAYLOAD` when a field breaks the rules decoding enforces.
 */
export function encodeSyncPayload(p: SyncPayload): Uint8Array {
  const wire: Obj = { network: p.network, hostId: b64(p.hostId), createdAt: p.createdAt };
  wire.kind = p.kind;
  if (p.kind === "table-request") {
    wire.card = p.card;
  } else {
    wire.rows = Array.isArray(p.rows) ? p.rows.map(rowToWire) : p.rows;
    wire.cards = p.cards;
  }
  fromWire(new Reader(`Cannot encode ${String(p.kind)}`), wire);
  return utf8.encode(JSON.stringify(wire));
}

/**
 * Decodes and checks a sync payload.
 *
 * @throws {MessageError} `EPAYLOAD` naming the first field that is wrong.
 */
export function decodeSyncPayload(bytes: Uint8Array): SyncPayload {
  const r = new Reader("Cannot read sync");
  if (bytes.length > MAX_SYNC_BLOCK_BYTES) {
    r.fail(`it has ${bytes.length} bytes, more than ${MAX_SYNC_BLOCK_BYTES}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (err) {
    r.fail("it is not UTF-8 JSON", err);
  }
  return fromWire(r, r.obj(value, "the payload"));
}
