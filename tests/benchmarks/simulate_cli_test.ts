/**
 * `scripts/simulate` (docs/scaling.md) as a user runs it: a table, then the JSON it also writes,
 * with the loopback check beside its measurement; a mistyped option is a usage error. Runs the
 * model only (small samples): no mail stack, no network.
 */
import assert from "node:assert/strict";

const SIMULATE = new URL("../../scripts/simulate", import.meta.url).pathname;

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await new Deno.Command(SIMULATE, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const d = new TextDecoder();
  return { code: r.code, stdout: d.decode(r.stdout), stderr: d.decode(r.stderr) };
}

Deno.test("scripts/simulate prints the table and writes the JSON, loopback check included", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/simulate.json`;
    const r = await run(["--per-day", "1000,100000", "--samples", "500", "--json-out", path]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /\| sending accounts \(send-cap bound\)/);
    assert.match(r.stdout, /loopback check/);
    const json = JSON.parse(await Deno.readTextFile(path));
    assert.equal(json.bench, "simulate");
    assert.equal(json.results.length, 2);
    assert.equal(json.results[0].rendezvousPerDay, 1000);
    assert.ok(json.results[1].accounts > json.results[0].accounts);
    assert.equal(json.loopbackCheck.poll.measuredP50Ms, 120.6);
    assert.ok(Math.abs(json.loopbackCheck.poll.ratioP50 - 1) < 0.1);
    assert.ok(Math.abs(json.loopbackCheck.idle.ratioP50 - 1) < 0.1);
    // The JSON on stdout is the file's.
    assert.ok(r.stdout.endsWith(await Deno.readTextFile(path)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("scripts/simulate refuses a mistyped option with exit code 2 and one line", async () => {
  const r = await run(["--per-days", "5"]);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, "");
  assert.match(r.stderr, /^scripts\/simulate: unknown option --per-days/);
  assert.equal(r.stderr.trim().split("\n").length, 1);
});
