/**
 * The clock of tests: time moves only when a test moves it, and the code under test going to
 * sleep is an event a test can await (docs/development.md "Tests depend on behaviour, never on
 * scheduling or wall time").
 */
import type { Clock } from "../../src/runtime.ts";

/**
 * A clock for tests: time moves only when {@link ManualClock.advance} is called.
 */
export class ManualClock implements Clock {
  #now: number;
  #timers: { at: number; resolve: () => void }[] = [];
  #watchers: { count: number; resolve: () => void }[] = [];

  constructor(start: number = Date.UTC(2026, 0, 1)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const timer = { at: this.#now + ms, resolve };
      this.#timers.push(timer);
      this.#wakeWatchers();
      signal?.addEventListener("abort", () => {
        this.#timers = this.#timers.filter((t) => t !== timer);
        reject(signal.reason);
      }, { once: true });
    });
  }

  /** How many sleeps are waiting (lets a test see that code under test went to sleep). */
  get sleepers(): number {
    return this.#timers.length;
  }

  /**
   * Resolves once at least `count` sleeps are waiting: the event of code under test going to
   * sleep (awaiting it needs no wall time and no polling).
   */
  sleeping(count = 1): Promise<void> {
    if (this.#timers.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.#watchers.push({ count, resolve }));
  }

  /** Milliseconds until the earliest waiting sleep is due, or undefined when none waits. */
  get nextWakeIn(): number | undefined {
    if (this.#timers.length === 0) return undefined;
    return Math.min(...this.#timers.map((t) => t.at)) - this.#now;
  }

  #wakeWatchers(): void {
    const ready = this.#watchers.filter((w) => this.#timers.length >= w.count);
    this.#watchers = this.#watchers.filter((w) => this.#timers.length < w.count);
    for (const w of ready) w.resolve();
  }

  /** Moves time forward and wakes every sleeper whose time has come. */
  advance(ms: number): void {
    this.#now += ms;
    const due = this.#timers.filter((t) => t.at <= this.#now);
    this.#timers = this.#timers.filter((t) => t.at > this.#now);
    for (const t of due) t.resolve();
  }
}
