/** The host bench's CPU by command (scripts/benchmarks/host_site.ts): where a drain's CPU went. */
import assert from "node:assert/strict";
import { cpuByCommand } from "../../scripts/benchmarks/host_site.ts";

const readings = (entries: [number, string, number][]) =>
  new Map(entries.map(([id, command, ms]) => [id, { command, ms }]));

Deno.test("CPU by command counts a renamed thread's time in the drain only, under its new name", () => {
  const before = readings([
    [10, "kworker/1:0-events", 40_000], // a kernel worker that has run for a long time
    [20, "smtpd", 1_000],
    [30, "deno", 5_000],
  ]);
  const after = readings([
    [10, "kworker/1:0-events_freezable", 40_020], // renamed by its task: 20 ms in the drain
    [20, "smtpd", 1_300],
    [30, "deno", 5_600],
    [40, "cleanup", 100], // started in the drain: all of it
  ]);
  assert.deepEqual(cpuByCommand(before, after, 100), {
    deno: 6,
    smtpd: 3,
    cleanup: 1,
    "kworker/1:0-events_freezable": 0.2,
  });
});

Deno.test("CPU by command counts a thread id used again by a new thread from zero", () => {
  const before = readings([[10, "smtp", 900]]);
  const after = readings([[10, "smtp", 50]]); // the old smtp ended, a new one got its id
  assert.deepEqual(cpuByCommand(before, after, 10), { smtp: 5 });
});
