/**
 * MergedSource (src/mail/merged_source.ts): an inbox and a Junk folder read as one mailbox. It
 * passes the MailSource conformance suite with every mail delivered into the Junk folder (so
 * every operation must find its way back to the right mailbox), and mail in both folders lists,
 * fetches and deletes from where it lies.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { MaildirPostOffice } from "../../src/mail/maildir/post_office.ts";
import { deliverToMaildir } from "../../src/mail/maildir/sender.ts";
import { MaildirSource } from "../../src/mail/maildir/source.ts";
import { MergedSource } from "../../src/mail/merged_source.ts";
import { composeMail } from "../../src/mail/rfc5322/compose.ts";
import { mailSourceConformance } from "../conformance/mail_source.ts";
import { ManualClock } from "../support/manual_clock.ts";

async function twoFolders() {
  const root = await Deno.makeTempDir({ prefix: "mailpeer-merged-" });
  const office = new MaildirPostOffice(root);
  const inboxDir = await office.ensureMailbox("host@lan.test");
  const junkDir = await office.ensureMailbox("junk@lan.test");
  // a poll interval that never elapses: only the file watches can wake waitForMail
  const open = (dir: string) =>
    new MaildirSource(dir, { clock: new ManualClock(), pollIntervalMs: 3_600_000 });
  const inbox = open(inboxDir);
  const junk = open(junkDir);
  return {
    source: new MergedSource([inbox, junk]),
    inboxDir,
    junkDir,
    cleanup: async () => {
      await Promise.all([inbox.close(), junk.close()]);
      await Deno.remove(root, { recursive: true });
    },
  };
}

mailSourceConformance("merged (inbox + junk, mail in junk)", async () => {
  const f = await twoFolders();
  return {
    source: f.source,
    deliver: async (raw) => {
      await deliverToMaildir(f.junkDir, raw);
    },
    cleanup: f.cleanup,
  };
});

Deno.test("mail in the inbox and in junk lists as one, inbox first, and each goes back to its folder", async () => {
  const f = await twoFolders();
  try {
    const mail = async (text: string) =>
      (await composeMail({
        from: "a@lan.test",
        to: ["host@lan.test"],
        subject: "[mailpeer] lan request",
        text,
      })).raw;
    await deliverToMaildir(f.junkDir, await mail("from junk\r\n"));
    await deliverToMaildir(f.inboxDir, await mail("from inbox\r\n"));
    const match = { subject: "[mailpeer] lan request", mode: "exact" } as const;
    const refs = await f.source.list(match);
    assert.equal(refs.length, 2);
    const bodies = await Promise.all(
      refs.map(async (r) => new TextDecoder().decode(await f.source.fetch(r))),
    );
    assert.match(bodies[0]!, /from inbox/);
    assert.match(bodies[1]!, /from junk/);
    await f.source.deleteMany(refs);
    assert.deepEqual(await f.source.list(match), []);
    // A ref this source never listed is refused, never guessed.
    await assert.rejects(
      f.source.fetch({ id: join("..", "x"), subject: "" }),
      /not a ref this source listed/,
    );
  } finally {
    await f.cleanup();
  }
});
