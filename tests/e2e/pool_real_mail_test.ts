/**
 * Several hosts on the real mail stack: a terminal mails two hosts and one is down; a new host
 * bootstraps its table from a running one.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { events, mailpeer, Running } from "../support/cli.ts";
import { account, NO_STACK, STACK } from "../support/mailstack.ts";
import { messagesOf } from "../support/stack_mail.ts";
import { makeSite } from "../support/site.ts";

/** Adds a second host to a site, on the mailbox alice2@a.test (no other test uses it). */
async function addSecondHost(site: Awaited<ReturnType<typeof makeSite>>): Promise<string> {
  const r = await mailpeer([
    "keygen",
    "--host",
    "alice2@a.test",
    "-o",
    "host2.keys.json",
    "--json",
  ], {
    cwd: site.dir,
  });
  assert.equal(r.code, 0, r.stderr);
  const card2 = events(r.stdout)[0]?.card as string;
  const { provider, user } = account("alice2@a.test");
  site.env["MP_PASS_HOST2"] = user.password;
  const server = (kind: "imap" | "smtp") =>
    [
      `kind = "${kind}"`,
      `host = "${provider.ip}"`,
      `port = ${kind === "imap" ? provider.ports.imap : provider.ports.submission}`,
      `user = "${user.user}"`,
      `password_env = "MP_PASS_HOST2"`,
      `ca_file = "${STACK!.caFile}"`,
      `servername = "${provider.hostname}"`,
    ].join("\n");
  await Deno.writeTextFile(
    join(site.dir, "host2.toml"),
    `network = "${site.network}"
[host]
email = "alice2@a.test"
keys = "host2.keys.json"
table = "table2.json"
hosts_file = "hosts2.json"
allow_private_addresses = true
poll_interval = "100ms"
pool = ["${site.card}"]
[host.receive]
${server("imap")}
idle = false
[host.send]
${server("smtp")}
`,
  );
  // Host 1 trusts host 2 too, and terminals know both hosts.
  const host1 = await Deno.readTextFile(join(site.dir, "host.toml"));
  await Deno.writeTextFile(
    join(site.dir, "host.toml"),
    host1.replace('email = "host@host.test"\n', `email = "host@host.test"\npool = ["${card2}"]\n`),
  );
  for (const who of ["alice", "bob"]) {
    const path = join(site.dir, `${who}.toml`);
    const text = await Deno.readTextFile(path);
    await Deno.writeTextFile(
      path,
      text.replace(`hosts = ["${site.card}"]`, `hosts = ["${site.card}", "${card2}"]`),
    );
  }
  return card2;
}

Deno.test({
  name:
    "host 1 is down: a terminal that mailed hosts 1 and 2 still connects through host 2's reply",
  ignore: NO_STACK,
  fn: async () => {
    const site = await makeSite({ receive: "imap" });
    try {
      await addSecondHost(site);
      const opts = { cwd: site.dir, env: site.env };
      const host2 = new Running(["host", "--config", "host2.toml", "--json"], opts);
      try {
        const bob = new Running(
          ["client", "--config", "bob.toml", "--json", "-m", "hi from bob"],
          opts,
        );
        await bob.waitFor((e) => e.event === "standby");
        const alice = await mailpeer([
          "client",
          "--config",
          "alice.toml",
          "--json",
          "-m",
          "hi from alice",
        ], opts);
        assert.equal(alice.code, 0, alice.stderr);
        const evs = events(alice.stdout);
        assert.deepEqual(evs.find((e) => e.event === "request-sent")?.to, [
          "host@host.test",
          "alice2@a.test",
        ]);
        assert.equal(evs.find((e) => e.event === "reply-received")?.from, "alice2@a.test");
        assert.equal(evs.find((e) => e.event === "connected")?.peer, "bob");
        assert.equal((await bob.status).code, 0, bob.stderr);
      } finally {
        await host2.stop();
      }
      // Host 1 was down: its mailbox still holds both requests for when it comes back.
      assert.equal(
        (await messagesOf("host@host.test", `[mailpeer] ${site.network} request`)).length,
        2,
      );
      const host1 = await mailpeer(["host", "--once", "--config", "host.toml", "--json"], opts);
      assert.equal(host1.code, 0, host1.stderr);
      assert.equal(events(host1.stdout).filter((e) => e.event === "reply-sent").length, 2);
    } finally {
      await site.cleanup();
    }
  },
});

Deno.test({
  name: "a host started after another has the other's rows after bootstrap",
  ignore: NO_STACK,
  fn: async () => {
    const site = await makeSite({ receive: "imap" });
    try {
      await addSecondHost(site);
      const opts = { cwd: site.dir, env: site.env };
      // Host 1 alone learns bob and alice from their requests (they only know host 1 here).
      for (const who of ["bob", "alice"]) {
        const path = join(site.dir, `${who}.toml`);
        const text = await Deno.readTextFile(path);
        await Deno.writeTextFile(
          path,
          text.replace(/hosts = \[.*\]/, `hosts = ["${site.card}"]`).replace(
            'standby_timeout = "60s"',
            'standby_timeout = "1s"',
          ),
        );
      }
      const host1 = new Running(["host", "--config", "host.toml", "--json"], opts);
      try {
        const bob = await mailpeer(["client", "--config", "bob.toml", "--json", "-m", "x"], opts);
        assert.ok(events(bob.stdout).some((e) => e.event === "standby"), bob.stdout);
        // Host 2 starts with an empty table and bootstraps from its pool (host 1).
        const boot = await mailpeer([
          "host",
          "--once",
          "--bootstrap",
          "--config",
          "host2.toml",
          "--json",
        ], opts);
        assert.equal(boot.code, 0, boot.stderr);
        assert.ok(
          events(boot.stdout).some((e) => e.event === "sync-sent" && e.kind === "table-request"),
        );
        await host1.waitFor((e) => e.event === "sync-answered" && e.to === "alice2@a.test");
        // The snapshot may already have come back during the bootstrap run itself.
        let merged = events(boot.stdout).some((e) => e.event === "sync-merged");
        for (let i = 0; i < 100 && !merged; i++) {
          const once = await mailpeer(["host", "--once", "--config", "host2.toml", "--json"], opts);
          assert.equal(once.code, 0, once.stderr);
          merged = events(once.stdout).some((e) => e.event === "sync-merged");
        }
        assert.ok(merged, "host 2 merged host 1's snapshot");
        const table = await mailpeer(["table", "--config", "host2.toml", "--json"], opts);
        const rows = events(table.stdout);
        assert.deepEqual(rows.map((r) => r.userId), ["bob"]);
        assert.equal(rows[0]?.email, "", "no e-mail address travels between hosts");
      } finally {
        await host1.stop();
      }
    } finally {
      await site.cleanup();
    }
  },
});
