/**
 * Private key files other users of the machine can read are refused, as ssh refuses such an
 * identity file; keygen always leaves its key files at mode 0600, even when it replaces one.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadHostKeys, loadIdentity } from "../../src/cli/wire.ts";
import { isMailpeerError } from "../../src/errors.ts";
import {
  encodeHostKeys,
  encodeIdentityKeys,
  generateHostKeys,
  generateIdentityKeys,
} from "../../src/message/key_file.ts";
import { mailpeer } from "../support/cli.ts";
import { withTempDir } from "../support/temp_dir.ts";

const POSIX = Deno.build.os !== "windows";

function refusedFor(path: string, mode: string) {
  return (err: unknown) => {
    assert.ok(isMailpeerError(err), String(err));
    assert.equal(err.code, "EKEY");
    assert.ok(!err.message.includes("\n"), "one line");
    assert.ok(err.message.includes(path), err.message);
    assert.ok(err.message.includes(`mode ${mode}`), err.message);
    assert.ok(err.message.endsWith(`chmod 600 ${path}`), err.message);
    return true;
  };
}

Deno.test({
  name: "an identity key file that group or others can read is refused with the chmod to run",
  ignore: !POSIX,
  fn: () =>
    withTempDir("mailpeer-keymode-", async (dir) => {
      const path = join(dir, "alice.identity.json");
      await Deno.writeTextFile(path, encodeIdentityKeys(await generateIdentityKeys("alice")));
      await Deno.chmod(path, 0o644);
      await assert.rejects(loadIdentity(path), refusedFor(path, "0644"));
      await Deno.chmod(path, 0o600);
      assert.equal((await loadIdentity(path)).userId, "alice");
    }),
});

Deno.test({
  name: "a host key file readable by its group is refused too",
  ignore: !POSIX,
  fn: () =>
    withTempDir("mailpeer-keymode-", async (dir) => {
      const path = join(dir, "host.keys.json");
      await Deno.writeTextFile(path, encodeHostKeys(await generateHostKeys("host@lan.test")));
      await Deno.chmod(path, 0o640);
      await assert.rejects(loadHostKeys(path), refusedFor(path, "0640"));
    }),
});

Deno.test({
  name: "keygen --force replacing a world-readable key file leaves it at mode 0600",
  ignore: !POSIX,
  fn: () =>
    withTempDir("mailpeer-keymode-", async (dir) => {
      const path = join(dir, "bob.json");
      await Deno.writeTextFile(path, "old\n");
      await Deno.chmod(path, 0o644);
      const run = await mailpeer(["keygen", "--user", "bob", "-o", path, "--force"]);
      assert.equal(run.code, 0, run.stderr);
      assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
      assert.equal((await loadIdentity(path)).userId, "bob");
    }),
});
