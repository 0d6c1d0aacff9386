/**
 * The permissions the CLI runs with: the `--allow-*` flags of deno.json's `mailpeer` task, read
 * from there (one list, as `tests/support/cli.ts` reads its `--allow-ffi` paths), so the peer
 * bench's "CLI default" ends hold exactly what a user's `deno task mailpeer` holds.
 *
 * @module
 */

/** The `--allow-*` flags of the `mailpeer` task in `denoJson` (deno.json's text), in order. */
export function cliPermissions(denoJson: string): string[] {
  const task = JSON.parse(denoJson)?.tasks?.mailpeer;
  if (typeof task !== "string") throw new Error("deno.json has no mailpeer task");
  const flags = task.split(/\s+/).filter((word) => word.startsWith("--allow-"));
  if (flags.length === 0) throw new Error("deno.json's mailpeer task grants no permission");
  return flags;
}

/** {@link cliPermissions} of the project's own deno.json. */
export function projectCliPermissions(): string[] {
  return cliPermissions(Deno.readTextFileSync(new URL("../../deno.json", import.meta.url)));
}
