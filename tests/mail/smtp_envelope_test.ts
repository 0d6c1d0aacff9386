/**
 * The SMTP envelope holds exactly the recipients a mail is meant for: an address that an
 * address parser would split (a crafted From such as `<a,b@evil.test>`, answered by a host)
 * never turns into extra RCPT TO commands. Runs against a local fake SMTP server.
 */
import assert from "node:assert/strict";
import { MailError } from "../../src/errors.ts";
import { SmtpSender } from "../../src/mail/smtp/sender.ts";
import { fakeSmtp } from "../support/fake_smtp.ts";

function senderFor(port: number): SmtpSender {
  return new SmtpSender({ host: "127.0.0.1", port, tls: "none", user: "" }, {
    hostname: "test.local",
  });
}

const MAIL = { from: "host@host.test", subject: "[mailpeer] x reply", text: "hello\n" };

Deno.test("a reply to a plain address goes to exactly that one recipient", async () => {
  const smtp = fakeSmtp();
  const sender = senderFor(smtp.port);
  try {
    await sender.send({ ...MAIL, to: ["bob@player.test"] });
    assert.deepEqual(smtp.envelopes.map(({ from, to }) => ({ from, to })), [
      { from: "<host@host.test>", to: ["<bob@player.test>"] },
    ]);
  } finally {
    await smtp.close(); // first: the sender's pooled socket then closes at once
    await sender.close();
  }
});

for (const crafted of ["a,b@evil.test", "a;b@evil.test", "<a>b@evil.test", "a b@evil.test"]) {
  Deno.test(`a recipient ${JSON.stringify(crafted)} is refused before any RCPT TO`, async () => {
    const smtp = fakeSmtp();
    const sender = senderFor(smtp.port);
    try {
      await assert.rejects(sender.send({ ...MAIL, to: [crafted] }), (err: unknown) => {
        assert.ok(err instanceof MailError, String(err));
        assert.match(err.message, /^Cannot send mail/);
        assert.ok(!err.message.includes("\n"), "one line");
        return true;
      });
      assert.deepEqual(smtp.rcpts, [], "no recipient reached the server");
    } finally {
      await smtp.close();
      await sender.close();
    }
  });
}

Deno.test("a forwarded mail's envelope cannot be widened either", async () => {
  const smtp = fakeSmtp();
  const sender = senderFor(smtp.port);
  try {
    const raw = new TextEncoder().encode("From: a@b.c\r\nSubject: x\r\n\r\nhi\r\n");
    await assert.rejects(
      sender.forward(raw, { from: "rep@host.test", to: ["w1@host.test,evil@evil.test"] }),
      MailError,
    );
    assert.deepEqual(smtp.rcpts, []);
  } finally {
    await smtp.close(); // first: the sender's pooled socket then closes at once
    await sender.close();
  }
});
