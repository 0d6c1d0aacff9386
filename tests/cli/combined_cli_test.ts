/**
 * `mailpeer combined` as a player who also hosts runs it: the host part answers others before,
 * during and after the chat, until Ctrl-C; `--exit-after-chat` ends both with the chat.
 * Local post office, real subprocesses.
 */
import assert from "node:assert/strict";
import { events, mailpeer, Running } from "../support/cli.ts";
import { makeLocalSite } from "../support/local_site.ts";

Deno.test("combined keeps hosting after its chat ends, answers the next terminal, and Ctrl-C ends it with exit 0", async () => {
  const dir = await makeLocalSite();
  try {
    const combined = new Running(
      ["combined", "--config", "combined.toml", "--json", "-m", "welcome"],
      { cwd: dir },
    );
    try {
      await combined.waitFor((e) => e.event === "standby" && e.actor === "terminal");
      const alice = await mailpeer(["client", "--config", "alice.toml", "--json", "-m", "hi"], {
        cwd: dir,
      });
      assert.equal(alice.code, 0, alice.stderr);
      assert.ok(events(alice.stdout).some((e) => e.event === "message" && e.text === "welcome"));

      await combined.waitFor((e) => e.event === "host-serving" && e.actor === "host");
      // The host still answers: alice asks again and gets a reply.
      const again = new Running(["client", "--config", "alice.toml", "--json"], { cwd: dir });
      await again.waitFor((e) => e.event === "reply-received");
      await again.stop("SIGINT");
      let answered = 0;
      await combined.waitFor((e) =>
        e.event === "reply-sent" && e.userId === "alice" && ++answered === 2
      );

      const status = await combined.stop("SIGINT");
      assert.equal(status.code, 0, combined.stderr);
      assert.deepEqual(
        { ...combined.events.at(-1), time: undefined },
        { time: undefined, event: "stopped", reason: "signal", signal: "SIGINT" },
      );
    } finally {
      await combined.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("combined --exit-after-chat ends host and terminal with the chat, exit 0", async () => {
  const dir = await makeLocalSite();
  try {
    const combined = new Running(
      ["combined", "--config", "combined.toml", "--json", "-m", "welcome", "--exit-after-chat"],
      { cwd: dir },
    );
    try {
      await combined.waitFor((e) => e.event === "standby" && e.actor === "terminal");
      const alice = await mailpeer(["client", "--config", "alice.toml", "--json", "-m", "hi"], {
        cwd: dir,
      });
      assert.equal(alice.code, 0, alice.stderr);
      const status = await combined.status;
      assert.equal(status.code, 0, combined.stderr);
      assert.ok(!combined.events.some((e) => e.event === "host-serving"));
      assert.equal(combined.events.at(-1)?.event, "disconnected");
    } finally {
      await combined.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
