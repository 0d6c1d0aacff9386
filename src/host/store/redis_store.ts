/**
 * The shared {@link TableStore}: the control table in Redis, row by row, so several host
 * processes (on one machine or many) share one table (docs/decisions.md "The shared table, row
 * by row"):
 *
 * - `<key>:rows`, a hash: field `["<network>","<user id>"]` → the row's JSON;
 * - `<key>:seq`, the table's version, one more on every update that changes it;
 * - `<key>:log`, a sorted set: each field changed or removed, scored by the version that did it
 *   (the last {@link REDIS_LOG_KEPT} versions).
 *
 * A store keeps the rows as of a version; an update WATCHes the version, reads only the rows the
 * log names since (one ZRANGEBYSCORE + one HMGET; nothing when no other process wrote), runs the
 * caller's function, then writes only the rows it changed or removed, the next version and their
 * log entries in one MULTI / EXEC. When another process wrote in between, EXEC fails and the
 * update runs again, after a short randomised backoff, for at most
 * {@link REDIS_UPDATE_MAX_ATTEMPTS} attempts or `lockTimeoutMs`. A crash leaves the old or the new
 * table (EXEC is atomic). A document of the earlier format, `{"version":1,"rows":[...]}` under the
 * key itself, is read as the table and replaced by rows on the first update.
 *
 * Processes take turns (`<key>:turn`, SET NX with an expiry of {@link REDIS_TURN_TTL_MS}): an
 * update waits while another process's update runs instead of computing one that would lose
 * its EXEC. The turn only saves that work; WATCH alone keeps the table right, so a turn that
 * lapsed, or a process that takes none, costs a retry and never a row (docs/decisions.md
 * "Optimistic concurrency, in turns").
 *
 * Why: one document moved whole on every update was the largest cost of several processes on one
 * mailbox (a 300-row table is 414 KB, read and written by every batch of every process).
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { createClient } from "redis";
import { HostError } from "../../errors.ts";
import { TABLE_LOCK_TIMEOUT_MS } from "../../limits.ts";
import { type Logger, silentLogger } from "../../log.ts";
import { type Backoff, type Clock, systemClock } from "../../runtime.ts";
import { cloneRow, validateRows } from "../table.ts";
import { acceptRows } from "./accepted_rows.ts";
import type { ClaimLedger, PeerRow, TableStore } from "../types.ts";

/** Version of the table document format (the same as the JSON file's). */
export const REDIS_TABLE_VERSION = 1;
/** The key that holds the table unless {@link RedisStoreOptions.key} says otherwise. */
export const DEFAULT_REDIS_KEY = "mailpeer:table";
/**
 * Table versions the change log keeps (`<key>:log`): a store that has fallen further behind
 * reads every row again.
 */
export const REDIS_LOG_KEPT = 10_000;
/** Most times one update runs when other processes keep changing the table under it. */
export const REDIS_UPDATE_MAX_ATTEMPTS = 100;
/** A claim id longer than this is hashed into its key (ids come from mail servers). */
const MAX_PLAIN_CLAIM_ID = 200;
/**
 * What a hashed id looks like in its key (see {@link digest}): an id that looks so is hashed
 * too, so no id is ever named like another one's digest.
 */
const DIGEST_LIKE = /^[0-9a-f]{32}$/;
/**
 * Takes each key of KEYS in order for ARGV[1] (this process) for ARGV[2] ms unless another
 * process holds it; renews those it already holds. With ARGV[3] (a count) it stops once it
 * holds that many: the keys after are not touched. Returns the 1-based indexes it holds.
 */
const CLAIM_SCRIPT = `local held = {}
local upTo = tonumber(ARGV[3]) or #KEYS
for i, key in ipairs(KEYS) do
  if #held >= upTo then break end
  if redis.call('SET', key, ARGV[1], 'NX', 'PX', ARGV[2]) then
    held[#held + 1] = i
  elseif redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    held[#held + 1] = i
  end
end
return held`;
/**
 * Marks each key of KEYS that ARGV[1] holds as done for ARGV[2] ms: no process takes it again
 * (a listing made before the mail was deleted would otherwise win it anew).
 */
const FINISH_SCRIPT = `for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('SET', key, '-', 'PX', ARGV[2]) end
end
return 0`;

/**
 * How long a process's turn at updating the table lasts unless it gives it back, in ms: longer
 * than an update takes, short enough that a process that died holding it delays the others
 * little.
 */
export const REDIS_TURN_TTL_MS = 2_000;
/** Gives the turn (KEYS[1]) back if ARGV[1] still holds it. */
const TURN_RETURN_SCRIPT = `if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`;

/** How long connecting to Redis may take, in ms. */
export const REDIS_CONNECT_TIMEOUT_MS = 5_000;

/** Options of {@link RedisStore}. */
export interface RedisStoreOptions {
  /** The Redis key holding the table. Default {@link DEFAULT_REDIS_KEY}. */
  key?: string;
  /**
   * How long an update keeps retrying while other processes change the table, in ms.
   * Default TABLE_LOCK_TIMEOUT_MS.
   */
  lockTimeoutMs?: number;
  /** Time source for retry waits. Default the system clock. */
  clock?: Clock;
  /**
   * Wait in ms before retry number `attempt` after a conflict. Default a random wait up to
   * `min(200, 5 * 2^attempt)` ms, so competing hosts do not retry in lockstep.
   */
  backoff?: Backoff;
  /**
   * Wait in ms before asking again for the turn another process holds (`attempt` counts from
   * 0). Default a random wait of 1 to `1 + min(8, 2^attempt)` ms: an update takes a few ms.
   */
  turnBackoff?: Backoff;
  /** Receives the Redis client's connection errors. Default silent. */
  logger?: Logger;
}

type RedisClient = ReturnType<typeof createClient>;

/** Full-jitter exponential backoff: 0 to min(200, 5 * 2^attempt) ms. */
const jitterBackoff: Backoff = (attempt) => Math.random() * Math.min(200, 5 * 2 ** attempt);
/** Waits for the turn: 1 to 1 + min(8, 2^attempt) ms. */
const turnJitter: Backoff = (attempt) => 1 + Math.random() * Math.min(8, 2 ** attempt);

/**
 * The control table in Redis, shared by every host process that uses the same URL and key.
 * Connects on first use.
 *
 * @example
 * ```ts ignore
 * const store = new RedisStore("redis://127.0.0.1:6379", { key: "mailpeer:chess" });
 * const count = await store.update((rows) => ({ rows, result: rows.length }));
 * await store.close();
 * ```
 */
export class RedisStore implements TableStore {
  readonly #url: string;
  readonly #key: string;
  readonly #options: RedisStoreOptions;
  readonly #logger: Logger;
  #client: Promise<RedisClient> | undefined;
  /** Serialises this instance's updates: WATCH belongs to the one shared connection. */
  #queue: Promise<unknown> = Promise.resolve();
  /**
   * The table as of `#seq`: each row's field (`fieldOf`) → its validated private row. An update
   * reads only the rows changed since (the change log), docs/decisions.md "The shared table, row
   * by row".
   */
  readonly #rows = new Map<string, PeerRow>();
  /** The table version `#rows` holds; undefined: nothing read yet. */
  #seq: number | undefined;
  /** Each private row → its JSON. */
  readonly #lines = new WeakMap<PeerRow, string>();

  /**
   * @param url a `redis://` or `rediss://` URL, e.g. `redis://:password@10.0.0.5:6379/0`.
   * @param options key, retry limits, clock, backoff and logger.
   */
  constructor(url: string, options: RedisStoreOptions = {}) {
    this.#url = url;
    this.#key = options.key ?? DEFAULT_REDIS_KEY;
    this.#options = options;
    this.#logger = options.logger ?? silentLogger;
  }

  /** The key holding the table. */
  get key(): string {
    return this.#key;
  }

  /**
   * Reads the whole table; a missing key is an empty table.
   *
   * @throws {HostError} code `ETABLE` when Redis cannot be reached or the key does not hold a
   * valid table.
   */
  read(): Promise<PeerRow[]> {
    // queued with the updates: an update's rows are not moved under it
    const run = async () => {
      const client = await this.#connect();
      await this.#sync(client);
      return [...this.#rows.values()].map(cloneRow);
    };
    const done = this.#queue.then(run, run);
    this.#queue = done.catch(() => {});
    return done;
  }

  /**
   * Runs `fn` on the current rows and stores the rows it returns, atomically across
   * processes; when another process changed the table meanwhile, `fn` runs again on the new
   * rows. When `fn` throws, the table is unchanged and the error propagates.
   *
   * @throws {HostError} code `ETABLE` when Redis cannot be reached, the key does not hold a
   * valid table, or other processes kept changing it for longer than `lockTimeoutMs`.
   */
  update<T>(
    fn: (
      rows: PeerRow[],
    ) => { rows: PeerRow[]; result: T } | Promise<{ rows: PeerRow[]; result: T }>,
  ): Promise<T> {
    const run = () => this.#update(fn);
    const done = this.#queue.then(run, run);
    this.#queue = done.catch(() => {});
    return done;
  }

  /**
   * Claims of mails of one mailbox (`scope`, e.g. `imap://user@host:993/INBOX`) for this
   * process, on this store's connection, as keys `<key>:claim:{<scope digest>}:<mail id>` that
   * lapse `ttlMs` after they were taken, renewed or finished (a finished claim, `-`, is
   * nobody's: its mail is never taken again while it lasts) (docs/decisions.md "Claims in the shared
   * store"). The hash tag keeps one mailbox's claims in one cluster slot.
   */
  claimLedger(scope: string, options: { ttlMs: number }): ClaimLedger {
    const owner = crypto.randomUUID();
    const prefix = `${this.#key}:claim:{${digest(scope)}}:`;
    const keyOf = (id: string) =>
      prefix + (id.length > MAX_PLAIN_CLAIM_ID || DIGEST_LIKE.test(id) ? digest(id) : id);
    const ttl = String(Math.max(1, Math.round(options.ttlMs)));
    return {
      claim: async (ids, claimOptions = {}) => {
        const { upTo } = claimOptions;
        if (upTo !== undefined && !(Number.isSafeInteger(upTo) && upTo > 0)) {
          throw new RangeError(`Cannot claim up to ${upTo} mails: upTo must be a positive integer`);
        }
        if (ids.length === 0) return new Set();
        const client = await this.#connect();
        const args = upTo === undefined ? [owner, ttl] : [owner, ttl, String(upTo)];
        const held = await this.#call(() =>
          client.eval(CLAIM_SCRIPT, { keys: ids.map(keyOf), arguments: args })
        );
        if (!Array.isArray(held)) throw this.#failure(new Error("the claim script answered oddly"));
        return new Set(held.map((i) => ids[Number(i) - 1]).filter((id) => id !== undefined));
      },
      finish: async (ids) => {
        if (ids.length === 0) return;
        const client = await this.#connect();
        await this.#call(() =>
          client.eval(FINISH_SCRIPT, { keys: ids.map(keyOf), arguments: [owner, ttl] })
        );
      },
    };
  }

  /** Waits for this instance's updates, then closes the connection; a later call connects again. */
  async close(): Promise<void> {
    await this.#queue;
    const pending = this.#client;
    this.#client = undefined;
    if (pending === undefined) return;
    const client = await pending.catch(() => undefined);
    if (client?.isOpen) await client.close().catch(() => client.destroy());
  }

  async #update<T>(
    fn: (
      rows: PeerRow[],
    ) => { rows: PeerRow[]; result: T } | Promise<{ rows: PeerRow[]; result: T }>,
  ): Promise<T> {
    const clock = this.#options.clock ?? systemClock;
    const timeoutMs = this.#options.lockTimeoutMs ?? TABLE_LOCK_TIMEOUT_MS;
    const deadline = clock.now() + timeoutMs;
    const turn = await this.#takeTurn(clock, deadline);
    try {
      return await this.#attempts(fn, clock, deadline);
    } finally {
      await this.#returnTurn(turn);
    }
  }

  /**
   * Waits until this process holds the table's turn (`<key>:turn`), asking again after
   * `turnBackoff` waits; resolves with the token that holds it. At `deadline` it gives up with
   * `ETABLE`: a process that died holding the turn lets it lapse after {@link REDIS_TURN_TTL_MS},
   * so a turn held that long is another process updating for seconds on end.
   */
  async #takeTurn(clock: Clock, deadline: number): Promise<string> {
    const token = crypto.randomUUID();
    const wait = this.#options.turnBackoff ?? turnJitter;
    const ttl = { condition: "NX", expiration: { type: "PX", value: REDIS_TURN_TTL_MS } } as const;
    for (let attempt = 0;; attempt++) {
      const client = await this.#connect();
      if (await this.#call(() => client.set(this.#turnKey, token, ttl)) !== null) return token;
      if (clock.now() >= deadline) {
        throw new HostError(
          "ETABLE",
          `Cannot update the control table at ${this.#where()}: other hosts held its turn ` +
            `(${this.#turnKey}) at each of ${attempt + 1} tries; a turn lapses by itself within ` +
            `${REDIS_TURN_TTL_MS / 1000} s, so one that stays was set by hand: delete it ` +
            `(redis-cli DEL ${this.#turnKey})`,
          { cause: "turn held" },
        );
      }
      await clock.sleep(Math.max(0, wait(attempt)));
    }
  }

  /** Gives the turn back if `token` still holds it (it may have lapsed); never throws. */
  async #returnTurn(token: string): Promise<void> {
    try {
      const client = await this.#connect();
      await client.eval(TURN_RETURN_SCRIPT, { keys: [this.#turnKey], arguments: [token] });
    } catch {
      // a turn not given back lapses after REDIS_TURN_TTL_MS
    }
  }

  /** The update's attempts, each on the rows as of its WATCH (see {@link update}). */
  async #attempts<T>(
    fn: (
      rows: PeerRow[],
    ) => { rows: PeerRow[]; result: T } | Promise<{ rows: PeerRow[]; result: T }>,
    clock: Clock,
    deadline: number,
  ): Promise<T> {
    const backoff = this.#options.backoff ?? jitterBackoff;
    for (let attempt = 0;; attempt++) {
      const client = await this.#connect();
      await this.#call(() => client.watch([this.#seqKey, this.#key]));
      try {
        const unversioned = await this.#sync(client);
        const origins = new Map<PeerRow, PeerRow>(); // each copy handed out → its private row
        const current = [...this.#rows.values()].map((row) => {
          const copy = cloneRow(row);
          origins.set(copy, row);
          return copy;
        });
        const { rows, result } = await fn(current);
        const accepted = acceptRows(rows, origins);
        const next = new Map(accepted.map((row) => [fieldOf(row), row]));
        // a row handed back as it was is its private row again (acceptRows): not written
        const changed = unversioned
          ? [...next.keys()]
          : [...next].filter(([field, row]) => this.#rows.get(field) !== row).map(([f]) => f);
        const removed = [...this.#rows.keys()].filter((field) => !next.has(field));
        if (changed.length === 0 && removed.length === 0) {
          await client.unwatch().catch(() => {});
          return result;
        }
        const seq = (this.#seq ?? 0) + 1;
        const { WatchError } = await import("redis");
        const multi = client.multi();
        // the first versioned write: no document of the earlier format, nor stray rows, stays
        if (unversioned) multi.del([this.#key, this.#rowsKey, this.#logKey]);
        if (changed.length > 0) {
          multi.hSet(
            this.#rowsKey,
            Object.fromEntries(changed.map((field) => [field, this.#lineOf(next.get(field)!)])),
          );
        }
        if (removed.length > 0) multi.hDel(this.#rowsKey, removed);
        multi.set(this.#seqKey, String(seq));
        multi.zAdd(this.#logKey, [...changed, ...removed].map((value) => ({ score: seq, value })));
        multi.zRemRangeByScore(this.#logKey, "-inf", seq - REDIS_LOG_KEPT);
        try {
          await this.#call(() => multi.exec(), WatchError);
          this.#replace([...next], seq);
          return result;
        } catch (err) {
          if (!(err instanceof WatchError)) throw err;
        }
      } catch (err) {
        // Leave no WATCH behind on the shared connection (EXEC clears it on success).
        if (client.isReady) await client.unwatch().catch(() => {});
        throw err;
      }
      // Another process changed the table between our GET and EXEC: run fn again.
      if (attempt + 1 >= REDIS_UPDATE_MAX_ATTEMPTS || clock.now() >= deadline) {
        throw new HostError(
          "ETABLE",
          `Cannot update the control table at ${this.#where()}: other hosts changed it ` +
            `${attempt + 1} times in a row while this update ran; try again, or give the ` +
            `hosts separate keys`,
          { cause: "write conflict" },
        );
      }
      const waitMs = Math.max(0, backoff(attempt));
      this.#logger.log("debug", "control table changed by another host; updating again", {
        key: this.#key,
        attempt: attempt + 1,
        waitMs,
      });
      await clock.sleep(waitMs);
    }
  }

  /** The connected client, connecting (again) when there is none or it was disconnected. */
  async #connect(): Promise<RedisClient> {
    if (this.#client !== undefined) {
      const client = await this.#client.catch(() => undefined);
      if (client?.isReady) return client;
      if (client?.isOpen) client.destroy();
      this.#client = undefined;
    }
    const pending = this.#open();
    this.#client = pending;
    pending.catch(() => {
      if (this.#client === pending) this.#client = undefined;
    });
    return pending;
  }

  async #open(): Promise<RedisClient> {
    const { createClient } = await import("redis");
    let client: RedisClient;
    try {
      client = createClient({
        url: this.#url,
        // No endless reconnecting: a failed connection fails the call that needed it at
        // once, and the next call connects again.
        socket: { reconnectStrategy: false, connectTimeout: REDIS_CONNECT_TIMEOUT_MS },
        disableOfflineQueue: true,
      });
    } catch (err) {
      throw new TypeError(
        `Cannot use Redis at ${redactUrl(this.#url)}: ${message(err)}; fix host.store.url ` +
          `(e.g. redis://127.0.0.1:6379)`,
        { cause: err },
      );
    }
    // node-redis emits 'error' on connection trouble; without a listener the process dies.
    client.on("error", (err: unknown) => {
      this.#logger.log("warn", "redis connection error", {
        url: redactUrl(this.#url),
        error: message(err),
      });
    });
    await this.#call(() => client.connect());
    return client;
  }

  get #rowsKey(): string {
    return `${this.#key}:rows`;
  }

  get #seqKey(): string {
    return `${this.#key}:seq`;
  }

  get #logKey(): string {
    return `${this.#key}:log`;
  }

  get #turnKey(): string {
    return `${this.#key}:turn`;
  }

  /**
   * Brings `#rows` up to the table in Redis: nothing to read when its version is `#seq`, the
   * rows the change log names since `#seq` (one HMGET) when it is a little ahead, else every
   * row (HGETALL). Without a version (true) the table is empty, or a document of the earlier
   * format under the key itself (read whole); the next update writes it row by row.
   */
  async #sync(client: RedisClient): Promise<boolean> {
    const text = await this.#call(() => client.get(this.#seqKey));
    if (text === null) {
      const legacy = this.#parse(await this.#call(() => client.get(this.#key)));
      this.#replace(legacy.map((row) => [fieldOf(row), row] as const), 0);
      return true;
    }
    const seq = Number(text);
    if (!Number.isSafeInteger(seq) || seq < 1) {
      throw this.#corrupt(`its version ${JSON.stringify(text.slice(0, 40))} is not a count`, text);
    }
    const known = this.#seq;
    if (known === seq) return false;
    if (known === undefined || known > seq || seq - known >= REDIS_LOG_KEPT) {
      const all = await this.#call(() => client.hGetAll(this.#rowsKey));
      const rows = Object.entries(all).map(([field, line]) =>
        [field, this.#row(field, line)] as const
      );
      this.#replace(rows, seq);
      return false;
    }
    const fields = await this.#call(() => client.zRangeByScore(this.#logKey, `(${known}`, seq));
    const lines = fields.length === 0
      ? []
      : await this.#call(() => client.hmGet(this.#rowsKey, fields));
    // every row is checked before any is taken: a bad one leaves the rows as they were
    const read = fields.map((field, i) => {
      const line = lines[i];
      return [
        field,
        line === null || line === undefined ? undefined : this.#row(field, line),
      ] as const;
    });
    for (const [field, row] of read) {
      if (row === undefined) this.#rows.delete(field);
      else this.#rows.set(field, row);
    }
    this.#seq = seq;
    return false;
  }

  /** Makes `rows` the rows of version `seq`. */
  #replace(rows: readonly (readonly [string, PeerRow])[], seq: number): void {
    this.#rows.clear();
    for (const [field, row] of rows) this.#rows.set(field, row);
    this.#seq = seq;
  }

  /** One stored row, validated, that must be filed under `field` (network and user id). */
  #row(field: string, line: string): PeerRow {
    let data: unknown;
    try {
      data = JSON.parse(line);
    } catch (err) {
      throw this.#corrupt(`the row ${field.slice(0, 80)} is not valid JSON`, err);
    }
    let row: PeerRow;
    try {
      [row] = validateRows([data]) as [PeerRow];
    } catch (err) {
      throw this.#corrupt(
        `the row ${field.slice(0, 80)} ${err instanceof HostError ? String(err.cause) : err}`,
        err,
      );
    }
    if (fieldOf(row) !== field) {
      throw this.#corrupt(`the row ${field.slice(0, 80)} is filed under another user`, field);
    }
    this.#lines.set(row, line);
    return row;
  }

  #lineOf(row: PeerRow): string {
    let line = this.#lines.get(row);
    if (line === undefined) {
      line = JSON.stringify(row);
      this.#lines.set(row, line);
    }
    return line;
  }

  /** Runs a Redis call, turning failures other than `pass` into one clear HostError. */
  async #call<R>(
    op: () => Promise<R>,
    pass?: abstract new (...args: never[]) => Error,
  ): Promise<R> {
    try {
      return await op();
    } catch (err) {
      if (pass !== undefined && err instanceof pass) throw err;
      throw this.#failure(err);
    }
  }

  #failure(err: unknown): HostError {
    const text = message(err);
    if (/^WRONGTYPE\b/.test(text)) {
      return this.#corrupt("it is not a string key", err);
    }
    if (/^(WRONGPASS|NOAUTH|NOPERM)\b/.test(text)) {
      return new HostError(
        "ETABLE",
        `Cannot use Redis at ${redactUrl(this.#url)}: ${text}; fix the user name and ` +
          `password in host.store.url`,
        { cause: err },
      );
    }
    return new HostError(
      "ETABLE",
      `Cannot reach Redis at ${redactUrl(this.#url)}: ${describeNetworkError(err)}; ` +
        `start redis-server or fix host.store.url`,
      { cause: err },
    );
  }

  #where(): string {
    return `${redactUrl(this.#url)} key "${this.#key}"`;
  }

  #corrupt(what: string, cause: unknown): HostError {
    return new HostError(
      "ETABLE",
      `Cannot read the control table at ${this.#where()}: ${what}; delete its keys ` +
        `(redis-cli DEL ${this.#key} ${this.#rowsKey} ${this.#seqKey} ${this.#logKey}), ` +
        `the host rebuilds the table from new requests`,
      { cause },
    );
  }

  #parse(text: string | null): PeerRow[] {
    if (text === null) return [];
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (err) {
      throw this.#corrupt(`it is not valid JSON (${message(err)})`, err);
    }
    if (typeof data !== "object" || data === null || !("version" in data) || !("rows" in data)) {
      throw this.#corrupt(`it is not a mailpeer table (no "version" and "rows")`, "bad shape");
    }
    if (data.version !== REDIS_TABLE_VERSION) {
      throw this.#corrupt(
        `its version ${JSON.stringify(data.version)} is not ${REDIS_TABLE_VERSION} ` +
          `(written by another mailpeer version?)`,
        "bad version",
      );
    }
    try {
      return validateRows(data.rows);
    } catch (err) {
      throw this.#corrupt(err instanceof HostError ? String(err.cause) : String(err), err);
    }
  }
}

/** A short hex digest of `text` (32 hex digits of its SHA-256). */
function digest(text: string): string {
  return createHash("sha256").update(text).digest("hex").slice(0, 32);
}

/** Where a row lives in `<key>:rows`: its network and user id (unique per table). */
function fieldOf(row: PeerRow): string {
  return JSON.stringify([row.network, row.userId]);
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A connection failure in words, e.g. "connection refused". */
function describeNetworkError(err: unknown): string {
  const code = typeof err === "object" && err !== null && "code" in err ? err.code : undefined;
  switch (code) {
    case "ECONNREFUSED":
      return "connection refused";
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return "host name not found";
    case "ETIMEDOUT":
      return "connection timed out";
    case "ECONNRESET":
    case "EPIPE":
      return "connection lost";
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return "host unreachable";
  }
  const name = err instanceof Error ? err.name : "";
  if (name === "ConnectionTimeoutError") return "connection timed out";
  if (name === "ClientClosedError" || name === "SocketClosedUnexpectedlyError") {
    return "connection lost";
  }
  return message(err);
}

/** `url` with its password replaced by `***`, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password === "") return url;
    parsed.password = "***";
    return parsed.href;
  } catch {
    return "(an invalid URL)";
  }
}
