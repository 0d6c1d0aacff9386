/**
 * The control table rules of docs/design.md "Control table" as pure functions on `PeerRow[]`.
 *
 * Every function returns a new array and never mutates its input. Rows that a function does
 * not change are shared with the input, so treat rows as immutable values.
 *
 * A row is keyed by network + user id: the same user id on two networks is two rows.
 *
 * @module
 */
import { HostError } from "../errors.ts";
import { DEFAULT_EXPIRY_MS, DEFAULT_PEERS_PER_REPLY, DEFAULT_TABLE_CAPACITY } from "../limits.ts";
import { MAX_CANDIDATE_PRIORITY } from "../protocol.ts";
import { candidatesOf } from "../message/candidate.ts";
import type { Candidate, Endpoint, TransportKind } from "../message/types.ts";
import type { PeerRow } from "./types.ts";

/** Size, age and selection limits of the control table. */
export interface TablePolicy {
  /** Most rows the table holds; when full the oldest row is overwritten. */
  capacity: number;
  /** Age in ms after which a row expires (it is never selected and may be dropped). */
  expiryMs: number;
  /** Most peers one reply lists. */
  peersPerReply: number;
}

/** The defaults of limits.ts: 1000 rows, 12 h expiry, 8 peers per reply. */
export const DEFAULT_TABLE_POLICY: TablePolicy = Object.freeze({
  capacity: DEFAULT_TABLE_CAPACITY,
  expiryMs: DEFAULT_EXPIRY_MS,
  peersPerReply: DEFAULT_PEERS_PER_REPLY,
});

/** Who a row belongs to. */
export interface RowOwner {
  userId: string;
  network: string;
}

function sameOwner(row: RowOwner, owner: RowOwner): boolean {
  return row.userId === owner.userId && row.network === owner.network;
}

function isLive(row: PeerRow, now: number, expiryMs: number): boolean {
  return row.requestedAt >= now - expiryMs;
}

/** A deep copy of `row`; an absent or undefined `lastFailureAt` is left out. */
export function cloneRow(row: PeerRow): PeerRow {
  const copy: PeerRow = {
    userId: row.userId,
    network: row.network,
    identityKey: row.identityKey,
    endpoints: row.endpoints.map((e) => ({
      transport: e.transport,
      address: e.address,
      port: e.port,
    })),
    email: row.email,
    sessionId: row.sessionId,
    requestedAt: row.requestedAt,
    failures: row.failures,
  };
  if (row.lastFailureAt !== undefined) copy.lastFailureAt = row.lastFailureAt;
  if (row.history !== undefined) {
    copy.history = row.history.map((h) =>
      h.from === undefined
        ? { sessionId: h.sessionId, at: h.at }
        : { sessionId: h.sessionId, at: h.at, from: h.from }
    );
  }
  if (row.listed !== undefined) {
    copy.listed = row.listed.map((l) => ({
      sessionId: l.sessionId,
      at: l.at,
      peers: [...l.peers],
    }));
  }
  if (row.since !== undefined) copy.since = row.since;
  if (row.proof !== undefined) {
    const { body, signature, recipient } = row.proof;
    copy.proof = { body, signature, recipient };
  }
  if (row.notices !== undefined) copy.notices = row.notices.map((n) => ({ id: n.id, at: n.at }));
  if (row.candidates !== undefined) copy.candidates = row.candidates.map(copyCandidate);
  if (row.introductionKey !== undefined) copy.introductionKey = row.introductionKey;
  if (row.introduced !== undefined) copy.introduced = [...row.introduced];
  return copy;
}

function copyCandidate(c: Candidate): Candidate {
  const copy: Candidate = {
    transport: c.transport,
    address: c.address,
    port: c.port,
    type: c.type,
    priority: c.priority,
  };
  if (c.mapping !== undefined) copy.mapping = c.mapping;
  return copy;
}

/**
 * Drops the rows whose request is older than `now - expiryMs`.
 *
 * @example
 * ```ts
 * const live = expireRows(rows, Date.now(), DEFAULT_TABLE_POLICY);
 * ```
 */
export function expireRows(
  rows: readonly PeerRow[],
  now: number,
  policy: Pick<TablePolicy, "expiryMs">,
): PeerRow[] {
  return rows.filter((row) => isLive(row, now, policy.expiryMs));
}

/** Index of the row with the smallest `requestedAt`, skipping `except`; -1 when none. */
function oldestIndex(rows: readonly PeerRow[], except: number): number {
  let found = -1;
  rows.forEach((row, i) => {
    if (i === except) return;
    const best = found === -1 ? undefined : rows[found];
    if (best === undefined || row.requestedAt < best.requestedAt) found = i;
  });
  return found;
}

/**
 * Stores the latest request of one user: one row per network + user id.
 *
 * A new request replaces the user's old row (its failure flag is cleared) unless the stored
 * row is newer, carries the same session id or another identity key, in which case the table
 * is returned as it is (so processing the same request twice is idempotent, and a user id stays
 * bound to its key: expire or remove the old row first). A new user in a full table overwrites
 * the oldest row. The result never holds more than `capacity` rows.
 *
 * @throws {RangeError} when `capacity` is not a positive integer.
 */
export function upsertRow(
  rows: readonly PeerRow[],
  row: PeerRow,
  policy: Pick<TablePolicy, "capacity">,
): PeerRow[] {
  return upsertRowChanges(rows, row, policy).rows;
}

/**
 * {@link upsertRow}, saying what changed: the row it stored (none when the table is returned as
 * it is), and the rows that left the table (the user's old row, then the oldest rows a full table
 * overwrote), so an index of the rows can follow (admission_index.ts).
 *
 * @throws {RangeError} when `capacity` is not a positive integer.
 */
export function upsertRowChanges(
  rows: readonly PeerRow[],
  row: PeerRow,
  policy: Pick<TablePolicy, "capacity">,
): { rows: PeerRow[]; stored?: PeerRow; dropped: PeerRow[] } {
  const { capacity } = policy;
  if (!Number.isInteger(capacity) || capacity < 1) {
    throw new RangeError(`Cannot store a request: table capacity ${capacity} is not >= 1`);
  }
  const next = [...rows];
  const fresh: PeerRow = { ...cloneRow(row), failures: 0 };
  delete fresh.lastFailureAt;
  let at = next.findIndex((r) => sameOwner(r, row));
  const existing = at === -1 ? undefined : next[at];
  if (existing !== undefined) {
    if (
      existing.identityKey !== row.identityKey || existing.requestedAt > row.requestedAt ||
      existing.sessionId === row.sessionId
    ) {
      return { rows: next, dropped: [] };
    }
    next[at] = fresh;
  } else {
    next.push(fresh);
    at = next.length - 1;
  }
  const dropped = existing === undefined ? [] : [existing];
  // Overwrite the oldest rows (never the one just stored) until the table fits.
  while (next.length > capacity) {
    const oldest = oldestIndex(next, at);
    dropped.push(...next.splice(oldest, 1));
    if (oldest < at) at--;
  }
  return { rows: next, stored: fresh, dropped };
}

/**
 * Picks the peers to send to `requester`: live rows of the same network, never the requester
 * itself; rows the requester can reach on one of its `transports` first (when given: a terminal
 * tries only peers on its own transport, docs/decisions.md "Peers on another transport"), then
 * rows without failures, then fewer failures, then the most recent request first; at most `max`
 * rows.
 */
export function selectPeers(
  rows: readonly PeerRow[],
  requester: RowOwner,
  options: {
    now: number;
    expiryMs: number;
    max: number;
    transports?: readonly TransportKind[];
  },
): PeerRow[] {
  const { now, expiryMs, max, transports } = options;
  if (!(max > 0)) return [];
  // The best `max` rows in one pass, kept in order (not a sort of every row: this runs for each
  // request over a table of up to 1,000 rows). The order is total (user ids are unique within a
  // network), so the result is exactly the first `max` of the whole table sorted.
  const best: { row: PeerRow; unreachable: number }[] = [];
  const before = (
    a: { row: PeerRow; unreachable: number },
    b: { row: PeerRow; unreachable: number },
  ): boolean =>
    a.unreachable !== b.unreachable
      ? a.unreachable < b.unreachable
      : a.row.failures !== b.row.failures
      ? a.row.failures < b.row.failures
      : a.row.requestedAt !== b.row.requestedAt
      ? a.row.requestedAt > b.row.requestedAt
      : a.row.userId < b.row.userId;
  for (const row of rows) {
    if (
      row.network !== requester.network || row.userId === requester.userId ||
      !isLive(row, now, expiryMs)
    ) continue;
    const entry = {
      row,
      unreachable: transports === undefined || reachableOn(row, transports) ? 0 : 1,
    };
    if (best.length === max && !before(entry, best[max - 1]!)) continue;
    let at = best.length === max ? max - 1 : best.length;
    while (at > 0 && before(entry, best[at - 1]!)) at--;
    best.splice(at, 0, entry);
    if (best.length > max) best.pop();
  }
  return best.map((e) => e.row);
}

/**
 * Whether a row (or request) has a candidate on one of `transports`: a terminal dials and punches
 * only on its own transport (docs/decisions.md "Peers on another transport").
 */
export function reachableOn(
  p: { endpoints: readonly Endpoint[]; candidates?: readonly Candidate[] },
  transports: readonly TransportKind[],
): boolean {
  // the transports of candidatesOf(p), without copying the candidates: this runs per row
  const listed: readonly { transport: TransportKind }[] = p.candidates ?? p.endpoints;
  return listed.some((c) => transports.includes(c.transport));
}

/** The transports a row or request has candidates on. */
export function transportsOf(
  p: { endpoints: readonly Endpoint[]; candidates?: readonly Candidate[] },
): TransportKind[] {
  return [...new Set(candidatesOf(p).map((c) => c.transport))];
}

/**
 * Records a notice that `target` could not be reached: finds the row by network + user id
 * (never by address, which another user may have taken over), adds one failure and sets
 * `lastFailureAt`. An unknown user leaves the table as it is.
 */
export function flagFailure(rows: readonly PeerRow[], target: RowOwner, at: number): PeerRow[] {
  return rows.map((row) =>
    sameOwner(row, target)
      ? { ...cloneRow(row), failures: row.failures + 1, lastFailureAt: at }
      : row
  );
}

const ENDPOINT_KEYS_LIST = ["transport", "address", "port"];
const ROW_KEYS = new Set([
  "userId",
  "network",
  "identityKey",
  "endpoints",
  "email",
  "sessionId",
  "requestedAt",
  "failures",
  "lastFailureAt",
  "history",
  "listed",
  "notices",
  "since",
  "proof",
  "candidates",
  "introductionKey",
  "introduced",
]);
const CANDIDATE_KEYS = new Set([...ENDPOINT_KEYS_LIST, "type", "priority", "mapping"]);
const ENDPOINT_KEYS = new Set(ENDPOINT_KEYS_LIST);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isTime(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function endpointProblem(value: unknown): string | undefined {
  if (!isRecord(value)) return "is not an object";
  const extra = Object.keys(value).find((k) => !ENDPOINT_KEYS.has(k));
  if (extra !== undefined) return `has an unknown field "${extra}"`;
  if (value.transport !== "tcp" && value.transport !== "udp") {
    return `has transport ${JSON.stringify(value.transport)}, not "tcp" or "udp"`;
  }
  if (typeof value.address !== "string" || value.address === "") return "has no address";
  const port = value.port;
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) {
    return `has port ${JSON.stringify(port)}, not an integer 1-65535`;
  }
  return undefined;
}

function candidateProblem(value: unknown): string | undefined {
  if (!isRecord(value)) return "is not an object";
  const extra = Object.keys(value).find((k) => !CANDIDATE_KEYS.has(k));
  if (extra !== undefined) return `has an unknown field "${extra}"`;
  const { type, priority, mapping, ...endpoint } = value;
  const problem = endpointProblem(endpoint);
  if (problem !== undefined) return problem;
  if (type !== "host" && type !== "srflx" && type !== "mapped" && type !== "relay") {
    return "has no valid type";
  }
  if (!isTime(priority) || priority < 1 || priority > MAX_CANDIDATE_PRIORITY) {
    return "has no valid priority";
  }
  if (
    mapping !== undefined && mapping !== "endpoint-independent" &&
    mapping !== "endpoint-dependent"
  ) {
    return "has an invalid mapping";
  }
  return undefined;
}

function rowProblem(value: unknown): string | undefined {
  if (!isRecord(value)) return "is not an object";
  const extra = Object.keys(value).find((k) => !ROW_KEYS.has(k));
  if (extra !== undefined) return `has an unknown field "${extra}"`;
  for (const key of ["userId", "network", "identityKey", "sessionId"] as const) {
    if (typeof value[key] !== "string" || value[key] === "") return `has no valid "${key}"`;
  }
  if (typeof value.email !== "string") return `has no valid "email"`;
  if (!isTime(value.requestedAt)) return `has no valid "requestedAt"`;
  if (!isTime(value.failures)) return `has no valid "failures"`;
  if (value.lastFailureAt !== undefined && !isTime(value.lastFailureAt)) {
    return `has an invalid "lastFailureAt"`;
  }
  if (value.history !== undefined) {
    if (!Array.isArray(value.history)) return `has a "history" that is not a list`;
    for (const h of value.history) {
      if (
        !isRecord(h) || typeof h.sessionId !== "string" || !isTime(h.at) ||
        (h.from !== undefined && typeof h.from !== "string")
      ) {
        return `has an invalid "history" entry`;
      }
    }
  }
  if (value.since !== undefined && !isTime(value.since)) return `has an invalid "since"`;
  if (value.proof !== undefined) {
    const proof = value.proof;
    if (
      !isRecord(proof) || Object.keys(proof).length !== 3 ||
      !["body", "signature", "recipient"].every((k) => typeof proof[k] === "string")
    ) {
      return `has an invalid "proof"`;
    }
  }
  if (value.listed !== undefined) {
    if (!Array.isArray(value.listed)) return `has a "listed" that is not a list`;
    for (const l of value.listed) {
      if (
        !isRecord(l) || typeof l.sessionId !== "string" || !isTime(l.at) ||
        !Array.isArray(l.peers) || !l.peers.every((p) => typeof p === "string")
      ) {
        return `has an invalid "listed" entry`;
      }
    }
  }
  if (value.notices !== undefined) {
    if (!Array.isArray(value.notices)) return `has a "notices" that is not a list`;
    for (const n of value.notices) {
      if (!isRecord(n) || typeof n.id !== "string" || !isTime(n.at)) {
        return `has an invalid "notices" entry`;
      }
    }
  }
  if (value.introductionKey !== undefined && typeof value.introductionKey !== "string") {
    return `has an invalid "introductionKey"`;
  }
  if (
    value.introduced !== undefined &&
    (!Array.isArray(value.introduced) || !value.introduced.every(isTime))
  ) {
    return `has an invalid "introduced"`;
  }
  if (value.candidates !== undefined) {
    if (!Array.isArray(value.candidates)) return `has a "candidates" that is not a list`;
    for (const [i, c] of value.candidates.entries()) {
      const problem = candidateProblem(c);
      if (problem !== undefined) return `candidate ${i} ${problem}`;
    }
  }
  if (!Array.isArray(value.endpoints)) return `has no "endpoints" list`;
  for (const [i, endpoint] of value.endpoints.entries()) {
    const problem = endpointProblem(endpoint);
    if (problem !== undefined) return `endpoint ${i} ${problem}`;
  }
  return undefined;
}

/**
 * Checks that `value` (a table read from disk or another store) is a well-formed list of
 * rows with one row per network + user id, and returns clean copies of them.
 *
 * @throws {HostError} code `ETABLE`, naming the first bad row and what is wrong with it.
 */
export function validateRows(value: unknown): PeerRow[] {
  const fail = (what: string): never => {
    throw new HostError(
      "ETABLE",
      `Cannot load the control table: ${what}; move the table away, the host rebuilds it from new requests`,
      { cause: what },
    );
  };
  if (!Array.isArray(value)) return fail("the rows are not a list");
  const seen = new Set<string>();
  return value.map((row: unknown, i) => {
    const problem = rowProblem(row);
    if (problem !== undefined) return fail(`row ${i} ${problem}`);
    const valid = row as PeerRow;
    const key = JSON.stringify([valid.network, valid.userId]);
    if (seen.has(key)) {
      return fail(`row ${i} repeats user "${valid.userId}" of network "${valid.network}"`);
    }
    seen.add(key);
    return cloneRow(valid);
  });
}
