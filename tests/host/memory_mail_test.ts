/**
 * The in-memory mail of tests/support/memory_mail.ts, which the hostile corpus and fuzz tests
 * run the host on.
 */
import assert from "node:assert/strict";
import { parseMail } from "../../src/mail/rfc5322/parse.ts";
import { bytesEqual } from "../../src/message/bytes.ts";
import { enc, HOST_EMAIL, mailOf, NOW, standardHeaders, SUBJECTS } from "../support/fuzz_host.ts";
import { MemoryMailbox, MemoryPostOffice } from "../support/memory_mail.ts";

Deno.test("MemoryMailbox lists only matching mail, oldest first, and leaves the rest alone", async () => {
  const box = new MemoryMailbox();
  const other = mailOf(standardHeaders({ from: "a@b.test", subject: "lunch?", id: 1 }), "hi\n");
  const first = box.deliver(
    mailOf(standardHeaders({ from: "a@b.test", subject: SUBJECTS.request, id: 2 }), "1"),
  );
  box.deliver(other);
  const second = box.deliver(
    mailOf(standardHeaders({ from: "a@b.test", subject: SUBJECTS.request, id: 3 }), "2"),
  );
  const refs = await box.list({ subject: SUBJECTS.request, mode: "exact" });
  assert.deepEqual(refs.map((r) => r.id), [first, second]);
  await box.quarantine(refs[0]!, "bad block");
  await box.delete(refs[1]!);
  assert.deepEqual(box.quarantined.map((q) => [q.id, q.reason]), [[first, "bad block"]]);
  assert.deepEqual(box.deleted, [second]);
  assert.equal(box.mails.length, 1);
  assert.ok(bytesEqual(box.mails[0]!.raw, other));
  await assert.rejects(box.fetch({ id: box.mails[0]!.id, subject: "lunch?" }));
});

Deno.test("MemoryMailbox wakes a waiter on delivery and on abort", async () => {
  const box = new MemoryMailbox();
  const waiting = box.waitForMail();
  box.deliver(enc("Subject: x\r\n\r\n"));
  await waiting;
  const abort = new AbortController();
  const aborted = box.waitForMail({ signal: abort.signal });
  abort.abort();
  await aborted;
  await box.close();
  await box.waitForMail();
});

Deno.test("MemoryPostOffice delivers composed mail and refuses an address a server would", async () => {
  const po = new MemoryPostOffice({ now: () => NOW });
  const sender = po.sender();
  await sender.send({ from: HOST_EMAIL, to: ["Bob@Player.test"], subject: "s", text: "t\n" });
  assert.equal(po.mailbox("bob@player.test").mails.length, 1);
  assert.equal((await parseMail(po.sent[0]!.raw)).subject, "s");
  await assert.rejects(sender.send({ from: HOST_EMAIL, to: ["a@"], subject: "s", text: "t" }));
  await assert.rejects(
    sender.send({ from: HOST_EMAIL, to: ["../x@evil.test"], subject: "s", text: "t" }),
  );
  assert.equal(po.sent.length, 1);
});
