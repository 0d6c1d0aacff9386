import assert from "node:assert/strict";
import { MailError } from "../../src/errors.ts";
import { composeMail } from "../../src/mail/rfc5322/compose.ts";
import { parseMail, readSubject } from "../../src/mail/rfc5322/parse.ts";

const encode = (text: string) => new TextEncoder().encode(text);

Deno.test("a composed mail parses back to the same subject, addresses, date, ids and text", async () => {
  const date = new Date(Date.UTC(2026, 2, 14, 9, 26, 53));
  const text = "Diese Mail wurde von mailpeer erzeugt. Grüße ✓ — 日本語\n" +
    "-----BEGIN MAILPEER BLOCK-----\nAAEC\n-----END MAILPEER BLOCK-----\n";
  const { raw, messageId } = await composeMail({
    from: "Alice Ünal <Alice@Example.org>",
    to: ["host@example.org", "Backup Host <BACKUP@example.net>"],
    subject: "[mailpeer] lan reply — ✓",
    text,
    date,
    messageId: "<reply-1@example.org>",
    inReplyTo: "<request-1@example.com>",
    headers: { "X-Mailpeer-Network": "lan" },
  });
  assert.equal(messageId, "<reply-1@example.org>");
  const mail = await parseMail(raw);
  assert.equal(mail.subject, "[mailpeer] lan reply — ✓");
  assert.equal(mail.from, "alice@example.org");
  assert.deepEqual(mail.to, ["host@example.org", "backup@example.net"]);
  assert.equal(mail.date?.getTime(), date.getTime());
  assert.equal(mail.messageId, "<reply-1@example.org>");
  assert.equal(mail.inReplyTo, "<request-1@example.com>");
  assert.equal(mail.text, text);
  assert.equal(mail.headers.get("x-mailpeer-network"), "lan");
  assert.equal(mail.headers.get("content-type")?.startsWith("text/plain"), true);
});

Deno.test("a composed mail is plain 7-bit text/plain in UTF-8 with CRLF line ends", async () => {
  const { raw } = await composeMail({
    from: "a@example.org",
    to: ["b@example.org"],
    subject: "Grüße",
    text: "ünïcödé\n",
  });
  assert.ok(raw.every((b) => b < 0x80), "only ASCII bytes on the wire");
  const text = new TextDecoder().decode(raw);
  assert.match(text, /^Content-Type: text\/plain; charset=utf-8\r$/m);
  assert.ok(!/[^\r]\n/.test(text), "every line ends with CRLF");
});

Deno.test("without a Message-ID or Date the mail gets a random id at the sender's domain and the clock's time", async () => {
  const now = Date.UTC(2026, 0, 2, 3, 4, 5);
  const base = { from: "Terminal <t@lan.example>", to: ["h@lan.example"], subject: "s", text: "x" };
  const one = await composeMail(base, { now: () => now });
  const two = await composeMail(base, { now: () => now });
  assert.match(one.messageId, /^<[0-9a-f]{32}@lan\.example>$/);
  assert.notEqual(one.messageId, two.messageId);
  const parsed = await parseMail(one.raw);
  assert.equal(parsed.messageId, one.messageId);
  assert.equal(parsed.date?.getTime(), now);
  assert.equal(parsed.inReplyTo, undefined);

  const named = await composeMail(base, { hostname: "mail.example.com" });
  assert.match(named.messageId, /@mail\.example\.com>$/);
});

Deno.test("a header value with a line break is refused instead of injecting headers", async () => {
  const base = { from: "a@example.org", to: ["b@example.org"], subject: "s", text: "x" };
  await assert.rejects(
    composeMail({ ...base, subject: "hi\r\nBcc: victim@example.org" }),
    TypeError,
  );
  await assert.rejects(composeMail({ ...base, headers: { "X-A": "1\nBcc: v@e.org" } }), TypeError);
  await assert.rejects(composeMail({ ...base, headers: { "Bad Name": "1" } }), TypeError);
  await assert.rejects(composeMail({ ...base, to: [] }), TypeError);
});

Deno.test("random bytes are rejected as an unparseable mail", async () => {
  let seed = 7;
  const noise = Uint8Array.from(
    { length: 2048 },
    () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24,
  );
  await assert.rejects(parseMail(noise), (err: unknown) => {
    assert.ok(err instanceof MailError);
    assert.equal(err.code, "EMAIL");
    assert.match(err.message, /^Cannot parse mail: .+; .+/);
    return true;
  });
  await assert.rejects(parseMail(new Uint8Array()), MailError);
});

Deno.test("a mail over the size limit is rejected before it is parsed", async () => {
  const { raw } = await composeMail({
    from: "a@example.org",
    to: ["b@example.org"],
    subject: "big",
    text: "x".repeat(5000),
  });
  await assert.rejects(parseMail(raw, { maxBytes: 1000 }), (err: unknown) => {
    assert.ok(err instanceof MailError);
    assert.equal(err.code, "EMAIL");
    assert.match(err.message, /over the limit of 1000/);
    return true;
  });
  assert.equal((await parseMail(raw, { maxBytes: raw.length })).subject, "big");
});

Deno.test("a mail without a sender address is rejected", async () => {
  const raw = encode("To: b@example.org\r\nSubject: no sender\r\n\r\nbody\r\n");
  await assert.rejects(parseMail(raw), (err: unknown) => {
    assert.ok(err instanceof MailError);
    assert.equal(err.code, "EMAIL");
    return true;
  });
});

Deno.test("a mail with a bogus Date has no date rather than a fresh one", async () => {
  const raw = encode(
    "From: a@example.org\r\nTo: b@example.org\r\nSubject: s\r\nDate: yesterday-ish\r\n\r\nbody\r\n",
  );
  const mail = await parseMail(raw);
  assert.equal(mail.date, undefined);
  assert.equal(mail.headers.get("date"), "yesterday-ish");
  const undated = await parseMail(encode("From: a@example.org\r\nSubject: s\r\n\r\nbody\r\n"));
  assert.equal(undated.date, undefined);
  assert.deepEqual(undated.to, []);
});

Deno.test("readSubject decodes encoded and folded subjects from the header section only", async () => {
  assert.equal(
    await readSubject(
      encode("From: a@b.c\r\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= =?UTF-8?B?4pyT?=\r\n\r\nx"),
    ),
    "Grüße✓",
  );
  assert.equal(
    await readSubject(encode("From: a@b.c\nsubject: [mailpeer] lan\n request\n\nSubject: no")),
    "[mailpeer] lan request",
  );
  assert.equal(await readSubject(encode("From: a@b.c\r\n\r\nSubject: in the body\r\n")), "");
  assert.equal(await readSubject(encode("Subject: Grüße raw UTF-8")), "Grüße raw UTF-8");
  assert.equal(await readSubject(new Uint8Array()), "");
});

Deno.test("readSubject reads the subject nodemailer wrote for a long non-ASCII subject", async () => {
  const subject = "[mailpeer] " + "ünïcödé ".repeat(20).trim();
  const { raw } = await composeMail({
    from: "a@b.example",
    to: ["c@d.example"],
    subject,
    text: "x",
  });
  assert.equal(await readSubject(raw), subject);
});
