/**
 * `host`, `host --once` and `combined` run the same host service (src/host/host_service.ts):
 * each keeps off a table whose run lock another process holds, the way the service does it
 * (docs/cli.md "host"). The library example in mod.ts runs it too (a doc test).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { withFileLock } from "../../src/host/store/file_lock.ts";
import { events, mailpeer } from "../support/cli.ts";
import { makeLocalSite } from "../support/local_site.ts";

/** Runs `fn` while this test process holds the site's table (as a running host would). */
async function whileHeld<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  return await withFileLock(join(dir, "table.json.run"), fn, { timeoutMs: 0 });
}

Deno.test("host --once on a table another host run holds does nothing, says so, and exits 0; the next run passes", async () => {
  const dir = await makeLocalSite();
  try {
    const busy = await whileHeld(
      dir,
      () =>
        mailpeer(["host", "--once", "--wait", "0s", "--config", "host.toml", "--json"], {
          cwd: dir,
        }),
    );
    assert.equal(busy.code, 0, busy.stderr);
    const said = events(busy.stdout).map((e) => e.event);
    assert.deepEqual(said, ["host-busy"], busy.stdout);
    const run = await mailpeer(["host", "--once", "--config", "host.toml", "--json"], { cwd: dir });
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(events(run.stdout).map((e) => e.event), ["host-pass"], run.stdout);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

for (const command of [["host"], ["combined", "-m", "hi"]]) {
  Deno.test(`${command[0]} refuses to start on a table another host run holds, with one line naming the lock`, async () => {
    const dir = await makeLocalSite();
    try {
      const config = command[0] === "combined" ? "combined.toml" : "host.toml";
      const out = await whileHeld(
        dir,
        () => mailpeer([...command, "--config", config], { cwd: dir }),
      );
      assert.equal(out.code, 1, out.stdout + out.stderr);
      assert.match(out.stderr, /holds .*table\.json\.run\.lock/);
      assert.equal(out.stderr.trim().split("\n").filter((l) => l.includes("Cannot")).length, 1);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
