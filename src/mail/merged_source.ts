/**
 * One {@link MailSource} over several mailboxes of one account: the inbox and the Junk folder a
 * spam filter files automated mail into (docs/providers.md "Spam folders"). A request or reply
 * filed there is seen as if it were in the inbox; ordinary mail in either is never touched, as
 * each source sees only mail under its subject key.
 *
 * A ref's id carries the index of its mailbox (`<n>:<id>`), so fetch, delete, quarantine and
 * claims go back to the mailbox it came from. Waiting for mail wakes when any mailbox does.
 *
 * @module
 */
import type { MailRef, MailSource, SubjectMatch } from "./types.ts";

/** Mail of several sources as one; `sources[0]` is the inbox. */
export class MergedSource implements MailSource {
  readonly #sources: readonly MailSource[];

  constructor(sources: readonly MailSource[]) {
    if (sources.length === 0) throw new TypeError("MergedSource needs at least one source");
    this.#sources = sources;
  }

  /** Claims are exclusive only when every mailbox's are. */
  get claims(): boolean {
    return this.#sources.every((s) => s.claims);
  }

  /** Opens every mailbox at once; rejects with the first failure. */
  async open(options?: { signal?: AbortSignal }): Promise<void> {
    await Promise.all(this.#sources.map((s) => s.open?.(options)));
  }

  async list(match: SubjectMatch, options?: { signal?: AbortSignal }): Promise<MailRef[]> {
    const lists = await Promise.all(this.#sources.map((s) => s.list(match, options)));
    return lists.flatMap((refs, n) => refs.map((ref) => this.#outer(n, ref)));
  }

  async fetch(ref: MailRef, options?: { signal?: AbortSignal }): Promise<Uint8Array> {
    const [source, inner] = this.#inner(ref);
    return await source.fetch(inner, options);
  }

  async delete(ref: MailRef): Promise<void> {
    const [source, inner] = this.#inner(ref);
    await source.delete(inner);
  }

  async deleteMany(refs: MailRef[]): Promise<void> {
    for (const [n, inner] of this.#byMailbox(refs)) await this.#sources[n]!.deleteMany(inner);
  }

  async quarantine(ref: MailRef, reason: string): Promise<void> {
    const [source, inner] = this.#inner(ref);
    await source.quarantine(inner, reason);
  }

  async claim(ref: MailRef): Promise<MailRef | undefined> {
    const n = this.#index(ref);
    const [source, inner] = this.#inner(ref);
    const claimed = await source.claim(inner);
    return claimed && this.#outer(n, claimed);
  }

  async claimMany(refs: MailRef[]): Promise<MailRef[]> {
    const won: MailRef[] = [];
    for (const [n, inner] of this.#byMailbox(refs)) {
      for (const ref of await this.#sources[n]!.claimMany(inner)) won.push(this.#outer(n, ref));
    }
    return won;
  }

  /**
   * Best effort, as the contract says: a mailbox whose read-ahead fails leaves its mails to
   * {@link fetch}, and neither holds up the others' nor fails the pass (which would keep the
   * claims of the mails it won and answer none of them).
   */
  async prefetch(refs: MailRef[]): Promise<void> {
    await Promise.allSettled(
      [...this.#byMailbox(refs)].map(([n, inner]) => this.#sources[n]!.prefetch?.(inner)),
    );
  }

  async recoverClaims(olderThanMs: number): Promise<number> {
    const counts = await Promise.all(this.#sources.map((s) => s.recoverClaims(olderThanMs)));
    return counts.reduce((a, b) => a + b, 0);
  }

  /** Resolves when any mailbox may have new mail (the others' waits are then stopped). */
  async waitForMail(options: { signal?: AbortSignal } = {}): Promise<void> {
    const done = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, done.signal]) : done.signal;
    try {
      await Promise.race(this.#sources.map((s) => s.waitForMail({ signal })));
    } finally {
      done.abort();
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.#sources.map((s) => s.close()));
  }

  #outer(n: number, ref: MailRef): MailRef {
    return { ...ref, id: `${n}:${ref.id}` };
  }

  #index(ref: MailRef): number {
    const colon = ref.id.indexOf(":");
    const n = Number(ref.id.slice(0, colon));
    if (colon < 1 || !Number.isInteger(n) || n < 0 || n >= this.#sources.length) {
      throw new TypeError(`Cannot use mail ${ref.id}: it is not a ref this source listed`);
    }
    return n;
  }

  #inner(ref: MailRef): [MailSource, MailRef] {
    const n = this.#index(ref);
    return [this.#sources[n]!, { ...ref, id: ref.id.slice(ref.id.indexOf(":") + 1) }];
  }

  /** Refs grouped by mailbox, in mailbox order, each with its inner id. */
  #byMailbox(refs: MailRef[]): Map<number, MailRef[]> {
    const groups = new Map<number, MailRef[]>();
    for (const ref of refs) {
      const n = this.#index(ref);
      const [, inner] = this.#inner(ref);
      groups.set(n, [...(groups.get(n) ?? []), inner]);
    }
    return groups;
  }
}
