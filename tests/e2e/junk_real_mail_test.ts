/**
 * Spam filters file automated mail into Junk (docs/config.md "Junk folders"): a host reading
 * its IMAP mailbox with `junk = "auto"` (the default) answers a request filed there, as if it
 * were in the inbox, and leaves the ordinary Junk mail beside it alone. Real Postfix + Dovecot.
 */
import assert from "node:assert/strict";
import { events, mailpeer } from "../support/cli.ts";
import { NO_STACK } from "../support/mailstack.ts";
import { mailRequests, untilDelivered } from "../support/requests.ts";
import { imapOf, messagesOf } from "../support/stack_mail.ts";
import { makeSite } from "../support/site.ts";

const HOST = "host@host.test";

/** An ordinary spam mail, as a spam filter files it into Junk. */
function spamMail(id: string): string {
  return "From: shop@example.org\r\nTo: host@host.test\r\nSubject: Cheap watches\r\n" +
    `Message-ID: <${id}@example.org>\r\nDate: Fri, 04 Dec 2026 12:00:00 +0000\r\n\r\nBuy!\r\n`;
}

Deno.test({
  name: "a request a spam filter filed into Junk is answered, and ordinary Junk mail is left alone",
  ignore: NO_STACK,
  fn: async () => {
    const site = await makeSite({ receive: "imap" });
    const client = await imapOf(HOST);
    try {
      if ((await client.list()).some((box) => box.path === "Junk")) {
        await client.mailboxDelete("Junk");
      }
      await client.mailboxCreate("Junk");
      await mailRequests(site, 2);
      await untilDelivered(site.network, 2);
      // The spam filter's verdict: one request into Junk, beside an ordinary spam mail.
      const subject = `[mailpeer] ${site.network} request`;
      await client.mailboxOpen("INBOX"); // a fresh view: the requests arrived after the login
      const uids = await client.search({ subject }, { uid: true });
      assert.ok(uids && uids.length === 2);
      await client.messageMove(String(uids[0]), "Junk", { uid: true });
      await client.append("Junk", spamMail("spam-1"));

      const r = await mailpeer(["host", "--once", "--config", "host.toml", "--json"], {
        cwd: site.dir,
        env: site.env,
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(events(r.stdout).filter((e) => e.event === "reply-sent").length, 2, r.stdout);

      // Both requests are gone from both folders; the spam mail is still in Junk, unread.
      assert.deepEqual(await messagesOf(HOST, subject), []);
      await client.mailboxOpen("Junk");
      const left = [];
      for await (const m of client.fetch("1:*", { envelope: true, flags: true })) {
        left.push({ subject: m.envelope?.subject, seen: m.flags?.has("\\Seen") });
      }
      assert.deepEqual(left, [{ subject: "Cheap watches", seen: false }]);
    } finally {
      await client.mailboxOpen("INBOX").catch(() => {});
      await client.mailboxDelete("Junk").catch(() => {});
      await client.logout();
      await site.cleanup();
    }
  },
});

Deno.test({
  name:
    "a cron run on a mailbox with no mailpeer mail in the inbox or Junk never opens an imapflow session",
  ignore: NO_STACK,
  fn: async () => {
    const site = await makeSite({ receive: "imap" });
    const client = await imapOf(HOST);
    try {
      if (!(await client.list()).some((box) => box.path === "Junk")) {
        await client.mailboxCreate("Junk");
      }
      await client.append("Junk", spamMail("spam-2"));
      // The quick read-only look (src/mail/imap/probe.ts) found the Junk folder by its \Junk mark
      // and nothing of this network in either folder: imapflow, which logs its whole session at
      // debug level, was never loaded.
      const r = await mailpeer(["host", "--once", "--config", "host.toml", "--json"], {
        cwd: site.dir,
        env: { ...site.env, MAILPEER_LOG: "debug" },
      });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(
        events(r.stdout).filter((e) => e.event === "host-pass").map((e) => e.answered),
        [0],
      );
      assert.doesNotMatch(r.stderr, /imapflow/, "the full IMAP path ran");
    } finally {
      await client.mailboxDelete("Junk").catch(() => {});
      await client.logout();
      await site.cleanup();
    }
  },
});
