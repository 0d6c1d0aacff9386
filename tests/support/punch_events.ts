/** Collects the events of a punch (`PunchOptions.onEvent`) and lets a test await one. */
import type { PunchEvent } from "../../src/peer/types.ts";

/** Pass `events.on` as `onEvent`; `next(test)` resolves with the first event that passes. */
export class Events {
  list: PunchEvent[] = [];
  #waiters: { test: (e: PunchEvent) => boolean; resolve: (e: PunchEvent) => void }[] = [];
  on = (e: PunchEvent) => {
    this.list.push(e);
    const ready = this.#waiters.filter((w) => w.test(e));
    this.#waiters = this.#waiters.filter((w) => !w.test(e));
    for (const w of ready) w.resolve(e);
  };
  next(test: (e: PunchEvent) => boolean): Promise<PunchEvent> {
    const seen = this.list.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.#waiters.push({ test, resolve }));
  }
}
