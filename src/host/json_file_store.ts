/**
 * The default {@link TableStore}: the control table in one JSON file,
 * `{ "version": 1, "rows": [...] }`, one row per line.
 *
 * Updates hold a cross-process lock (see file_lock.ts), so overlapping cron runs cannot lose
 * each other's rows, and replace the file atomically (temp file, fsync, rename), so a crash
 * leaves either the old or the new table. Reads take no lock: they always see a whole file.
 *
 * @module
 */
import { HostError } from "../errors.ts";
import { type Clock, systemClock } from "../runtime.ts";
import { withFileLock } from "./file_lock.ts";
import { validateRows } from "./table.ts";
import type { PeerRow, TableStore } from "./types.ts";

/** Version of the table file format. */
export const TABLE_FILE_VERSION = 1;

/** Options of {@link JsonFileStore}. */
export interface JsonFileStoreOptions {
  /** Time source for lock waits. Default the system clock. */
  clock?: Clock;
  /** How long an update waits for another process's lock, in ms. Default TABLE_LOCK_TIMEOUT_MS. */
  lockTimeoutMs?: number;
}

/**
 * The control table in a JSON file.
 *
 * @example
 * ```ts
 * const store = new JsonFileStore("/var/lib/mailpeer/table.json");
 * const count = await store.update((rows) => ({ rows, result: rows.length }));
 * ```
 */
export class JsonFileStore implements TableStore {
  readonly #path: string;
  readonly #options: JsonFileStoreOptions;
  /** Serialises this instance's updates, so they queue instead of polling the file lock. */
  #queue: Promise<unknown> = Promise.resolve();

  /** @param path the table file; its directory is created on the first update. */
  constructor(path: string, options: JsonFileStoreOptions = {}) {
    this.#path = path;
    this.#options = options;
  }

  /** The table file. */
  get path(): string {
    return this.#path;
  }

  /**
   * Reads the whole table; a missing file is an empty table.
   *
   * @throws {HostError} code `ETABLE` when the file is not a valid table.
   */
  async read(): Promise<PeerRow[]> {
    let text: string;
    try {
      text = await Deno.readTextFile(this.#path);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return [];
      throw new HostError(
        "ETABLE",
        `Cannot read the control table ${this.#path}: ${
          err instanceof Error ? err.message : String(err)
        }; check the file's permissions`,
        { cause: err },
      );
    }
    return this.#parse(text);
  }

  /** Runs `fn` on the current rows under the file lock and writes its rows atomically. */
  update<T>(
    fn: (
      rows: PeerRow[],
    ) => { rows: PeerRow[]; result: T } | Promise<{ rows: PeerRow[]; result: T }>,
  ): Promise<T> {
    const run = () =>
      withFileLock(this.#path, async () => {
        const { rows, result } = await fn(await this.read());
        await this.#write(rows);
        return result;
      }, { clock: this.#options.clock ?? systemClock, timeoutMs: this.#options.lockTimeoutMs });
    const done = this.#queue.then(run, run);
    this.#queue = done.catch(() => {});
    return done;
  }

  /** Nothing to release. */
  close(): Promise<void> {
    return Promise.resolve();
  }

  #parse(text: string): PeerRow[] {
    const bad = (what: string, cause: unknown): never => {
      throw new HostError(
        "ETABLE",
        `Cannot read the control table ${this.#path}: ${what}; move it away, ` +
          `the host rebuilds the table from new requests`,
        { cause },
      );
    };
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (err) {
      return bad(`it is not valid JSON (${err instanceof Error ? err.message : err})`, err);
    }
    if (typeof data !== "object" || data === null || !("version" in data) || !("rows" in data)) {
      return bad(`it is not a mailpeer table (no "version" and "rows")`, "bad shape");
    }
    if (data.version !== TABLE_FILE_VERSION) {
      return bad(
        `its version ${JSON.stringify(data.version)} is not ${TABLE_FILE_VERSION} ` +
          `(written by another mailpeer version?)`,
        "bad version",
      );
    }
    try {
      return validateRows(data.rows);
    } catch (err) {
      return bad(err instanceof HostError ? String(err.cause) : String(err), err);
    }
  }

  async #write(rows: PeerRow[]): Promise<void> {
    let valid: PeerRow[];
    try {
      valid = validateRows(rows);
    } catch (err) {
      throw new TypeError(
        `Cannot store the control table: the update returned a bad table (${
          err instanceof HostError ? err.cause : err
        }); this is a bug in the caller`,
        { cause: err },
      );
    }
    const lines = valid.map((row) => JSON.stringify(row));
    const text = `{"version":${TABLE_FILE_VERSION},"rows":[\n${lines.join(",\n")}\n]}\n`;
    await writeAtomically(this.#path, new TextEncoder().encode(text));
  }
}

/** Writes `bytes` to a temp file beside `path`, flushes it to disk and renames it over `path`. */
async function writeAtomically(path: string, bytes: Uint8Array): Promise<void> {
  const dir = parentDir(path);
  if (dir !== undefined) await Deno.mkdir(dir, { recursive: true });
  const suffix = Array.from(crypto.getRandomValues(new Uint8Array(6)))
    .map((b) => b.toString(16).padStart(2, "0")).join("");
  const temp = `${path}.tmp-${Deno.pid}-${suffix}`;
  try {
    const file = await Deno.open(temp, { write: true, createNew: true, mode: 0o600 });
    try {
      for (let done = 0; done < bytes.length;) done += await file.write(bytes.subarray(done));
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(temp, path);
  } catch (err) {
    await Deno.remove(temp).catch(() => {});
    throw new HostError(
      "ETABLE",
      `Cannot write the control table ${path}: ${
        err instanceof Error ? err.message : String(err)
      }; check that its directory is writable and the disk is not full`,
      { cause: err },
    );
  }
  await syncDir(dir ?? ".");
}

/** Flushes a directory entry (the rename) to disk; best effort, not every OS allows it. */
async function syncDir(dir: string): Promise<void> {
  try {
    const handle = await Deno.open(dir, { read: true });
    try {
      await handle.sync();
    } finally {
      handle.close();
    }
  } catch {
    // Windows cannot open a directory; the rename itself is still atomic.
  }
}

function parentDir(path: string): string | undefined {
  const cut = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  if (cut < 0) return undefined;
  return cut === 0 ? path.slice(0, 1) : path.slice(0, cut);
}
