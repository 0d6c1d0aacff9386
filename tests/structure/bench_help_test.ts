/**
 * Every benchmark wrapper (`scripts/bench*`) and `scripts/simulate` answers `--help` with its
 * usage and exit code 0 at once, starting nothing (issue 18: `scripts/bench-peer --help` used to
 * run the whole bench). The wrappers run as subprocesses with `--help` only: no bench runs here.
 */
import assert from "node:assert/strict";
import { join } from "node:path";

const SCRIPTS = new URL("../../scripts/", import.meta.url).pathname;

/** The wrappers: executable files of scripts/ named bench*, and simulate. */
function wrappers(): string[] {
  const names: string[] = [];
  for (const entry of Deno.readDirSync(SCRIPTS)) {
    if (!entry.isFile) continue;
    if (entry.name.startsWith("bench") || entry.name === "simulate") names.push(entry.name);
  }
  return names.sort();
}

/** A line of a wrapper that starts a service or a benchmark. */
const STARTS = /mailstack|redis\.sh|natlab\.sh|coturn\.sh|scripts\/deno|\bexec\b|\brun\b /;

Deno.test("the wrappers are found (bench, bench-host, bench-peer, bench-rendezvous, simulate …)", () => {
  const names = wrappers();
  for (const n of ["bench", "bench-host", "bench-peer", "bench-rendezvous", "simulate"]) {
    assert.ok(names.includes(n), `scripts/${n} missing from ${names.join(", ")}`);
  }
});

Deno.test("a wrapper handles --help before it starts any service or bench", () => {
  for (const name of wrappers()) {
    const lines = Deno.readTextFileSync(join(SCRIPTS, name)).split("\n")
      .filter((l) => !l.trimStart().startsWith("#"));
    const help = lines.findIndex((l) => l.includes("help_and_exit"));
    const starts = lines.findIndex((l) => STARTS.test(l));
    const service = lines.some((l) => /mailstack|redis\.sh|natlab\.sh|coturn\.sh/.test(l));
    if (help < 0) {
      // Only a wrapper that starts no service may leave --help to its program (simulate.ts).
      assert.ok(!service, `scripts/${name} starts a service and never calls help_and_exit`);
      continue;
    }
    assert.ok(
      starts < 0 || help < starts,
      `scripts/${name}: help_and_exit after "${lines[starts]}"`,
    );
  }
});

Deno.test("every bench wrapper and scripts/simulate print their usage for --help and exit 0", async () => {
  const runs = wrappers().map(async (name) => {
    const t0 = performance.now();
    const r = await new Deno.Command(join(SCRIPTS, name), {
      args: ["--help"],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(60_000),
    }).output();
    const ms = performance.now() - t0;
    const stdout = new TextDecoder().decode(r.stdout);
    const stderr = new TextDecoder().decode(r.stderr);
    assert.equal(r.code, 0, `scripts/${name} --help exited ${r.code}: ${stderr}`);
    assert.match(stdout, new RegExp(`scripts/${name}\\b`), `scripts/${name} --help: ${stdout}`);
    assert.match(stdout, /usage/i, `scripts/${name} --help names no usage`);
    assert.equal(stderr.trim(), "", `scripts/${name} --help wrote to stderr: ${stderr}`);
    // A bench takes minutes; the usage comes back in well under that, even on a busy machine.
    assert.ok(ms < 20_000, `scripts/${name} --help took ${ms.toFixed(0)} ms`);
  });
  await Promise.all(runs);
});
