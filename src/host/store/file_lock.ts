/**
 * A cross-process exclusive lock on a file path, so overlapping cron runs of the host never
 * update the control table at the same time.
 *
 * Choice: an advisory `flock` (`Deno.FsFile.tryLockSync`) on `<path>.lock`, not a lock file
 * made with `createNew` that holds a pid. The kernel releases a flock when its holder exits or
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
 * An uncontended lock and its release are eight small synchronous syscalls (open, flock,
 * fstat, stat, write; stat, unlink, close), ~0.2 ms in all on a loaded machine; as async ops,
 * each a trip through Deno's thread pool, they took a millisecond or more under load.
 *
 * @module
 */
import { HostError } from "../../errors.ts";
import { TABLE_LOCK_TIMEOUT_MS } from "../../limits.ts";
import { type Clock, systemClock } from "../../runtime.ts";

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
/** The `cause` of the error {@link withFileLock} throws when another holder kept the lock. */
const LOCK_HELD = "lock wait timed out";

/** True for the error of a lock that another live process held past the wait. */
export function isLockHeld(err: unknown): boolean {
  return err instanceof HostError && err.code === "ETABLE" && err.cause === LOCK_HELD;
}

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
    release(held, lockPath);
  }
}

interface HeldLock {
  file: Deno.FsFile;
  /** The locked file's identity, to remove it on release; undefined where inodes are unknown. */
  identity?: FileIdentity;
}

interface FileIdentity {
  dev: number;
  ino: number;
}

async function acquire(path: string, lockPath: string, options: FileLockOptions) {
  const clock = options.clock ?? systemClock;
  const deadline = clock.now() + (options.timeoutMs ?? TABLE_LOCK_TIMEOUT_MS);
  const firstDelay = options.retryDelayMs ?? 10;
  for (let attempt = 0;; attempt++) {
    const held = tryAcquire(path, lockPath, clock);
    if (held === "moved") continue; // The previous holder removed this file; lock the new one.
    if (held !== undefined) return held;
    // The attempt made no async op: let the event loop run (a holder in this process needs
    // it to finish) even when the clock's sleep resolves at once, as a test clock's does.
    await new Promise((resolve) => setTimeout(resolve, 0));
    const left = deadline - clock.now();
    if (left <= 0) throw await timeoutError(path, lockPath);
    const backoff = Math.min(MAX_RETRY_DELAY_MS, firstDelay * 2 ** Math.min(attempt, 16));
    await clock.sleep(Math.min(left, backoff * (0.5 + Math.random() / 2)), options.signal);
  }
}

/** One attempt: open, flock, check the file still is `lockPath`, record the owner. */
function tryAcquire(path: string, lockPath: string, clock: Clock): HeldLock | "moved" | undefined {
  const file = openLockFile(path, lockPath);
  try {
    let locked: boolean;
    try {
      locked = file.tryLockSync(true);
    } catch (err) {
      throw new HostError(
        "ETABLE",
        `Cannot lock the control table ${path}: the file system refused a lock on ${lockPath} (${
          describe(err)
        }); keep the table on a local file system`,
        { cause: err },
      );
    }
    if (!locked) {
      file.close();
      return undefined;
    }
    const mine = file.statSync();
    const identity = mine.ino === null ? undefined : { dev: mine.dev, ino: mine.ino };
    if (identity !== undefined && !isAtPath(identity, lockPath)) {
      file.close();
      return "moved";
    }
    recordOwner(file, mine.size, clock.now());
    return { file, identity };
  } catch (err) {
    file.close();
    throw err;
  }
}

function openLockFile(path: string, lockPath: string): Deno.FsFile {
  const open = () => Deno.openSync(lockPath, { read: true, write: true, create: true });
  let failure: unknown;
  try {
    return open();
  } catch (err) {
    failure = err;
  }
  const dir = lockPath.replace(/[\\/][^\\/]*$/, "");
  if (failure instanceof Deno.errors.NotFound && dir !== lockPath && dir !== "") {
    try {
      Deno.mkdirSync(dir, { recursive: true });
      return open();
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

/** True when `lockPath` names the file `identity` describes. */
function isAtPath(identity: FileIdentity, lockPath: string): boolean {
  let current: Deno.FileInfo;
  try {
    current = Deno.statSync(lockPath);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
  return current.ino === identity.ino && current.dev === identity.dev;
}

/** Writes the holder into the lock file (a fresh descriptor writes from offset 0). */
function recordOwner(file: Deno.FsFile, oldSize: number, now: number): void {
  const text = JSON.stringify({ pid: Deno.pid, since: new Date(now).toISOString() }) + "\n";
  const bytes = new TextEncoder().encode(text);
  for (let done = 0; done < bytes.length;) done += file.writeSync(bytes.subarray(done));
  if (oldSize > bytes.length) file.truncateSync(bytes.length); // a longer record left behind
}

function release(held: HeldLock, lockPath: string): void {
  try {
    if (held.identity !== undefined && isAtPath(held.identity, lockPath)) {
      Deno.removeSync(lockPath);
    }
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
    { cause: LOCK_HELD },
  );
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
