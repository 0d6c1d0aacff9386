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
import { MAX_MAIL_BYTES } from "../../limits.ts";
import { type Logger, silentLogger } from "../../log.ts";
import {
  type MailRef,
  type MailSender,
  type MailSource,
  matchesSubject,
  type SubjectMatch,
} from "../../mail/types.ts";
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
   * Forwards every pending notice and request once (of `listing` when given, as
   * `Host.processPending`), each to the next worker, and deletes it.
   * Rejects on failures that leave the mail in place for the next pass (sending, connection).
   */
  async processPending(
    options: { signal?: AbortSignal; listing?: readonly MailRef[] } = {},
  ): Promise<RepresentativePassResult> {
    const result: RepresentativePassResult = { forwarded: 0, quarantined: 0 };
    const { signal, listing } = options;
    for (const kind of ["notice", "request"] as const) {
      const match = this.#match(kind);
      const refs = listing
        ? listing.filter((ref) => matchesSubject(ref.subject, match))
        : await this.#o.source.list(match, signal ? { signal } : {});
      for (const listed of refs) {
        options.signal?.throwIfAborted();
        // Claimed, so that several representative processes never forward a mail twice.
        const ref = await this.#o.source.claim(listed);
        if (ref === undefined) continue; // another representative process took it
        result[await this.#forwardOne(ref, kind, options.signal)]++;
      }
    }
    this.#o.onEvent({ event: "representative-pass", ...result });
    return result;
  }

  /** The pool's public mailbox (a {@link HostService} lists it once per pass). */
  get source(): MailSource {
    return this.#o.source;
  }

  /** The network whose mail this representative forwards. */
  get network(): string {
    return this.#o.network;
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
