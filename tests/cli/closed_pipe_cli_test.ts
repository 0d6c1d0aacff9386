/**
 * `mailpeer … --json | head -1`: a reader that goes away early ends the run quietly, as Unix
 * tools do on a closed pipe, never with a stack trace (src/cli/output.ts `writeQuietly`).
 */
import assert from "node:assert/strict";
import { makeLocalSite } from "../support/local_site.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

Deno.test("a --json run whose reader closed the pipe after one line ends without a stack trace", async () => {
  const dir = await makeLocalSite();
  try {
    // doctor prints a line per check; with the key file gone one fails, and the run ends with
    // an error event: written after the reader left.
    await Deno.remove(`${dir}/host.keys.json`);
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-prompt",
        "--cached-only",
        "-A",
        MAIN,
        "doctor",
        "--config",
        "host.toml",
        "--json",
      ],
      cwd: dir,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    const reader = child.stdout.getReader();
    const first = await reader.read(); // the first line (or more) arrived: now go away
    assert.ok(!first.done);
    await reader.cancel();
    const [status, stderr] = await Promise.all([
      child.status,
      new Response(child.stderr).text(),
    ]);
    assert.doesNotMatch(stderr, /BrokenPipe|Broken pipe|at .*\.ts:\d+/, stderr);
    assert.ok(status.code === 0 || status.code === 1, `exit ${status.code}: ${stderr}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
