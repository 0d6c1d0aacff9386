/**
 * `mailpeer combined` on real accounts: a player who also hosts. One process reads the host
 * mailbox and is bob's terminal; alice, elsewhere, finds bob through it and connects.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { events, mailpeer, Running } from "../support/cli.ts";
import { NO_STACK } from "../support/mailstack.ts";
import { makeSite } from "../support/site.ts";

Deno.test({
  name:
    "combined host and terminal on real accounts: bob hosts, stands by, and alice connects to him",
  ignore: NO_STACK,
  fn: async () => {
    const site = await makeSite({ receive: "imap" });
    try {
      const host = await Deno.readTextFile(join(site.dir, "host.toml"));
      const bob = await Deno.readTextFile(join(site.dir, "bob.toml"));
      await Deno.writeTextFile(
        join(site.dir, "combined.toml"),
        host + bob.replace(/^network = .*\n/, ""),
      );
      const opts = { cwd: site.dir, env: site.env };
      const combined = new Running([
        "combined",
        "--config",
        "combined.toml",
        "--json",
        "-m",
        "welcome",
      ], opts);
      try {
        await combined.waitFor((e) => e.event === "standby" && e.actor === "terminal");
        assert.ok(
          combined.events.some((e) =>
            e.event === "reply-sent" && e.actor === "host" && e.userId === "bob"
          ),
        );

        const alice = await mailpeer(
          ["client", "--config", "alice.toml", "--json", "-m", "hi bob"],
          opts,
        );
        assert.equal(alice.code, 0, alice.stderr);
        const evs = events(alice.stdout);
        assert.equal(evs.find((e) => e.event === "connected")?.peer, "bob");
        assert.ok(evs.some((e) => e.event === "message" && e.text === "welcome"));

        // The chat is over; the host part serves on until Ctrl-C, a normal end (exit 0).
        await combined.waitFor((e) => e.event === "host-serving" && e.actor === "host");
        assert.ok(combined.events.some((e) => e.event === "message" && e.text === "hi bob"));
        const status = await combined.stop("SIGINT");
        assert.equal(status.code, 0, combined.stderr);
        assert.equal(combined.events.at(-1)?.event, "stopped");
      } finally {
        await combined.stop();
      }
    } finally {
      await site.cleanup();
    }
  },
});
