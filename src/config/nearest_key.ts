/**
 * The "did you mean …?" of a misspelt configuration key (docs/config.md): the known key
 * closest to what was written, by edit distance with adjacent swaps counted as one edit
 * (`idel` → `idle`), or none when nothing is close enough to be a typo. Pure.
 *
 * @module
 */

/** Edits (insert, delete, replace, swap two neighbours) from `a` to `b`. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => {
    const row = new Array<number>(b.length + 1).fill(0);
    row[0] = i;
    return row;
  });
  for (let j = 0; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, d[i - 2]![j - 2]! + 1);
      }
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The known key nearest to `written`, when it is close enough to be a typo: at most a third of
 * the key's length in edits (at least one, at most three), case, `-` and `_` aside.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { nearestKey } from "./nearest_key.ts";
 *
 * assert.equal(nearestKey("poll_intervall", ["poll_interval", "expiry"]), "poll_interval");
 * assert.equal(nearestKey("colour", ["poll_interval", "expiry"]), undefined);
 * ```
 */
export function nearestKey(written: string, known: readonly string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replaceAll("-", "_");
  const w = norm(written);
  let best: { key: string; distance: number } | undefined;
  for (const key of known) {
    // The distance is at least the difference in length: a long key is no typo of a short one
    // (and a hostile key of a megabyte costs nothing).
    if (Math.abs(w.length - key.length) > 3) continue;
    const distance = editDistance(w, norm(key));
    if (best === undefined || distance < best.distance) best = { key, distance };
  }
  if (best === undefined) return undefined;
  const allowed = Math.min(3, Math.max(1, Math.floor(best.key.length / 3)));
  return best.distance <= allowed ? best.key : undefined;
}
