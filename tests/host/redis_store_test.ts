import assert from "node:assert/strict";
import { createClient } from "redis";
import { isMailpeerError } from "../../src/errors.ts";
import { RedisStore } from "../../src/host/store/redis_store.ts";
import type { PeerRow } from "../../src/host/types.ts";
import type { Clock } from "../../src/runtime.ts";
import { sampleRow, tableStoreConformance } from "../conformance/table_store.ts";
import { NO_REDIS, REDIS_URL, uniqueKey } from "../support/redis.ts";

const STORE_URL = new URL("../../src/host/store/redis_store.ts", import.meta.url).href;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

function rawClient() {
  return createClient({ url: REDIS_URL, socket: { reconnectStrategy: false } });
}
type RawClient = ReturnType<typeof rawClient>;

/** Runs `fn` with a plain node-redis client on the test Redis, to set up and inspect keys. */
async function withRaw<T>(fn: (raw: RawClient) => Promise<T>): Promise<T> {
  const raw = rawClient();
  raw.on("error", () => {});
  await raw.connect();
  try {
    return await fn(raw);
  } finally {
    await raw.close();
  }
}

/** A store on a fresh key of the test Redis; the key is deleted afterwards. */
async function withKey(fn: (key: string) => Promise<void>): Promise<void> {
  const key = uniqueKey();
  try {
    await fn(key);
  } finally {
    await withRaw((raw) => raw.del(key));
  }
}

/** A clock whose sleeps return at once and move time forward. */
function fastClock(sleeps: number[] = []): Clock {
  let now = Date.UTC(2026, 0, 1);
  return {
    now: () => now,
    sleep: (ms) => {
      sleeps.push(ms);
      now += ms;
      return Promise.resolve();
    },
  };
}

function isTableError(err: unknown): err is Error {
  return isMailpeerError(err) && err.code === "ETABLE";
}

if (NO_REDIS) {
  Deno.test({
    name: "RedisStore: conformance suite (needs scripts/redis/redis.sh start)",
    ignore: true,
    fn: () => {},
  });
} else {
  tableStoreConformance("RedisStore", () => {
    const key = uniqueKey();
    return Promise.resolve({
      store: new RedisStore(REDIS_URL!, { key }),
      cleanup: () => withRaw(async (raw) => void await raw.del(key)),
    });
  });
}

Deno.test({
  name: "RedisStore: the table is one JSON document at its key",
  ignore: NO_REDIS,
  fn: () =>
    withKey(async (key) => {
      const store = new RedisStore(REDIS_URL!, { key });
      try {
        await store.update(() => ({ rows: [sampleRow(1), sampleRow(2)], result: undefined }));
      } finally {
        await store.close();
      }
      const text = await withRaw((raw) => raw.get(key));
      assert.deepEqual(JSON.parse(text!), { version: 1, rows: [sampleRow(1), sampleRow(2)] });
    }),
});

Deno.test({
  name:
    "RedisStore: another process's change is always seen, and an unchanged table is written back byte for byte",
  ignore: NO_REDIS,
  fn: () =>
    withKey(async (key) => {
      const a = new RedisStore(REDIS_URL!, { key });
      const b = new RedisStore(REDIS_URL!, { key });
      try {
        await a.update(() => ({ rows: [sampleRow(1)], result: undefined }));
        const written = await withRaw((raw) => raw.get(key));
        // an update that changes nothing writes the very same document
        await a.update((rows) => ({ rows, result: undefined }));
        assert.equal(await withRaw((raw) => raw.get(key)), written);
        assert.equal(written, JSON.stringify({ version: 1, rows: [sampleRow(1)] }));
        // b changes the table; a, which remembers its last document, sees b's row
        await b.update((rows) => ({ rows: [...rows, sampleRow(2)], result: undefined }));
        assert.deepEqual(await a.read(), [sampleRow(1), sampleRow(2)]);
        // so does a raw write of a document a never saw, even as long as the old one
        await withRaw((raw) => raw.set(key, JSON.stringify({ version: 1, rows: [sampleRow(3)] })));
        const seen = await a.update((rows) => ({ rows, result: rows.map((r) => r.userId) }));
        assert.deepEqual(seen, [sampleRow(3).userId]);
        // a row handed out and broken in place is checked again, never trusted from the cache
        await assert.rejects(
          a.update((rows) => {
            (rows[0] as { failures: unknown }).failures = "many";
            return { rows, result: undefined };
          }),
          /bad table/,
        );
        assert.deepEqual(await b.read(), [sampleRow(3)]);
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    }),
});

Deno.test({
  name: "a corrupt table document gives a clear ETABLE error and is left as it was",
  ignore: NO_REDIS,
  fn: () =>
    withKey(async (key) => {
      const store = new RedisStore(REDIS_URL!, { key });
      const where = `Cannot read the control table at ${REDIS_URL} key "${key}": `;
      const cases: [string, RegExp][] = [
        ['{"version":1,"rows":[', /it is not valid JSON/],
        ['{"rows":[]}', /not a mailpeer table/],
        ['{"version":2,"rows":[]}', /version 2 is not 1/],
        ['{"version":1,"rows":[{"userId":"u"}]}', /row 0 has no valid "network"/],
      ];
      try {
        for (const [text, reason] of cases) {
          await withRaw((raw) => raw.set(key, text));
          for (const attempt of [store.read(), store.update((rows) => ({ rows, result: 0 }))]) {
            await assert.rejects(attempt, (err: unknown) => {
              assert.ok(isTableError(err), String(err));
              assert.match(err.message, reason);
              assert.ok(err.message.startsWith(where), err.message);
              assert.ok(
                err.message.endsWith(
                  `; delete the key (redis-cli DEL ${key}), the host rebuilds the table from ` +
                    `new requests`,
                ),
                err.message,
              );
              return true;
            });
          }
          assert.equal(await withRaw((raw) => raw.get(key)), text, "a bad table is kept");
        }
        await withRaw(async (raw) => {
          await raw.del(key);
          await raw.hSet(key, "a", "b");
        });
        await assert.rejects(store.read(), (err: unknown) => {
          assert.ok(isTableError(err), String(err));
          assert.ok(err.message.startsWith(`${where}it is not a string key; `), err.message);
          return true;
        });
        // The store still works once the key is fixed.
        await withRaw((raw) => raw.del(key));
        await store.update(() => ({ rows: [sampleRow(1)], result: undefined }));
        assert.deepEqual(await store.read(), [sampleRow(1)]);
      } finally {
        await store.close();
      }
    }),
});

Deno.test("an unreachable Redis gives one clear line", async () => {
  const store = new RedisStore("redis://127.0.0.1:1", { key: uniqueKey() });
  const expected = "Cannot reach Redis at redis://127.0.0.1:1: connection refused; " +
    "start redis-server or fix host.store.url";
  try {
    for (
      const attempt of [() => store.read(), () => store.update(() => ({ rows: [], result: 0 }))]
    ) {
      await assert.rejects(attempt(), (err: unknown) => {
        assert.ok(isTableError(err), String(err));
        assert.equal(err.message, expected);
        return true;
      });
    }
  } finally {
    await store.close();
  }
});

Deno.test("a Redis password never appears in error messages", async () => {
  const store = new RedisStore("redis://:hunter2@127.0.0.1:1", { key: uniqueKey() });
  try {
    await assert.rejects(store.read(), (err: unknown) => {
      assert.ok(isTableError(err), String(err));
      assert.ok(!err.message.includes("hunter2"), err.message);
      assert.match(err.message, /^Cannot reach Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:1: /);
      return true;
    });
  } finally {
    await store.close();
  }
});

Deno.test({
  name: "an update that lost a race runs again on the other host's rows",
  ignore: NO_REDIS,
  fn: () =>
    withKey(async (key) => {
      const sleeps: number[] = [];
      const store = new RedisStore(REDIS_URL!, { key, clock: fastClock(sleeps), backoff: () => 7 });
      const seen: string[][] = [];
      try {
        const result = await store.update(async (rows) => {
          seen.push(rows.map((r) => r.userId));
          if (seen.length === 1) {
            // Another host writes between our read and our write.
            const other = new RedisStore(REDIS_URL!, { key });
            await other.update((r) => ({ rows: [...r, sampleRow(1)], result: undefined }));
            await other.close();
          }
          return { rows: [...rows, sampleRow(2)], result: seen.length };
        });
        assert.equal(result, 2);
        assert.deepEqual(seen, [[], ["user-1"]]);
        assert.deepEqual(sleeps, [7], "one backoff wait before the retry");
        assert.deepEqual(await store.read(), [sampleRow(1), sampleRow(2)]);
      } finally {
        await store.close();
      }
    }),
});

Deno.test({
  name: "an update that keeps losing races gives up with a clear ETABLE error",
  ignore: NO_REDIS,
  fn: () =>
    withKey(async (key) => {
      const store = new RedisStore(REDIS_URL!, {
        key,
        clock: fastClock(),
        backoff: () => 10,
        lockTimeoutMs: 45,
      });
      let runs = 0;
      try {
        await assert.rejects(
          store.update(async (rows) => {
            runs++;
            await withRaw((raw) => raw.set(key, JSON.stringify({ version: 1, rows: [] })));
            return { rows: [...rows, sampleRow(runs)], result: undefined };
          }),
          (err: unknown) => {
            assert.ok(isTableError(err), String(err));
            assert.equal(
              err.message,
              `Cannot update the control table at ${REDIS_URL} key "${key}": other hosts ` +
                `changed it 6 times in a row while this update ran; try again, or give the ` +
                `hosts separate keys`,
            );
            return true;
          },
        );
        assert.equal(runs, 6, "retried until lockTimeoutMs had passed");
        assert.deepEqual(await store.read(), [], "none of the lost updates was stored");
      } finally {
        await store.close();
      }
    }),
});

Deno.test({
  name: "two processes updating the same Redis table at once lose no rows",
  ignore: NO_REDIS,
  fn: () =>
    withKey(async (key) => {
      const dir = await Deno.makeTempDir({ prefix: "mailpeer-redis-" });
      try {
        const script = `${dir}/writer.ts`;
        await Deno.writeTextFile(
          script,
          `import { RedisStore } from ${JSON.stringify(STORE_URL)};
const [url, key, prefix] = Deno.args;
const store = new RedisStore(url, { key });
await store.read(); // connect before the start signal
console.log("ready");
await Deno.stdin.read(new Uint8Array(64));
for (let i = 0; i < 30; i++) {
  await store.update(async (rows) => {
    await Promise.resolve();
    const row = { ...rows[0], userId: prefix + "-" + i, requestedAt: i, failures: 0 };
    return { rows: [...rows, row], result: undefined };
  });
}
await store.close();
`,
        );
        const seed = sampleRow(0, { userId: "seed" });
        const setup = new RedisStore(REDIS_URL!, { key });
        await setup.update(() => ({ rows: [seed], result: undefined }));
        await setup.close();
        const writers = ["a", "b"].map((prefix) =>
          new Deno.Command(Deno.execPath(), {
            args: [
              "run",
              "--no-prompt",
              `--config=${CONFIG}`,
              "--allow-read",
              "--allow-net=127.0.0.1",
              "--allow-env",
              script,
              REDIS_URL!,
              key,
              prefix,
            ],
            stdin: "piped",
            stdout: "piped",
            stderr: "piped",
          }).spawn()
        );
        const outputs = writers.map((w) =>
          w.stdout.pipeThrough(new TextDecoderStream()).getReader()
        );
        const errors = writers.map((w) => new Response(w.stderr).text());
        for (const [i, out] of outputs.entries()) {
          let text = "";
          while (!text.includes("ready")) {
            const { value, done } = await out.read();
            if (done) throw new Error(`writer ended before it was ready: ${await errors[i]}`);
            text += value;
          }
        }
        await Promise.all(writers.map(async (w) => { // both start together
          const writer = w.stdin.getWriter();
          await writer.write(new TextEncoder().encode("go\n"));
          await writer.close();
        }));
        for (const [i, w] of writers.entries()) {
          while (!(await outputs[i]!.read()).done) { /* drain */ }
          assert.deepEqual({ code: (await w.status).code, stderr: await errors[i] }, {
            code: 0,
            stderr: "",
          });
        }
        const check = new RedisStore(REDIS_URL!, { key });
        let rows: PeerRow[];
        try {
          rows = await check.read();
        } finally {
          await check.close();
        }
        assert.equal(rows.length, 61);
        const users = new Set(rows.map((r) => r.userId));
        for (const prefix of ["a", "b"]) {
          for (let i = 0; i < 30; i++) {
            assert.ok(users.has(`${prefix}-${i}`), `${prefix}-${i} lost`);
          }
        }
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    }),
});
