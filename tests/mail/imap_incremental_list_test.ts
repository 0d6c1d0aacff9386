/**
 * ImapSource lists incrementally (src/mail/imap/source.ts `#envelopes`): a listing fetches the
 * envelopes of mail it has not listed before only, yet always shows exactly the mails in the
 * mailbox: mail deleted or claimed by another session meanwhile is gone, new mail is there with
 * its subject and size, and a claim made with a MODSEQ kept from an earlier listing still takes
 * a mail that changed since exactly once. Real Dovecot (host2@host.test, folders of its own);
 * skipped when the stack is not running.
 */
import assert from "node:assert/strict";
import type { ImapFlow } from "imapflow";
import { ImapSource } from "../../src/mail/imap/source.ts";
import type { Logger } from "../../src/log.ts";
import { composeMail } from "../../src/mail/rfc5322/compose.ts";
import type { MailRef, SubjectMatch } from "../../src/mail/types.ts";
import { commandLog, imapFoldersTest, imapServer } from "../support/imap_mailbox.ts";

const REQUEST: SubjectMatch = { subject: "[mailpeer] lan request", mode: "exact" };
const MAILBOX = "mailpeer-incremental";
const PROCESSING = "mailpeer-incremental-processing";
const FOLDERS = [MAILBOX, PROCESSING] as const;
const decoder = new TextDecoder();

/** Mail number `n` (it says so in its body), `padding` bytes longer. */
async function mail(n: number, subject = REQUEST.subject, padding = 0): Promise<Uint8Array> {
  const { raw } = await composeMail({
    from: `user${n}@a.test`,
    to: ["host2@host.test"],
    subject,
    text: `incremental test mail ${n}\r\n${"x".repeat(padding)}`,
  });
  return raw;
}

function source(claimer: string, logger?: Logger): ImapSource {
  return new ImapSource(imapServer(), {
    mailbox: MAILBOX,
    processing: PROCESSING,
    claimer,
    idle: false,
    backoff: () => 50,
    ...(logger ? { logger } : {}),
  });
}

/** The UID of a listed mail (`<uidvalidity>:<uid>`). */
const uidOf = (ref: MailRef) => Number(ref.id.split(":")[1]);

/** The number a mail carries in its body. */
async function numberOf(from: ImapSource, ref: MailRef): Promise<number> {
  const m = /incremental test mail (\d+)/.exec(decoder.decode(await from.fetch(ref)));
  assert.ok(m !== null, `mail ${ref.id} is readable`);
  return Number(m[1]);
}

/** The UIDs whose envelopes the logged commands fetched. */
function envelopeFetches(commands: string[]): string[] {
  return commands.filter((c) => /^UID FETCH .*ENVELOPE/.test(c)).map((c) => c.split(" ")[2]!);
}

/** Runs `fn` with fresh, empty test folders and a mail client; removes them afterwards. */
function imapTest(name: string, fn: (client: ImapFlow) => Promise<void>): void {
  imapFoldersTest(name, FOLDERS, fn);
}

imapTest(
  "a listing after another session deleted one mail and a new one arrived shows exactly the mails there, fetching only the new envelope",
  async (client) => {
    for (let n = 0; n < 3; n++) await client.append(MAILBOX, await mail(n));
    await client.append(MAILBOX, await mail(8, `Re: ${REQUEST.subject}`)); // found, not listed
    await client.append(MAILBOX, await mail(9, "Lunch on Friday?")); // not even found
    const log = commandLog();
    const s = source("A", log);
    try {
      const first = await s.list(REQUEST);
      assert.deepEqual(first.map(uidOf), [1, 2, 3]);
      assert.deepEqual(envelopeFetches(log.commands), ["1:4"], "one fetch of every envelope");
      // another session deletes mail 2; a new, longer request arrives
      await client.mailboxOpen(MAILBOX);
      await client.messageDelete("2", { uid: true });
      await client.append(MAILBOX, await mail(5, REQUEST.subject, 3_000));
      const [arrived] = await client.fetchAll("6", { uid: true, size: true }, { uid: true });
      log.commands.length = 0;
      const second = await s.list(REQUEST);
      assert.deepEqual(second.map(uidOf), [1, 3, 6]);
      assert.deepEqual(second.slice(0, 2), [first[0], first[2]], "the others as listed before");
      assert.equal(second[2]!.subject, REQUEST.subject);
      assert.equal(second[2]!.size, arrived!.size);
      assert.deepEqual(envelopeFetches(log.commands), ["6"], "only the new mail's envelope");
      assert.deepEqual(await Promise.all(second.map((ref) => numberOf(s, ref))), [0, 2, 5]);
      // nothing new: no envelope fetched at all
      log.commands.length = 0;
      assert.deepEqual((await s.list(REQUEST)).map(uidOf), [1, 3, 6]);
      assert.deepEqual(envelopeFetches(log.commands), []);
      // everything gone
      await client.messageDelete("1:*", { uid: true });
      assert.deepEqual(await s.list(REQUEST), []);
    } finally {
      await s.close();
    }
  },
);

imapTest(
  "a mail another process claimed is gone from the next listing and cannot be claimed again",
  async (client) => {
    for (let n = 0; n < 3; n++) await client.append(MAILBOX, await mail(n));
    const [a, b] = [source("A"), source("B")];
    try {
      const listedByA = await a.list(REQUEST);
      const listedByB = await b.list(REQUEST);
      assert.equal(listedByA.length, 3);
      const wonByB = await b.claimMany(listedByB.slice(0, 2));
      assert.equal(wonByB.length, 2);
      assert.deepEqual((await a.list(REQUEST)).map(uidOf), [3]);
      // a claim from A's earlier listing takes only what B left
      const wonByA = await a.claimMany(listedByA);
      assert.equal(wonByA.length, 1);
      assert.deepEqual(await Promise.all(wonByB.map((ref) => numberOf(b, ref))), [0, 1]);
      assert.deepEqual(await Promise.all(wonByA.map((ref) => numberOf(a, ref))), [2]);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  },
);

imapTest(
  "a claim with the MODSEQ of an earlier listing takes a mail that changed since, once",
  async (client) => {
    for (let n = 0; n < 6; n++) await client.append(MAILBOX, await mail(n));
    const log = commandLog();
    const [a, b] = [source("A", log), source("B")];
    try {
      assert.equal((await a.list(REQUEST)).length, 6);
      // another session flags every mail: each one's MODSEQ grows past what A kept
      await client.mailboxOpen(MAILBOX);
      await client.messageFlagsAdd("1:*", ["\\Flagged"], { uid: true });
      log.commands.length = 0;
      const listed = await a.list(REQUEST);
      assert.equal(listed.length, 6);
      assert.deepEqual(envelopeFetches(log.commands), [], "kept envelopes: the old MODSEQs");
      // A alone takes the first mail with its old MODSEQ
      const [alone] = await a.claimMany(listed.slice(0, 1));
      assert.ok(alone !== undefined, "the changed mail is claimed");
      assert.equal(await numberOf(a, alone), 0);
      // A (old MODSEQs) and B (fresh listing) race for the other five: each is taken once
      await client.messageFlagsAdd("2:*", ["$Seen-elsewhere"], { uid: true });
      const listedByB = await b.list(REQUEST);
      assert.deepEqual(listedByB.map(uidOf), [2, 3, 4, 5, 6]);
      const [wonByA, wonByB] = await Promise.all([
        a.claimMany(listed.slice(1)),
        b.claimMany(listedByB),
      ]);
      const numbers = [
        ...await Promise.all(wonByA.map((ref) => numberOf(a, ref))),
        ...await Promise.all(wonByB.map((ref) => numberOf(b, ref))),
      ].sort();
      assert.deepEqual(numbers, [1, 2, 3, 4, 5], `A ${wonByA.length}, B ${wonByB.length}`);
      assert.deepEqual(await a.list(REQUEST), []);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  },
);

imapTest(
  "a mailbox made anew (another UIDVALIDITY) is listed anew: no envelope of the old one is reused",
  async (client) => {
    await client.append(MAILBOX, await mail(0));
    await client.append(MAILBOX, await mail(1));
    const log = commandLog();
    const s = source("A", log);
    try {
      const before = await s.list(REQUEST);
      assert.deepEqual(before.map(uidOf), [1, 2]);
      // the same UIDs, other mails: a reply where a request was
      await client.mailboxDelete(MAILBOX);
      await client.mailboxCreate(MAILBOX);
      await client.append(MAILBOX, await mail(2, `Re: ${REQUEST.subject}`));
      await client.append(MAILBOX, await mail(3, REQUEST.subject, 2_000));
      log.commands.length = 0;
      const after = await s.list(REQUEST);
      assert.deepEqual(after.map(uidOf), [2]);
      assert.notEqual(after[0]!.id, before[1]!.id, "a new id for the new mail");
      assert.ok(after[0]!.size! > 2_000, "its size, not the old mail's");
      assert.deepEqual(envelopeFetches(log.commands), ["1:2"]);
      assert.equal(await numberOf(s, after[0]!), 3);
    } finally {
      await s.close();
    }
  },
);
