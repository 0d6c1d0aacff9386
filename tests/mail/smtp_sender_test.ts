/**
 * SmtpSender against the real Postfix of the test mail stack: alice@a.test submits on
 * a.test (127.0.0.11), Postfix relays to host.test, and the mail is read back from
 * host@host.test with Pop3Source. Each test only reads and deletes mail carrying its own
 * unique subject, so other tests' mail in that mailbox is left alone.
 */
import assert from "node:assert/strict";
import { MailError } from "../../src/errors.ts";
import { Pop3Source } from "../../src/mail/pop3/source.ts";
import { SmtpSender } from "../../src/mail/smtp/sender.ts";
import type { MailRef, MailServerOptions, SubjectMatch } from "../../src/mail/types.ts";
import { mailSenderConformance } from "../conformance/mail_sender.ts";
import { account, NO_STACK } from "../support/mailstack.ts";
import { takeMessages } from "../support/stack_mail.ts";

const FROM = "alice@a.test";
const TO = "host@host.test";

/** alice@a.test on submission port 587 with STARTTLS, verified as mail.a.test. */
function submission(overrides: Partial<MailServerOptions> = {}): MailServerOptions {
  const { provider, user } = account(FROM);
  return {
    host: provider.ip,
    port: provider.ports.submission,
    tls: "starttls",
    user: user.user,
    password: user.password,
    caFile: provider.caFile,
    servername: provider.hostname,
    ...overrides,
  };
}

// alice@a.test submits; Postfix relays to host.test and b.test, read back over IMAP
mailSenderConformance("smtp (STARTTLS on 587)", ({ now }) => {
  const sender = new SmtpSender(submission(), { now });
  return Promise.resolve({
    sender,
    from: FROM,
    recipients: [TO, "bob@b.test"],
    received: takeMessages,
    cleanup: () => sender.close(),
  });
}, { ignore: NO_STACK });

function hostMailbox(): Pop3Source {
  const { provider, user } = account(TO);
  return new Pop3Source({
    host: provider.ip,
    port: provider.ports.pop3s,
    tls: "implicit",
    user: user.user,
    password: user.password,
    caFile: provider.caFile,
    servername: provider.hostname,
  }, { pollIntervalMs: 25 });
}

function uniqueSubject(what: string): string {
  return `[mailpeer] smtp test ${what} ${crypto.randomUUID()}`;
}

/**
 * Lists host@host.test until `count` mails with `subject` arrived, waiting for the mailbox to
 * tell of new mail in between, then fetches them, deletes them and returns their text. A
 * refused connection is waited out too, a few times (a Dovecot restarted by another test).
 */
async function receive(subject: string, count: number): Promise<string[]> {
  const source = hostMailbox();
  const match: SubjectMatch = { subject, mode: "exact" };
  let refusals = 0;
  const patiently = async <T>(fn: () => Promise<T>): Promise<T> => {
    for (;;) {
      try {
        return await fn();
      } catch (err) {
        if (!(err instanceof MailError && err.code === "ECONNECT") || ++refusals > 20) throw err;
        await source.waitForMail();
      }
    }
  };
  try {
    let refs: MailRef[] = await patiently(() => source.list(match));
    while (refs.length < count) {
      await source.waitForMail();
      refs = await patiently(() => source.list(match));
    }
    const texts: string[] = [];
    for (const ref of refs) {
      texts.push(new TextDecoder().decode(await patiently(() => source.fetch(ref))));
    }
    for (const ref of refs) await patiently(() => source.delete(ref));
    return texts;
  } finally {
    await source.close();
  }
}

async function sendOne(sender: SmtpSender, subject: string, text = "hello from alice\r\n") {
  return await sender.send({ from: FROM, to: [TO], subject, text });
}

Deno.test({
  name: "smtp: alice's mail submitted on 587 with STARTTLS arrives in host@host.test",
  ignore: NO_STACK,
  async fn() {
    const sender = new SmtpSender(submission());
    const subject = uniqueSubject("starttls");
    try {
      const { messageId } = await sendOne(sender, subject, "line one\r\n.line two\r\n");
      assert.match(messageId, /^<[0-9a-f]+@a\.test>$/);
      const [text] = await receive(subject, 1);
      assert.ok(text !== undefined, "the mail did not arrive");
      assert.ok(text.includes(`Message-ID: ${messageId}`), text);
      assert.ok(text.includes("\r\n.line two\r\n"), "a leading dot survives SMTP and POP3");
    } finally {
      await sender.close();
    }
  },
});

Deno.test({
  name: "smtp: implicit TLS on 465 delivers too, the fast lane included",
  ignore: NO_STACK,
  async fn() {
    const port = account(FROM).provider.ports.smtps;
    const sender = new SmtpSender(submission({ port, tls: "implicit" }));
    const subject = uniqueSubject("implicit");
    try {
      await sendOne(sender, subject);
      await sendOne(sender, subject); // on the fast lane, TLS from the first byte too
      assert.deepEqual(sender.carried, { lane: 1, nodemailer: 1 });
      assert.equal((await receive(subject, 2)).length, 2);
    } finally {
      await sender.close();
    }
  },
});

Deno.test({
  name: "smtp: a pooled sender delivers 20 mails sent at once, every one of them",
  ignore: NO_STACK,
  async fn() {
    const sender = new SmtpSender(submission());
    const subject = uniqueSubject("pool");
    try {
      const sent = await Promise.all(
        Array.from({ length: 20 }, (_, i) => sendOne(sender, subject, `mail ${i}\r\n`)),
      );
      assert.equal(new Set(sent.map((s) => s.messageId)).size, 20);
      const texts = await receive(subject, 20);
      assert.equal(texts.length, 20);
      for (const { messageId } of sent) {
        assert.ok(texts.some((t) => t.includes(`Message-ID: ${messageId}`)), messageId);
      }
    } finally {
      await sender.close();
    }
  },
});

Deno.test({
  name: "smtp: after the first mail, Postfix gets the rest on the fast lane (BDAT), intact",
  ignore: NO_STACK,
  async fn() {
    const sender = new SmtpSender(submission());
    const subject = uniqueSubject("lane");
    try {
      const first = await sendOne(sender, subject, "first\r\n");
      const sent = await Promise.all(
        Array.from({ length: 12 }, (_, i) => sendOne(sender, subject, `mail ${i}\r\n.dot\r\n`)),
      );
      assert.deepEqual(sender.carried, { lane: 12, nodemailer: 1 });
      const texts = await receive(subject, 13);
      assert.equal(texts.length, 13);
      for (const [i, { messageId }] of sent.entries()) {
        const text = texts.find((t) => t.includes(`Message-ID: ${messageId}`));
        assert.ok(text !== undefined, messageId);
        assert.ok(text.includes(`\r\n\r\nmail ${i}\r\n.dot\r\n`), text);
      }
      assert.ok(texts.some((t) => t.includes(`Message-ID: ${first.messageId}`)));
    } finally {
      await sender.close();
    }
  },
});

/** Asserts a one-line MailError with `code` whose message names `where`. */
async function rejectsWith(promise: Promise<unknown>, code: string, where: string) {
  let caught: unknown;
  await promise.catch((err) => (caught = err));
  assert.ok(caught instanceof MailError, `expected a MailError, got ${caught}`);
  assert.equal(caught.code, code, caught.message);
  assert.ok(!caught.message.includes("\n"), caught.message);
  assert.ok(caught.message.includes(where), caught.message);
  assert.match(caught.message, /^Cannot .+: .+; .+/);
  return caught;
}

Deno.test({
  name: "smtp: a wrong password is EAUTH, in one line that names the server and the user",
  ignore: NO_STACK,
  async fn() {
    const sender = new SmtpSender(submission({ password: "wrong-password" }));
    try {
      const err = await rejectsWith(
        sendOne(sender, uniqueSubject("auth")),
        "EAUTH",
        "127.0.0.11:587",
      );
      assert.ok(err.message.includes(FROM), err.message);
      assert.ok(!err.message.includes("wrong-password"), "the password must not be echoed");
    } finally {
      await sender.close();
    }
  },
});

Deno.test({
  name: "smtp: an unreachable server is ECONNECT",
  ignore: NO_STACK,
  async fn() {
    const listener = Deno.listen({ hostname: "127.0.0.11", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    const sender = new SmtpSender(submission({ port }));
    try {
      await rejectsWith(sendOne(sender, uniqueSubject("down")), "ECONNECT", `127.0.0.11:${port}`);
    } finally {
      await sender.close();
    }
  },
});

Deno.test({
  name: "smtp: a certificate from an unknown CA is ETLS, with STARTTLS and implicit TLS",
  ignore: NO_STACK,
  async fn() {
    const { ports } = account(FROM).provider;
    for (
      const [tls, port] of [["starttls", ports.submission], ["implicit", ports.smtps]] as const
    ) {
      const sender = new SmtpSender(submission({ tls, port, caFile: undefined }));
      try {
        await rejectsWith(sendOne(sender, uniqueSubject("tls")), "ETLS", `127.0.0.11:${port}`);
      } finally {
        await sender.close();
      }
    }
  },
});

Deno.test({
  name: "smtp: a recipient outside the stack is refused as ESEND, naming the recipient",
  ignore: NO_STACK,
  async fn() {
    const sender = new SmtpSender(submission());
    try {
      const err = await rejectsWith(
        sender.send({
          from: FROM,
          to: ["nobody@elsewhere.example"],
          subject: uniqueSubject("refused"),
          text: "x\r\n",
        }),
        "ESEND",
        "127.0.0.11:587",
      );
      assert.ok(err.message.includes("nobody@elsewhere.example"), err.message);
      // the pool still works after a refusal
      const subject = uniqueSubject("after refusal");
      await sendOne(sender, subject);
      await sendOne(sender, subject); // on the fast lane, TLS from the first byte too
      assert.deepEqual(sender.carried, { lane: 1, nodemailer: 1 });
      assert.equal((await receive(subject, 2)).length, 2);
    } finally {
      await sender.close();
    }
  },
});

Deno.test({
  name: "smtp: submitting without a password is EAUTH, telling to set one",
  ignore: NO_STACK,
  async fn() {
    const sender = new SmtpSender(submission({ password: undefined }));
    try {
      const err = await rejectsWith(
        sendOne(sender, uniqueSubject("no login")),
        "EAUTH",
        "127.0.0.11:587",
      );
      assert.match(err.message, /password_env/);
    } finally {
      await sender.close();
    }
  },
});
