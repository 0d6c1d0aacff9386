/**
 * `send FILE` and `receive DIR` check what they were given before anything is mailed: a wrong
 * path is one line and exit 1 at once, not a request mailed and a peer waited for.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { events, mailpeer } from "../support/cli.ts";
import { makeLocalSite } from "../support/local_site.ts";

/** Every mail the local post office holds, in any mailbox. */
async function mailsIn(dir: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (at: string) => {
    for await (const entry of Deno.readDir(at)) {
      const path = join(at, entry.name);
      if (entry.isDirectory) await walk(path);
      else if (/\/(new|cur)\//.test(path)) found.push(path);
    }
  };
  await walk(join(dir, "po")).catch((err) => {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  });
  return found;
}

Deno.test("send with a missing file, a directory or an unreadable file says so in one line before anything is mailed", async () => {
  const dir = await makeLocalSite();
  try {
    await Deno.writeTextFile(join(dir, "secret.txt"), "x");
    await Deno.chmod(join(dir, "secret.txt"), 0o000);
    // Root reads it anyway: then there is no unreadable file to try.
    const readable = await Deno.open(join(dir, "secret.txt")).then((f) => (f.close(), true))
      .catch(() => false);
    const unreadable = readable ? [] : [["secret.txt", "it cannot be read"]];
    for (
      const [file, problem] of [
        ["no-such-file.bin", "it does not exist; check the path"],
        [".", "it is a directory"],
        ...unreadable,
      ]
    ) {
      const r = await mailpeer(["send", file!, "--config", "alice.toml"], { cwd: dir });
      assert.equal(r.code, 1, r.stderr);
      assert.equal(r.stderr.split("\n").length, 2, `one line: ${r.stderr}`);
      assert.ok(r.stderr.startsWith(`mailpeer: Cannot send ${file}: ${problem}`), r.stderr);
    }
    const json = await mailpeer(["send", "no-such-file.bin", "--config", "alice.toml", "--json"], {
      cwd: dir,
    });
    assert.equal(json.code, 1);
    assert.deepEqual(events(json.stdout).map((e) => [e.event, e.code]), [["error", "EFILE"]]);
    assert.deepEqual(await mailsIn(dir), [], "no request was mailed");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("receive into a missing directory or a file says so in one line before anything is mailed", async () => {
  const dir = await makeLocalSite();
  try {
    for (
      const [target, problem] of [
        ["inbox", "it does not exist; create it first"],
        ["bob.toml", "it is not a directory"],
      ]
    ) {
      const r = await mailpeer(["receive", target!, "--config", "bob.toml"], { cwd: dir });
      assert.equal(r.code, 1, r.stderr);
      assert.ok(r.stderr.startsWith(`mailpeer: Cannot receive into ${target}: ${problem}`));
    }
    assert.deepEqual(await mailsIn(dir), [], "no request was mailed");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
