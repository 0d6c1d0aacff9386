/** Paired rounds (issue 18's marks on a noisy machine): the sign test's bounds of a median. */
import assert from "node:assert/strict";
import {
  boundRank,
  halfBinomialCdf,
  MIN_ROUNDS_FOR_BOUND,
  pairedRatios,
} from "../../scripts/benchmarks/paired_ratios.ts";

Deno.test("the sign test's tail is the exact binomial sum", () => {
  assert.equal(halfBinomialCdf(10, 1), 11 / 1024);
  // C(20, 0..5) = 1 + 20 + 190 + 1140 + 4845 + 15504
  assert.equal(halfBinomialCdf(20, 5), 21700 / 2 ** 20);
  assert.equal(halfBinomialCdf(7, -1), 0);
  assert.equal(halfBinomialCdf(7, 7), 1);
  assert.ok(Math.abs(halfBinomialCdf(1000, 500) - 0.5126) < 1e-4);
  assert.throws(() => halfBinomialCdf(1001, 3), /n must be an integer in 0\.\.1000/);
});

Deno.test("the bound's rank is the largest with at most 5 % of the tail under it", () => {
  assert.equal(boundRank(4), null, "4 rounds: the extreme alone has 6.25 %");
  assert.equal(MIN_ROUNDS_FOR_BOUND, 5);
  assert.deepEqual([5, 8, 10, 15, 20].map((n) => boundRank(n)), [1, 2, 2, 4, 6]);
  for (let n = MIN_ROUNDS_FOR_BOUND; n <= 60; n++) {
    const r = boundRank(n)!;
    assert.ok(halfBinomialCdf(n, r - 1) <= 0.05, `n=${n}: rank ${r} is a 95 % bound`);
    assert.ok(halfBinomialCdf(n, r) > 0.05, `n=${n}: rank ${r + 1} would not be`);
  }
  assert.equal(boundRank(10, 0.99), 1);
  assert.throws(() => boundRank(10, 1), /confidence must be between 0 and 1/);
});

Deno.test("ratios pair the rounds, leave out a round with a missing figure, and bound the median", () => {
  const a = [90, 100, NaN, 110, 80, 95, 105];
  const b = [100, 100, 100, 100, 100, 100, 0];
  const p = pairedRatios(a, b);
  assert.deepEqual(p.ratios, [0.9, 1, 1.1, 0.8, 0.95], "rounds 3 and 7 had a missing figure");
  assert.equal(p.median, 0.95);
  assert.equal(p.lower, 0.8, "5 rounds: the smallest is the 95 % lower bound");
  assert.equal(p.upper, 1.1);
  const even = pairedRatios([1, 2, 3, 4], [1, 1, 1, 1]);
  assert.equal(even.median, 2.5);
  assert.equal(even.lower, null, "4 rounds bound nothing at 95 %");
  assert.ok(Number.isNaN(pairedRatios([], []).median));
  assert.throws(() => pairedRatios([1, 2], [1]), /2 figures against 1; pair each round/);
});

/** A seeded PRNG (mulberry32): the coverage check below is the same on every run. */
function seeded(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("the lower bound is under the true median in at least 95 % of noisy runs", () => {
  // ratios scattered around a true median of 1 with skewed noise (a load spike only slows one
  // term): the bound must hold whatever the noise's shape
  const random = seeded(18);
  for (const n of [5, 10, 20]) {
    let held = 0;
    const trials = 4000;
    for (let t = 0; t < trials; t++) {
      const ratios = Array.from({ length: n }, () => {
        const u = random();
        return u < 0.5 ? 1 - 0.3 * random() ** 3 : 1 + 0.1 * random();
      });
      const p = pairedRatios(ratios, ratios.map(() => 1));
      if (p.lower! <= 1) held++;
    }
    assert.ok(held / trials >= 0.95, `n=${n}: the bound held in ${held} of ${trials}`);
  }
});
