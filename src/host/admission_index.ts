/**
 * The counts admission needs, indexed once per batch of requests (docs/decisions.md "Host
 * admission"): each user's row by network and user id, and the times of the history entries per
 * sender address (lower case) and per network, and of the rows' making per network, sorted, so
 * a count "after `since`" is a binary search instead of a pass over every row's history.
 *
 * Times at or before the earliest moment the batch asks about (its earliest request's time less
 * the rate window) can never count, so they are left out: on a table whose histories reach back
 * 12 h, most of them.
 *
 * A batch changes the rows as it goes (an admitted request replaces its user's row, a full table
 * drops its oldest); {@link AdmissionIndex.replace} takes each change, so every request is
 * judged on exactly the rows `scanCounts` (admission.ts) would scan.
 *
 * @module
 */
import type { AdmissionCounts } from "./admission.ts";
import type { PeerRow } from "./types.ts";

/** First index of sorted `xs` whose value is above `t`. */
function firstAbove(xs: ArrayLike<number>, t: number): number {
  let lo = 0, hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (xs[mid]! > t) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** Inserts `t` into sorted `xs`. */
function insertSorted(xs: number[], t: number): void {
  xs.splice(firstAbove(xs, t), 0, t);
}

/**
 * A multiset of times: the sorted times it was built with, plus those added and less those
 * removed since (each kept sorted and small: a batch's changes), so no insert moves the base.
 */
class Times {
  readonly #base: Float64Array;
  readonly #added: number[] = [];
  readonly #removed: number[] = [];

  constructor(times: readonly number[]) {
    this.#base = Float64Array.from(times).sort();
  }

  /** How many times are above `t`. */
  after(t: number): number {
    const above = (xs: ArrayLike<number>) => xs.length - firstAbove(xs, t);
    return above(this.#base) + above(this.#added) - above(this.#removed);
  }

  add(t: number): void {
    insertSorted(this.#added, t);
  }

  /** Removes `t`, which must be one of the times. */
  remove(t: number): void {
    insertSorted(this.#removed, t);
  }
}

/** Times per key, made from lists of times gathered per key. */
class KeyedTimes {
  readonly #times = new Map<string, Times>();

  constructor(gathered: Map<string, number[]>) {
    for (const [key, times] of gathered) this.#times.set(key, new Times(times));
  }

  after(key: string, t: number): number {
    return this.#times.get(key)?.after(t) ?? 0;
  }

  add(key: string, t: number): void {
    let times = this.#times.get(key);
    if (times === undefined) this.#times.set(key, times = new Times([]));
    times.add(t);
  }

  remove(key: string, t: number): void {
    this.#times.get(key)?.remove(t);
  }
}

/** Calls `take(key, time)` for each history entry of `row` after `floor`, by sender (lower case). */
function eachSender(row: PeerRow, floor: number, take: (key: string, at: number) => void): void {
  for (const h of row.history ?? []) {
    if (h.at > floor) take((h.from ?? row.email).toLowerCase(), h.at);
  }
}

/** Calls `take(network, time)` for each history entry of `row` after `floor`. */
function eachRequest(row: PeerRow, floor: number, take: (key: string, at: number) => void): void {
  for (const h of row.history ?? []) if (h.at > floor) take(row.network, h.at);
}

/** Calls `take(network, time)` with when `row` was made (-1: never said, as admission reads it). */
function eachMaking(row: PeerRow, floor: number, take: (key: string, at: number) => void): void {
  const since = row.since ?? -1;
  if (since > floor) take(row.network, since);
}

type Each = typeof eachSender;

/**
 * The admission counts of a set of rows that a batch changes as it goes. Each count is indexed
 * the first time a request asks for it (O(rows + history entries), once per batch), then kept up
 * to date; a count costs O(log entries + the batch's changes).
 *
 * The rows must hold one row per network and user id, as the table does.
 *
 * With `floor`, the counts are asked only for a `since` at or after it.
 *
 * @example
 * ```ts
 * const index = new AdmissionIndex(live, { floor: now - rates.windowMs });
 * const verdict = admit(live, candidate, rates, index);
 * // after replacing `old` by `row` in live:
 * index.replace([old], [row]);
 * ```
 */
export class AdmissionIndex implements AdmissionCounts {
  readonly #rows: Set<PeerRow>;
  readonly #own = new Map<string, Map<string, PeerRow>>();
  #senders: KeyedTimes | undefined;
  #requests: KeyedTimes | undefined;
  #makings: KeyedTimes | undefined;
  readonly #floor: number;

  /**
   * @param options.floor the earliest `since` any count will be asked for (default: none);
   *   times at or before it are not indexed.
   */
  constructor(rows: readonly PeerRow[], options: { floor?: number } = {}) {
    this.#floor = options.floor ?? -Infinity;
    this.#rows = new Set(rows);
    for (const row of rows) {
      const users = this.#users(row.network);
      if (!users.has(row.userId)) users.set(row.userId, row);
    }
  }

  own(network: string, userId: string): PeerRow | undefined {
    return this.#own.get(network)?.get(userId);
  }

  sender(email: string, since: number): number {
    this.#senders ??= this.#gather(eachSender);
    this.#check(since);
    return this.#senders.after(email, since);
  }

  host(network: string, since: number): number {
    this.#requests ??= this.#gather(eachRequest);
    this.#check(since);
    return this.#requests.after(network, since);
  }

  made(network: string, since: number): number {
    this.#makings ??= this.#gather(eachMaking);
    this.#check(since);
    return this.#makings.after(network, since);
  }

  /** Takes a change of the rows: `dropped` left them, then `added` joined them. */
  replace(dropped: readonly PeerRow[], added: readonly PeerRow[]): void {
    const parts: [KeyedTimes | undefined, Each][] = [
      [this.#senders, eachSender],
      [this.#requests, eachRequest],
      [this.#makings, eachMaking],
    ];
    for (const row of dropped) {
      if (!this.#rows.delete(row)) continue;
      const users = this.#own.get(row.network);
      if (users?.get(row.userId) === row) users.delete(row.userId);
      for (const [times, each] of parts) {
        if (times) each(row, this.#floor, (k, t) => times.remove(k, t));
      }
    }
    for (const row of added) {
      this.#rows.add(row);
      this.#users(row.network).set(row.userId, row);
      for (const [times, each] of parts) {
        if (times) each(row, this.#floor, (k, t) => times.add(k, t));
      }
    }
  }

  #users(network: string): Map<string, PeerRow> {
    let users = this.#own.get(network);
    if (users === undefined) this.#own.set(network, users = new Map());
    return users;
  }

  #check(since: number): void {
    if (!(since >= this.#floor)) {
      throw new RangeError(
        `Cannot count since ${since}: the index leaves out times up to ${this.#floor}`,
      );
    }
  }

  #gather(each: Each): KeyedTimes {
    const gathered = new Map<string, number[]>();
    for (const row of this.#rows) {
      each(row, this.#floor, (key, at) => {
        const times = gathered.get(key);
        if (times === undefined) gathered.set(key, [at]);
        else times.push(at);
      });
    }
    return new KeyedTimes(gathered);
  }
}
