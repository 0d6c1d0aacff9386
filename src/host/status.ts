/**
 * What a long-running host reports, collected for its status page and metrics
 * (docs/status.md): counters, recent requests, replies and quarantines, reply rates per minute,
 * request → reply latencies and the mailbox connection's health.
 *
 * Everything kept is bounded (docs/status.md "Limits"): user ids, reasons and subjects come from
 * mail, so each is cut to a few hundred characters with control characters replaced, each list
 * holds a fixed number of entries and codes beyond a fixed number count as `OTHER`. Nothing is
 * escaped here: the page escapes every string it writes. No e-mail address is kept.
 *
 * @module
 */
import type { EventSink, MailpeerEvent } from "../events.ts";
import {
  STATUS_ID_MAX_CHARS,
  STATUS_LATENCY_SAMPLES,
  STATUS_MAX_CODES,
  STATUS_PENDING_MAX_AGE_MS,
  STATUS_PENDING_REQUESTS,
  STATUS_RATE_MINUTES,
  STATUS_RECENT_ENTRIES,
  STATUS_ROLE_LEASES,
  STATUS_TEXT_MAX_CHARS,
} from "../limits.ts";
import { type Clock, systemClock } from "../runtime.ts";

/** Options of {@link HostStatus}; every limit defaults to the one in `src/limits.ts`. */
export interface HostStatusOptions {
  /** Time source (default: the system clock). */
  clock?: Clock;
  /** Entries per recent list (default `STATUS_RECENT_ENTRIES`, 50). */
  recentEntries?: number;
  /** Latency samples kept (default `STATUS_LATENCY_SAMPLES`, 200). */
  latencySamples?: number;
}

/** A request the host opened and verified. */
export interface RecentRequest {
  at: number;
  userId: string;
  sessionId: string;
}

/** A reply the host sent. */
export interface RecentReply {
  at: number;
  userId: string;
  /** How many peers it listed. */
  peers: number;
  /** Request received → reply sent, when the request was seen (ms). */
  latencyMs?: number;
}

/** A mail the host quarantined or deleted unanswered, or an error of its loop. */
export interface RecentProblem {
  at: number;
  code: string;
  /** Why, as the host said it (cut, control characters replaced). */
  reason: string;
  /** The mail's subject (quarantined), or the user id (deleted), when known. */
  about?: string;
}

/** One latency sample: request received → reply sent for one user id. */
export interface LatencySample {
  at: number;
  userId: string;
  ms: number;
}

/** Counts of one minute (the minute starts at `minute`, ms since the epoch). */
export interface MinuteBucket {
  minute: number;
  requests: number;
  replies: number;
  quarantined: number;
  errors: number;
}

/** The mailbox connection, as the host's passes and errors show it. */
export interface MailboxHealth {
  /** `starting` before the first pass, `ok` after a pass, `failing` after an error. */
  state: "starting" | "ok" | "failing";
  lastPassAt?: number;
  lastErrorAt?: number;
  lastError?: { code: string; message: string };
  /** Errors since the last successful pass. */
  consecutiveErrors: number;
  /** How the host reads its mailbox, from its `host-ready` event. */
  receive?: string;
  mailbox?: string;
  wait?: string;
}

/**
 * The host role of a group member (docs/decisions.md "First receiver becomes host") as its role
 * events last told it: who holds it, in which epoch, until when unless renewed.
 */
export interface RoleStatus {
  holder: string;
  epoch: number;
  /** When the lease ends unless renewed; absent when no role mail of it was seen. */
  until?: number;
  /** This member holds the role. */
  self: boolean;
}

/** Everything {@link HostStatus} knows, as plain JSON-able data. */
export interface StatusSnapshot {
  now: number;
  startedAt: number;
  /** The host's own address, from its `host-ready` event. */
  email?: string;
  counters: {
    requestsReceived: number;
    repliesSent: number;
    noticesReceived: number;
    introductionsSent: number;
    requestsDeleted: number;
    passes: number;
    syncSent: number;
    syncMerged: number;
    /** Sync mails that sent new rows on to a partner at once (linked hosts). */
    syncForwarded: number;
    forwarded: number;
    quarantinedByCode: Record<string, number>;
    errorsByCode: Record<string, number>;
  };
  recent: {
    requests: RecentRequest[];
    replies: RecentReply[];
    quarantined: RecentProblem[];
    deleted: RecentProblem[];
    errors: RecentProblem[];
  };
  rates: {
    /** Minutes covered by `perMinute` (at most `STATUS_RATE_MINUTES`). */
    windowMinutes: number;
    /** One bucket per minute of the window, oldest first, the current minute last. */
    perMinute: MinuteBucket[];
    repliesLastMinute: number;
    repliesLastHour: number;
    /** Replies per minute over the window (the last hour, or since start when shorter). */
    repliesPerMinute: number;
  };
  latency: {
    /** Recent samples, oldest first. */
    samples: LatencySample[];
    /** Every sample since start (not only the kept ones). */
    count: number;
    sumMs: number;
    /** Over the kept samples; absent without samples. */
    minMs?: number;
    p50Ms?: number;
    p90Ms?: number;
    p99Ms?: number;
    maxMs?: number;
  };
  health: MailboxHealth;
  /** Only for a group member (`combined` with host.role = "auto"). */
  role?: RoleStatus;
}

const MINUTE_MS = 60_000;

/**
 * Collects what a host reports through its events, for the status page and `/metrics`
 * (docs/status.md).
 *
 * @example Count what a host does
 * ```ts
 * import { HostStatus } from "./status.ts";
 *
 * const status = new HostStatus(); // on the system clock; tests pass their own `clock`
 * // A host takes `onEvent: status.wrap(mySink)` (or `status.sink` alone).
 * status.sink({ event: "request-received", userId: "alice", sessionId: "s1" });
 * status.sink({ event: "reply-sent", to: "alice@example.org", userId: "alice", peers: 0 });
 * console.log(status.snapshot().counters.repliesSent); // 1
 * ```
 */
export class HostStatus {
  readonly #clock: Clock;
  readonly #recentMax: number;
  readonly #samplesMax: number;
  readonly #startedAt: number;
  #email: string | undefined;
  readonly #counters = {
    requestsReceived: 0,
    repliesSent: 0,
    noticesReceived: 0,
    introductionsSent: 0,
    requestsDeleted: 0,
    passes: 0,
    syncSent: 0,
    syncMerged: 0,
    syncForwarded: 0,
    forwarded: 0,
  };
  readonly #quarantinedByCode = new Map<string, number>();
  readonly #errorsByCode = new Map<string, number>();
  readonly #requests: RecentRequest[] = [];
  readonly #replies: RecentReply[] = [];
  readonly #quarantined: RecentProblem[] = [];
  readonly #deleted: RecentProblem[] = [];
  readonly #errors: RecentProblem[] = [];
  /** Minute start → counts, at most STATUS_RATE_MINUTES + 1 entries. */
  readonly #buckets = new Map<number, MinuteBucket>();
  /** User id → when its latest unanswered request arrived; insertion order = age. */
  readonly #pending = new Map<string, number>();
  readonly #samples: LatencySample[] = [];
  #latencyCount = 0;
  #latencySumMs = 0;
  readonly #health: MailboxHealth = { state: "starting", consecutiveErrors: 0 };
  #role: RoleStatus | undefined;
  /** This member's name, once it took or renewed the role. */
  #member: string | undefined;
  /** `epoch holder` → the latest lease end seen in a role mail, at most STATUS_ROLE_LEASES. */
  readonly #leaseEnds = new Map<string, number>();

  constructor(options: HostStatusOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#recentMax = positive(options.recentEntries ?? STATUS_RECENT_ENTRIES, "recentEntries");
    this.#samplesMax = positive(options.latencySamples ?? STATUS_LATENCY_SAMPLES, "latencySamples");
    this.#startedAt = this.#clock.now();
  }

  /** A sink to hand to a host (`onEvent`): every event it gets is observed. */
  readonly sink: EventSink = (event) => this.observe(event);

  /** A sink that passes each event to `sink` and observes it here too. */
  wrap(sink: EventSink): EventSink {
    return (event) => {
      this.observe(event);
      sink(event);
    };
  }

  /** Takes one event into account; events that say nothing about the host are ignored. */
  observe(event: MailpeerEvent): void {
    const now = this.#clock.now();
    switch (event.event) {
      case "request-received": {
        const userId = clip(event.userId, STATUS_ID_MAX_CHARS);
        this.#counters.requestsReceived++;
        this.#bucket(now).requests++;
        this.#push(this.#requests, {
          at: now,
          userId,
          sessionId: clip(event.sessionId, STATUS_ID_MAX_CHARS),
        });
        this.#pending.delete(userId);
        this.#pending.set(userId, now);
        if (this.#pending.size > STATUS_PENDING_REQUESTS) {
          this.#pending.delete(this.#pending.keys().next().value!);
        }
        break;
      }
      case "reply-sent": {
        const userId = clip(event.userId, STATUS_ID_MAX_CHARS);
        this.#counters.repliesSent++;
        this.#bucket(now).replies++;
        const since = this.#pending.get(userId);
        this.#pending.delete(userId);
        const reply: RecentReply = { at: now, userId, peers: count(event.peers) };
        if (since !== undefined && now >= since && now - since <= STATUS_PENDING_MAX_AGE_MS) {
          reply.latencyMs = now - since;
          this.#latencyCount++;
          this.#latencySumMs += reply.latencyMs;
          this.#samples.push({ at: now, userId, ms: reply.latencyMs });
          if (this.#samples.length > this.#samplesMax) this.#samples.shift();
        }
        this.#push(this.#replies, reply);
        break;
      }
      case "quarantined":
        this.#bucket(now).quarantined++;
        this.#count(this.#quarantinedByCode, event.code);
        this.#push(this.#quarantined, {
          at: now,
          code: code(event.code),
          reason: clip(event.reason, STATUS_TEXT_MAX_CHARS),
          about: clip(event.subject, STATUS_TEXT_MAX_CHARS),
        });
        break;
      case "request-deleted":
        this.#counters.requestsDeleted++;
        this.#push(this.#deleted, {
          at: now,
          code: "ESTALE",
          reason: clip(event.reason, STATUS_TEXT_MAX_CHARS),
          about: clip(event.userId, STATUS_ID_MAX_CHARS),
        });
        break;
      case "notice-received":
        this.#counters.noticesReceived++;
        break;
      case "introduction-sent":
        this.#counters.introductionsSent++;
        break;
      case "host-pass":
      case "representative-pass":
        this.#counters.passes++;
        this.#health.state = "ok";
        this.#health.lastPassAt = now;
        this.#health.consecutiveErrors = 0;
        break;
      case "error": {
        const problem = {
          at: now,
          code: code(event.code),
          reason: clip(event.message, STATUS_TEXT_MAX_CHARS),
        };
        this.#bucket(now).errors++;
        this.#count(this.#errorsByCode, event.code);
        this.#push(this.#errors, problem);
        this.#health.state = "failing";
        this.#health.lastErrorAt = now;
        this.#health.lastError = { code: problem.code, message: problem.reason };
        this.#health.consecutiveErrors++;
        break;
      }
      case "host-ready":
        this.#email = clip(event.email, STATUS_TEXT_MAX_CHARS);
        this.#health.receive = clip(event.receive, STATUS_ID_MAX_CHARS);
        this.#health.mailbox = clip(event.mailbox, STATUS_TEXT_MAX_CHARS);
        this.#health.wait = clip(event.wait, STATUS_ID_MAX_CHARS);
        break;
      case "sync-sent":
        this.#counters.syncSent++;
        break;
      case "sync-merged":
        this.#counters.syncMerged++;
        break;
      case "forwarded":
        this.#counters.forwarded++;
        break;
      case "sync-forwarded":
        this.#counters.syncForwarded++;
        break;
      case "role-taken":
      case "role-sent":
        this.#member = clip(event.holder, STATUS_ID_MAX_CHARS);
        this.#observeRole(event);
        break;
      case "role-merged":
      case "role-deferred":
      case "role-lost":
        this.#observeRole(event);
        break;
    }
  }

  /**
   * The role as the member sees it: the lease it mailed or was told to defer to, and the latest
   * end of that lease seen in a role mail. A role mail of a higher epoch than the one shown takes
   * over (a new holder); role mails of the shown lease only move its end.
   */
  #observeRole(
    event: Extract<
      MailpeerEvent,
      { event: "role-taken" | "role-sent" | "role-merged" | "role-deferred" | "role-lost" }
    >,
  ): void {
    const holder = clip(event.holder, STATUS_ID_MAX_CHARS);
    const epoch = count(event.epoch);
    const key = `${epoch} ${holder}`;
    if ("until" in event) {
      const until = count(event.until);
      this.#leaseEnds.delete(key);
      this.#leaseEnds.set(key, Math.max(until, this.#leaseEnds.get(key) ?? 0));
      if (this.#leaseEnds.size > STATUS_ROLE_LEASES) {
        this.#leaseEnds.delete(this.#leaseEnds.keys().next().value!);
      }
    }
    const shown = this.#role;
    const same = shown !== undefined && shown.holder === holder && shown.epoch === epoch;
    if (event.event === "role-merged" && shown !== undefined && !same && epoch <= shown.epoch) {
      return;
    }
    const until = this.#leaseEnds.get(key);
    this.#role = {
      holder,
      epoch,
      ...(until !== undefined ? { until } : {}),
      self: event.event !== "role-deferred" && event.event !== "role-lost" &&
        holder === this.#member,
    };
  }

  /** Everything known now, as a plain object (a copy: later events do not change it). */
  snapshot(): StatusSnapshot {
    const now = this.#clock.now();
    const current = minuteOf(now);
    const elapsed = Math.floor((current - minuteOf(this.#startedAt)) / MINUTE_MS) + 1;
    const windowMinutes = Math.max(1, Math.min(STATUS_RATE_MINUTES, elapsed));
    const perMinute: MinuteBucket[] = [];
    for (let i = windowMinutes - 1; i >= 0; i--) {
      const minute = current - i * MINUTE_MS;
      perMinute.push({ ...(this.#buckets.get(minute) ?? empty(minute)) });
    }
    const repliesLastHour = perMinute.reduce((sum, b) => sum + b.replies, 0);
    const sorted = this.#samples.map((s) => s.ms).sort((a, b) => a - b);
    return {
      now,
      startedAt: this.#startedAt,
      ...(this.#email !== undefined ? { email: this.#email } : {}),
      counters: {
        ...this.#counters,
        quarantinedByCode: Object.fromEntries(this.#quarantinedByCode),
        errorsByCode: Object.fromEntries(this.#errorsByCode),
      },
      recent: {
        requests: this.#requests.map((e) => ({ ...e })),
        replies: this.#replies.map((e) => ({ ...e })),
        quarantined: this.#quarantined.map((e) => ({ ...e })),
        deleted: this.#deleted.map((e) => ({ ...e })),
        errors: this.#errors.map((e) => ({ ...e })),
      },
      rates: {
        windowMinutes,
        perMinute,
        repliesLastMinute: perMinute[perMinute.length - 1]!.replies,
        repliesLastHour,
        repliesPerMinute: repliesLastHour / windowMinutes,
      },
      latency: {
        samples: this.#samples.map((s) => ({ ...s })),
        count: this.#latencyCount,
        sumMs: this.#latencySumMs,
        ...(sorted.length === 0 ? {} : {
          minMs: sorted[0]!,
          p50Ms: quantile(sorted, 0.5),
          p90Ms: quantile(sorted, 0.9),
          p99Ms: quantile(sorted, 0.99),
          maxMs: sorted[sorted.length - 1]!,
        }),
      },
      health: {
        ...this.#health,
        ...(this.#health.lastError ? { lastError: { ...this.#health.lastError } } : {}),
      },
      ...(this.#role ? { role: { ...this.#role } } : {}),
    };
  }

  #push<T>(list: T[], entry: T): void {
    list.push(entry);
    if (list.length > this.#recentMax) list.shift();
  }

  #count(counts: Map<string, number>, raw: unknown): void {
    let key = code(raw);
    if (!counts.has(key) && counts.size >= STATUS_MAX_CODES - 1) key = "OTHER";
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }

  #bucket(now: number): MinuteBucket {
    const minute = minuteOf(now);
    let bucket = this.#buckets.get(minute);
    if (!bucket) {
      bucket = empty(minute);
      this.#buckets.set(minute, bucket);
      const oldest = minute - STATUS_RATE_MINUTES * MINUTE_MS;
      for (const key of this.#buckets.keys()) {
        if (key <= oldest) this.#buckets.delete(key);
      }
    }
    return bucket;
  }
}

function positive(n: number, name: string): number {
  if (!Number.isInteger(n) || n < 1) {
    throw new RangeError(`HostStatus: ${name} must be a positive integer, got ${n}`);
  }
  return n;
}

function minuteOf(ms: number): number {
  return Math.floor(ms / MINUTE_MS) * MINUTE_MS;
}

function empty(minute: number): MinuteBucket {
  return { minute, requests: 0, replies: 0, quarantined: 0, errors: 0 };
}

function count(n: unknown): number {
  return typeof n === "number" && Number.isFinite(n) && n >= 0 ? Math.floor(n) : 0;
}

/** Nearest-rank quantile of sorted values. */
function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/**
 * A code as counted and labelled: upper-case letters, digits and `_`, at most 32 characters;
 * anything else becomes `OTHER`.
 */
function code(raw: unknown): string {
  return typeof raw === "string" && /^[A-Z][A-Z0-9_]{0,31}$/.test(raw) ? raw : "OTHER";
}

/**
 * A string from mail as kept: control and formatting characters replaced by U+FFFD, at most
 * `max` characters (code points), a longer one cut and ended with "…".
 */
export function clip(raw: unknown, max: number): string {
  const text = typeof raw === "string" ? raw : String(raw ?? "");
  // Cut before any other work: a code point is at most two UTF-16 units.
  const head = text.length > max * 2 ? text.slice(0, max * 2) : text;
  const clean = head.replace(
    // deno-lint-ignore no-control-regex
    /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2066-\u2069]/g,
    "\ufffd",
  );
  const chars = Array.from(clean);
  return chars.length <= max && head.length === text.length
    ? clean
    : chars.slice(0, max - 1).join("") + "…";
}
