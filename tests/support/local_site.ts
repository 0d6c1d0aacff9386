/**
 * A site on a local post office (Maildirs in a temporary directory, no mail server): a host key,
 * identities and one configuration per role, for CLI tests that need a host and terminals but
 * not real mail.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { events, mailpeer } from "./cli.ts";

/** What a local site's configurations say beyond the defaults. */
export interface LocalSiteOptions {
  /**
   * Extra `[terminal]` lines for every terminal (e.g. `standby_timeout = "1s"`); a key given
   * here replaces its default.
   */
  terminal?: string;
}

/**
 * Writes, in a new temporary directory: `host.toml` (the host), `alice.toml` and `bob.toml`
 * (terminals) and `combined.toml` (the host and bob's terminal in one file).
 */
export async function makeLocalSite(options: LocalSiteOptions = {}): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "mailpeer-local-" });
  const host = await mailpeer(
    ["keygen", "--host", "host@lan.test", "-o", "host.keys.json", "--json"],
    { cwd: dir },
  );
  assert.equal(host.code, 0, host.stderr);
  const card = events(host.stdout)[0]?.card as string;
  const head = `network = "local"\npost_office = "po"\n`;
  const hostSection = `[host]\nemail = "host@lan.test"\nallow_private_addresses = true\n` +
    `poll_interval = "100ms"\n`;
  // Lines of options.terminal replace the defaults of the same key.
  const extra = options.terminal ?? "";
  const given = new Set(extra.split("\n").map((l) => l.split("=")[0]!.trim()));
  const defaults = [`address = "127.0.0.1"`, `reply_timeout = "30s"`, `standby_timeout = "30s"`]
    .concat(`poll_interval = "100ms"`)
    .filter((l) => !given.has(l.split("=")[0]!.trim()));
  const terminal = (user: string) =>
    `[terminal]
user_id = "${user}"
email = "${user}@lan.test"
identity = "${user}.json"
hosts = ["${card}"]
${defaults.join("\n")}
${extra}
`;
  await Deno.writeTextFile(join(dir, "host.toml"), head + hostSection);
  for (const user of ["alice", "bob"]) {
    const made = await mailpeer(["keygen", "--user", user, "-o", `${user}.json`], { cwd: dir });
    assert.equal(made.code, 0, made.stderr);
    await Deno.writeTextFile(join(dir, `${user}.toml`), head + terminal(user));
  }
  await Deno.writeTextFile(join(dir, "combined.toml"), head + hostSection + terminal("bob"));
  return dir;
}
