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
    await withRaw((raw) =>
      raw.del([key, `${key}:rows`, `${key}:seq`, `${key}:log`, `${key}:turn`])
    );
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

/** The table as stored: rows by field, the version, the change log (field → version). */
function stored(key: string) {
  return withRaw(async (raw) => ({
    rows: Object.fromEntries(
      Object.entries(await raw.hGetAll(`${key}:rows`)).map(([f, line]) => [f, JSON.parse(line)]),
    ),
    seq: await raw.get(`${key}:seq`),
    log: Object.fromEntries(
      (await raw.zRangeWithScores(`${key}:log`, 0, -1)).map((m) => [m.value, m.score]),
    ),
  }));
}

const fieldOf = (row: PeerRow) => JSON.stringify([row.network, row.userId]);

Deno.test({
  name:
    "RedisStore: the table is a hash of rows, a version and a log of the fields each version changed",
  ignore: NO_REDIS,
  fn: () =>
    withKey(async (key) => {
      const store = new RedisStore(REDIS_URL!, { key });
      try {
        await store.update(() => ({ rows: [sampleRow(1), sampleRow(2)], result: undefined }));
        const changed = { ...sampleRow(2), failures: 1 };
        await store.update(() => ({ rows: [changed, sampleRow(3)], result: undefined }));
      } finally {
        await store.close();
      }
      assert.deepEqual(await stored(key), {
        rows: {
          [fieldOf(sampleRow(2))]: { ...sampleRow(2), failures: 1 },
          [fieldOf(sampleRow(3))]: sampleRow(3),
        },
        seq: "2",
        // row 1 removed and rows 2 and 3 written by version 2; nothing of version 1 is left
        log: { [fieldOf(sampleRow(1))]: 2, [fieldOf(sampleRow(2))]: 2, [fieldOf(sampleRow(3))]: 2 },
      });
      assert.equal(await withRaw((raw) => raw.exists(key)), 0, "no document of the old format");
    }),
});

Deno.test({
  name:
    "RedisStore: an update writes only the rows it changed, an update that changes nothing writes nothing, and another process's change is always seen",
  ignore: NO_REDIS,
  fn: () =>
    withKey(async (key) => {
      const a = new RedisStore(REDIS_URL!, { key });
      const b = new RedisStore(REDIS_URL!, { key });
      try {
        await a.update(() => ({ rows: [sampleRow(1), sampleRow(2)], result: undefined }));
        // an update that changes nothing writes nothing: the version stays
        await a.update((rows) => ({ rows, result: undefined }));
        assert.equal((await stored(key)).seq, "1");
        // b changes one row: only that row is written, under the next version
        await b.update((rows) => ({
          rows: rows.map((r) => r.userId === sampleRow(2).userId ? { ...r, failures: 4 } : r),
          result: undefined,
        }));
        assert.deepEqual((await stored(key)).log, {
          [fieldOf(sampleRow(1))]: 1,
          [fieldOf(sampleRow(2))]: 2,
        });
        // a, which holds version 1, sees b's change
        assert.deepEqual(await a.read(), [sampleRow(1), { ...sampleRow(2), failures: 4 }]);
        // and a raw change it never saw, made as a writer does (row, version, log)
        await withRaw(async (raw) => {
          await raw.hSet(`${key}:rows`, fieldOf(sampleRow(3)), JSON.stringify(sampleRow(3)));
          await raw.hDel(`${key}:rows`, fieldOf(sampleRow(1)));
          await raw.set(`${key}:seq`, "3");
          await raw.zAdd(`${key}:log`, [
            { score: 3, value: fieldOf(sampleRow(3)) },
            { score: 3, value: fieldOf(sampleRow(1)) },
          ]);
        });
        const seen = await a.update((rows) => ({ rows, result: rows.map((r) => r.userId) }));
        assert.deepEqual(seen.sort(), [sampleRow(2).userId, sampleRow(3).userId].sort());
        // a row handed out and broken in place is checked again, never trusted from the cache
        await assert.rejects(
          a.update((rows) => {
            (rows[0] as { failures: unknown }).failures = "many";
            return { rows, result: undefined };
          }),
          /bad table/,
        );
        assert.equal((await stored(key)).seq, "3", "the bad update wrote nothing");
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    }),
});

Deno.test({
  name:
    "RedisStore: a table document of the earlier format is read, and replaced by rows on the first update",
  ignore: NO_REDIS,
  fn: () =>
    withKey(async (key) => {
      await withRaw((raw) =>
        raw.set(key, JSON.stringify({ version: 1, rows: [sampleRow(1), sampleRow(2)] }))
      );
      const store = new RedisStore(REDIS_URL!, { key });
      try {
        assert.deepEqual(await store.read(), [sampleRow(1), sampleRow(2)]);
        await store.update((rows) => ({ rows: [...rows, sampleRow(3)], result: undefined }));
        assert.deepEqual(await store.read(), [sampleRow(1), sampleRow(2), sampleRow(3)]);
      } finally {
        await store.close();
      }
      const after = await stored(key);
      assert.equal(after.seq, "1");
      assert.deepEqual(Object.keys(after.rows).length, 3);
      assert.equal(await withRaw((raw) => raw.exists(key)), 0, "the old document is gone");
    }),
});

Deno.test({
  name: "a corrupt stored row or version gives a clear ETABLE error and is left as it was",
  ignore: NO_REDIS,
  fn: () =>
    withKey(async (key) => {
      const store = new RedisStore(REDIS_URL!, { key });
      const where = `Cannot read the control table at ${REDIS_URL} key "${key}": `;
      const field = fieldOf(sampleRow(1));
      const cases: [Record<string, string>, string, RegExp][] = [
        [{ [field]: "{not json" }, "1", /the row .* is not valid JSON/],
        [
          { [field]: JSON.stringify({ ...sampleRow(1), port: -1, endpoints: "x" }) },
          "1",
          /the row .* has/,
        ],
        [
          { [fieldOf(sampleRow(2))]: JSON.stringify(sampleRow(1)) },
          "1",
          /is filed under another user/,
        ],
        [{ [field]: JSON.stringify(sampleRow(1)) }, "many", /its version "many" is not a count/],
        [{ [field]: JSON.stringify(sampleRow(1)) }, "0", /its version "0" is not a count/],
      ];
      try {
        for (const [rows, seq, reason] of cases) {
          await withRaw(async (raw) => {
            await raw.del([`${key}:rows`, `${key}:seq`]);
            await raw.hSet(`${key}:rows`, rows);
            await raw.set(`${key}:seq`, seq);
          });
          const fresh = new RedisStore(REDIS_URL!, { key });
          try {
            for (const attempt of [fresh.read(), fresh.update((r) => ({ rows: r, result: 0 }))]) {
              await assert.rejects(attempt, (err: unknown) => {
                assert.ok(isTableError(err), String(err));
                assert.match(err.message, reason);
                assert.ok(err.message.startsWith(where), err.message);
                assert.ok(!err.message.includes("\n"), err.message);
                return true;
              });
            }
          } finally {
            await fresh.close();
          }
          assert.deepEqual(await withRaw((raw) => raw.hGetAll(`${key}:rows`)), rows, "kept");
        }
      } finally {
        await store.close();
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
                  `; delete its keys (redis-cli DEL ${key} ${key}:rows ${key}:seq ${key}:log), ` +
                    `the host rebuilds the table from new requests`,
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
  name:
    "an update that lost a race (to a host that takes no turn, or after its turn lapsed) runs again on the other host's rows",
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
            // Another host writes between our read and our write: our turn lapsed (gone), and
            // the other took its own turn for its update
            await withRaw((raw) => raw.del(`${key}:turn`));
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
  name:
    "an update waits while another host holds the table's turn, then runs its function once and gives the turn back",
  ignore: NO_REDIS,
  fn: () =>
    withKey(async (key) => {
      const turn = `${key}:turn`;
      await withRaw((raw) =>
        raw.set(turn, "other-host", { expiration: { type: "PX", value: 60_000 } })
      );
      const waits: number[] = [];
      let now = 0;
      const clock: Clock = {
        now: () => now,
        sleep: async (ms) => {
          waits.push(ms);
          now += ms;
          // the other host's update ends during our third wait: it gives its turn back
          if (waits.length === 3) await withRaw((raw) => raw.del(turn));
        },
      };
      const store = new RedisStore(REDIS_URL!, {
        key,
        clock,
        turnBackoff: (attempt) => attempt + 1,
      });
      let runs = 0;
      try {
        await store.update(async (rows) => {
          runs++;
          const held = await withRaw(async (raw) => [await raw.get(turn), await raw.pTTL(turn)]);
          assert.notEqual(held[0], null, "the update holds the turn while its function runs");
          assert.notEqual(held[0], "other-host");
          assert.ok(Number(held[1]) > 0 && Number(held[1]) <= 2_000, `lapses: ${held[1]} ms`);
          return { rows: [...rows, sampleRow(1)], result: undefined };
        });
        assert.equal(runs, 1, "no work for an update that would have lost its EXEC");
        assert.deepEqual(waits, [1, 2, 3], "asked again after each turnBackoff wait");
        assert.equal(await withRaw((raw) => raw.exists(turn)), 0, "the turn is given back");
        assert.deepEqual(await store.read(), [sampleRow(1)]);
      } finally {
        await store.close();
      }
    }),
});

Deno.test({
  name:
    "a turn held past the lock timeout (another host stuck, or a key set by hand) gives a clear ETABLE error and changes nothing",
  ignore: NO_REDIS,
  fn: () =>
    withKey(async (key) => {
      const turn = `${key}:turn`;
      await withRaw((raw) => raw.set(turn, "stuck-host")); // no expiry: it never lapses
      const store = new RedisStore(REDIS_URL!, {
        key,
        clock: fastClock(),
        turnBackoff: () => 100,
        lockTimeoutMs: 450,
      });
      let runs = 0;
      try {
        await assert.rejects(
          store.update((rows) => {
            runs++;
            return { rows: [...rows, sampleRow(1)], result: undefined };
          }),
          (err: unknown) => {
            assert.ok(isTableError(err), String(err));
            assert.equal(
              err.message,
              `Cannot update the control table at ${REDIS_URL} key "${key}": other hosts held ` +
                `its turn (${turn}) at each of 6 tries; a turn lapses by itself within 2 s, so ` +
                `one that stays was set by hand: delete it (redis-cli DEL ${turn})`,
            );
            return true;
          },
        );
        assert.equal(runs, 0);
        assert.equal(await withRaw((raw) => raw.get(turn)), "stuck-host", "not taken over");
        assert.deepEqual(await store.read(), []);
      } finally {
        await store.close();
        await withRaw((raw) => raw.del(turn));
      }
    }),
});

Deno.test({
  name:
    "an update whose turn lapsed while it ran never gives back the turn another host took since",
  ignore: NO_REDIS,
  fn: () =>
    withKey(async (key) => {
      const turn = `${key}:turn`;
      const store = new RedisStore(REDIS_URL!, { key });
      try {
        await store.update(async (rows) => {
          // our turn lapses and another host takes the next one
          await withRaw((raw) => raw.set(turn, "next-host"));
          return { rows: [...rows, sampleRow(1)], result: undefined };
        });
        assert.equal(await withRaw((raw) => raw.get(turn)), "next-host");
        assert.deepEqual(await store.read(), [sampleRow(1)], "the update itself still counts");
      } finally {
        await store.close();
        await withRaw((raw) => raw.del(turn));
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
