/**
 * The representative of a host pool (docs/design.md "Host pool"): it reads the pool's public
 * mailbox and forwards each request and notice, round-robin, to one worker host, "without changing
 * the sender": the mail is resent (RFC 5322 §3.6.6) with only a `Resent-*` block prepended, so its
 * `From:`, `Subject:` and `Message-ID:` stay the terminal's and the worker replies to the terminal
 * directly (from its own address). Then the mail is deleted from the representative's mailbox; a
 * crash before that repeats a forward, never loses a request (docs/design.md "Host processing").
 *
 * The representative never opens a block and needs no keys. The pool shares one host key pair:
 * terminals know the representative's card, and every worker loads a copy of the same key
 * file, so it can open blocks sealed to that card and sign replies with the same key.
 *
 * @module
 */
import { isMailpeerError } from "../../errors.ts";
import { MAX_MAIL_BYTES } from "../../limits.ts";
import { type Logger, silentLogger } from "../../log.ts";
import type { MailRef, MailSender, MailSource, SubjectMatch } from "../../mail/types.ts";
import { type MailKind, subjectFor } from "../../message/mail_text.ts";
import { type Clock, systemClock } from "../../runtime.ts";

/** What a {@link Representative} reports. */
export type RepresentativeEvent =
  | { event: "forwarded"; kind: "request" | "notice"; to: string; resentId: string }
  | { event: "quarantined"; subject: string; code: string; reason: string }
  | { event: "representative-pass"; forwarded: number; quarantined: number }
  | { event: "error"; code: string; message: string };

/** The round-robin position, shared by the processes of one representative. */
export interface RoundRobinCounter {
  /** The next number of an increasing sequence (0, 1, 2, ...); only its order matters. */
  next(): Promise<number>;
}

/** Options of {@link Representative}. */
export interface RepresentativeOptions {
  network: string;
  /** The representative's mailbox (the address on the card terminals know). */
  source: MailSource;
  /** Sends the forwards; must implement {@link MailSender.forward}. */
  sender: MailSender;
  /** The representative's own address: the `Resent-From:` and the envelope sender. */
  email: string;
  /** The worker hosts' addresses, at least one. */
  workers: string[];
  /** Subject matching mode. Default: `exact`. */
  subjectMatch?: SubjectMatch["mode"];
  /** Mail over this size is quarantined, not forwarded. Default: `MAX_MAIL_BYTES`. */
  maxMailBytes?: number;
  /** Claims older than this are put back by {@link Representative.run}. Default: 10 min. */
  recoverAfterMs?: number;
  /** Round-robin state. Default: in memory, starting at the first worker. */
  counter?: RoundRobinCounter;
  clock?: Clock;
  onEvent?: (event: RepresentativeEvent) => void;
  logger?: Logger;
}

/** What one pass did. */
export interface RepresentativePassResult {
  forwarded: number;
  quarantined: number;
}

const DEFAULT_RECOVER_AFTER_MS = 10 * 60_000;

/** An in-memory {@link RoundRobinCounter}. */
export function memoryCounter(start = 0): RoundRobinCounter {
  let n = start;
  return { next: () => Promise.resolve(n++) };
}

/**
 * Forwards the pool's requests and notices to its workers, round-robin.
 *
 * @example
 * ```ts
 * const rep = new Representative({
 *   network: "lan", source, sender, email: "pool@example.org",
 *   workers: ["host1@example.org", "host2@example.org"],
 * });
 * await rep.processPending();
 * ```
 */
export class Representative {
  readonly #o: Required<Omit<RepresentativeOptions, "onEvent">> & {
    onEvent: (event: RepresentativeEvent) => void;
  };
  readonly #forward: NonNullable<MailSender["forward"]>;

  constructor(options: RepresentativeOptions) {
    if (options.workers.length === 0) {
      throw new TypeError("Cannot start the representative: it has no workers; list at least one");
    }
    const forward = options.sender.forward;
    if (forward === undefined) {
      throw new TypeError(
        "Cannot start the representative: its mail sender cannot forward; use SMTP or Maildir",
      );
    }
    this.#forward = forward.bind(options.sender);
    this.#o = {
      subjectMatch: "exact",
      maxMailBytes: MAX_MAIL_BYTES,
      recoverAfterMs: DEFAULT_RECOVER_AFTER_MS,
      counter: memoryCounter(),
      clock: systemClock,
      logger: silentLogger,
      ...options,
      onEvent: options.onEvent ?? (() => {}),
    };
  }

  #match(kind: MailKind): SubjectMatch {
    return { subject: subjectFor(this.#o.network, kind), mode: this.#o.subjectMatch };
  }

  /**
   * Forwards every pending notice and request once, each to the next worker, and deletes it.
   * Rejects on failures that leave the mail in place for the next pass (sending, connection).
   */
  async processPending(options: { signal?: AbortSignal } = {}): Promise<RepresentativePassResult> {
    const result: RepresentativePassResult = { forwarded: 0, quarantined: 0 };
    for (const kind of ["notice", "request"] as const) {
      const refs = await this.#o.source.list(this.#match(kind), options);
      for (const listed of refs) {
        options.signal?.throwIfAborted();
        const ref = await this.#take(listed);
        if (ref === undefined) continue; // another representative process took it
        result[await this.#forwardOne(ref, kind, options.signal)]++;
      }
    }
    this.#o.onEvent({ event: "representative-pass", ...result });
    return result;
  }

  /**
   * Forwards mail until `signal` aborts, waking on new mail; puts back stale claims (a
   * crashed representative process) every `recoverAfterMs`.
   */
  async run(options: { signal: AbortSignal; retryDelayMs?: number }): Promise<void> {
    const { signal } = options;
    const { source, clock, onEvent, logger } = this.#o;
    let failures = 0;
    let recovered = -Infinity;
    while (!signal.aborted) {
      try {
        if (source.recoverClaims && clock.now() - recovered >= this.#o.recoverAfterMs) {
          recovered = clock.now();
          await source.recoverClaims(this.#o.recoverAfterMs);
        }
        await this.processPending({ signal });
        failures = 0;
        await source.waitForMail({ signal });
      } catch (err) {
        if (signal.aborted) break;
        if (!isMailpeerError(err)) throw err;
        onEvent({ event: "error", code: err.code, message: err.message });
        logger.log("error", err.message, { code: err.code });
        const delay = Math.min(30_000, (options.retryDelayMs ?? 500) * 2 ** failures++);
        await clock.sleep(delay, signal).catch(() => {});
      }
    }
  }

  /** The ref to work on: claimed when the source supports claims. */
  #take(ref: MailRef): Promise<MailRef | undefined> {
    const { source } = this.#o;
    return source.claim ? source.claim(ref) : Promise.resolve(ref);
  }

  async #forwardOne(
    ref: MailRef,
    kind: "request" | "notice",
    signal?: AbortSignal,
  ): Promise<keyof RepresentativePassResult> {
    const { source, email, workers, counter, onEvent, logger, maxMailBytes } = this.#o;
    if (ref.size !== undefined && ref.size > maxMailBytes) {
      const reason = `mail of ${ref.size} bytes is over the limit of ${maxMailBytes}`;
      logger.log("warn", `${kind} not forwarded: ${reason}`, { subject: ref.subject });
      await source.quarantine(ref, reason);
      onEvent({ event: "quarantined", subject: ref.subject, code: "EMAIL", reason });
      return "quarantined";
    }
    const raw = await source.fetch(ref, signal ? { signal } : {});
    const n = await counter.next();
    const to = workers[((n % workers.length) + workers.length) % workers.length]!;
    const { messageId } = await this.#forward(raw, {
      from: email,
      to: [to],
      ...(signal ? { signal } : {}),
    });
    onEvent({ event: "forwarded", kind, to, resentId: messageId });
    await source.delete(ref);
    return "forwarded";
  }
}
