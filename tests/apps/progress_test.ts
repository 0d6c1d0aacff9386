import assert from "node:assert/strict";
import { formatBytes, renderProgress } from "../../src/apps/progress.ts";

const MiB = 1024 * 1024;

Deno.test("the progress bar shows half a transfer with rate and time left", () => {
  assert.equal(
    renderProgress({ done: 50 * MiB, total: 100 * MiB, elapsedMs: 2000 }),
    "[############------------]  50.0%  50.0 MiB / 100.0 MiB  25.0 MiB/s  ETA 0:02",
  );
});

Deno.test("the progress bar before any byte shows no rate and no ETA", () => {
  assert.equal(
    renderProgress({ done: 0, total: 2048, elapsedMs: 0 }, { width: 10 }),
    "[----------]   0.0%  0 B / 2.0 KiB  --/s  ETA --:--",
  );
});

Deno.test("a finished transfer shows a full bar, the average rate and the time taken", () => {
  assert.equal(
    renderProgress({ done: 3 * MiB, total: 3 * MiB, elapsedMs: 90_000 }, { width: 4 }),
    "[####] 100.0%  3.0 MiB / 3.0 MiB  34.1 KiB/s  done in 1:30",
  );
});

Deno.test("an empty file and overshooting counts render as complete, never past 100%", () => {
  assert.ok(
    renderProgress({ done: 0, total: 0, elapsedMs: 0 }).endsWith("100.0%  0 B / 0 B  done"),
  );
  assert.ok(
    renderProgress({ done: 900, total: 500, elapsedMs: 0 }).includes("100.0%  500 B / 500 B"),
  );
});

Deno.test("long transfers show hours in the time left", () => {
  const line = renderProgress({ done: MiB, total: 10_000 * MiB, elapsedMs: 1000 });
  assert.match(line, /ETA 2:46:39$/);
});

Deno.test("byte counts use binary units", () => {
  assert.equal(formatBytes(512), "512 B");
  assert.equal(formatBytes(1536), "1.5 KiB");
  assert.equal(formatBytes(5 * 1024 ** 3), "5.0 GiB");
  assert.equal(formatBytes(-1), "? B");
});

Deno.test("a stream of unknown length shows bytes so far, rate and time, with no bar or ETA", () => {
  assert.equal(
    renderProgress({ done: 50 * MiB, elapsedMs: 2000 }),
    "50.0 MiB so far  25.0 MiB/s  0:02",
  );
  assert.equal(renderProgress({ done: 0, elapsedMs: 0 }), "0 B so far  --/s  0:00");
});
