/**
 * Every error that tells the user to run a mailpeer command names one that exists and does
 * what the message says: the user copies it and it works.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { mailpeer } from "../support/cli.ts";
import { makeLocalSite } from "../support/local_site.ts";

Deno.test("a damaged host card points to `mailpeer keygen --card`, which prints the whole card", async () => {
  const dir = await makeLocalSite();
  try {
    const config = await Deno.readTextFile(join(dir, "bob.toml"));
    const card = config.match(/hosts = \["([^"]+)"\]/)![1]!;
    await Deno.writeTextFile(join(dir, "bob.toml"), config.replace(card, card.slice(0, -5)));
    const r = await mailpeer(["client", "--config", "bob.toml"], { cwd: dir });
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stderr.split("\n").length, 2, `one line: ${r.stderr}`);
    const pointer = r.stderr.match(/`(mailpeer [^`]+)`/)?.[1];
    assert.equal(pointer, "mailpeer keygen --card host.keys.json", r.stderr);

    const shown = await mailpeer(pointer!.split(" ").slice(1), { cwd: dir });
    assert.equal(shown.code, 0, shown.stderr);
    // The card the config holds, with the check against typos that people copy.
    assert.ok(shown.stdout.trim().startsWith(`${card}:`), shown.stdout);
    await Deno.writeTextFile(join(dir, "bob.toml"), config.replace(card, shown.stdout.trim()));
    const fixed = await mailpeer(["client", "--config", "bob.toml", "--help"], { cwd: dir });
    assert.equal(fixed.code, 0, fixed.stderr);
    // A wrong path there is a wrong path: never advice to make new host keys (new cards).
    const typo = await mailpeer(["keygen", "--card", "hots.keys.json"], { cwd: dir });
    assert.equal(typo.code, 1);
    assert.equal(
      typo.stderr,
      "mailpeer: Cannot read the host key file hots.keys.json: it does not exist; check the path\n",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a missing identity file points to the keygen command that creates it", async () => {
  const dir = await makeLocalSite();
  try {
    await Deno.remove(join(dir, "bob.json"));
    const r = await mailpeer(["client", "--config", "bob.toml"], { cwd: dir });
    assert.equal(r.code, 1, r.stderr);
    const pointer = r.stderr.match(/`(mailpeer [^`]+)`/)?.[1];
    assert.equal(pointer, `mailpeer keygen --user bob -o ${join(dir, "bob.json")}`, r.stderr);
    assert.match(r.stderr, /bob\.json: it does not exist; create it with/);
    const made = await mailpeer(pointer!.split(" ").slice(1), { cwd: dir });
    assert.equal(made.code, 0, made.stderr);
    assert.equal((await Deno.stat(join(dir, "bob.json"))).mode! & 0o777, 0o600);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
