import assert from "node:assert/strict";
import { MemoryStore } from "../../src/host/store/memory_store.ts";
import { sampleRow, tableStoreConformance } from "../conformance/table_store.ts";

tableStoreConformance(
  "MemoryStore",
  () => Promise.resolve({ store: new MemoryStore(), cleanup: () => Promise.resolve() }),
);

Deno.test("MemoryStore: a store made from rows starts with a copy of them", async () => {
  const rows = [sampleRow(1), sampleRow(2)];
  const store = new MemoryStore(rows);
  rows[0]!.failures = 5;
  assert.deepEqual(await store.read(), [sampleRow(1), sampleRow(2)]);
});
