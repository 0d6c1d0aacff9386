/**
 * Bodies of small listed mails, read with the listing so that `ImapSource.fetch` needs
 * no round trip of its own.
 *
 * After the envelope FETCH has told which mails match the subject key (the server's SEARCH
 * matches substrings, so only the envelope says whether a mail is ours), one
 * `UID FETCH <set> (UID BODY.PEEK[])` reads every matching mail of at most `maxBytes` (by
 * RFC822.SIZE) until the cache budget is full. `BODY.PEEK[]` never sets `\Seen`, and mail
 * whose subject does not match is never fetched. The bytes are kept in a {@link BodyCache}
 * keyed by mailbox, UIDVALIDITY and UID: IMAP never gives a UID of a mailbox to another mail
 * while its UIDVALIDITY stays, so an entry can only ever be served for the mail it was read
 * from. Each entry is served once, then dropped; a listing clears the cache first.
 *
 * A mail expunged after the listing may still be served once from the cache, as if it had
 * been fetched just before it was removed: deleting it then is a no-op. A claim carries the
 * body over to the mail's new UID in the processing folder (MOVE keeps the bytes).
 *
 * @module
 */
import type { ImapFlow } from "imapflow";
import { uidSet } from "./errors.ts";

/** The cache key of mail `uid` of `mailbox` while its UIDVALIDITY is `validity`. */
export function bodyKey(mailbox: string, validity: bigint, uid: number): string {
  return `${validity}:${uid}:${mailbox}`;
}

/**
 * Raw mail bytes by {@link bodyKey}, at most `budgetBytes` in all: a {@link BodyCache.put} that does not
 * fit evicts the oldest entries first.
 *
 * @example
 * ```ts
 * const cache = new BodyCache(1024);
 * cache.put(bodyKey("INBOX", 7n, 42), new Uint8Array(10));
 * cache.take(bodyKey("INBOX", 7n, 42)); // the bytes; a second take gives undefined
 * ```
 */
export class BodyCache {
  readonly budgetBytes: number;
  readonly #entries = new Map<string, Uint8Array>();
  #bytes = 0;

  constructor(budgetBytes: number) {
    if (!(budgetBytes >= 0)) {
      throw new RangeError(`Cannot make a body cache of ${budgetBytes} bytes: use 0 or more`);
    }
    this.budgetBytes = budgetBytes;
  }

  /** Bytes held. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Number of entries. */
  get size(): number {
    return this.#entries.size;
  }

  /** Keeps `body` under `key` (replacing an entry there); false when it exceeds the budget. */
  put(key: string, body: Uint8Array): boolean {
    this.drop(key);
    if (body.length > this.budgetBytes) return false;
    for (const [oldest] of this.#entries) {
      if (this.#bytes + body.length <= this.budgetBytes) break;
      this.drop(oldest);
    }
    this.#entries.set(key, body);
    this.#bytes += body.length;
    return true;
  }

  /** True when a body is kept under `key`. */
  has(key: string): boolean {
    return this.#entries.has(key);
  }

  /** Removes and returns the entry under `key`. */
  take(key: string): Uint8Array | undefined {
    const body = this.#entries.get(key);
    if (body !== undefined) this.drop(key);
    return body;
  }

  /** Removes the entry under `key`, if any. */
  drop(key: string): void {
    const body = this.#entries.get(key);
    if (body === undefined) return;
    this.#entries.delete(key);
    this.#bytes -= body.length;
  }

  /** Removes every entry. */
  clear(): void {
    this.#entries.clear();
    this.#bytes = 0;
  }
}

/** `bytes` as the largest mail to read ahead; a RangeError unless it is 0 or more. */
export function prefetchLimit(bytes: number): number {
  if (!(bytes >= 0)) {
    throw new RangeError(`Cannot read ahead mails of ${bytes} bytes: use 0 or more`);
  }
  return bytes;
}

/** A listed mail: its UID and RFC822.SIZE (when the server gave it). */
export interface ListedMail {
  uid: number;
  size?: number | undefined;
}

/**
 * Which of `listed` (oldest first) to prefetch: those of at most `maxBytes`, oldest first, as
 * long as their sizes add up to at most `budgetBytes`.
 */
export function choosePrefetch(
  listed: readonly ListedMail[],
  options: { maxBytes: number; budgetBytes: number },
): number[] {
  const uids: number[] = [];
  let total = 0;
  for (const { uid, size } of listed) {
    if (size === undefined || size > options.maxBytes) continue;
    if (total + size > options.budgetBytes) break;
    total += size;
    uids.push(uid);
  }
  return uids;
}

/**
 * Reads `BODY.PEEK[]` of `uids` (in the selected `mailbox`, UIDVALIDITY `validity`) in one
 * `UID FETCH` and puts each body of at most `maxBytes` into `cache`. Mail expunged meanwhile
 * is simply absent. Resolves with the number of bodies cached.
 */
export async function prefetchBodies(
  client: ImapFlow,
  uids: readonly number[],
  options: { cache: BodyCache; mailbox: string; validity: bigint; maxBytes: number },
): Promise<number> {
  if (uids.length === 0) return 0;
  const wanted = new Set(uids);
  const messages = await client.fetchAll(
    uidSet([...wanted].sort((a, b) => a - b)),
    { uid: true, source: true },
    { uid: true },
  );
  let cached = 0;
  for (const msg of messages) {
    // a copy: imapflow's buffer may be a view into a larger one
    if (!wanted.has(msg.uid) || !msg.source || msg.source.length > options.maxBytes) continue;
    const key = bodyKey(options.mailbox, options.validity, msg.uid);
    if (options.cache.put(key, new Uint8Array(msg.source))) cached++;
  }
  return cached;
}
