/**
 * Claims in the shared store (docs/decisions.md "Claims in the shared store"): host processes
 * on one mailbox take each mail through a Redis key of its own (`RedisStore.claimLedger`).
 * Two processes never both hold a mail, a finished mail is nobody's while its claim lasts, each
 * claim is bounded in time, mailboxes never collide, and ids chosen by a mail server are only
 * ever key suffixes of a bounded length. Real Redis; skipped without one.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createClient } from "redis";
import { isMailpeerError } from "../../src/errors.ts";
import { RedisStore } from "../../src/host/store/redis_store.ts";
import type { ClaimLedger } from "../../src/host/types.ts";
import { NO_REDIS, REDIS_URL, uniqueKey } from "../support/redis.ts";
import { claimLedgerConformance } from "../conformance/claim_ledger.ts";

const TTL_MS = 60_000;
const SCOPE = "imap://host@127.0.0.13:143/INBOX";
/** How long a claim key may be beyond `<key>:claim:{<32 hex digits>}:` (ids longer are hashed). */
const MAX_ID_IN_KEY = 200;

function rawClient() {
  return createClient({ url: REDIS_URL, socket: { reconnectStrategy: false } });
}
type RawClient = ReturnType<typeof rawClient>;

/**
 * Runs `fn` with `stores` processes' stores on one fresh table key, and a plain client to look
 * at the keys; every key under it is deleted afterwards.
 */
async function withStores(
  stores: number,
  fn: (key: string, s: RedisStore[], raw: RawClient) => Promise<void>,
): Promise<void> {
  const key = uniqueKey("claims");
  const raw = rawClient();
  raw.on("error", () => {});
  await raw.connect();
  const opened = Array.from({ length: stores }, () => new RedisStore(REDIS_URL!, { key }));
  try {
    await fn(key, opened, raw);
  } finally {
    await Promise.all(opened.map((s) => s.close()));
    const keys = await claimKeys(raw, key);
    if (keys.length > 0) await raw.del(keys);
    await raw.close();
  }
}

/** Every claim key of the table at `key`. */
async function claimKeys(raw: RawClient, key: string): Promise<string[]> {
  const out: string[] = [];
  for await (const batch of raw.scanIterator({ MATCH: `${key}:claim:*`, COUNT: 1000 })) {
    out.push(...batch);
  }
  return out;
}

/** Claims `ids` in chunks of `size`, one after another; the ids held at the end of each. */
async function claimInChunks(ledger: ClaimLedger, ids: string[], size: number) {
  const won = new Set<string>();
  for (let i = 0; i < ids.length; i += size) {
    for (const id of await ledger.claim(ids.slice(i, i + size))) won.add(id);
  }
  return won;
}

/** The 32 hex digits the store names a scope or a long id by (sha-256, as in redis_store.ts). */
function hex32(text: string): string {
  return createHash("sha256").update(text).digest("hex").slice(0, 32);
}

function redisTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, ignore: NO_REDIS, fn });
}

if (NO_REDIS) {
  Deno.test({
    name: "RedisStore.claimLedger: conformance suite (needs scripts/redis/redis.sh start)",
    ignore: true,
    fn: () => {},
  });
} else {
  claimLedgerConformance("RedisStore.claimLedger", () => {
    const key = uniqueKey("claims");
    const ledgers = new Map<string, { store: RedisStore; ledger: ClaimLedger }>();
    return Promise.resolve({
      ledgerOf: (owner) => {
        let made = ledgers.get(owner);
        if (made === undefined) {
          const store = new RedisStore(REDIS_URL!, { key });
          made = { store, ledger: store.claimLedger(SCOPE, { ttlMs: TTL_MS }) };
          ledgers.set(owner, made);
        }
        return made.ledger;
      },
      cleanup: async () => {
        await Promise.all([...ledgers.values()].map(({ store }) => store.close()));
        const raw = rawClient();
        await raw.connect();
        const keys = await claimKeys(raw, key);
        if (keys.length > 0) await raw.del(keys);
        await raw.close();
      },
    });
  });
}

redisTest(
  "two processes claiming overlapping mails at once each hold a disjoint share, together every mail",
  () =>
    withStores(2, async (_key, [a, b]) => {
      const ids = Array.from({ length: 200 }, (_, i) => `7:${i + 1}`);
      const la = a!.claimLedger(SCOPE, { ttlMs: TTL_MS });
      const lb = b!.claimLedger(SCOPE, { ttlMs: TTL_MS });
      // a takes the first 150 front to back, b the last 150 back to front: they meet in the middle
      const [wonA, wonB] = await Promise.all([
        claimInChunks(la, ids.slice(0, 150), 7),
        claimInChunks(lb, ids.slice(50).reverse(), 7),
      ]);
      assert.deepEqual([...wonA].filter((id) => wonB.has(id)), [], "no mail held by both");
      assert.equal(wonA.size + wonB.size, ids.length, `${wonA.size} + ${wonB.size}`);
      assert.ok(ids.slice(0, 50).every((id) => wonA.has(id)), "a holds what only a asked for");
      assert.ok(ids.slice(150).every((id) => wonB.has(id)), "b holds what only b asked for");
      // each keeps its own on asking again, and gets none of the other's
      assert.deepEqual(await la.claim(ids), wonA);
      assert.deepEqual(await lb.claim(ids), wonB);
    }),
);

redisTest(
  "a process asking again renews its claims; each claim key lapses within the TTL",
  () =>
    withStores(1, async (key, [a], raw) => {
      const ledger = a!.claimLedger(SCOPE, { ttlMs: TTL_MS });
      assert.deepEqual(await ledger.claim(["7:1", "7:2"]), new Set(["7:1", "7:2"]));
      const keys = await claimKeys(raw, key);
      assert.equal(keys.length, 2);
      for (const k of keys) {
        const ttl = await raw.pTTL(k);
        assert.ok(ttl > 0 && ttl <= TTL_MS, `${k} lapses in ${ttl} ms`);
      }
      // nearly lapsed claims: asking again gives them the whole TTL once more
      for (const k of keys) await raw.pExpire(k, 1_000);
      assert.deepEqual(await ledger.claim(["7:2", "7:1"]), new Set(["7:1", "7:2"]));
      for (const k of keys) {
        const ttl = await raw.pTTL(k);
        assert.ok(ttl > 1_000 && ttl <= TTL_MS, `${k} renewed to ${ttl} ms`);
      }
    }),
);

redisTest(
  "a claim up to a count renews its own claims for the whole TTL and creates no key after the stop",
  () =>
    withStores(2, async (key, [a, b], raw) => {
      const la = a!.claimLedger(SCOPE, { ttlMs: TTL_MS });
      const lb = b!.claimLedger(SCOPE, { ttlMs: TTL_MS });
      const ids = Array.from({ length: 10 }, (_, i) => `7:${i + 1}`);
      const keyOf = (id: string) => `${key}:claim:{${hex32(SCOPE)}}:${id}`;
      assert.deepEqual(await la.claim(["7:2", "7:5"]), new Set(["7:2", "7:5"]));
      assert.deepEqual(await lb.claim(["7:3"]), new Set(["7:3"]));
      await raw.pExpire(keyOf("7:3"), 1_000); // b's own claim, nearly lapsed
      // b walks 7:1 (takes), 7:2 (a's), 7:3 (renews its own), 7:4, 7:5 (a's), 7:6: four held
      assert.deepEqual(
        await lb.claim(ids, { upTo: 4 }),
        new Set(["7:1", "7:3", "7:4", "7:6"]),
      );
      const renewed = await raw.pTTL(keyOf("7:3"));
      assert.ok(renewed > 1_000 && renewed <= TTL_MS, `7:3 renewed to ${renewed} ms`);
      for (const id of ids.slice(6)) {
        assert.equal(await raw.exists(keyOf(id)), 0, `${id} untouched`);
      }
      assert.equal((await claimKeys(raw, key)).length, 6);
    }),
);

Deno.test("a claim up to a count that is not a positive integer is refused before any round trip", async () => {
  const store = new RedisStore("redis://127.0.0.1:1", { key: uniqueKey() });
  const ledger = store.claimLedger(SCOPE, { ttlMs: TTL_MS });
  try {
    for (const upTo of [0, -1, 1.5, Number.NaN, Infinity]) {
      await assert.rejects(ledger.claim(["7:1"], { upTo }), RangeError, String(upTo));
    }
  } finally {
    await store.close();
  }
});

redisTest(
  "a finished mail is nobody's while its claim lasts, not even the finisher's or a new process's",
  () =>
    withStores(3, async (key, [a, b, c], raw) => {
      const la = a!.claimLedger(SCOPE, { ttlMs: TTL_MS });
      const lb = b!.claimLedger(SCOPE, { ttlMs: TTL_MS });
      assert.deepEqual(await la.claim(["7:1", "7:2", "7:3"]), new Set(["7:1", "7:2", "7:3"]));
      assert.deepEqual(await lb.claim(["7:4"]), new Set(["7:4"]));
      // b cannot finish what a holds, nor a what b holds
      await lb.finish(["7:1"]);
      await la.finish(["7:1", "7:2", "7:4"]);
      assert.deepEqual(await la.claim(["7:3"]), new Set(["7:3"]), "a still holds 7:3");
      assert.deepEqual(await lb.claim(["7:4"]), new Set(["7:4"]), "b still holds 7:4");
      // a listing made before the delete still shows 7:1 and 7:2: nobody takes them again
      const lc = c!.claimLedger(SCOPE, { ttlMs: TTL_MS });
      for (const ledger of [la, lb, lc]) {
        assert.deepEqual(
          await ledger.claim(["7:1", "7:2", "7:3", "7:4"]),
          ledger === lb ? new Set(["7:4"]) : ledger === la ? new Set(["7:3"]) : new Set(),
        );
      }
      // a second ledger of the same store is another process too
      assert.deepEqual(await a!.claimLedger(SCOPE, { ttlMs: TTL_MS }).claim(["7:3"]), new Set());
      const keys = await claimKeys(raw, key);
      assert.equal(keys.length, 4);
      const finished = [];
      for (const k of keys) {
        const ttl = await raw.pTTL(k);
        assert.ok(ttl > 0 && ttl <= TTL_MS, `${k} lapses in ${ttl} ms`);
        if (await raw.get(k) === "-") finished.push(k.slice(k.lastIndexOf(":") + 1));
      }
      assert.deepEqual(finished.sort(), ["1", "2"]);
    }),
);

redisTest(
  "the same mail id in two mailboxes is two claims",
  () =>
    withStores(2, async (key, [a, b], raw) => {
      const inbox = a!.claimLedger(SCOPE, { ttlMs: TTL_MS });
      const other = b!.claimLedger("imap://host@127.0.0.13:143/Other", { ttlMs: TTL_MS });
      const maildir = b!.claimLedger("maildir:/var/mail/host", { ttlMs: TTL_MS });
      for (const ledger of [inbox, other, maildir]) {
        assert.deepEqual(await ledger.claim(["7:1"]), new Set(["7:1"]));
      }
      assert.equal((await claimKeys(raw, key)).length, 3);
      // and a scope's claims stay in one hash slot (the scope's digest is the hash tag)
      for (const k of await claimKeys(raw, key)) assert.match(k, /:claim:\{[0-9a-f]{32}\}:7:1$/);
    }),
);

redisTest(
  "ids with spaces, braces, newlines, other scripts or 10,000 characters are claimed safely, in keys of bounded length",
  () =>
    withStores(2, async (key, [a, b], raw) => {
      const long = "x".repeat(10_000);
      const ids = [
        "a mail id",
        "{x}",
        "}:{",
        "line\nbreak\r\n",
        "ünïcødé 📬 メール",
        long,
        long.slice(1) + "y", // as long, differs in its last character only
        "z".repeat(MAX_ID_IN_KEY),
        "z".repeat(MAX_ID_IN_KEY + 1),
      ];
      const la = a!.claimLedger(SCOPE, { ttlMs: TTL_MS });
      const lb = b!.claimLedger(SCOPE, { ttlMs: TTL_MS });
      assert.deepEqual(await la.claim(ids), new Set(ids));
      assert.deepEqual(await lb.claim(ids), new Set(), "b gets none of them");
      assert.deepEqual(await la.claim(ids), new Set(ids), "a keeps every one");
      const keys = await claimKeys(raw, key);
      assert.equal(keys.length, ids.length, "one key per id");
      const prefix = `${key}:claim:{${hex32(SCOPE)}}:`;
      for (const k of keys) {
        assert.ok(k.startsWith(prefix), k.slice(0, 80));
        assert.ok(k.length <= prefix.length + MAX_ID_IN_KEY, `a key of ${k.length} characters`);
      }
      await la.finish(ids);
      assert.deepEqual(await lb.claim(ids), new Set());
    }),
);

redisTest(
  "ids from a hostile mail server reach no other mailbox's or mail's claim and match no pattern",
  () =>
    withStores(2, async (key, [a, b], raw) => {
      const other = a!.claimLedger("imap://host@127.0.0.13:143/Other", { ttlMs: TTL_MS });
      const la = a!.claimLedger(SCOPE, { ttlMs: TTL_MS });
      const lb = b!.claimLedger(SCOPE, { ttlMs: TTL_MS });
      assert.deepEqual(await other.claim(["7:1"]), new Set(["7:1"]));
      const [otherKey] = await claimKeys(raw, key);
      const long = "q".repeat(MAX_ID_IN_KEY + 50);
      assert.deepEqual(
        await la.claim(["*", "7:?", "[7]:1", long]),
        new Set(["*", "7:?", "[7]:1", long]),
      );
      const hostile = [
        otherKey!, // another mailbox's whole key
        otherKey!.slice(`${key}:claim:`.length), // its suffix after the common part
        `${hex32("imap://host@127.0.0.13:143/Other")}}:7:1`,
        "7:1", // the same id: another mailbox's claim is not this one's
        "7:2", // matched by the glob "7:?" a process holds
        "{x}",
        hex32(long), // what a hashed id is named by
      ];
      assert.deepEqual(await lb.claim(hostile), new Set(hostile), "b wins every one");
      assert.deepEqual(await lb.claim(["*", "[7]:1", long]), new Set(), "a's stay a's");
      assert.deepEqual(await other.claim(["7:1"]), new Set(["7:1"]), "the other mailbox's holds");
      assert.ok((await raw.get(otherKey!))!.length > 1, "and its key is untouched");
      await lb.finish(hostile);
      assert.deepEqual(await other.claim(["7:1"]), new Set(["7:1"]), "finishing reached no other");
      assert.deepEqual(await la.claim(["*", long]), new Set(["*", long]));
    }),
);

Deno.test("claims on an unreachable Redis fail with one clear line", async () => {
  const store = new RedisStore("redis://127.0.0.1:1", { key: uniqueKey() });
  const ledger = store.claimLedger(SCOPE, { ttlMs: TTL_MS });
  const expected = "Cannot reach Redis at redis://127.0.0.1:1: connection refused; " +
    "start redis-server or fix host.store.url";
  try {
    for (const attempt of [() => ledger.claim(["7:1"]), () => ledger.finish(["7:1"])]) {
      await assert.rejects(attempt(), (err: unknown) => {
        assert.ok(isMailpeerError(err) && err.code === "ETABLE", String(err));
        assert.equal(err.message, expected);
        return true;
      });
    }
    // nothing to claim or finish: no connection needed
    assert.deepEqual(await ledger.claim([]), new Set());
    await ledger.finish([]);
  } finally {
    await store.close();
  }
});
