/**
 * Where a subcommand finds its configuration, as `--help` and docs/cli.md say: --config FILE,
 * else $MAILPEER_CONFIG (when set and not empty), else ./mailpeer.toml; and a missing file is
 * explained with where its name came from.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { mailpeer } from "../support/cli.ts";

Deno.test("the configuration is --config, else $MAILPEER_CONFIG, else ./mailpeer.toml", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mailpeer-lookup-" });
  try {
    // Each file holds one unknown key, so the error names the file that was read.
    for (
      const [file, key] of [["mailpeer.toml", "from_cwd"], ["env.toml", "from_env"], [
        "flag.toml",
        "from_flag",
      ]]
    ) {
      await Deno.writeTextFile(join(dir, file!), `network = "x"\n${key} = 1\n`);
    }
    const read = async (args: string[], env: Record<string, string> = {}) => {
      const r = await mailpeer(["table", ...args], { cwd: dir, env });
      assert.equal(r.code, 1, r.stderr);
      return ["from_cwd", "from_env", "from_flag"].find((key) => r.stderr.includes(key));
    };
    assert.equal(await read([]), "from_cwd");
    assert.equal(await read([], { MAILPEER_CONFIG: "" }), "from_cwd", "empty counts as unset");
    assert.equal(await read([], { MAILPEER_CONFIG: "env.toml" }), "from_env");
    assert.equal(
      await read(["--config", "flag.toml"], { MAILPEER_CONFIG: "env.toml" }),
      "from_flag",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a missing configuration says where its name came from and what to do", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mailpeer-lookup-" });
  try {
    const none = await mailpeer(["client"], { cwd: dir });
    assert.equal(none.code, 1);
    assert.equal(
      none.stderr,
      "mailpeer: Cannot read the configuration mailpeer.toml: it does not exist; no --config was " +
        "given and $MAILPEER_CONFIG is not set; pass --config FILE, or write ./mailpeer.toml " +
        "(docs/config.md)\n",
    );
    const env = await mailpeer(["client"], { cwd: dir, env: { MAILPEER_CONFIG: "gone.toml" } });
    assert.match(env.stderr, /gone\.toml: it does not exist; it is named by \$MAILPEER_CONFIG/);
    const flag = await mailpeer(["client", "-c", "typo.toml"], { cwd: dir });
    assert.match(flag.stderr, /typo\.toml: it does not exist; check the --config path\n$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
