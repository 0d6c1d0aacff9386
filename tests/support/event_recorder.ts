/**
 * The events of several in-process services of a real-mail test, each tagged with its service,
 * and a way to await one (no sleeps: a guard timer only names an event that never came).
 */
import type { MailpeerEvent } from "../../src/events.ts";

/** How long an awaited host event may take before the test names it as missing (a guard). */
const GUARD_MS = 60_000;

/** Events of named services (hosts, members), each tagged with its name. */
export class Recorder {
  readonly events: (MailpeerEvent & { host: string })[] = [];
  #waiters: { test: (e: MailpeerEvent & { host: string }) => boolean; resolve: () => void }[] = [];

  sink(host: string) {
    return (event: MailpeerEvent) => {
      const tagged = { ...event, host };
      this.events.push(tagged);
      for (const w of this.#waiters.filter((w) => w.test(tagged))) w.resolve();
      this.#waiters = this.#waiters.filter((w) => !w.test(tagged));
    };
  }

  /** Resolves once `count` recorded events pass `test` (those already recorded count). */
  async until(
    what: string,
    test: (e: MailpeerEvent & { host: string }) => boolean,
    count = 1,
  ): Promise<void> {
    let guard: ReturnType<typeof setTimeout> | undefined;
    const missing = new Promise<never>((_, reject) => {
      guard = setTimeout(() => reject(new Error(`no ${what} came`)), GUARD_MS);
    });
    const reached = async () => {
      while (this.events.filter(test).length < count) {
        await new Promise<void>((resolve) => this.#waiters.push({ test, resolve }));
      }
    };
    try {
      await Promise.race([reached(), missing]);
    } finally {
      clearTimeout(guard);
    }
  }

  of(host: string, event: string): Record<string, unknown>[] {
    return (this.events as unknown as Record<string, unknown>[])
      .filter((e) => e.host === host && e.event === event);
  }
}
