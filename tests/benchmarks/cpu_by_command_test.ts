/** The host bench's CPU by command and the CPU no live thread holds (scripts/benchmarks/host_site.ts). */
import assert from "node:assert/strict";
import { cpuByCommand, unheldCpuMs } from "../../scripts/benchmarks/host_site.ts";

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

Deno.test("the CPU no live thread holds: softirq, and the drain's share of processes that ended, by the parent that reaped them", () => {
  const before = {
    softirq: 1_000,
    children: readings([[1, "master", 500], [2, "deno", 0], [4, "smtpd", 0]]),
  };
  // smtpd (4) had run 100 ms before the drain and ends in it, reaped by master with 200 ms in
  // all; deno (2) reaped none; a new sh (3) reaped 100 ms
  const after = {
    softirq: 1_300,
    children: readings([[1, "master", 700], [2, "deno", 0], [3, "sh", 100]]),
  };
  const threadsBefore = readings([[4, "smtpd", 100], [2, "deno", 5_000]]);
  // 300 ms reaped, 100 of it before the drain: two thirds of each parent's share count
  assert.deepEqual(unheldCpuMs(before, after, threadsBefore, 100), {
    softirq: 3,
    endedByParent: { master: 1.33, sh: 0.67 },
  });
});
