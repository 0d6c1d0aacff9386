/**
 * A new user's mix-up on real mail: bob stands by on TCP, alice's configuration says UDP. alice
 * says why she does not try bob, reports nothing, and the host keeps bob healthy
 * (docs/decisions.md "Peers on another transport").
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Running } from "../support/cli.ts";
import { NO_STACK } from "../support/mailstack.ts";
import { makeSite } from "../support/site.ts";
import { messagesOf } from "../support/stack_mail.ts";

Deno.test({
  name:
    "on real mail, a UDP client given a TCP peer skips it with a reason, mails no notice, and the host does not flag it",
  ignore: NO_STACK,
  fn: async () => {
    const site = await makeSite({ receive: "imap" });
    const aliceToml = join(site.dir, "alice.toml");
    const config = await Deno.readTextFile(aliceToml);
    await Deno.writeTextFile(
      aliceToml,
      config.replace("[terminal]\n", '[terminal]\ntransport = "udp"\n'),
    );
    const opts = { cwd: site.dir, env: site.env };
    const host = new Running(["host", "--config", "host.toml", "--json"], opts);
    const bob = new Running(["client", "--config", "bob.toml", "--json"], opts);
    let alice: Running | undefined;
    try {
      await bob.waitFor((e) => e.event === "standby");
      alice = new Running(["client", "--config", "alice.toml", "--json"], opts);
      await alice.waitFor((e) => e.event === "standby");
      const reply = alice.events.find((e) => e.event === "reply-received");
      assert.deepEqual((reply?.peers as { userId: string }[]).map((p) => p.userId), ["bob"]);
      const skipped = alice.events.find((e) => e.event === "peer-skipped");
      assert.equal(skipped?.peer, "bob", JSON.stringify(alice.events));
      assert.deepEqual(skipped?.transports, ["tcp"]);
      assert.match(String(skipped?.reason), /TCP only and this terminal uses UDP/);
      for (const name of ["connecting", "connect-failed", "notice-sent"]) {
        assert.ok(!alice.events.some((e) => e.event === name), `alice told ${name}`);
      }
    } finally {
      await alice?.stop();
      await bob.stop();
      await host.stop();
    }
    try {
      assert.ok(!host.events.some((e) => e.event === "notice-received"));
      assert.deepEqual(await messagesOf("host@host.test", `[mailpeer] ${site.network} notice`), []);
      const table = JSON.parse(await Deno.readTextFile(join(site.dir, "table.json")));
      const bobRow = table.rows.find((r: { userId: string }) => r.userId === "bob");
      assert.equal(bobRow?.failures, 0);
    } finally {
      await site.cleanup();
    }
  },
});
