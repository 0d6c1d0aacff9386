/**
 * The conformance suite every {@link TableStore} passes (JSON file, memory, Redis).
 *
 * Call {@link tableStoreConformance} from a `_test.ts` file with a factory that makes a fresh,
 * empty store and a cleanup for it.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { PeerRow, TableStore } from "../../src/host/types.ts";

/** A fresh store and how to dispose of it. */
export interface StoreFixture {
  store: TableStore;
  cleanup(): Promise<void>;
}

/** A valid row for user `n`; `overrides` replace fields. */
export function sampleRow(n: number, overrides: Partial<PeerRow> = {}): PeerRow {
  return {
    userId: `user-${n}`,
    network: "chess",
    identityKey: `aWRlbnRpdHkta2V5LW${n}`,
    endpoints: [{ transport: "tcp", address: `192.0.2.${n % 250 + 1}`, port: 40_000 + n }],
    email: `user${n}@example.org`,
    sessionId: `c2Vzc2lvbi0${n}`,
    requestedAt: Date.UTC(2026, 0, 1) + n * 1000,
    failures: 0,
    ...overrides,
  };
}

/**
 * Registers the TableStore conformance tests, each named `${name}: <what the user gets>`.
 *
 * @param name the implementation, e.g. "JsonFileStore".
 * @param makeStore makes a fresh, empty store.
 */
export function tableStoreConformance(
  name: string,
  makeStore: () => Promise<StoreFixture>,
): void {
  const withStore = (title: string, body: (store: TableStore) => Promise<void>) =>
    Deno.test(`${name}: ${title}`, async () => {
      const { store, cleanup } = await makeStore();
      try {
        await body(store);
      } finally {
        await store.close();
        await cleanup();
      }
    });

  withStore("a new store holds no rows", async (store) => {
    assert.deepEqual(await store.read(), []);
  });

  withStore("an update stores the rows it returns and resolves with its result", async (store) => {
    const seen: PeerRow[][] = [];
    const first = await store.update((rows) => {
      seen.push(rows);
      return { rows: [sampleRow(1), sampleRow(2)], result: "stored" };
    });
    assert.equal(first, "stored");
    assert.deepEqual(seen, [[]]);
    const count = await store.update(async (rows) => {
      await Promise.resolve();
      return { rows: rows.filter((r) => r.userId !== "user-1"), result: rows.length };
    });
    assert.equal(count, 2);
    assert.deepEqual(await store.read(), [sampleRow(2)]);
  });

  withStore("50 concurrent updates each adding a row lose none of them", async (store) => {
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        store.update(async (rows) => {
          await Promise.resolve(); // let the other updates run between read and write
          return { rows: [...rows, sampleRow(i)], result: i };
        })),
    );
    assert.deepEqual(results, Array.from({ length: 50 }, (_, i) => i));
    const users = (await store.read()).map((r) => r.userId).sort();
    assert.deepEqual(users, Array.from({ length: 50 }, (_, i) => `user-${i}`).sort());
  });

  withStore(
    "a failing update leaves the table unchanged and rejects with its error",
    async (store) => {
      await store.update(() => ({ rows: [sampleRow(1)], result: undefined }));
      const boom = new Error("boom");
      await assert.rejects(
        store.update((rows) => {
          rows.push(sampleRow(2));
          const first = rows[0];
          if (first) first.failures = 7;
          throw boom;
        }),
        (err) => err === boom,
      );
      assert.deepEqual(await store.read(), [sampleRow(1)]);
      // The store still works after a failure.
      await store.update((rows) => ({ rows: [...rows, sampleRow(3)], result: undefined }));
      assert.deepEqual(await store.read(), [sampleRow(1), sampleRow(3)]);
    },
  );

  withStore("rows round-trip exactly, endpoints and failure flag included", async (store) => {
    const rows: PeerRow[] = [
      sampleRow(1, {
        endpoints: [
          { transport: "tcp", address: "203.0.113.9", port: 1 },
          { transport: "udp", address: "2001:db8::1", port: 65535 },
        ],
        failures: 3,
        lastFailureAt: Date.UTC(2026, 0, 2, 3, 4, 5),
      }),
      sampleRow(2, { endpoints: [], email: "", network: "go" }),
      sampleRow(3, { userId: 'Zoë \u{1F3B2} "quoted"', requestedAt: 0 }),
    ];
    await store.update(() => ({ rows, result: undefined }));
    assert.deepEqual(await store.read(), rows);
    assert.deepEqual(await store.update((got) => ({ rows: got, result: got })), rows);
    assert.deepEqual(await store.read(), rows);
  });

  withStore(
    "changing rows the store handed out does not change the stored table",
    async (store) => {
      const row = sampleRow(1);
      await store.update(() => ({ rows: [row], result: undefined }));
      row.failures = 9;
      row.endpoints[0]!.port = 1;
      const read = await store.read();
      read[0]!.userId = "someone-else";
      read.push(sampleRow(2));
      assert.deepEqual(await store.read(), [sampleRow(1)]);
    },
  );
}
