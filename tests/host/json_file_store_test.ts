import assert from "node:assert/strict";
import { isMailpeerError } from "../../src/errors.ts";
import { JsonFileStore } from "../../src/host/json_file_store.ts";
import type { PeerRow } from "../../src/host/types.ts";
import type { Clock } from "../../src/runtime.ts";
import { sampleRow, tableStoreConformance } from "../conformance/table_store.ts";

const FILE_LOCK_URL = new URL("../../src/host/file_lock.ts", import.meta.url).href;
const STORE_URL = new URL("../../src/host/json_file_store.ts", import.meta.url).href;

tableStoreConformance("JsonFileStore", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mailpeer-table-" });
  return {
    store: new JsonFileStore(`${dir}/state/table.json`),
    cleanup: () => Deno.remove(dir, { recursive: true }),
  };
});

/** A clock whose sleeps return at once and move time forward; `onSleep` runs on each. */
function fastClock(onSleep: (call: number) => Promise<void> | void = () => {}): Clock {
  let now = Date.UTC(2026, 0, 1);
  let calls = 0;
  return {
    now: () => now,
    sleep: async (ms) => {
      now += ms;
      await onSleep(++calls);
    },
  };
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "mailpeer-table-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A Deno subprocess running `script`, which we can wait on and talk to over stdin/stdout. */
class Script {
  readonly #child: Deno.ChildProcess;
  readonly #stdout: ReadableStreamDefaultReader<string>;
  readonly #stderr: Promise<string>;
  #stdinOpen = true;
  #text = "";

  constructor(script: string, args: string[]) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", "--allow-read", "--allow-write", script, ...args],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#stdout = this.#child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    this.#stderr = new Response(this.#child.stderr).text();
  }

  get pid(): number {
    return this.#child.pid;
  }

  /** Resolves once the script has printed `marker`. */
  async waitFor(marker: string): Promise<void> {
    while (!this.#text.includes(marker)) {
      const { value, done } = await this.#stdout.read();
      if (done) throw new Error(`script ended before "${marker}": ${await this.#stderr}`);
      this.#text += value;
    }
  }

  /** Sends one line on stdin and closes it. */
  async send(line: string): Promise<void> {
    this.#stdinOpen = false;
    const writer = this.#child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(line + "\n"));
    await writer.close();
  }

  /** Waits for the script to end; returns its exit code and stderr. */
  async finish(): Promise<{ code: number; stderr: string }> {
    if (this.#stdinOpen) {
      this.#stdinOpen = false;
      await this.#child.stdin.close().catch(() => {});
    }
    while (!(await this.#stdout.read()).done) { /* drain */ }
    const { code } = await this.#child.status;
    return { code, stderr: await this.#stderr };
  }
}

const READ_LINE = `const line = async () => { await Deno.stdin.read(new Uint8Array(64)); };`;

async function readTable(path: string): Promise<{ version: number; rows: PeerRow[] }> {
  return JSON.parse(await Deno.readTextFile(path));
}

Deno.test("a corrupted table file gives a clear ETABLE error and is left as it was", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/table.json`;
    const store = new JsonFileStore(path);
    const cases: [string, RegExp][] = [
      ['{"version":1,"rows":[', /it is not valid JSON/],
      ['{"rows":[]}', /not a mailpeer table/],
      ['{"version":2,"rows":[]}', /version 2 is not 1/],
      ['{"version":1,"rows":[{"userId":"u"}]}', /row 0 has no valid "network"/],
    ];
    for (const [text, reason] of cases) {
      await Deno.writeTextFile(path, text);
      for (const attempt of [store.read(), store.update((rows) => ({ rows, result: 0 }))]) {
        await assert.rejects(attempt, (err: unknown) => {
          assert.ok(isMailpeerError(err) && err.code === "ETABLE", String(err));
          assert.match(err.message, reason);
          assert.ok(err.message.startsWith(`Cannot read the control table ${path}: `));
          assert.match(err.message, /; move it away, the host rebuilds the table/);
          return true;
        });
      }
      assert.equal(await Deno.readTextFile(path), text, "a bad table is never overwritten");
    }
  });
});

Deno.test("the table file is replaced atomically: no temp files left behind", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/table.json`;
    const store = new JsonFileStore(path);
    for (let i = 0; i < 5; i++) {
      await store.update((rows) => ({ rows: [...rows, sampleRow(i)], result: undefined }));
    }
    const bad = { ...sampleRow(9), failures: -1 };
    await assert.rejects(store.update((rows) => ({ rows: [...rows, bad], result: 0 })), TypeError);
    const names = [];
    for await (const entry of Deno.readDir(dir)) names.push(entry.name);
    assert.deepEqual(names, ["table.json"]);
    const table = await readTable(path);
    assert.equal(table.version, 1);
    assert.deepEqual(table.rows, [0, 1, 2, 3, 4].map((n) => sampleRow(n)));
    if (Deno.build.os !== "windows") {
      assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600, "e-mail addresses stay private");
    }
  });
});

Deno.test("two stores on the same file in one process lose no rows", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/table.json`;
    const options = { clock: fastClock(), lockTimeoutMs: Number.MAX_SAFE_INTEGER };
    const stores = [new JsonFileStore(path, options), new JsonFileStore(path, options)];
    await Promise.all(
      Array.from(
        { length: 20 },
        (_, i) =>
          stores[i % 2]!.update((rows) => ({ rows: [...rows, sampleRow(i)], result: undefined })),
      ),
    );
    assert.equal((await stores[0]!.read()).length, 20);
  });
});

Deno.test("two processes updating the same file at once lose no rows and leave valid JSON", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/table.json`;
    const script = `${dir}/writer.ts`;
    await Deno.writeTextFile(
      script,
      `import { JsonFileStore } from ${JSON.stringify(STORE_URL)};
${READ_LINE}
const [path, prefix] = Deno.args;
const store = new JsonFileStore(path);
console.log("ready");
await line();
for (let i = 0; i < 30; i++) {
  await store.update(async (rows) => {
    await Promise.resolve();
    const row = { ...rows[0], userId: prefix + "-" + i, requestedAt: i, failures: 0 };
    return { rows: [...rows, row], result: undefined };
  });
}
`,
    );
    const seed = sampleRow(0, { userId: "seed" });
    await new JsonFileStore(path).update(() => ({ rows: [seed], result: undefined }));
    const writers = [new Script(script, [path, "a"]), new Script(script, [path, "b"])];
    for (const w of writers) await w.waitFor("ready");
    await Promise.all(writers.map((w) => w.send("go"))); // both start together
    for (const w of writers) assert.deepEqual(await w.finish(), { code: 0, stderr: "" });
    const table = await readTable(path);
    assert.equal(table.rows.length, 61);
    const users = new Set(table.rows.map((r) => r.userId));
    for (const prefix of ["a", "b"]) {
      for (let i = 0; i < 30; i++) assert.ok(users.has(`${prefix}-${i}`), `${prefix}-${i} lost`);
    }
    assert.deepEqual(await new JsonFileStore(path).read(), table.rows);
  });
});

Deno.test("a stale lock left by a crashed process is broken", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/table.json`;
    const script = `${dir}/crash.ts`;
    await Deno.writeTextFile(
      script,
      `import { withFileLock } from ${JSON.stringify(FILE_LOCK_URL)};
await withFileLock(Deno.args[0]!, () => Deno.exit(3));
`,
    );
    const crashed = await new Script(script, [path]).finish();
    assert.equal(crashed.code, 3, crashed.stderr);
    const lock = JSON.parse(await Deno.readTextFile(`${path}.lock`));
    assert.equal(typeof lock.pid, "number", "the crashed process left its lock file");
    const store = new JsonFileStore(path, {
      lockTimeoutMs: 0,
      clock: fastClock(() => assert.fail("the update should not wait")),
    });
    await store.update(() => ({ rows: [sampleRow(1)], result: undefined }));
    assert.deepEqual(await store.read(), [sampleRow(1)]);
    await assert.rejects(Deno.stat(`${path}.lock`), Deno.errors.NotFound);
  });
});

Deno.test("an update waits while another process holds the lock, then goes ahead", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/table.json`;
    const script = `${dir}/hold.ts`;
    await Deno.writeTextFile(
      script,
      `import { withFileLock } from ${JSON.stringify(FILE_LOCK_URL)};
${READ_LINE}
await withFileLock(Deno.args[0]!, async () => { console.log("locked"); await line(); });
`,
    );
    const holder = new Script(script, [path]);
    try {
      await holder.waitFor("locked");
      const impatient = new JsonFileStore(path, { lockTimeoutMs: 1_000, clock: fastClock() });
      await assert.rejects(impatient.update(() => ({ rows: [], result: 0 })), (err: unknown) => {
        assert.ok(isMailpeerError(err) && err.code === "ETABLE", String(err));
        const prefix = `Cannot lock the control table ${path}: another mailpeer host ` +
          `(pid ${holder.pid}) holds ${path}.lock since `;
        assert.ok(err.message.startsWith(prefix), err.message);
        assert.match(err.message, /since \d{4}-\d\d-\d\dT[\d:.]+Z; wait for it to finish/);
        return true;
      });
      let waits = 0;
      const patient = new JsonFileStore(path, {
        clock: fastClock(async (call) => {
          waits = call;
          if (call === 3) {
            await holder.send("done");
            assert.equal((await holder.finish()).code, 0);
          }
        }),
      });
      await patient.update(() => ({ rows: [sampleRow(1)], result: undefined }));
      assert.ok(waits >= 3, "the update waited for the other process");
      assert.deepEqual(await patient.read(), [sampleRow(1)]);
    } finally {
      await holder.finish();
    }
  });
});
