/**
 * A cross-process exclusive lock on a file path, so overlapping cron runs of the host never
 * update the control table at the same time.
 *
 * Choice: an advisory `flock` (`Deno.FsFile.tryLock`) on `<path>.lock`, not a lock file made
 * with `createNew` that holds a pid. The kernel releases a flock when its holder exits or
 * crashes (even on `kill -9` or power loss), so there is never a stale lock to judge by age or
 * pid (pids are reused, and a pid says nothing across machines or containers), and no race
 * between two waiters breaking the same stale lock. The lock file also records the holder's
 * pid and start time, only to name them in the timeout message.
 *
 * The holder removes the lock file when done. A waiter may then hold a lock on the removed
 * file, so after locking it checks that `<path>.lock` still is the file it locked (same
 * inode) and starts over otherwise. Where inodes are unknown (Windows), the file is left in
 * place instead, which is equally safe.
 *
 * @module
 */
import { HostError } from "../errors.ts";
import { TABLE_LOCK_TIMEOUT_MS } from "../limits.ts";
import { type Clock, systemClock } from "../runtime.ts";

/** Options of {@link withFileLock}. */
export interface FileLockOptions {
  /** How long to wait for another holder, in ms; 0 tries once. Default TABLE_LOCK_TIMEOUT_MS. */
  timeoutMs?: number;
  /**
   * Accepted for compatibility and unused: the kernel releases a flock whose holder died, so a
   * lock that is still held always belongs to a live process and is never broken by age.
   */
  staleMs?: number;
  /** Time source for the deadline and the waits between attempts. Default the system clock. */
  clock?: Clock;
  /** First wait between attempts in ms, doubled up to 200 ms, with jitter. Default 10. */
  retryDelayMs?: number;
  /** Stops waiting for the lock. */
  signal?: AbortSignal;
}

const MAX_RETRY_DELAY_MS = 200;

/**
 * Runs `fn` while holding an exclusive lock on `path` (the lock file is `<path>.lock`), across
 * processes and within one process, and releases the lock when `fn` settles.
 *
 * @example
 * ```ts
 * await withFileLock("/var/lib/mailpeer/table.json", async () => {
 *   // read, change and write the table
 * });
 * ```
 * @throws {HostError} code `ETABLE` when another holder keeps the lock past `timeoutMs`, or
 *   the lock file cannot be created or locked.
 */
export async function withFileLock<T>(
  path: string,
  fn: () => Promise<T>,
  options: FileLockOptions = {},
): Promise<T> {
  const lockPath = `${path}.lock`;
  const held = await acquire(path, lockPath, options);
  try {
    return await fn();
  } finally {
    await release(held, lockPath);
  }
}

interface HeldLock {
  file: Deno.FsFile;
  /** Remove the lock file on release (only when its inode could be checked). */
  removable: boolean;
}

async function acquire(path: string, lockPath: string, options: FileLockOptions) {
  const clock = options.clock ?? systemClock;
  const deadline = clock.now() + (options.timeoutMs ?? TABLE_LOCK_TIMEOUT_MS);
  const firstDelay = options.retryDelayMs ?? 10;
  for (let attempt = 0;; attempt++) {
    const file = await openLockFile(path, lockPath);
    let locked: boolean;
    try {
      locked = await file.tryLock(true);
    } catch (err) {
      file.close();
      throw new HostError(
        "ETABLE",
        `Cannot lock the control table ${path}: the file system refused a lock on ${lockPath} (${
          describe(err)
        }); keep the table on a local file system`,
        { cause: err },
      );
    }
    if (locked) {
      const same = await stillAtPath(file, lockPath);
      if (same !== false) {
        await recordOwner(file, clock.now());
        return { file, removable: same === true };
      }
      file.close(); // The previous holder removed this file; lock the current one.
      continue;
    }
    file.close();
    const left = deadline - clock.now();
    if (left <= 0) throw await timeoutError(path, lockPath);
    const backoff = Math.min(MAX_RETRY_DELAY_MS, firstDelay * 2 ** Math.min(attempt, 16));
    await clock.sleep(Math.min(left, backoff * (0.5 + Math.random() / 2)), options.signal);
  }
}

async function openLockFile(path: string, lockPath: string): Promise<Deno.FsFile> {
  const open = () => Deno.open(lockPath, { read: true, write: true, create: true });
  let failure: unknown;
  try {
    return await open();
  } catch (err) {
    failure = err;
  }
  const dir = lockPath.replace(/[\\/][^\\/]*$/, "");
  if (failure instanceof Deno.errors.NotFound && dir !== lockPath && dir !== "") {
    try {
      await Deno.mkdir(dir, { recursive: true });
      return await open();
    } catch (err) {
      failure = err;
    }
  }
  throw new HostError(
    "ETABLE",
    `Cannot lock the control table ${path}: ${lockPath} cannot be opened (${
      describe(failure)
    }); check that the table directory exists and is writable`,
    { cause: failure },
  );
}

/** True when `lockPath` is the file `file` has open, false when not, undefined when unknown. */
async function stillAtPath(file: Deno.FsFile, lockPath: string): Promise<boolean | undefined> {
  const mine = await file.stat();
  let current: Deno.FileInfo;
  try {
    current = await Deno.stat(lockPath);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
  if (mine.ino === null || current.ino === null) return undefined;
  return mine.ino === current.ino && mine.dev === current.dev;
}

async function recordOwner(file: Deno.FsFile, now: number): Promise<void> {
  const text = JSON.stringify({ pid: Deno.pid, since: new Date(now).toISOString() }) + "\n";
  await file.truncate(0);
  await file.seek(0, Deno.SeekMode.Start);
  const bytes = new TextEncoder().encode(text);
  for (let done = 0; done < bytes.length;) done += await file.write(bytes.subarray(done));
}

async function release(held: HeldLock, lockPath: string): Promise<void> {
  try {
    if (held.removable && await stillAtPath(held.file, lockPath)) await Deno.remove(lockPath);
  } catch {
    // Leaving the lock file behind is harmless: it is unlocked once closed.
  } finally {
    held.file.close();
  }
}

async function timeoutError(path: string, lockPath: string): Promise<HostError> {
  let holder = "another mailpeer host";
  let since = "an unknown time";
  try {
    const owner: unknown = JSON.parse(await Deno.readTextFile(lockPath));
    if (typeof owner === "object" && owner !== null) {
      const { pid, since: at } = owner as { pid?: unknown; since?: unknown };
      if (typeof pid === "number") holder = `another mailpeer host (pid ${pid})`;
      if (typeof at === "string") since = at;
    }
  } catch {
    // The holder is between creating and describing the lock file.
  }
  return new HostError(
    "ETABLE",
    `Cannot lock the control table ${path}: ${holder} holds ${lockPath} since ${since}; ` +
      `wait for it to finish, or stop that process if it hangs (removing the file does not help)`,
    { cause: "lock wait timed out" },
  );
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
