/**
 * The host as cron runs it (`host --once`) against the real mail stack: overlapping runs,
 * stale requests, and what a person sees when a server setting is wrong.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DEFAULT_EXPIRY_MS } from "../../src/limits.ts";
import { events, mailpeer } from "../support/cli.ts";
import { NO_STACK } from "../support/mailstack.ts";
import { mailRequests, untilDelivered } from "../support/requests.ts";
import { messagesOf } from "../support/stack_mail.ts";
import { makeSite } from "../support/site.ts";

Deno.test({
  name: "two overlapping host --once runs answer each request exactly once and leave a valid table",
  ignore: NO_STACK,
  fn: async () => {
    const site = await makeSite({ receive: "imap" });
    try {
      await mailRequests(site, 6);
      await untilDelivered(site.network, 6);
      const opts = { cwd: site.dir, env: site.env };
      const runs = await Promise.all([
        mailpeer(["host", "--once", "--config", "host.toml", "--json"], opts),
        mailpeer(["host", "--once", "--config", "host.toml", "--json"], opts),
      ]);
      for (const r of runs) assert.equal(r.code, 0, r.stderr);
      const sent = runs.flatMap((r) => events(r.stdout)).filter((e) => e.event === "reply-sent");
      assert.equal(sent.length, 6, "each request answered once across both runs");
      const table = JSON.parse(await Deno.readTextFile(join(site.dir, "table.json")));
      assert.equal(table.rows.length, 6);
      assert.deepEqual(
        await messagesOf("host@host.test", `[mailpeer] ${site.network} request`),
        [],
      );
    } finally {
      await site.cleanup();
    }
  },
});

Deno.test({
  name: "a request whose Date is older than the expiry is deleted unanswered",
  ignore: NO_STACK,
  fn: async () => {
    const site = await makeSite({ receive: "imap" });
    try {
      await mailRequests(site, 1, { date: new Date(Date.now() - DEFAULT_EXPIRY_MS - 3_600_000) });
      await untilDelivered(site.network, 1);
      const r = await mailpeer(["host", "--once", "--config", "host.toml", "--json"], {
        cwd: site.dir,
        env: site.env,
      });
      assert.equal(r.code, 0, r.stderr);
      const evs = events(r.stdout);
      assert.equal(evs.filter((e) => e.event === "reply-sent").length, 0);
      assert.match(
        String(evs.find((e) => e.event === "request-deleted")?.reason),
        /older than the expiry/,
      );
      assert.deepEqual(
        await messagesOf("host@host.test", `[mailpeer] ${site.network} request`),
        [],
      );
      assert.deepEqual(await messagesOf("alice@a.test", `[mailpeer] ${site.network} reply`), []);
    } finally {
      await site.cleanup();
    }
  },
});

Deno.test({
  name:
    "a wrong password, an unreachable server and a bad TLS certificate each give one line naming the server",
  ignore: NO_STACK,
  fn: async () => {
    const site = await makeSite({ receive: "imap" });
    try {
      const config = join(site.dir, "host.toml");
      const original = await Deno.readTextFile(config);
      const once = () =>
        mailpeer(["host", "--once", "--config", "host.toml"], { cwd: site.dir, env: site.env });

      const wrong = await mailpeer(["host", "--once", "--config", "host.toml"], {
        cwd: site.dir,
        env: { ...site.env, MP_PASS_HOST_HOST_TEST: "not-the-password" },
      });
      assert.equal(wrong.code, 1);
      assert.match(
        wrong.stderr,
        /^mailpeer: Cannot log in to IMAP server 127\.0\.0\.13:143 as host@host\.test: .*; .*\n$/,
      );

      await Deno.writeTextFile(config, original.replace("port = 143", "port = 1"));
      const down = await once();
      assert.equal(down.code, 1);
      assert.match(
        down.stderr,
        /^mailpeer: Cannot connect to IMAP server 127\.0\.0\.13:1: .*; .*\n$/,
      );

      await Deno.writeTextFile(config, original.replace(/ca_file = .*\n/g, ""));
      const tls = await once();
      assert.equal(tls.code, 1);
      assert.match(
        tls.stderr,
        /^mailpeer: Cannot .*IMAP server 127\.0\.0\.13:143.*certificate.*; .*\n$/i,
      );
    } finally {
      await site.cleanup();
    }
  },
});
