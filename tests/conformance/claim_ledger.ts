/**
 * The conformance suite every {@link ClaimLedger} passes (the Redis one, and the in-memory one
 * the host tests use as its stand-in): one owner per mail, a claim renewed by its owner, and a
 * claim `upTo` a count that walks the ids in order and stops once it holds that many, leaving
 * the ids after the stop to anyone (docs/decisions.md "Claims in the shared store"). Call it
 * from an implementation's test file:
 *
 * ```ts ignore
 * claimLedgerConformance("memory", () => Promise.resolve({ ledgerOf, cleanup }));
 * ```
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ClaimLedger } from "../../src/host/types.ts";

/** Ledgers of several processes on one mailbox. */
export interface ClaimLedgerFixture {
  /** The ledger of process `owner` (the same one for the same owner). */
  ledgerOf(owner: string): ClaimLedger;
  /** Removes what the fixture made. */
  cleanup(): Promise<void>;
}

const IDS = Array.from({ length: 10 }, (_, i) => `7:${i + 1}`);

/**
 * Registers the suite's tests.
 *
 * @param name the implementation, e.g. "RedisStore.claimLedger".
 * @param makeLedgers makes ledgers on a fresh, empty mailbox.
 */
export function claimLedgerConformance(
  name: string,
  makeLedgers: () => Promise<ClaimLedgerFixture>,
): void {
  const withLedgers = (
    title: string,
    body: (of: (owner: string) => ClaimLedger) => Promise<void>,
  ) =>
    Deno.test(`${name}: ${title}`, async () => {
      const { ledgerOf, cleanup } = await makeLedgers();
      try {
        await body(ledgerOf);
      } finally {
        await cleanup();
      }
    });

  withLedgers(
    "without a count every id is tried: the free ones taken, its own kept",
    async (of) => {
      assert.deepEqual(await of("a").claim(["7:2", "7:5"]), new Set(["7:2", "7:5"]));
      assert.deepEqual(await of("b").claim(["7:1"]), new Set(["7:1"]));
      const all = new Set(IDS.filter((id) => id !== "7:2" && id !== "7:5"));
      assert.deepEqual(await of("b").claim(IDS), all);
      assert.deepEqual(await of("a").claim(IDS), new Set(["7:2", "7:5"]));
    },
  );

  withLedgers(
    "a claim up to a count skips others' mails, counts its own and stops once it holds that many",
    async (of) => {
      assert.deepEqual(await of("a").claim(["7:2", "7:5"]), new Set(["7:2", "7:5"]));
      assert.deepEqual(await of("b").claim(["7:3"]), new Set(["7:3"]));
      // 7:1 taken, 7:2 a's, 7:3 b's own, 7:4 taken, 7:5 a's, 7:6 taken: four, stop
      assert.deepEqual(
        await of("b").claim(IDS, { upTo: 4 }),
        new Set(["7:1", "7:3", "7:4", "7:6"]),
      );
      // what b did not reach is anyone's; what a holds stays a's
      assert.deepEqual(await of("c").claim(IDS.slice(6)), new Set(IDS.slice(6)));
      assert.deepEqual(await of("a").claim(IDS, { upTo: 2 }), new Set(["7:2", "7:5"]));
      assert.deepEqual(await of("c").claim(IDS, { upTo: 1 }), new Set(["7:7"]), "its own first");
    },
  );

  withLedgers("a claim up to more than it is offered tries every id", async (of) => {
    assert.deepEqual(await of("a").claim(["7:1", "7:3"]), new Set(["7:1", "7:3"]));
    assert.deepEqual(
      await of("b").claim(IDS.slice(0, 4), { upTo: 100 }),
      new Set(["7:2", "7:4"]),
    );
    assert.deepEqual(await of("b").claim(IDS.slice(0, 4), { upTo: 2 }), new Set(["7:2", "7:4"]));
    assert.deepEqual(await of("c").claim(IDS.slice(0, 4), { upTo: 1 }), new Set());
  });

  withLedgers("a count that is not a positive integer is refused", async (of) => {
    for (const upTo of [0, -1, 1.5, Number.NaN, Infinity]) {
      await assert.rejects(of("a").claim(["7:1"], { upTo }), RangeError, String(upTo));
    }
    assert.deepEqual(await of("b").claim(["7:1"]), new Set(["7:1"]), "and took nothing");
  });
}
