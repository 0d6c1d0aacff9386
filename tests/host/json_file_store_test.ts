import assert from "node:assert/strict";
import { isMailpeerError } from "../../src/errors.ts";
import { JsonFileStore } from "../../src/host/store/json_file_store.ts";
import type { PeerRow } from "../../src/host/types.ts";
import type { Clock } from "../../src/runtime.ts";
import { sampleRow, tableStoreConformance } from "../conformance/table_store.ts";
import { withTempDir } from "../support/temp_dir.ts";

const FILE_LOCK_URL = new URL("../../src/host/store/file_lock.ts", import.meta.url).href;
const STORE_URL = new URL("../../src/host/store/json_file_store.ts", import.meta.url).href;

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
  await withTempDir("mailpeer-table-", async (dir) => {
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
  await withTempDir("mailpeer-table-", async (dir) => {
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
  await withTempDir("mailpeer-table-", async (dir) => {
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
  await withTempDir("mailpeer-table-", async (dir) => {
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
  await withTempDir("mailpeer-table-", async (dir) => {
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
  await withTempDir("mailpeer-table-", async (dir) => {
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

Deno.test("an update sees a row another store wrote since this store's last update", async () => {
  await withTempDir("mailpeer-table-", async (dir) => {
    const path = `${dir}/table.json`;
    const mine = new JsonFileStore(path);
    const other = new JsonFileStore(path);
    await mine.update(() => ({ rows: [sampleRow(1)], result: undefined }));
    await other.update((rows) => ({ rows: [...rows, sampleRow(2)], result: undefined }));
    const seen = await mine.update((rows) => ({ rows: [...rows, sampleRow(3)], result: rows }));
    assert.deepEqual(seen, [sampleRow(1), sampleRow(2)]);
    assert.deepEqual((await readTable(path)).rows, [1, 2, 3].map((n) => sampleRow(n)));
    assert.deepEqual(await other.read(), [1, 2, 3].map((n) => sampleRow(n)));
  });
});

Deno.test("a same-size rewrite in place, within the same instant, is seen by the next update", async () => {
  await withTempDir("mailpeer-table-", async (dir) => {
    const path = `${dir}/table.json`;
    const store = new JsonFileStore(path);
    await store.update(() => ({ rows: [sampleRow(1), sampleRow(2)], result: undefined }));
    const before = await Deno.stat(path);
    // Another process rewrites the file in place (same inode) with a table of the same size
    // within the file system's timestamp granularity: inode, size and mtime are unchanged
    // (setting the old mtime back makes that instant certain).
    const changed = sampleRow(2, { sessionId: sampleRow(2).sessionId.replace(/.$/, "Q") });
    const text = await Deno.readTextFile(path);
    const rewritten = text.replace(sampleRow(2).sessionId, changed.sessionId);
    assert.notEqual(rewritten, text);
    await Deno.writeTextFile(path, rewritten);
    await Deno.utime(path, before.atime ?? new Date(), before.mtime ?? new Date());
    const after = await Deno.stat(path);
    assert.deepEqual([after.ino, after.size, after.mtime], [before.ino, before.size, before.mtime]);
    assert.deepEqual(await store.read(), [sampleRow(1), changed]);
    const seen = await store.update((rows) => ({ rows, result: rows }));
    assert.deepEqual(seen, [sampleRow(1), changed]);
    assert.deepEqual((await readTable(path)).rows, [sampleRow(1), changed]);
  });
});

Deno.test("a table corrupted after this store wrote it gives ETABLE and is left as it was", async () => {
  await withTempDir("mailpeer-table-", async (dir) => {
    const path = `${dir}/table.json`;
    const store = new JsonFileStore(path);
    await store.update(() => ({ rows: [sampleRow(1)], result: undefined }));
    const text = await Deno.readTextFile(path);
    const corrupt = text.replace('"failures":0', '"failures":-1');
    await Deno.writeTextFile(path, corrupt);
    for (const attempt of [store.read(), store.update((rows) => ({ rows, result: 0 }))]) {
      await assert.rejects(attempt, (err: unknown) => {
        assert.ok(isMailpeerError(err) && err.code === "ETABLE", String(err));
        assert.ok(err.message.startsWith(`Cannot read the control table ${path}: `));
        assert.match(err.message, /row 0 has no valid "failures"; move it away/);
        return true;
      });
    }
    assert.equal(await Deno.readTextFile(path), corrupt);
    await Deno.remove(path);
    assert.deepEqual(await store.read(), [], "a removed table reads as empty");
    assert.deepEqual(await store.update((rows) => ({ rows, result: rows })), []);
  });
});

Deno.test("rows changed in place by an update are stored as changed", async () => {
  await withTempDir("mailpeer-table-", async (dir) => {
    const path = `${dir}/table.json`;
    const store = new JsonFileStore(path);
    const first = [1, 2, 3, 4, 5, 6].map((n) =>
      sampleRow(n, { history: [{ sessionId: `s${n}`, at: n }], lastFailureAt: 7 })
    );
    await store.update(() => ({ rows: first, result: undefined }));
    const expected = await store.update((rows) => {
      const [a, b, c, d, e] = rows as [PeerRow, PeerRow, PeerRow, PeerRow, PeerRow];
      a.failures += 1;
      b.endpoints[0]!.port = 1;
      c.history!.push({ sessionId: "more", at: 9 });
      c.history![0]!.at = 2;
      delete d.lastFailureAt;
      e.endpoints = [{ transport: "udp", address: "2001:db8::5", port: 5 }];
      return { rows, result: structuredClone(rows) };
    });
    assert.equal(expected[0]!.failures, 1);
    assert.deepEqual(await store.read(), expected);
    assert.deepEqual((await readTable(path)).rows, expected);
    assert.deepEqual(await new JsonFileStore(path).read(), expected);
  });
});

Deno.test("rows made invalid in place are refused with the bad row's place, the table kept", async () => {
  await withTempDir("mailpeer-table-", async (dir) => {
    const path = `${dir}/table.json`;
    const store = new JsonFileStore(path);
    const first = [1, 2, 3].map((n) => sampleRow(n));
    await store.update(() => ({ rows: first, result: undefined }));
    const cases: [(rows: PeerRow[]) => PeerRow[], RegExp][] = [
      [(rows) => {
        rows[2]!.failures = -1;
        return rows;
      }, /row 2 has no valid "failures"/],
      [(rows) => {
        (rows[1] as unknown as Record<string, unknown>).extra = 1;
        return rows;
      }, /row 1 has an unknown field "extra"/],
      [(rows) => {
        rows[1]!.endpoints[0]!.port = 0;
        return rows;
      }, /row 1 endpoint 0 has port 0/],
      [(rows) => [...rows, rows[0]!], /row 3 repeats user "user-1"/],
      [(rows) => [...rows, sampleRow(2)], /row 3 repeats user "user-2"/],
      [(rows) => [...rows, { ...sampleRow(4), email: 5 as unknown as string }], /row 3 .*"email"/],
    ];
    for (const [change, reason] of cases) {
      await assert.rejects(
        store.update((rows) => ({ rows: change(rows), result: undefined })),
        (err: unknown) => {
          assert.ok(err instanceof TypeError, String(err));
          assert.match(err.message, /^Cannot store the control table: the update returned a bad/);
          assert.match(err.message, reason);
          return true;
        },
      );
      assert.deepEqual(await store.read(), first);
    }
  });
});

Deno.test("the first update removes temp files a killed writer left, and nothing else", async () => {
  await withTempDir("mailpeer-table-", async (dir) => {
    const path = `${dir}/table.json`;
    const orphans = ["table.json.tmp-4242-0123456789ab", "table.json.tmp-1-ffffffffffff"];
    const others = [
      "table.json.tmp-4242-0123456789a", // not our pattern: 11 hex digits
      "table.json.tmp-4242-0123456789abc",
      "table.json.tmp-x-0123456789ab",
      "table.json.tmp-keep",
      "table.json.bak",
      "other.json.tmp-4242-0123456789ab", // another table's temp file
      "xtable.json.tmp-4242-0123456789ab",
    ];
    for (const name of [...orphans, ...others]) await Deno.writeTextFile(`${dir}/${name}`, "x");
    await Deno.mkdir(`${dir}/table.json.tmp-7-0123456789ab`); // a directory, not a temp file
    const store = new JsonFileStore(path);
    await store.update(() => ({ rows: [sampleRow(1)], result: undefined }));
    const names = [];
    for await (const entry of Deno.readDir(dir)) names.push(entry.name);
    assert.deepEqual(
      names.sort(),
      [...others, "table.json", "table.json.tmp-7-0123456789ab"].sort(),
    );
    for (const name of others) assert.equal(await Deno.readTextFile(`${dir}/${name}`), "x");
    assert.deepEqual(await store.read(), [sampleRow(1)]);
  });
});

Deno.test("a temp file left by a writer killed mid-write is removed by the next host", async () => {
  await withTempDir("mailpeer-table-", async (dir) => {
    const path = `${dir}/table.json`;
    const crashHost = new URL("../support/crash_host.ts", import.meta.url).pathname;
    const temps = async () => {
      const found = [];
      for await (const e of Deno.readDir(dir)) if (e.name.includes(".tmp-")) found.push(e.name);
      return found;
    };
    const watcher = Deno.watchFs(dir);
    const events = watcher[Symbol.asyncIterator]();
    try {
      for (let attempt = 0; attempt < 10 && (await temps()).length === 0; attempt++) {
        const child = new Deno.Command(Deno.execPath(), {
          args: ["run", "--no-prompt", "-A", crashHost, "--write-loop", path, "5000"],
          stdin: "null",
          stdout: "null",
          stderr: "null",
        }).spawn();
        // Kill it as soon as it creates a temp file: mid-write, before the rename.
        for (;;) {
          const next = await events.next();
          if (next.done) throw new Error("the file watcher stopped");
          const { kind, paths } = next.value;
          if (kind === "create" && paths.some((p) => p.includes(`.tmp-${child.pid}-`))) break;
        }
        child.kill("SIGKILL");
        await child.status;
      }
      assert.ok((await temps()).length > 0, "a kill left a temp file behind");
      const store = new JsonFileStore(path);
      await store.update((rows) => ({ rows, result: undefined }));
      assert.deepEqual(await temps(), []);
    } finally {
      watcher.close();
    }
  });
});
