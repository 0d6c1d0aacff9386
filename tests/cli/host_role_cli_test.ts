/**
 * `combined` with `host.role = "auto"` (docs/config.md "A group with no standing host"): two
 * members of a group share one mailbox and its network host key, with no standing host. bob's
 * member takes the host role with his own request; alice's member defers to it, and her terminal
 * gets bob from bob's member and chats with him. `host` refuses a member's configuration.
 * Local post office, real subprocesses.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { events, mailpeer, Running } from "../support/cli.ts";
import { makeLocalSite } from "../support/local_site.ts";

/** A member's configuration: combined.toml's host part as the group's mailbox, and `user`. */
async function memberConfig(dir: string, user: string): Promise<string> {
  const combined = await Deno.readTextFile(join(dir, "combined.toml"));
  const terminal = await Deno.readTextFile(join(dir, `${user}.toml`));
  const host = combined.slice(0, combined.indexOf("[terminal]"));
  const file = `member-${user}.toml`;
  await Deno.writeTextFile(
    join(dir, file),
    host.replace("[host]\n", `[host]\nrole = "auto"\ntable = "${user}-table.json"\n`) +
      terminal.slice(terminal.indexOf("[terminal]")),
  );
  return file;
}

Deno.test("two combined members, no standing host: the first takes the host role and the other's terminal connects through it", async () => {
  const dir = await makeLocalSite();
  try {
    const bobFile = await memberConfig(dir, "bob");
    const aliceFile = await memberConfig(dir, "alice");
    const bob = new Running(["combined", "--config", bobFile, "--json", "-m", "welcome"], {
      cwd: dir,
    });
    try {
      await bob.waitFor((e) => e.event === "standby" && e.actor === "terminal");
      assert.ok(
        bob.events.some((e) => e.event === "role-taken" && e.holder === "bob" && e.epoch === 1),
      );
      const alice = await mailpeer(
        ["combined", "--config", aliceFile, "--json", "-m", "hi", "--exit-after-chat"],
        { cwd: dir },
      );
      assert.equal(alice.code, 0, alice.stderr);
      const evs = events(alice.stdout);
      assert.ok(
        evs.some((e) => e.event === "role-deferred" && e.holder === "bob" && e.actor === "host"),
        alice.stdout,
      );
      assert.ok(!evs.some((e) => e.event === "role-taken"), "alice's member never took the role");
      assert.ok(evs.some((e) => e.event === "message" && e.text === "welcome"));
      await bob.waitFor((e) => e.event === "reply-sent" && e.userId === "alice");
      assert.equal((await bob.stop("SIGINT")).code, 0, bob.stderr);
    } finally {
      await bob.stop();
    }
    const host = await mailpeer(["host", "--once", "--config", bobFile], { cwd: dir });
    assert.notEqual(host.code, 0);
    assert.match(host.stderr, /role = "auto" makes this a member .*run "mailpeer combined"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
