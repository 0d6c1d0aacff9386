import assert from "node:assert/strict";
import { isMailpeerError } from "../../src/errors.ts";
import { withFileLock } from "../../src/host/store/file_lock.ts";
import type { Clock } from "../../src/runtime.ts";
import { withTempDir } from "../support/temp_dir.ts";

/** A clock whose sleeps return at once; it fails the test after `maxSleeps` sleeps. */
function instantClock(maxSleeps = 10_000): Clock & { sleeps: () => number } {
  let now = Date.UTC(2026, 0, 1);
  let sleeps = 0;
  return {
    now: () => now,
    sleep: (ms) => {
      if (++sleeps > maxSleeps) throw new Error(`still waiting after ${maxSleeps} sleeps`);
      now += ms;
      return Promise.resolve();
    },
    sleeps: () => sleeps,
  };
}

async function names(dir: string): Promise<string[]> {
  const found = [];
  for await (const entry of Deno.readDir(dir)) found.push(entry.name);
  return found.sort();
}

Deno.test("holders in one process take turns even when the waiters' clock never waits", async () => {
  await withTempDir("mailpeer-lock-", async (dir) => {
    const path = `${dir}/table.json`;
    const clock = instantClock();
    let inside = 0;
    let most = 0;
    const order: number[] = [];
    // Each holder does real file I/O, which needs the event loop while the others retry.
    await Promise.all(Array.from({ length: 5 }, (_, i) =>
      withFileLock(path, async () => {
        most = Math.max(most, ++inside);
        await Deno.writeTextFile(`${dir}/work`, String(i));
        await Deno.readTextFile(`${dir}/work`);
        inside--;
        order.push(i);
      }, { clock, timeoutMs: Number.MAX_SAFE_INTEGER })));
    assert.equal(most, 1, "never two holders at once");
    assert.deepEqual([...order].sort(), [0, 1, 2, 3, 4]);
    assert.deepEqual(await names(dir), ["work"], "the lock file is removed after each holder");
  });
});

Deno.test("the lock file names the holder, even over a longer record left behind", async () => {
  await withTempDir("mailpeer-lock-", async (dir) => {
    const path = `${dir}/table.json`;
    const old = JSON.stringify({
      pid: 1,
      since: "2020-01-01T00:00:00.000Z",
      note: "x".repeat(200),
    });
    await Deno.writeTextFile(`${path}.lock`, old + "\n"); // not locked by anyone
    const clock = instantClock(0);
    const record = await withFileLock(
      path,
      async () => JSON.parse(await Deno.readTextFile(`${path}.lock`)),
      { clock, timeoutMs: 0 },
    );
    assert.deepEqual(record, { pid: Deno.pid, since: new Date(clock.now()).toISOString() });
    assert.deepEqual(await names(dir), []);
  });
});

Deno.test("a busy lock times out with the holder's pid, and is released when its holder fails", async () => {
  await withTempDir("mailpeer-lock-", async (dir) => {
    const path = `${dir}/state/table.json`; // the directory is made on the way
    const boom = new Error("boom");
    let release!: () => void;
    const held = new Promise<void>((resolve) => release = resolve);
    const holder = withFileLock(path, async () => {
      await held;
      throw boom;
    });
    await Promise.resolve();
    const clock = instantClock();
    await assert.rejects(
      withFileLock(path, () => Promise.resolve(), { clock, timeoutMs: 50 }),
      (err: unknown) => {
        assert.ok(isMailpeerError(err) && err.code === "ETABLE", String(err));
        assert.ok(
          err.message.startsWith(
            `Cannot lock the control table ${path}: another mailpeer host (pid ${Deno.pid}) ` +
              `holds ${path}.lock since `,
          ),
          err.message,
        );
        return true;
      },
    );
    assert.ok(clock.sleeps() > 0);
    release();
    await assert.rejects(holder, (err) => err === boom);
    assert.deepEqual(await names(`${dir}/state`), [], "released and removed after the throw");
    const zero = instantClock(0);
    assert.equal(await withFileLock(path, () => Promise.resolve(7), { clock: zero }), 7);
  });
});
