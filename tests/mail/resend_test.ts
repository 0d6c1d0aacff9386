/**
 * Resending without changing the sender (RFC 5322 §3.6.6): the `Resent-*` block goes on top
 * and the original follows byte for byte; over the real stack, a mail forwarded by
 * host@host.test arrives at host2@host.test with alice's From and Subject.
 */
import assert from "node:assert/strict";
import { composeMail } from "../../src/mail/rfc5322/compose.ts";
import { headerValues } from "../../src/mail/rfc5322/header_values.ts";
import { ImapSource } from "../../src/mail/imap/source.ts";
import { MaildirPostOffice } from "../../src/mail/maildir/post_office.ts";
import { MaildirSender } from "../../src/mail/maildir/sender.ts";
import { MaildirSource } from "../../src/mail/maildir/source.ts";
import { resentRaw } from "../../src/mail/rfc5322/resend.ts";
import { SmtpSender } from "../../src/mail/smtp/sender.ts";
import type { MailRef, SubjectMatch } from "../../src/mail/types.ts";
import { account, NO_STACK } from "../support/mailstack.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

async function original(subject: string): Promise<Uint8Array> {
  const { raw } = await composeMail({
    from: "Alice <alice@a.test>",
    to: ["pool@host.test"],
    subject,
    text: "the coded block would be here\r\n",
    messageId: "<request-1@a.test>",
  });
  return raw;
}

Deno.test("a resent mail keeps the original bytes after the Resent- block", async () => {
  const raw = await original("[mailpeer] lan request");
  const date = new Date(Date.UTC(2026, 0, 2, 3, 4, 5));
  const resent = resentRaw(raw, {
    from: "pool@host.test",
    to: ["host1@host.test", "host2@host.test"],
    date,
    messageId: "<resent-1@host.test>",
  });
  const head = "Resent-Date: Fri, 2 Jan 2026 03:04:05 +0000\r\n" +
    "Resent-From: pool@host.test\r\n" +
    "Resent-To: host1@host.test,\r\n host2@host.test\r\n" +
    "Resent-Message-ID: <resent-1@host.test>\r\n";
  assert.equal(decoder.decode(resent.subarray(0, encoder.encode(head).length)), head);
  assert.deepEqual(resent.subarray(encoder.encode(head).length), raw);
  assert.deepEqual(headerValues(resent, "From"), ["Alice <alice@a.test>"]);
  assert.deepEqual(headerValues(resent, "Message-ID"), ["<request-1@a.test>"]);
  assert.deepEqual(headerValues(resent, "Resent-To"), ["host1@host.test, host2@host.test"]);
});

Deno.test("a mail stored with bare LF line ends gets LF Resent- lines", () => {
  const raw = encoder.encode("From: a@a.test\nSubject: x\n\nbody\n");
  const text = decoder.decode(resentRaw(raw, { from: "p@h.test", to: ["w@h.test"] }));
  assert.ok(!text.includes("\r"), text);
  assert.match(text, /^Resent-Date: .*\nResent-From: p@h\.test\nResent-To: w@h\.test\n/);
  assert.match(text, /Resent-Message-ID: <[0-9a-f]+@h\.test>\nFrom: a@a\.test\n/);
});

Deno.test("resending refuses header injection and an empty recipient list", () => {
  const raw = encoder.encode("From: a@a.test\r\n\r\n");
  assert.throws(() => resentRaw(raw, { from: "p@h.test", to: [] }), TypeError);
  assert.throws(
    () => resentRaw(raw, { from: "p@h.test\r\nBcc: x@evil.test", to: ["w@h.test"] }),
    TypeError,
  );
  assert.throws(
    () => resentRaw(raw, { from: "p@h.test", to: ["w@h.test"], messageId: "no-brackets" }),
    TypeError,
  );
});

Deno.test("the Maildir sender forwards a mail with its sender unchanged", async () => {
  const root = await Deno.makeTempDir({ prefix: "mpresend" });
  try {
    const sender = new MaildirSender(new MaildirPostOffice(root));
    const raw = await original("[mailpeer] lan request");
    const { messageId } = await sender.forward(raw, {
      from: "pool@lan.test",
      to: ["worker@lan.test"],
    });
    const source = new MaildirSource(`${root}/worker@lan.test`);
    const [ref] = await source.list({ subject: "[mailpeer] lan request", mode: "exact" });
    assert.ok(ref !== undefined);
    const got = await source.fetch(ref);
    assert.deepEqual(headerValues(got, "Resent-Message-ID"), [messageId]);
    assert.deepEqual(got.subarray(got.length - raw.length), raw);
    await source.close();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test({
  name: "a mail forwarded over SMTP arrives with the original From and Subject",
  ignore: NO_STACK,
  fn: async () => {
    const rep = account("host@host.test");
    const worker = account("host2@host.test");
    const subject = `[mailpeer] resend-${crypto.randomUUID()} request`;
    const match: SubjectMatch = { subject, mode: "exact" };
    const sender = new SmtpSender({
      host: rep.provider.ip,
      port: rep.provider.ports.submission,
      tls: "starttls",
      user: rep.user.user,
      password: rep.user.password,
      caFile: rep.provider.caFile,
      servername: rep.provider.hostname,
    });
    const source = new ImapSource({
      host: worker.provider.ip,
      port: worker.provider.ports.imap,
      tls: "starttls",
      user: worker.user.user,
      password: worker.user.password,
      caFile: worker.provider.caFile,
      servername: worker.provider.hostname,
    }, { idle: false, pollIntervalMs: 25 });
    try {
      const raw = await original(subject);
      const { messageId } = await sender.forward(raw, {
        from: "host@host.test",
        to: ["host2@host.test"],
      });
      // a bounded wait for the delivery (a guard, not a sleep)
      const guard = AbortSignal.timeout(20_000);
      let refs: MailRef[] = await source.list(match);
      while (refs.length === 0 && !guard.aborted) {
        await source.waitForMail({ signal: guard });
        refs = await source.list(match);
      }
      assert.equal(refs.length, 1, "the forwarded mail arrived");
      const got = await source.fetch(refs[0]!);
      await source.delete(refs[0]!);
      assert.deepEqual(headerValues(got, "From"), ["Alice <alice@a.test>"]);
      assert.deepEqual(headerValues(got, "Subject"), [subject]);
      assert.deepEqual(headerValues(got, "Message-ID"), ["<request-1@a.test>"]);
      assert.deepEqual(headerValues(got, "Resent-From"), ["host@host.test"]);
      assert.deepEqual(headerValues(got, "Resent-Message-ID"), [messageId]);
    } finally {
      await source.close();
      await sender.close();
    }
  },
});
