/**
 * A person whose client has just connected is told that the chat has begun and how it ends:
 * without it, the screen shows "connected" and nothing says to type.
 */
import assert from "node:assert/strict";
import { mailpeer, Running } from "../support/cli.ts";
import { makeLocalSite } from "../support/local_site.ts";

Deno.test("a connected chat says how to send a line and that Ctrl-D ends it; end of input ends it with exit 0", async () => {
  const dir = await makeLocalSite();
  const host = new Running(["host", "--config", "host.toml", "--json"], { cwd: dir });
  try {
    const bob = new Running(["client", "--config", "bob.toml", "--json", "-m", "hey"], {
      cwd: dir,
    });
    await bob.waitFor((e) => e.event === "standby");
    const alice = await mailpeer(["client", "--config", "alice.toml"], {
      cwd: dir,
      stdin: "hello\n",
    });
    assert.equal(alice.code, 0, alice.stderr);
    assert.match(
      alice.stderr,
      /\nchat with bob: type a line and Enter to send it; Ctrl-D ends the chat\n/,
    );
    assert.match(alice.stderr, /disconnected from bob/);
    assert.equal((await bob.status).code, 0, bob.stderr);
    assert.ok(bob.events.some((e) => e.event === "message" && e.text === "hello"));
  } finally {
    await host.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
