/**
 * Injected sources of time, randomness and backoff, so tests need no sleeps.
 *
 * @module
 */

/** A source of the current time and of timers. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /** Resolves after `ms` milliseconds, or rejects with the signal's reason when aborted. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/**
 * The reason to abort a timer's signal with once its wait no longer matters (a handshake
 * done, a link closed). A plain value: `abort()` without a reason builds a `DOMException` with
 * its stack each time, which was 4 % of the CPU of a peer handshake and close.
 */
export const TIMER_CANCELLED = "cancelled";

/** A source of random bytes. */
export type RandomSource = (length: number) => Uint8Array;

/** Delay in ms before retry number `attempt` (0-based). */
export type Backoff = (attempt: number) => number;

/** The real clock. */
export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) => timerSleep(ms, signal, false),
};

/**
 * The real clock, whose sleeps do not keep the process alive (`Deno.unrefTimer`): for upkeep
 * that matters only while something else runs, such as an idle connection's QUIT.
 */
export const backgroundClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) => timerSleep(ms, signal, true),
};

function timerSleep(ms: number, signal: AbortSignal | undefined, unref: boolean): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    if (unref) Deno.unrefTimer(timer);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Cryptographically secure random bytes. */
export const systemRandom: RandomSource = (length) =>
  crypto.getRandomValues(new Uint8Array(length));

/** Exponential backoff: `base * 2^attempt`, capped at `max`. */
export function exponentialBackoff(base = 100, max = 5_000): Backoff {
  return (attempt) => Math.min(max, base * 2 ** attempt);
}
