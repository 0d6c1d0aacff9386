/**
 * A test's own temporary directory: made before `fn`, removed after it, whatever `fn` did.
 *
 * @module
 */

/** Runs `fn` in a new temporary directory named `<prefix>…`, removed afterwards. */
export async function withTempDir(
  prefix: string,
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
