/**
 * A hand-off queue between a producer (a listener's handshakes) and `accept()` callers: an item
 * goes to the longest-waiting caller, or waits in order until one comes.
 *
 * @module
 */

interface Waiter<T> {
  resolve(item: T): void;
  reject(err: unknown): void;
}

/** Items handed from one side to waiting takers, in order. */
export class Handoff<T> {
  #ready: T[] = [];
  #waiters: Waiter<T>[] = [];

  /** Gives `item` to the first waiting taker, or keeps it for the next {@link Handoff.take}. */
  put(item: T): void {
    const waiter = this.#waiters.shift();
    if (waiter) waiter.resolve(item);
    else this.#ready.push(item);
  }

  /**
   * Resolves with the next item. When none is ready: rejects at once with `unavailable()` when
   * that gives an error (the producer is closed or failed), else waits for {@link Handoff.put},
   * {@link Handoff.fail} or `signal`.
   */
  take(signal: AbortSignal | undefined, unavailable: () => unknown): Promise<T> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#ready.length > 0) return Promise.resolve(this.#ready.shift()!);
    const err = unavailable();
    if (err !== undefined) return Promise.reject(err);
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(signal?.reason);
      };
      const waiter: Waiter<T> = {
        resolve: (item) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(item);
        },
        reject: (reason) => {
          signal?.removeEventListener("abort", onAbort);
          reject(reason);
        },
      };
      this.#waiters.push(waiter);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Rejects every waiting taker with `err`. */
  fail(err: unknown): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w.reject(err);
  }

  /** Removes and returns the first ready item that `match` accepts, if any. */
  claim(match: (item: T) => boolean): T | undefined {
    const i = this.#ready.findIndex(match);
    return i < 0 ? undefined : this.#ready.splice(i, 1)[0];
  }

  /** Removes and returns the items nobody took. */
  drain(): T[] {
    const items = this.#ready;
    this.#ready = [];
    return items;
  }
}
