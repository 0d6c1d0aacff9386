/**
 * The installed `mailpeer` command (scripts/install, README "Install"): a new user follows the
 * README, then runs `mailpeer` by name from a directory outside the clone, and sees mailpeer's
 * own output and nothing else.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { VERSION } from "../../src/version.ts";
import { mailpeer as direct } from "../support/cli.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

async function run(
  cmd: string,
  args: string[],
  options: { cwd: string; env: Record<string, string> },
) {
  const out = await new Deno.Command(cmd, {
    args,
    cwd: options.cwd,
    env: options.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("after scripts/install, `mailpeer` runs by name from any directory and prints only mailpeer's own lines", async () => {
  const home = await Deno.makeTempDir({ prefix: "mailpeer-home-" });
  const elsewhere = await Deno.makeTempDir({ prefix: "mailpeer-cwd-" });
  try {
    // README: `scripts/install` in the clone, then ~/.local/bin on PATH.
    const env = { HOME: home, NO_COLOR: "1", PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" };
    const installed = await run(join(ROOT, "scripts/install"), [], { cwd: ROOT, env });
    assert.equal(installed.code, 0, installed.stderr);
    const bin = join(home, ".local/bin");
    assert.match(
      installed.stdout,
      new RegExp(`^Installed mailpeer ${VERSION} as ${bin}/mailpeer$`, "m"),
    );
    assert.match(installed.stdout, /is not on PATH; add it/, "it says how to put it on PATH");

    const user = { cwd: elsewhere, env: { ...env, PATH: `${bin}:${env.PATH}` } };
    const version = await run("mailpeer", ["--version"], user);
    assert.deepEqual(version, { code: 0, stdout: `${VERSION}\n`, stderr: "" });

    // Files land in the user's directory, not the clone's.
    const keygen = await run(
      "mailpeer",
      ["keygen", "--user", "alice", "-o", "alice.identity.json"],
      user,
    );
    assert.equal(keygen.code, 0, keygen.stderr);
    assert.equal(keygen.stderr, "");
    assert.match(
      keygen.stdout,
      /^wrote alice\.identity\.json for user alice\nfor the allow-lists of your peers \(terminal\.allow\):\nalice@[A-Za-z0-9_-]{43}\n$/,
    );
    assert.ok((await Deno.stat(join(elsewhere, "alice.identity.json"))).isFile);

    // Help is exactly what main.ts itself prints: no "Task …" line, no Deno diagnostics.
    const help = await run("mailpeer", ["client", "--help"], user);
    const own = await direct(["client", "--help"]);
    assert.equal(own.code, 0);
    assert.deepEqual(help, own);

    // Exit codes and messages come through unchanged: 2 for a usage error, 1 for a failure.
    const usage = await run("mailpeer", ["frobnicate"], user);
    assert.equal(usage.code, 2);
    assert.deepEqual(usage, await direct(["frobnicate"]));
    const missing = await run("mailpeer", ["client", "--config", "nothere.toml"], user);
    assert.equal(missing.code, 1);
    assert.deepEqual(missing, await direct(["client", "--config", "nothere.toml"]));
  } finally {
    await Deno.remove(home, { recursive: true });
    await Deno.remove(elsewhere, { recursive: true });
  }
});

Deno.test("scripts/install --bin puts the command into the directory given, and says when it is on PATH", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mailpeer-bin-" });
  try {
    const bin = join(dir, "my bin");
    const env = { NO_COLOR: "1", PATH: `${bin}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}` };
    const installed = await run(join(ROOT, "scripts/install"), ["--bin", bin], { cwd: dir, env });
    assert.equal(installed.code, 0, installed.stderr);
    assert.equal(installed.stdout, `Installed mailpeer ${VERSION} as ${bin}/mailpeer\n`);
    const version = await run("mailpeer", ["--version"], { cwd: dir, env });
    assert.deepEqual(version, { code: 0, stdout: `${VERSION}\n`, stderr: "" });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
