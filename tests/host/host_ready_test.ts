/**
 * A long-running host says once, right after it has read its mailbox for the first time, that
 * it is up and how it waits for mail: before, it printed nothing until the first mail came, and
 * a new user could not tell a working host from a hung one.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { narrate } from "../../src/cli/output.ts";
import { mailpeer, Running } from "../support/cli.ts";

Deno.test("a long-running host reports once that it reads its mailbox and how it waits", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mailpeer-ready-" });
  try {
    const keygen = await mailpeer(["keygen", "--host", "host@lan.test", "-o", "host.keys.json"], {
      cwd: dir,
    });
    assert.equal(keygen.code, 0, keygen.stderr);
    await Deno.writeTextFile(
      join(dir, "mailpeer.toml"),
      `network = "ready"\npost_office = "po"\n[host]\nemail = "host@lan.test"\npoll_interval = "2s"\n`,
    );
    const host = new Running(["host", "--json", "--config", "mailpeer.toml"], { cwd: dir });
    try {
      const ready = await host.waitFor((e) => e.event === "host-ready");
      assert.deepEqual(
        [ready.email, ready.receive, ready.mailbox, ready.wait, ready.pollIntervalMs],
        ["host@lan.test", "local", join(dir, "po", "host@lan.test"), "watch", 2000],
      );
    } finally {
      await host.stop();
    }
    assert.equal(host.events.filter((e) => e.event === "host-ready").length, 1, "said once");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the host's ready line says where it logged in and how it waits for mail", () => {
  const base = { event: "host-ready", email: "host@example.org", pollIntervalMs: 60_000 } as const;
  assert.equal(
    narrate({
      ...base,
      receive: "imap",
      mailbox: "mail.example.org:143 as host (INBOX)",
      wait: "idle",
    }),
    "logged in to IMAP mail.example.org:143 as host (INBOX) for host@example.org; waits for mail " +
      "by IMAP IDLE (or polls every 1m00s if the server lacks IDLE) (Ctrl-C stops)",
  );
  assert.equal(
    narrate({ ...base, receive: "pop3", mailbox: "pop.example.org:995 as host", wait: "poll" }),
    "logged in to POP3 pop.example.org:995 as host for host@example.org; polls it for new mail " +
      "every 1m00s (Ctrl-C stops)",
  );
});
