/**
 * The rows a table update hands back, checked as `validateRows` does but cheaply: a store hands
 * out copies of its validated rows, and a copy that comes back unchanged (field by field) keeps
 * its validated original, so only new or changed rows are validated again. Both stores use it
 * (the JSON file and Redis); a store may also keep each original's encoded line.
 *
 * @module
 */
import { HostError } from "../../errors.ts";
import { validateRows } from "../table.ts";
import type { PeerRow } from "../types.ts";

/**
 * Checks `rows` as validateRows does and returns private copies: a row handed out by this
 * store and returned unchanged keeps its validated copy, the others are validated now.
 */
export function acceptRows(
  rows: readonly PeerRow[],
  origins: ReadonlyMap<PeerRow, PeerRow>,
): PeerRow[] {
  try {
    if (!Array.isArray(rows)) return validateRows(rows); // throws: not a list
    const accepted: PeerRow[] = new Array(rows.length);
    const fresh: number[] = [];
    rows.forEach((row, i) => {
      const origin = origins.get(row);
      if (origin !== undefined && sameRow(row, origin)) accepted[i] = origin;
      else fresh.push(i);
    });
    if (fresh.length > 0) {
      const valid = validateRows(fresh.map((i) => rows[i]));
      fresh.forEach((at, k) => accepted[at] = valid[k]!);
    }
    // One row per network + user id (no new key strings: their hashes stay cached).
    const seen = new Map<string, Set<string>>();
    for (const { network, userId } of accepted) {
      let users = seen.get(network);
      if (users === undefined) seen.set(network, users = new Set());
      if (users.has(userId)) throw new Error("a repeated user"); // validateRows names it below
      users.add(userId);
    }
    return accepted;
  } catch (err) {
    // Name the bad row by its place in the whole table, as validateRows(rows) does.
    let problem = err;
    try {
      validateRows(rows);
    } catch (whole) {
      problem = whole;
    }
    throw new TypeError(
      `Cannot store the control table: the update returned a bad table (${
        problem instanceof HostError ? problem.cause : problem
      }); this is a bug in the caller`,
      { cause: problem },
    );
  }
}

/**
 * True when `row` (a copy handed out as `origin`) still holds exactly `origin`'s fields: then
 * it is as valid as `origin` and serialises to the same line. Anything unusual (an extra
 * field, a replaced list, an extra key in a history entry) counts as changed.
 */
function sameRow(row: PeerRow, origin: PeerRow): boolean {
  const fields = 8 + (origin.lastFailureAt === undefined ? 0 : 1) +
    (origin.history === undefined ? 0 : 1) + (origin.listed === undefined ? 0 : 1) +
    (origin.notices === undefined ? 0 : 1) + (origin.since === undefined ? 0 : 1) +
    (origin.proof === undefined ? 0 : 1) + (origin.candidates === undefined ? 0 : 1) +
    (origin.introductionKey === undefined ? 0 : 1) + (origin.introduced === undefined ? 0 : 1);
  return Object.keys(row).length === fields &&
    row.userId === origin.userId && row.network === origin.network &&
    row.identityKey === origin.identityKey && row.email === origin.email &&
    row.sessionId === origin.sessionId && row.requestedAt === origin.requestedAt &&
    row.failures === origin.failures && row.lastFailureAt === origin.lastFailureAt &&
    row.since === origin.since &&
    (row.proof === origin.proof ||
      (row.proof !== undefined && origin.proof !== undefined &&
        Object.keys(row.proof).length === 3 && row.proof.body === origin.proof.body &&
        row.proof.signature === origin.proof.signature &&
        row.proof.recipient === origin.proof.recipient)) &&
    sameList(
      row.endpoints,
      origin.endpoints,
      (e, o) =>
        Object.keys(e).length === 3 && e.transport === o.transport &&
        e.address === o.address && e.port === o.port,
    ) &&
    (row.history === origin.history ||
      sameList(
        row.history,
        origin.history,
        (h, o) =>
          Object.keys(h).length === (o.from === undefined ? 2 : 3) &&
          h.sessionId === o.sessionId && h.at === o.at && h.from === o.from,
      )) &&
    (row.listed === origin.listed ||
      sameList(
        row.listed,
        origin.listed,
        (l, o) =>
          Object.keys(l).length === 3 && l.sessionId === o.sessionId && l.at === o.at &&
          Array.isArray(l.peers) && l.peers.length === o.peers.length &&
          l.peers.every((p, i) => p === o.peers[i]),
      )) &&
    (row.candidates === origin.candidates ||
      sameList(
        row.candidates,
        origin.candidates,
        (c, o) =>
          Object.keys(c).length === (o.mapping === undefined ? 5 : 6) &&
          c.transport === o.transport && c.address === o.address && c.port === o.port &&
          c.type === o.type && c.priority === o.priority && c.mapping === o.mapping,
      )) &&
    row.introductionKey === origin.introductionKey &&
    (row.introduced === origin.introduced ||
      (Array.isArray(row.introduced) && origin.introduced !== undefined &&
        row.introduced.length === origin.introduced.length &&
        row.introduced.every((t, i) => t === origin.introduced![i]))) &&
    (row.notices === origin.notices ||
      sameList(
        row.notices,
        origin.notices,
        (n, o) => Object.keys(n).length === 2 && n.id === o.id && n.at === o.at,
      ));
}

function sameList<T extends object>(
  list: readonly T[] | undefined,
  origin: readonly T[] | undefined,
  same: (item: T, original: T) => boolean,
): boolean {
  if (!Array.isArray(list) || origin === undefined || list.length !== origin.length) return false;
  for (let i = 0; i < list.length; i++) {
    const item: unknown = list[i];
    if (typeof item !== "object" || item === null || !same(item as T, origin[i]!)) return false;
  }
  return true;
}
