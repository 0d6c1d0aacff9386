/**
 * The default {@link TableStore}: the control table in one JSON file,
 * `{ "version": 1, "rows": [...] }`, one row per line.
 *
 * Updates hold a cross-process lock (see host/store/file_lock.ts), so overlapping cron runs cannot lose
 * each other's rows, and replace the file atomically (temp file, fsync, rename, directory
 * fsync), so a crash leaves either the old or the new table. Reads take no lock: they always
 * see a whole file. The first update of a store removes temp files that a killed writer left.
 *
 * Speed: a store remembers the bytes it last read or wrote, the rows they hold (private copies,
 * never handed out) and each row's line. When the file still holds exactly those bytes it is
 * not parsed and validated again; the file is always read and compared, never judged by its
 * inode, size and mtime, so another process's change is seen even within one mtime tick. Rows
 * the caller returns as it got them (checked field by field) keep their validated copy and
 * their encoded line; only new or changed rows are validated and serialised.
 *
 * @module
 */
import { HostError } from "../../errors.ts";
import { type Clock, systemClock } from "../../runtime.ts";
import { sweepTempFiles, writeAtomically } from "./atomic_file.ts";
import { withFileLock } from "./file_lock.ts";
import { cloneRow, validateRows } from "../table.ts";
import { acceptRows } from "./accepted_rows.ts";
import type { PeerRow, TableStore } from "../types.ts";

/** Version of the table file format. */
export const TABLE_FILE_VERSION = 1;

/** Options of {@link JsonFileStore}. */
export interface JsonFileStoreOptions {
  /** Time source for lock waits. Default the system clock. */
  clock?: Clock;
  /** How long an update waits for another process's lock, in ms. Default TABLE_LOCK_TIMEOUT_MS. */
  lockTimeoutMs?: number;
}

/** The file as this store last read or wrote it. */
interface Snapshot {
  bytes: Uint8Array;
  /** Validated rows; private, callers get copies. */
  rows: PeerRow[];
}

const encoder = new TextEncoder();
const HEAD = encoder.encode(`{"version":${TABLE_FILE_VERSION},"rows":[\n`);
const SEPARATOR = encoder.encode(",\n");
const TAIL = encoder.encode("\n]}\n");

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
  #snapshot: Snapshot | undefined;
  /** The buffer the file is read into, so reading an unchanged file allocates nothing. */
  #scratch: Uint8Array | undefined = new Uint8Array(0);
  /** A buffer nothing refers to, for the next file write (saves allocating and zeroing one). */
  #spare: Uint8Array | undefined;
  /** Each private row → its line in the file, encoded. */
  readonly #lines = new WeakMap<PeerRow, Uint8Array>();
  #swept = false;

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
    return (await this.#load()).map(cloneRow);
  }

  /** Runs `fn` on the current rows under the file lock and writes its rows atomically. */
  update<T>(
    fn: (
      rows: PeerRow[],
    ) => { rows: PeerRow[]; result: T } | Promise<{ rows: PeerRow[]; result: T }>,
  ): Promise<T> {
    const run = () =>
      withFileLock(this.#path, async () => {
        if (!this.#swept) {
          this.#swept = true;
          await sweepTempFiles(this.#path);
        }
        const origin = new Map<PeerRow, PeerRow>(); // each copy handed out → its private row
        const current = (await this.#load()).map((row) => {
          const copy = cloneRow(row);
          origin.set(copy, row);
          return copy;
        });
        const { rows, result } = await fn(current);
        await this.#write(rows, origin);
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

  /** The validated rows of the file (private: hand out copies), reusing the last parse. */
  async #load(): Promise<PeerRow[]> {
    const scratch = this.#scratch ?? new Uint8Array(0); // undefined: a concurrent read has it
    this.#scratch = undefined;
    let view: Uint8Array;
    try {
      view = await readInto(this.#path, scratch);
    } catch (err) {
      this.#scratch = scratch;
      if (err instanceof Deno.errors.NotFound) return [];
      throw new HostError(
        "ETABLE",
        `Cannot read the control table ${this.#path}: ${
          err instanceof Error ? err.message : String(err)
        }; check the file's permissions`,
        { cause: err },
      );
    }
    // No await from here on, so the next read may have the buffer (perhaps grown) back.
    this.#scratch = new Uint8Array(view.buffer);
    const last = this.#snapshot;
    if (last !== undefined && sameBytes(view, last.bytes)) return last.rows;
    const bytes = view.slice();
    const rows = this.#parse(new TextDecoder().decode(bytes));
    this.#snapshot = { bytes, rows };
    return rows;
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

  async #write(rows: PeerRow[], origins: ReadonlyMap<PeerRow, PeerRow>): Promise<void> {
    const accepted = acceptRows(rows, origins);
    const lines = accepted.map((row) => {
      let line = this.#lines.get(row);
      if (line === undefined) {
        line = encoder.encode(JSON.stringify(row));
        this.#lines.set(row, line);
      }
      return line;
    });
    const bytes = joinLines(lines, this.#spare);
    this.#spare = undefined;
    try {
      await writeAtomically(this.#path, bytes);
    } catch (err) {
      this.#spare = new Uint8Array(bytes.buffer);
      throw err;
    }
    const previous = this.#snapshot;
    this.#snapshot = { bytes, rows: accepted };
    // Nothing uses the previous file bytes after a compare, which never awaits.
    if (previous !== undefined) this.#spare = new Uint8Array(previous.bytes.buffer);
  }
}

/**
 * Reads the file at `path` into `buffer`, or into a larger buffer when it does not fit; returns
 * the bytes read, a view of that buffer.
 */
async function readInto(path: string, buffer: Uint8Array): Promise<Uint8Array> {
  const file = await Deno.open(path, { read: true });
  try {
    let size = 0;
    for (;;) {
      if (size === buffer.length) {
        const larger = new Uint8Array(Math.max(64 * 1024, buffer.length * 2));
        larger.set(buffer);
        buffer = larger;
      }
      const n = await file.read(buffer.subarray(size));
      if (n === null) return buffer.subarray(0, size);
      size += n;
    }
  } finally {
    file.close();
  }
}

/** The file's bytes: `HEAD`, the lines separated by `SEPARATOR`, `TAIL`; in `spare` if it fits. */
function joinLines(lines: readonly Uint8Array[], spare: Uint8Array | undefined): Uint8Array {
  let size = HEAD.length + TAIL.length + SEPARATOR.length * Math.max(0, lines.length - 1);
  for (const line of lines) size += line.length;
  // Room to grow, so the next table (a row more, a longer history) fits a reused buffer.
  const bytes = spare !== undefined && spare.length >= size
    ? spare.subarray(0, size)
    : new Uint8Array(size + (size >>> 4)).subarray(0, size);
  bytes.set(HEAD);
  let at = HEAD.length;
  lines.forEach((line, i) => {
    if (i > 0) {
      bytes.set(SEPARATOR, at);
      at += SEPARATOR.length;
    }
    bytes.set(line, at);
    at += line.length;
  });
  bytes.set(TAIL, at);
  return bytes;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  const words = a.byteOffset % 4 === 0 && b.byteOffset % 4 === 0 ? a.length >>> 2 : 0;
  const x = new Int32Array(a.buffer, a.byteOffset, words);
  const y = new Int32Array(b.buffer, b.byteOffset, words);
  for (let i = 0; i < words; i++) if (x[i] !== y[i]) return false;
  for (let i = words * 4; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
