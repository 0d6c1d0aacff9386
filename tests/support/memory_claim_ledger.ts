/**
 * Claims of host processes sharing a mailbox, in memory (the `ClaimLedger` of
 * src/host/types.ts, as `RedisStore.claimLedger` keeps them in Redis): one owner per mail id,
 * a claim lapsing `ttlMs` after it was taken, renewed or finished on the given clock, and every
 * call recorded so tests can say who asked for what.
 *
 * @module
 */
import type { ClaimLedger } from "../../src/host/types.ts";
import type { Clock } from "../../src/runtime.ts";

/**
 * One `claim` call: who asked, for which ids (with `upTo` when given), the ids the ledger
 * tried (in order, stopping at `upTo`), and which it held afterwards.
 */
export interface ClaimCall {
  owner: string;
  ids: string[];
  upTo?: number;
  tried: string[];
  held: string[];
}

/** The claims of every process of one mailbox; {@link of} is one process's ledger. */
export class MemoryClaimLedgers {
  /** Every claim call, in order. */
  readonly calls: ClaimCall[] = [];
  /** Owner (or `-`: finished) and lapse time of each claimed id. */
  readonly #claims = new Map<string, { owner: string; until: number }>();
  readonly #clock: Pick<Clock, "now">;
  readonly #ttlMs: number;

  constructor(options: { clock: Pick<Clock, "now">; ttlMs: number }) {
    this.#clock = options.clock;
    this.#ttlMs = options.ttlMs;
  }

  /** The ledger of process `owner`. */
  of(owner: string): ClaimLedger {
    return {
      claim: (ids, { upTo } = {}) => {
        if (upTo !== undefined && !(Number.isSafeInteger(upTo) && upTo > 0)) {
          return Promise.reject(new RangeError(`upTo must be a positive integer, not ${upTo}`));
        }
        const now = this.#clock.now();
        const held = new Set<string>();
        const tried: string[] = [];
        for (const id of ids) {
          if (upTo !== undefined && held.size >= upTo) break;
          tried.push(id);
          const claim = this.#claims.get(id);
          if (claim === undefined || claim.until <= now || claim.owner === owner) {
            this.#claims.set(id, { owner, until: now + this.#ttlMs });
            held.add(id);
          }
        }
        this.calls.push({
          owner,
          ids: [...ids],
          ...(upTo !== undefined ? { upTo } : {}),
          tried,
          held: [...held],
        });
        return Promise.resolve(held);
      },
      finish: (ids) => {
        const now = this.#clock.now();
        for (const id of ids) {
          const claim = this.#claims.get(id);
          if (claim !== undefined && claim.until > now && claim.owner === owner) {
            this.#claims.set(id, { owner: "-", until: now + this.#ttlMs });
          }
        }
        return Promise.resolve();
      },
    };
  }

  /** The claim calls of `owner`, in order. */
  callsOf(owner: string): ClaimCall[] {
    return this.calls.filter((c) => c.owner === owner);
  }

  /** The ids of `owner`'s claims the ledger tried (reached), over every call. */
  askedBy(owner: string): string[] {
    return this.callsOf(owner).flatMap((c) => c.tried);
  }

  /** The ids `owner` won, over every call (a renewal counts again). */
  wonBy(owner: string): string[] {
    return this.callsOf(owner).flatMap((c) => c.held);
  }
}
