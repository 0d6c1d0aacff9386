/**
 * A {@link TableStore} in memory, for tests, the combined mode and one-shot runs.
 *
 * @module
 */
import { cloneRow } from "../table.ts";
import type { PeerRow, TableStore } from "../types.ts";

/**
 * The control table in memory. Updates run one at a time in call order, and rows are copied
 * in and out, so no caller can change the stored table except through {@link update}.
 *
 * @example
 * ```ts
 * const store = new MemoryStore();
 * await store.update((rows) => ({ rows: [...rows, row], result: undefined }));
 * ```
 */
export class MemoryStore implements TableStore {
  #rows: PeerRow[];
  #queue: Promise<unknown> = Promise.resolve();

  /** @param rows the initial table (copied). Default empty. */
  constructor(rows: readonly PeerRow[] = []) {
    this.#rows = rows.map(cloneRow);
  }

  /** A copy of the whole table. */
  read(): Promise<PeerRow[]> {
    return Promise.resolve(this.#rows.map(cloneRow));
  }

  /**
   * Runs `fn` on a copy of the rows after every earlier update has settled, and stores a copy
   * of the rows it returns. When `fn` throws, the table is unchanged and the error propagates.
   */
  update<T>(
    fn: (
      rows: PeerRow[],
    ) => { rows: PeerRow[]; result: T } | Promise<{ rows: PeerRow[]; result: T }>,
  ): Promise<T> {
    const run = async () => {
      const { rows, result } = await fn(this.#rows.map(cloneRow));
      this.#rows = rows.map(cloneRow);
      return result;
    };
    const done = this.#queue.then(run, run);
    this.#queue = done.catch(() => {});
    return done;
  }

  /** Nothing to release. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}
