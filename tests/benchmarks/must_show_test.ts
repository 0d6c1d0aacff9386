/** The peer bench's must-show rows (issue 18): ratios, targets, pass marks. */
import assert from "node:assert/strict";
import { mark, mustShow } from "../../scripts/benchmarks/must_show.ts";

Deno.test("must-show marks each ratio against its target, from the same-run figures", () => {
  const rows = mustShow({ cliMbS: 1600, rawDenoTcpMbS: 3000, libp2pMbS: 600, handshakeP50Ms: 1.2 });
  assert.deepEqual(rows.map((r) => [r.check, r.pass]), [
    ["CLI default ÷ raw Deno TCP", true],
    ["CLI default ÷ js-libp2p", false],
    ["handshake p50 (TCP)", true],
  ]);
  assert.equal(rows[0]!.value, "0.533 (1600 / 3000 MB/s)");
  assert.equal(rows[1]!.value, "2.667 (1600 / 600 MB/s)");
  assert.deepEqual(rows.map((r) => mark(r.pass)), ["pass", "FAIL", "pass"]);
});

Deno.test("must-show says why a figure was not measured instead of failing", () => {
  const rows = mustShow({
    cliMbS: 1600,
    rawDenoTcpMbS: 3000,
    libp2pMbS: null,
    handshakeP50Ms: null,
    notes: { libp2p: "not measured: npm install failed", handshake: "skipped" },
  });
  assert.equal(rows[1]!.pass, null);
  assert.equal(rows[1]!.value, "not measured: npm install failed");
  assert.equal(rows[2]!.value, "not measured: skipped");
  assert.equal(mark(rows[2]!.pass), "n/a");
});
