/**
 * In-memory mail for unit tests: {@link MemoryMailbox} is a {@link MailSource} over raw mails
 * held in an array, and {@link MemoryPostOffice} hands out a {@link MailSender} that composes
 * each mail as SMTP would (composeMail) and delivers it to per-address mailboxes. No file
 * system, no sockets, no timers.
 *
 * @module
 */
import { MailError } from "../../src/errors.ts";
import { composeMail } from "../../src/mail/rfc5322/compose.ts";
import { mailboxName } from "../../src/mail/maildir/post_office.ts";
import { readSubject } from "../../src/mail/rfc5322/parse.ts";
import {
  type MailRef,
  type MailSender,
  type MailSource,
  matchesSubject,
  type OutgoingMail,
  type SubjectMatch,
} from "../../src/mail/types.ts";
import { emailProblem } from "../../src/message/host_card.ts";

/** A mail in a {@link MemoryMailbox}. */
export interface StoredMail {
  id: string;
  raw: Uint8Array;
}

/** A mail moved out of the way by {@link MemoryMailbox.quarantine}, with the host's reason. */
export interface QuarantinedMail extends StoredMail {
  reason: string;
}

/** Options of {@link MemoryMailbox}. */
export interface MemoryMailboxOptions {
  /**
   * Whether {@link MemoryMailbox.list} reports each mail's size (as IMAP and Maildir do) or
   * leaves it undefined (as a source that cannot tell cheaply). Default: true.
   */
  reportSize?: boolean;
}

/**
 * One mailbox in memory. Mails keep their delivery order (oldest first); only mail whose
 * subject matches is ever listed, fetched, deleted or quarantined.
 *
 * @example
 * ```ts ignore
 * const box = new MemoryMailbox();
 * box.deliver(new TextEncoder().encode("Subject: [mailpeer] lan request\r\n\r\nhi\r\n"));
 * const refs = await box.list({ subject: "[mailpeer] lan request", mode: "exact" });
 * ```
 */
export class MemoryMailbox implements MailSource {
  /** Mails still in the mailbox, oldest first. */
  readonly mails: StoredMail[] = [];
  /** Mails moved to quarantine, in the order they were moved. */
  readonly quarantined: QuarantinedMail[] = [];
  /** Ids of mails removed with {@link delete}, in order. */
  readonly deleted: string[] = [];
  /** Ids of mails read with {@link fetch}, in order. */
  readonly fetched: string[] = [];
  readonly #reportSize: boolean;
  readonly #listed = new Set<string>();
  #waiters = new Set<() => void>();
  #next = 0;
  #closed = false;

  constructor(options: MemoryMailboxOptions = {}) {
    this.#reportSize = options.reportSize ?? true;
  }

  /** Puts a raw mail into the mailbox and wakes every waiter; returns its id. */
  deliver(raw: Uint8Array): string {
    const id = `m${String(++this.#next).padStart(6, "0")}`;
    this.mails.push({ id, raw: raw.slice() });
    this.#wake();
    return id;
  }

  /** The raw bytes of a mail still in the mailbox, or undefined. */
  get(id: string): Uint8Array | undefined {
    return this.mails.find((m) => m.id === id)?.raw;
  }

  /** Lists the mails whose subject matches, oldest first. */
  async list(match: SubjectMatch, options: { signal?: AbortSignal } = {}): Promise<MailRef[]> {
    options.signal?.throwIfAborted();
    const refs: MailRef[] = [];
    for (const { id, raw } of [...this.mails]) {
      const subject = await readSubject(raw);
      if (!matchesSubject(subject, match)) continue;
      this.#listed.add(id);
      refs.push({ id, subject: subject.trim(), ...(this.#reportSize ? { size: raw.length } : {}) });
    }
    return refs;
  }

  /** Returns a copy of a listed mail's bytes. */
  fetch(ref: MailRef, options: { signal?: AbortSignal } = {}): Promise<Uint8Array> {
    options.signal?.throwIfAborted();
    const raw = this.#listed.has(ref.id) ? this.get(ref.id) : undefined;
    if (raw === undefined) {
      return Promise.reject(
        new MailError(
          "EMAILDIR",
          `Cannot fetch mail ${ref.id}: it is not a listed mail of this mailbox; list again`,
        ),
      );
    }
    this.fetched.push(ref.id);
    return Promise.resolve(raw.slice());
  }

  /** Removes a listed mail; already gone: nothing to do. */
  delete(ref: MailRef): Promise<void> {
    const mail = this.#take(ref.id);
    if (mail) this.deleted.push(mail.id);
    return Promise.resolve();
  }

  /** {@link delete} of each. */
  async deleteMany(refs: MailRef[]): Promise<void> {
    for (const ref of refs) await this.delete(ref);
  }

  /** One process per memory mailbox: claims are the refs themselves. */
  readonly claims = false;
  claim(ref: MailRef): Promise<MailRef | undefined> {
    return Promise.resolve(ref);
  }
  claimMany(refs: MailRef[]): Promise<MailRef[]> {
    return Promise.resolve(refs);
  }
  recoverClaims(_olderThanMs: number): Promise<number> {
    return Promise.resolve(0);
  }

  /** Moves a listed mail into {@link quarantined} with `reason`; already gone: nothing to do. */
  quarantine(ref: MailRef, reason: string): Promise<void> {
    const mail = this.#take(ref.id);
    if (mail) this.quarantined.push({ ...mail, reason });
    return Promise.resolve();
  }

  /** Resolves on the next {@link deliver}, on {@link close}, or when `signal` aborts. */
  waitForMail(options: { signal?: AbortSignal } = {}): Promise<void> {
    const signal = options.signal;
    if (signal?.aborted || this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        this.#waiters.delete(wake);
        signal?.removeEventListener("abort", wake);
        resolve();
      };
      this.#waiters.add(wake);
      signal?.addEventListener("abort", wake, { once: true });
    });
  }

  /** Wakes every waiter; later waits resolve at once. */
  close(): Promise<void> {
    this.#closed = true;
    this.#wake();
    return Promise.resolve();
  }

  #take(id: string): StoredMail | undefined {
    if (!this.#listed.delete(id)) return undefined;
    const at = this.mails.findIndex((m) => m.id === id);
    return at < 0 ? undefined : this.mails.splice(at, 1)[0];
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = new Set();
    for (const wake of waiters) wake();
  }
}

/** A mail the post office accepted: what was asked to be sent and the composed bytes. */
export interface SentMail {
  mail: OutgoingMail;
  raw: Uint8Array;
  messageId: string;
}

/**
 * A post office in memory: {@link sender} composes mail and delivers a copy into the
 * {@link mailbox} of each recipient (address compared case-insensitively).
 *
 * Like a real mail server (and the Maildir post office), it refuses recipients that are not
 * plausible `local@domain` addresses: `send` rejects with `MailError` `ESEND` and delivers
 * nothing. `acceptAnyRecipient: true` turns that off.
 *
 * @example
 * ```ts ignore
 * const po = new MemoryPostOffice();
 * await po.sender().send({ from: "a@x.test", to: ["b@x.test"], subject: "hi", text: "hi\n" });
 * po.mailbox("b@x.test").mails.length; // 1
 * ```
 */
export class MemoryPostOffice {
  /** Every mail sent through any of this post office's senders, in order. */
  readonly sent: SentMail[] = [];
  readonly #boxes = new Map<string, MemoryMailbox>();
  readonly #now: () => number;
  readonly #acceptAny: boolean;

  /**
   * @param options.now clock for the `Date:` of mails sent without one; default `Date.now`.
   * @param options.acceptAnyRecipient deliver to any address string; default false.
   */
  constructor(options: { now?: () => number; acceptAnyRecipient?: boolean } = {}) {
    this.#now = options.now ?? Date.now;
    this.#acceptAny = options.acceptAnyRecipient ?? false;
  }

  /** The mailbox of `address`, created empty on first use. */
  mailbox(address: string): MemoryMailbox {
    const key = address.trim().toLowerCase();
    let box = this.#boxes.get(key);
    if (box === undefined) {
      box = new MemoryMailbox();
      this.#boxes.set(key, box);
    }
    return box;
  }

  /** A sender that delivers into this post office. */
  sender(): MailSender {
    return {
      send: async (mail, options = {}) => {
        options.signal?.throwIfAborted();
        const { raw, messageId } = await composeMail(mail, { now: this.#now });
        for (const to of this.#acceptAny ? [] : mail.to) {
          const problem = recipientProblem(to);
          if (problem !== undefined) {
            throw new MailError(
              "ESEND",
              `Cannot send mail to ${JSON.stringify(to)}: the server refused the recipient ` +
                `(${problem}); correct the address`,
            );
          }
        }
        this.sent.push({ mail, raw, messageId });
        for (const to of mail.to) this.mailbox(to).deliver(raw);
        return { messageId };
      },
      close: () => Promise.resolve(),
    };
  }
}

/** Why a mail server would refuse `address` as a recipient, or undefined. */
export function recipientProblem(address: string): string | undefined {
  const problem = emailProblem(address);
  if (problem !== undefined) return problem;
  try {
    mailboxName(address);
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
  return undefined;
}
