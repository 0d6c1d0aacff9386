/**
 * The in-memory claim ledger the host tests stand in for Redis with
 * (tests/support/memory_claim_ledger.ts) passes the ledgers' conformance suite, and records
 * what each claim tried.
 */
import assert from "node:assert/strict";
import { ManualClock } from "../support/manual_clock.ts";
import { MemoryClaimLedgers } from "../support/memory_claim_ledger.ts";
import { claimLedgerConformance } from "../conformance/claim_ledger.ts";

claimLedgerConformance("MemoryClaimLedgers", () => {
  const ledgers = new MemoryClaimLedgers({ clock: new ManualClock(0), ttlMs: 60_000 });
  return Promise.resolve({ ledgerOf: (owner) => ledgers.of(owner), cleanup: async () => {} });
});

Deno.test("MemoryClaimLedgers: a call records the ids offered, the count, those tried and those held", async () => {
  const ledgers = new MemoryClaimLedgers({ clock: new ManualClock(0), ttlMs: 60_000 });
  await ledgers.of("a").claim(["1", "3"]);
  await ledgers.of("b").claim(["1", "2", "3", "4", "5"], { upTo: 2 });
  assert.deepEqual(ledgers.callsOf("b"), [
    {
      owner: "b",
      ids: ["1", "2", "3", "4", "5"],
      upTo: 2,
      tried: ["1", "2", "3", "4"],
      held: ["2", "4"],
    },
  ]);
  assert.deepEqual(ledgers.askedBy("b"), ["1", "2", "3", "4"]);
  assert.deepEqual(ledgers.wonBy("a"), ["1", "3"]);
});
