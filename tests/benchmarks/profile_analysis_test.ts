/**
 * The host bench's reading of V8 CPU profiles (scripts/benchmarks/host_profile.ts): several
 * processes' profiles summed as one, each sample weighed as one typical interval.
 */
import assert from "node:assert/strict";
import { analyse, mergeProfiles, type Profile } from "../../scripts/benchmarks/host_profile.ts";

const ROOT = new URL("../../", import.meta.url).href;
const frame = (functionName: string, file = "") => ({
  functionName,
  url: file === "" ? "" : `${ROOT}${file}`,
  lineNumber: 0,
});

/** One process: root → a handler of ours → a callee of ours, plus idle. */
function profile(samples: number[], timeDeltas: number[]): Profile {
  return {
    nodes: [
      { id: 1, callFrame: frame("(root)"), children: [2, 4] },
      { id: 2, callFrame: frame("handle", "src/host/host.ts"), children: [3] },
      { id: 3, callFrame: frame("seal", "src/message/block.ts") },
      { id: 4, callFrame: frame("(idle)") },
    ],
    samples,
    timeDeltas,
  };
}

Deno.test("a sample counts as one median interval, not the time the thread waited for a core", () => {
  // four samples of 200 µs in `seal`, then one that arrived 500 ms late (descheduled)
  const p = profile([3, 3, 3, 3, 2, 4], [200, 200, 200, 200, 500_000, 200]);
  const result = analyse(p, 1)!;
  assert.equal(result.sampledMs, 1, "five non-idle samples of 200 µs");
  assert.deepEqual(
    result.byFunction.map((c) => [c.what, c.msPerRequest]),
    [["seal src/message/block.ts:1", 0.8], ["handle src/host/host.ts:1", 0.2]],
  );
});

Deno.test("profiles of several processes are summed as one, each keeping its own call tree", () => {
  const merged = mergeProfiles([
    profile([3, 3, 4], [200, 200, 200]),
    profile([2, 3, 3, 3], [200, 200, 200, 200]),
  ]);
  assert.equal(new Set(merged.nodes.map((n) => n.id)).size, 8, "no node id shared");
  const result = analyse(merged, 2)!;
  assert.equal(result.sampledMs, 1.2, "six non-idle samples of 200 µs");
  const own = Object.fromEntries(result.ownInclusive.map((c) => [c.what, c.msPerRequest]));
  // `handle` holds every non-idle sample of both (inclusive), `seal` five of them
  assert.deepEqual(own, { "handle src/host/host.ts:1": 0.6, "seal src/message/block.ts:1": 0.5 });
});
