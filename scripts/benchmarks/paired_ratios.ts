/**
 * Paired rounds: how the benches judge a ratio of two figures on a shared, noisy machine
 * (docs/decisions.md "Issue 18's marks are judged on paired rounds"). The two figures are
 * measured back to back in each round (the benches alternate or interleave their order), so
 * each round gives one ratio with the load of its own minutes in both terms; a mark reads the
 * median of those ratios, and a distribution-free confidence bound for that median: the
 * sign test's order statistic, which assumes nothing about the shape of the noise, only that
 * rounds are independent.
 *
 * Pure: figures in, ratios and bounds out.
 *
 * @module
 */

/** The rounds a one-sided bound at 95 % needs at least: with 4, even the extreme has 6.25 %. */
export const MIN_ROUNDS_FOR_BOUND = 5;

/** Most rounds {@link pairedRatios} takes (2^-n must stay a normal double). */
export const MAX_ROUNDS = 1000;

/** The per-round ratios of two paired series, their median and its confidence bounds. */
export interface PairedRatios {
  /** a[i] ÷ b[i] per round, in round order (pairs with a missing figure left out). */
  ratios: number[];
  /** Median of `ratios` (the mean of the middle two when their count is even). */
  median: number;
  /**
   * One-sided lower confidence bound of the median ratio at `confidence`: an order statistic
   * of the ratios. Null with fewer than {@link MIN_ROUNDS_FOR_BOUND} rounds.
   */
  lower: number | null;
  /** One-sided upper bound, the mirror of `lower`. */
  upper: number | null;
  /** The confidence of each one-sided bound (0.95 unless asked otherwise). */
  confidence: number;
}

/** P(X ≤ k) for X ~ Binomial(n, 1/2): the sign test's tail. */
export function halfBinomialCdf(n: number, k: number): number {
  if (!Number.isInteger(n) || n < 0 || n > MAX_ROUNDS) {
    throw new RangeError(`halfBinomialCdf: n must be an integer in 0..${MAX_ROUNDS}, not ${n}`);
  }
  if (k < 0) return 0;
  if (k >= n) return 1;
  // C(n, i) / 2^n, term by term: exact enough for n ≤ 1000 (2^-1000 is a normal double)
  let term = Math.pow(2, -n);
  let sum = term;
  for (let i = 1; i <= k; i++) {
    term = term * (n - i + 1) / i;
    sum += term;
  }
  return Math.min(1, sum);
}

/**
 * The 1-based rank r of the sorted sample whose value is a one-sided lower confidence bound
 * of the median at `confidence`: the largest r with P(X ≤ r − 1) ≤ 1 − confidence, X ~
 * Binomial(n, 1/2) (at least r of n values lie under the median with that probability). The
 * upper bound is the value of rank n + 1 − r. Null when even the smallest value is not a bound
 * at that confidence (n too small).
 */
export function boundRank(n: number, confidence = 0.95): number | null {
  if (!(confidence > 0 && confidence < 1)) {
    throw new RangeError(`boundRank: confidence must be between 0 and 1, not ${confidence}`);
  }
  const alpha = 1 - confidence;
  let rank = 0;
  while (rank < n && halfBinomialCdf(n, rank) <= alpha) rank++;
  return rank === 0 ? null : rank;
}

function medianOfSorted(s: number[]): number {
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * Ratios a[i] ÷ b[i] of two series measured in the same rounds (index i is round i), with the
 * median and its one-sided bounds. A round where either figure is missing (not a finite number
 * > 0: a failed or skipped mode) is left out; no round left gives a NaN median.
 */
export function pairedRatios(a: number[], b: number[], confidence = 0.95): PairedRatios {
  if (a.length !== b.length) {
    throw new RangeError(`pairedRatios: ${a.length} figures against ${b.length}; pair each round`);
  }
  const ok = (x: number | undefined): x is number => Number.isFinite(x) && x! > 0;
  const ratios: number[] = [];
  for (let i = 0; i < a.length; i++) if (ok(a[i]) && ok(b[i])) ratios.push(a[i]! / b[i]!);
  if (ratios.length > MAX_ROUNDS) {
    throw new RangeError(`pairedRatios: at most ${MAX_ROUNDS} rounds, not ${ratios.length}`);
  }
  const sorted = [...ratios].sort((x, y) => x - y);
  const rank = ratios.length >= MIN_ROUNDS_FOR_BOUND ? boundRank(ratios.length, confidence) : null;
  return {
    ratios,
    median: sorted.length === 0 ? NaN : medianOfSorted(sorted),
    lower: rank === null ? null : sorted[rank - 1]!,
    upper: rank === null ? null : sorted[sorted.length - rank]!,
    confidence,
  };
}
