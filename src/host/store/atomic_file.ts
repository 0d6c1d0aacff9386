/**
 * Replacing a small file atomically: the whole new content goes to a temp file beside it,
 * which is flushed to disk and renamed over the file, then the directory entry is flushed. A
 * crash leaves either the old or the new file, and at worst an orphan temp file, which
 * {@link sweepTempFiles} removes (call it under the file's lock).
 *
 * @module
 */
import { HostError } from "../../errors.ts";

/** Writes `bytes` to a temp file beside `path`, flushes it to disk and renames it over `path`. */
export async function writeAtomically(
  path: string,
  bytes: Uint8Array,
  what = "the control table",
): Promise<void> {
  const dir = parentDir(path);
  const suffix = Array.from(crypto.getRandomValues(new Uint8Array(6)))
    .map((b) => b.toString(16).padStart(2, "0")).join("");
  const temp = `${path}${TEMP_INFIX}${Deno.pid}-${suffix}`;
  try {
    // The lock file made the directory; make it again only if someone removed it since.
    const options = { write: true, createNew: true, mode: 0o600 };
    const file = await Deno.open(temp, options).catch(async (err) => {
      if (!(err instanceof Deno.errors.NotFound) || dir === undefined) throw err;
      await Deno.mkdir(dir, { recursive: true });
      return await Deno.open(temp, options);
    });
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
      `Cannot write ${what} ${path}: ${
        err instanceof Error ? err.message : String(err)
      }; check that its directory is writable and the disk is not full`,
      { cause: err },
    );
  }
  await syncDir(dir ?? ".");
}

/** Temp files are `<file>.tmp-<pid>-<12 hex digits>`. */
const TEMP_INFIX = ".tmp-";
const TEMP_TAIL = /^\d+-[0-9a-f]{12}$/;

/**
 * Removes the temp files a writer killed between creating and renaming them left beside
 * `path`. Called under the lock, when no writer of this table can be between the two.
 * Best effort: a file that cannot be listed or removed stays.
 */
export async function sweepTempFiles(path: string): Promise<void> {
  const dir = parentDir(path);
  const prefix = baseName(path) + TEMP_INFIX;
  try {
    for await (const entry of Deno.readDir(dir ?? ".")) {
      const name = entry.name;
      if (!entry.isFile || !name.startsWith(prefix)) continue;
      if (!TEMP_TAIL.test(name.slice(prefix.length))) continue;
      await Deno.remove(dir === undefined ? name : `${dir}/${name}`).catch(() => {});
    }
  } catch {
    // No directory yet, or not listable: nothing to sweep.
  }
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

function baseName(path: string): string {
  return path.slice(Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\")) + 1);
}

function parentDir(path: string): string | undefined {
  const cut = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  if (cut < 0) return undefined;
  return cut === 0 ? path.slice(0, 1) : path.slice(0, cut);
}
