/**
 * MergedSource (src/mail/merged_source.ts): an inbox and a Junk folder read as one mailbox. It
 * passes the MailSource conformance suite with every mail delivered into the Junk folder (so
 * every operation must find its way back to the right mailbox), mail in both folders lists,
 * fetches and deletes from where it lies, and reading ahead asks each mailbox for its own mails.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { MaildirPostOffice } from "../../src/mail/maildir/post_office.ts";
import { deliverToMaildir } from "../../src/mail/maildir/sender.ts";
import { MaildirSource } from "../../src/mail/maildir/source.ts";
import { MergedSource } from "../../src/mail/merged_source.ts";
import { composeMail } from "../../src/mail/rfc5322/compose.ts";
import { mailSourceConformance } from "../conformance/mail_source.ts";
import type { MailRef } from "../../src/mail/types.ts";
import { ManualClock } from "../support/manual_clock.ts";
import { MemoryMailbox } from "../support/memory_mail.ts";
import { wrapSource } from "../support/source_wrap.ts";

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

const REQUEST = { subject: "[mailpeer] lan request", mode: "exact" } as const;

/**
 * An inbox and an archive that read ahead (each read-ahead recorded; the inbox's fails with
 * `inboxFails`) and a junk folder that cannot, as one source, with two mails in the inbox, one
 * in junk and two in the archive: each body names its mailbox and number, and the inner ids
 * are the same in each mailbox (`m000001`, ...). Resolves with the merged refs, in that order.
 */
async function threeMailboxes(inboxFails?: Error) {
  const [inbox, junk, archive] = [new MemoryMailbox(), new MemoryMailbox(), new MemoryMailbox()];
  const asked = { inbox: [] as MailRef[][], archive: [] as MailRef[][] };
  const source = new MergedSource([
    wrapSource(inbox, {
      prefetch: (refs) => {
        asked.inbox.push(refs);
        return inboxFails ? Promise.reject(inboxFails) : Promise.resolve();
      },
    }),
    junk,
    wrapSource(archive, {
      prefetch: (refs) => {
        asked.archive.push(refs);
        return Promise.resolve();
      },
    }),
  ]);
  const boxes = [["inbox", inbox, 2], ["junk", junk, 1], ["archive", archive, 2]] as const;
  for (const [name, box, n] of boxes) {
    for (let i = 0; i < n; i++) {
      const text = `${name} ${i}\r\n`;
      box.deliver(
        (await composeMail({ from: "a@lan.test", to: ["b@lan.test"], ...REQUEST, text })).raw,
      );
    }
  }
  const refs = await source.list(REQUEST);
  assert.equal(refs.length, 5);
  return { inbox, archive, asked, source, refs };
}

/** Asserts that each of `refs` (as {@link threeMailboxes} lists them) fetches its own mail. */
async function assertEachFetches(source: MergedSource, refs: MailRef[]): Promise<void> {
  const names = ["inbox 0", "inbox 1", "junk 0", "archive 0", "archive 1"];
  for (const [i, ref] of refs.entries()) {
    assert.match(
      new TextDecoder().decode(await source.fetch(ref)),
      new RegExp(`^${names[i]}\r$`, "m"),
    );
  }
}

Deno.test("prefetch asks each mailbox to read ahead exactly its own mails, by the ids it listed them with, and skips a mailbox that cannot", async () => {
  const { inbox, archive, asked, source, refs } = await threeMailboxes();
  const [in0, in1, junk0, ar0, ar1] = refs as [MailRef, MailRef, MailRef, MailRef, MailRef];
  await source.prefetch([ar1, junk0, in0, ar0, in1]);
  assert.deepEqual(asked.inbox, [await inbox.list(REQUEST)]);
  assert.deepEqual(asked.archive, [(await archive.list(REQUEST)).reverse()], "in the order given");
  // only the mailboxes with mails among the refs are asked
  await source.prefetch([junk0]);
  await source.prefetch([ar0]);
  await source.prefetch([]);
  assert.equal(asked.inbox.length, 1);
  assert.deepEqual(asked.archive.at(-1), [(await archive.list(REQUEST))[0]]);
  assert.equal(asked.archive.length, 2);
  await assertEachFetches(source, refs);
});

Deno.test("a mailbox whose read-ahead fails does not keep the others from reading ahead, and every mail still fetches", async () => {
  const lost = new Error("connection lost");
  const { archive, asked, source, refs } = await threeMailboxes(lost);
  // read-ahead is best effort: the failure stays inside, the pass goes on
  await source.prefetch(refs);
  assert.equal(asked.inbox.length, 1);
  assert.deepEqual(asked.archive, [await archive.list(REQUEST)]);
  await assertEachFetches(source, refs);
});
