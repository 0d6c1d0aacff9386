/**
 * Where each synced row came from and how far it travelled (docs/decisions.md "Linked hosts"):
 * the memory a host needs so that rows travel along links without looping, duplicating or
 * flooding.
 *
 * - A row is known by network, user id and session id (one request of one terminal).
 * - Its **route** is the sync partner it was merged from and its hop count (1 from the host the
 *   terminal mailed). A row the host got from the terminal itself (it knows the terminal's
 *   e-mail address) has hop count 0 and no origin; a synced row this process did not merge (an
 *   earlier run merged it) counts as 1 hop from an unknown origin.
 * - A row goes to a partner only when it did not come from that partner and its next hop stays
 *   within `maxHops`; it is **forwarded** (sent at once after a merge, not waiting for the
 *   periodic push) to each partner at most once, and only as many forwarding mails go to one
 *   partner per hour as `forwardsPerHour` allows. What is not forwarded goes with the next
 *   periodic push.
 *
 * {@link LinkRoutes.prune} keeps the memory to the rows of the table. It lives in the process
 * and, given a file, across runs ({@link LinkRoutes.toJSON}, {@link LinkRoutes.fromJSON}): a cron
 * host (`host --once --sync`) keeps its routes and its forwarding budget from one run to the next.
 *
 * @module
 */
import { RATE_WINDOW_MS } from "../../limits.ts";
import type { PeerRow } from "../types.ts";

/** Where one row came from. */
export interface Route {
  /** The partner's host id (base64url Ed25519 key); undefined for our own or unknown rows. */
  from?: string;
  /** Host-to-host hops the row made to reach this host; 0 for a row its terminal mailed here. */
  hops: number;
}

/** Options of {@link LinkRoutes}. */
export interface LinkRoutesOptions {
  /** Most hops a row may have made when it arrives (this host's cap). */
  maxHops: number;
  /** Forwarding mails to one partner per hour; 0: none (rows wait for the periodic push). */
  forwardsPerHour: number;
}

/** What a routes file holds (version 1). */
export interface RoutesFile {
  version: 1;
  /** [row key, origin host id or null, hops] */
  routes: [string, string | null, number][];
  /** [row key, host ids it was forwarded to] */
  forwarded: [string, string[]][];
  /** [host id, times of forwarding mails within the last hour] */
  mails: [string, number[]][];
}

/** The key of a row: network, user id and session id. */
export function routeKey(row: Pick<PeerRow, "network" | "userId" | "sessionId">): string {
  return `${row.network}\0${row.userId}\0${row.sessionId}`;
}

/**
 * The routes of a host's synced rows, what it forwarded to whom, and each partner's forwarding
 * budget.
 *
 * @example
 * ```ts
 * import { LinkRoutes } from "./link_routes.ts";
 *
 * const routes = new LinkRoutes({ maxHops: 4, forwardsPerHour: 60 });
 * const row = { network: "lan", userId: "alice", sessionId: "s1", email: "" };
 * routes.record(row, { from: "hostA", hops: 1 });
 * routes.mayGo(row, "hostA"); // false: never back where it came from
 * routes.mayGo(row, "hostC"); // true: it arrives there with 2 hops
 * ```
 */
export class LinkRoutes {
  readonly #o: LinkRoutesOptions;
  readonly #routes = new Map<string, Route>();
  readonly #forwarded = new Map<string, Set<string>>();
  readonly #mails = new Map<string, number[]>();

  constructor(options: LinkRoutesOptions) {
    this.#o = options;
  }

  /** The most hops a row may have made on arrival. */
  get maxHops(): number {
    return this.#o.maxHops;
  }

  /** Notes where a merged row came from (a row of a new session replaces the old route). */
  record(row: Pick<PeerRow, "network" | "userId" | "sessionId">, route: Route): void {
    this.#routes.set(routeKey(row), { ...route });
  }

  /** Where `row` came from: see the module doc for rows this process did not merge. */
  routeOf(row: Pick<PeerRow, "network" | "userId" | "sessionId" | "email">): Route {
    return this.#routes.get(routeKey(row)) ?? { hops: row.email === "" ? 1 : 0 };
  }

  /** Whether `row` may be sent to partner `to`: not its origin, and within the hop bound. */
  mayGo(row: Pick<PeerRow, "network" | "userId" | "sessionId" | "email">, to: string): boolean {
    const route = this.routeOf(row);
    return route.from !== to && route.hops + 1 <= this.#o.maxHops;
  }

  /** Whether `row` may be forwarded to `to` now: {@link mayGo}, and not forwarded there yet. */
  mayForward(
    row: Pick<PeerRow, "network" | "userId" | "sessionId" | "email">,
    to: string,
  ): boolean {
    return this.mayGo(row, to) && !(this.#forwarded.get(routeKey(row))?.has(to) ?? false);
  }

  /** Notes that `rows` were forwarded to `to`. */
  forwarded(rows: readonly Pick<PeerRow, "network" | "userId" | "sessionId">[], to: string): void {
    for (const row of rows) {
      const key = routeKey(row);
      const set = this.#forwarded.get(key) ?? new Set<string>();
      set.add(to);
      this.#forwarded.set(key, set);
    }
  }

  /**
   * Takes one forwarding mail of `to`'s hourly budget: true when the budget allowed it (and
   * counts it), false when the partner had its `forwardsPerHour` this hour.
   */
  takeForward(to: string, now: number): boolean {
    const recent = (this.#mails.get(to) ?? []).filter((at) => at > now - RATE_WINDOW_MS);
    if (recent.length >= this.#o.forwardsPerHour) {
      this.#mails.set(to, recent);
      return false;
    }
    recent.push(now);
    this.#mails.set(to, recent);
    return true;
  }

  /** The memory as a routes file. */
  toJSON(): RoutesFile {
    return {
      version: 1,
      routes: [...this.#routes].map(([key, r]) => [key, r.from ?? null, r.hops]),
      forwarded: [...this.#forwarded].map(([key, to]) => [key, [...to]]),
      mails: [...this.#mails],
    };
  }

  /**
   * Memory read back from a routes file; undefined when `data` is not one (the caller starts
   * afresh: routes are an economy, never a reason to stop).
   */
  static fromJSON(data: unknown, options: LinkRoutesOptions): LinkRoutes | undefined {
    const f = data as Partial<RoutesFile> | null;
    if (
      typeof f !== "object" || f === null || f.version !== 1 || !Array.isArray(f.routes) ||
      !Array.isArray(f.forwarded) || !Array.isArray(f.mails)
    ) {
      return undefined;
    }
    const text = (v: unknown): v is string => typeof v === "string";
    const count = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
    const out = new LinkRoutes(options);
    for (const e of f.routes) {
      if (!Array.isArray(e) || !text(e[0]) || !(e[1] === null || text(e[1])) || !count(e[2])) {
        return undefined;
      }
      out.#routes.set(e[0], e[1] === null ? { hops: e[2] } : { from: e[1], hops: e[2] });
    }
    for (const e of f.forwarded) {
      if (!Array.isArray(e) || !text(e[0]) || !Array.isArray(e[1]) || !e[1].every(text)) {
        return undefined;
      }
      out.#forwarded.set(e[0], new Set(e[1]));
    }
    for (const e of f.mails) {
      if (!Array.isArray(e) || !text(e[0]) || !Array.isArray(e[1]) || !e[1].every(count)) {
        return undefined;
      }
      out.#mails.set(e[0], e[1]);
    }
    return out;
  }

  /** Forgets every row not in `rows` (expired, replaced or dropped from the table). */
  prune(rows: readonly Pick<PeerRow, "network" | "userId" | "sessionId">[]): void {
    const live = new Set(rows.map(routeKey));
    for (const key of this.#routes.keys()) if (!live.has(key)) this.#routes.delete(key);
    for (const key of this.#forwarded.keys()) if (!live.has(key)) this.#forwarded.delete(key);
  }
}
