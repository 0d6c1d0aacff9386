/**
 * The host as one service (docs/design.md "The host service"): what `host`, `host --once`,
 * `combined` and library users run. Each pass lists the mailbox once and hands every kind of
 * mail to its handler: requests and notices to the {@link Host} pipeline (or, for a pool's
 * representative, to the {@link Representative} that forwards them), sync mail to the
 * {@link SyncAgent}. The service owns what lies around the passes: the run lock that keeps two
 * processes off one table, putting back claims of a process that died (shared mailbox), the
 * periodic push of the table to the pool, waiting for mail, and the backoff after a failure,
 * all on the injected clock.
 *
 * @module
 */
import { ConfigError, isMailpeerError } from "../errors.ts";
import { type EventSink, type MailpeerEvent, silentSink } from "../events.ts";
import { CLAIM_RECOVERY_MS, DEFAULT_SYNC_INTERVAL_MS, HOST_RUN_LOCK_WAIT_MS } from "../limits.ts";
import { type Logger, silentLogger } from "../log.ts";
import type { MailRef, MailSource } from "../mail/types.ts";
import { type Clock, systemClock } from "../runtime.ts";
import type { Host } from "./host.ts";
import type { Representative } from "./pool/representative.ts";
import type { SyncAgent } from "./pool/sync_agent.ts";
import { isLockHeld, withFileLock } from "./store/file_lock.ts";

/** What the `host-ready` event says of the mailbox (the CLI builds it from the config). */
export type HostReady = Omit<
  Extract<MailpeerEvent, { event: "host-ready" }>,
  "event" | "actor" | "step"
>;

/** Options of {@link HostService}: exactly one of `host` and `representative`. */
export type HostServiceOptions =
  & {
    /**
     * A file the service locks (as `<runLock>.lock`) while it runs, so that a second process
     * on the same table waits (`runOnce`) or refuses to start (`run`). Absent: no lock (a
     * shared mailbox, where claims keep the processes apart, or a table of its own).
     */
    runLock?: string;
    /**
     * The mailbox is shared with other processes: no run lock, and their stale claims are put
     * back (a representative's are, shared or not).
     */
    sharedMailbox?: boolean;
    /**
     * The processes keep their claims in the shared store (`host.claims = "store"`): the
     * mailbox's server need not claim (an IMAP server without CONDSTORE may be shared).
     */
    storeClaims?: boolean;
    /** How often `run` pushes the table to the pool; default DEFAULT_SYNC_INTERVAL_MS. */
    syncIntervalMs?: number;
    /** Claims older than this are put back, checked this often; default CLAIM_RECOVERY_MS. */
    claimRecoveryMs?: number;
    /** Said once as a `host-ready` event after `run`'s first pass (the mailbox was read). */
    ready?: HostReady;
    /** First wait after a failed pass, doubled per failure up to `maxRetryDelayMs`; 500 ms. */
    retryDelayMs?: number;
    /** Longest wait after failed passes; default 30 s. */
    maxRetryDelayMs?: number;
    clock?: Clock;
    onEvent?: EventSink;
    logger?: Logger;
  }
  & (
    | {
      /** Answers requests and notices. */
      host: Host;
      /** Exchanges tables with the pool's other hosts; absent: a host on its own. */
      sync?: SyncAgent;
      representative?: undefined;
    }
    | {
      /** Forwards requests and notices to the pool's workers (a pool's public mailbox). */
      representative: Representative;
      host?: undefined;
      sync?: undefined;
    }
  );

/** Options of {@link HostService.runOnce}. */
export interface RunOnceOptions {
  /** Ask the pool's hosts for their tables first (a new host). */
  bootstrap?: boolean;
  /** Push this host's table to the pool after the pass. */
  push?: boolean;
  /** How long to wait for a running process's lock; default HOST_RUN_LOCK_WAIT_MS. */
  lockWaitMs?: number;
  signal?: AbortSignal;
}

/** Options of {@link HostService.run}. */
export interface RunOptions {
  signal: AbortSignal;
  /** Ask the pool for its tables first; default: when the table is empty (a new host). */
  bootstrap?: boolean;
}

/**
 * Runs a host: one pass for cron, or passes until stopped.
 *
 * @example A host that answers until stopped
 * ```ts ignore
 * const service = new HostService({ host: new Host({ keys, network, source, sender, store }) });
 * const stop = new AbortController();
 * const running = service.run({ signal: stop.signal });
 * // ... later
 * stop.abort();
 * await running;
 * ```
 */
export class HostService {
  readonly #o: Required<
    Omit<HostServiceOptions, "host" | "sync" | "representative" | "runLock" | "ready">
  >;
  readonly #host: Host | undefined;
  readonly #sync: SyncAgent | undefined;
  readonly #representative: Representative | undefined;
  readonly #runLock: string | undefined;
  readonly #ready: HostReady | undefined;
  readonly #source: MailSource;
  readonly #network: string;
  #lastRecovery = -Infinity;

  constructor(options: HostServiceOptions) {
    const worker = options.host ?? options.representative;
    if (worker === undefined) {
      throw new TypeError("Cannot start the host service: give it a host or a representative");
    }
    this.#host = options.host;
    this.#sync = options.sync;
    this.#representative = options.representative;
    this.#runLock = options.runLock;
    this.#ready = options.ready;
    this.#source = worker.source;
    this.#network = worker.network;
    this.#o = {
      sharedMailbox: false,
      storeClaims: false,
      syncIntervalMs: DEFAULT_SYNC_INTERVAL_MS,
      claimRecoveryMs: CLAIM_RECOVERY_MS,
      retryDelayMs: 500,
      maxRetryDelayMs: 30_000,
      clock: systemClock,
      onEvent: silentSink,
      logger: silentLogger,
      ...options,
    };
  }

  /**
   * One pass over what is pending, for cron: waits up to `lockWaitMs` for a running process to
   * finish first. Resolves `"done"`, or `"busy"` (with a `host-busy` event) when that process
   * still held the table: this run then did nothing, and the next one picks the mail up.
   */
  async runOnce(options: RunOnceOptions = {}): Promise<"done" | "busy"> {
    const { signal } = options;
    try {
      await this.#exclusive(async () => {
        if (options.bootstrap) await this.#sync?.requestTables(signal ? { signal } : {});
        await this.#pass(signal);
        if (options.push) await this.#sync?.pushSnapshots(signal ? { signal } : {});
      }, options.lockWaitMs ?? HOST_RUN_LOCK_WAIT_MS);
      return "done";
    } catch (err) {
      if (!isLockHeld(err)) throw err;
      this.#o.onEvent({
        event: "host-busy",
        message: `another host run still holds ${this.#runLock}.lock; this run did nothing`,
      });
      return "busy";
    }
  }

  /**
   * Passes until `signal` aborts, waking on new mail (push, watch or poll). A failed pass is
   * reported (`error` event) and tried again after a backoff; only a bug (an error that is not
   * a mailpeer error) or a `ConfigError` (a setting the server cannot support) ends the run. Refuses to start while another process holds the run lock.
   */
  async run(options: RunOptions): Promise<void> {
    const { signal } = options;
    const { clock, onEvent, logger, retryDelayMs, maxRetryDelayMs, syncIntervalMs } = this.#o;
    await this.#exclusive(async () => {
      const sync = this.#sync;
      if (sync && (options.bootstrap ?? await sync.isNew())) await sync.requestTables({ signal });
      let lastPush = clock.now();
      let failures = 0;
      let announced = false;
      while (!signal.aborted) {
        try {
          await this.#pass(signal);
          if (sync && clock.now() - lastPush >= syncIntervalMs) {
            lastPush = clock.now();
            await sync.pushSnapshots({ signal });
          }
          if (!announced && this.#ready) onEvent({ event: "host-ready", ...this.#ready });
          announced = true;
          failures = 0;
          // a shared mailbox's host that stopped on a stale listing lists again at once
          if (this.#host?.relistNow) continue;
          // a quiet mailbox must not hold up the push (docs/decisions.md "Linked hosts")
          const due = sync ? lastPush + syncIntervalMs : undefined;
          await waitForMailUntil(this.#source, clock, due, signal);
        } catch (err) {
          if (signal.aborted) break;
          // a bug, or a setting that cannot work on this server (ConfigError: e.g. shared_mailbox
          // on an IMAP server without CONDSTORE, docs/providers.md), ends the run
          if (!isMailpeerError(err) || err instanceof ConfigError) throw err;
          onEvent({ event: "error", code: err.code, message: err.message });
          logger.log("error", err.message, { code: err.code });
          const delay = Math.min(maxRetryDelayMs, retryDelayMs * 2 ** failures++);
          await clock.sleep(delay, signal).catch(() => {});
        }
      }
    }, 0);
  }

  /** One pass: claims put back when due, one listing, each kind of mail to its handler. */
  async #pass(signal?: AbortSignal): Promise<void> {
    const { clock, sharedMailbox, claimRecoveryMs } = this.#o;
    const source = this.#source;
    // A representative claims every mail it forwards, shared mailbox or not.
    const claims = sharedMailbox || this.#representative !== undefined;
    if (claims && source.claims && clock.now() - this.#lastRecovery >= claimRecoveryMs) {
      this.#lastRecovery = clock.now();
      await source.recoverClaims(claimRecoveryMs);
    }
    const listing: readonly MailRef[] = await source.list(
      { subject: `[mailpeer] ${this.#network} `, mode: "prefix" },
      signal ? { signal } : {},
    );
    // known once the source has connected: an IMAP server without CONDSTORE cannot keep
    // several processes' claims apart (docs/providers.md)
    if (sharedMailbox && !source.claims && !this.#o.storeClaims) {
      throw new ConfigError(
        "ECONFIG",
        "Cannot share the host's mailbox among host processes: its server cannot claim a " +
          "mail for one process (IMAP without CONDSTORE, RFC 7162); keep the claims in a " +
          'Redis table ([host] claims = "store" with [host.store] kind = "redis"), or set ' +
          "shared_mailbox = false in [host] and run one host process on this mailbox",
      );
    }
    const handed = { listing, ...(signal ? { signal } : {}) };
    if (this.#representative) {
      await this.#representative.processPending(handed);
      return;
    }
    await this.#host!.processPending(handed);
    await this.#sync?.processPending(handed);
  }

  #exclusive(fn: () => Promise<void>, timeoutMs: number): Promise<void> {
    const lock = this.#runLock;
    if (lock === undefined || this.#o.sharedMailbox) return fn();
    return withFileLock(lock, fn, { timeoutMs });
  }
}

/** Waits for mail, or until the clock reaches `due` (when given), whichever comes first. */
export async function waitForMailUntil(
  source: MailSource,
  clock: Clock,
  due: number | undefined,
  signal: AbortSignal,
): Promise<void> {
  if (due === undefined) return await source.waitForMail({ signal });
  // an aborted signal fires no more "abort" events: the linked controller would never abort
  if (signal.aborted || due <= clock.now()) return;
  const done = new AbortController();
  const stop = () => done.abort();
  signal.addEventListener("abort", stop, { once: true });
  try {
    await Promise.race([
      source.waitForMail({ signal: done.signal }),
      clock.sleep(Math.max(0, due - clock.now()), done.signal),
    ]);
  } finally {
    signal.removeEventListener("abort", stop);
    done.abort();
  }
}
