/**
 * The recipients of the requests a host reads (docs/decisions.md "Hosts learned from a request's
 * recipients"): a terminal mails one request to all its hosts at once, so each host sees the
 * others in To and Cc, as the patent has hosts learn of each other. {@link RecipientTap} is the
 * host's mail source with one addition: it notes the To and Cc addresses of every request mail
 * the host fetches, and {@link RecipientTap.take} hands them to the sync agent, which learns a
 * host only where a recipient matches a host card the terminal signed
 * ({@link SyncAgent.learn}, host/pool/sync_agent.ts). An address alone is never mailed.
 *
 * Bounded: at most `MAX_REQUEST_RECIPIENTS` addresses are read from one mail, and at most
 * `MAX_PENDING_RECIPIENTS` wait to be taken (the oldest go first).
 *
 * @module
 */
import { MAX_REQUEST_RECIPIENTS } from "../../limits.ts";
import { headerValues } from "../../mail/rfc5322/header_values.ts";
import {
  type MailRef,
  type MailSource,
  matchesSubject,
  type SubjectMatch,
} from "../../mail/types.ts";
import { subjectFor } from "../../message/mail_text.ts";

/** Most recipient addresses kept between two {@link RecipientTap.take} calls. */
export const MAX_PENDING_RECIPIENTS = 1024;

/** An address as `local@domain` (no spaces, quotes or brackets), at most 254 characters. */
const ADDRESS = /^[^\s@<>",;:()\[\]]{1,64}@[a-z0-9.-]{1,189}$/;

/**
 * The bare, lower-cased addresses of header values such as `To:` and `Cc:` (`a@x.test`,
 * `"A" <a@x.test>`, comma-separated), at most `max`, each once; anything that is not a plain
 * address is skipped.
 *
 * @example
 * ```ts
 * import { recipientsOf } from "./recipient_tap.ts";
 *
 * recipientsOf(['"Host A" <A@hosts.test>, b@hosts.test'], 8); // ["a@hosts.test", "b@hosts.test"]
 * ```
 */
export function recipientsOf(values: readonly string[], max: number): string[] {
  const out = new Set<string>();
  for (const value of values) {
    for (const part of value.split(",")) {
      if (out.size >= max) return [...out];
      const bracket = /<([^<>]*)>/.exec(part);
      const address = (bracket ? bracket[1]! : part).trim().toLowerCase();
      if (ADDRESS.test(address)) out.add(address);
    }
  }
  return [...out];
}

/** Options of {@link RecipientTap}. */
export interface RecipientTapOptions {
  /** The network whose request mails are read. */
  network: string;
  /** Subject matching mode; default `exact`. */
  subjectMatch?: SubjectMatch["mode"];
}

/**
 * A mail source that does what `inner` does and notes the recipients of the request mails
 * fetched through it.
 *
 * @example
 * ```ts ignore
 * const tap = new RecipientTap(source, { network: "lan-party" });
 * const host = new Host({ ...options, source: tap, learnHosts: (cards) =>
 *   sync.learn(cards, { recipients: tap.take() }) });
 * ```
 */
export class RecipientTap implements MailSource {
  readonly #inner: MailSource;
  readonly #match: SubjectMatch;
  #pending: string[] = [];

  constructor(inner: MailSource, options: RecipientTapOptions) {
    this.#inner = inner;
    this.#match = {
      subject: subjectFor(options.network, "request"),
      mode: options.subjectMatch ?? "exact",
    };
  }

  /** The recipients noted since the last call (each once), and forgets them. */
  take(): string[] {
    const out = [...new Set(this.#pending)];
    this.#pending = [];
    return out;
  }

  get claims(): boolean {
    return this.#inner.claims;
  }

  async fetch(ref: MailRef, options?: { signal?: AbortSignal }): Promise<Uint8Array> {
    const raw = await this.#inner.fetch(ref, options);
    if (matchesSubject(ref.subject, this.#match)) {
      const values = [...headerValues(raw, "To"), ...headerValues(raw, "Cc")];
      this.#pending.push(...recipientsOf(values, MAX_REQUEST_RECIPIENTS));
      if (this.#pending.length > MAX_PENDING_RECIPIENTS) {
        this.#pending = this.#pending.slice(-MAX_PENDING_RECIPIENTS);
      }
    }
    return raw;
  }

  list(match: SubjectMatch, options?: { signal?: AbortSignal }): Promise<MailRef[]> {
    return this.#inner.list(match, options);
  }
  delete(ref: MailRef): Promise<void> {
    return this.#inner.delete(ref);
  }
  deleteMany(refs: MailRef[]): Promise<void> {
    return this.#inner.deleteMany(refs);
  }
  quarantine(ref: MailRef, reason: string): Promise<void> {
    return this.#inner.quarantine(ref, reason);
  }
  waitForMail(options?: { signal?: AbortSignal }): Promise<void> {
    return this.#inner.waitForMail(options);
  }
  claim(ref: MailRef): Promise<MailRef | undefined> {
    return this.#inner.claim(ref);
  }
  claimMany(refs: MailRef[]): Promise<MailRef[]> {
    return this.#inner.claimMany(refs);
  }
  prefetch(refs: MailRef[]): Promise<void> {
    return this.#inner.prefetch?.(refs) ?? Promise.resolve();
  }
  recoverClaims(olderThanMs: number): Promise<number> {
    return this.#inner.recoverClaims(olderThanMs);
  }
  close(): Promise<void> {
    return this.#inner.close();
  }
}
