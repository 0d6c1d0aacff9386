/**
 * The conformance suite every {@link MailSender} passes (SMTP, Maildir).
 *
 * It is written only against the MailSender interface and the fixture's `received()`, which
 * reads the recipients' mailboxes independently of the sender, so it runs unchanged against a
 * real mail server. Call it from an implementation's test file:
 *
 * ```ts ignore
 * mailSenderConformance("maildir", async ({ now }) => ({ sender, from, recipients, received, cleanup }));
 * ```
 *
 * @module
 */
import assert from "node:assert/strict";
import { MAX_BLOCK_BYTES } from "../../src/protocol.ts";
import { armor, dearmor } from "../../src/message/armor.ts";
import { parseMail } from "../../src/mail/rfc5322/parse.ts";
import type { ParsedMail } from "../../src/mail/types.ts";
import type { MailSender, OutgoingMail } from "../../src/mail/types.ts";

/** A sender and the mailboxes it delivers to. */
export interface MailSenderFixture {
  /** Built with the `now` clock the suite passes to the factory. */
  sender: MailSender;
  /** An address `sender` may send from (bare `local@domain`). */
  from: string;
  /** Two different addresses that receive what `sender` sends (bare `local@domain`). */
  recipients: [string, string];
  /**
   * The raw mails in `address`'s mailbox whose subject contains `tag`, once at least `count`
   * of them arrived (a real server may deliver after `send` resolved). Removes them from
   * the mailbox, so each mail is returned once.
   */
  received(address: string, tag: string, count: number): Promise<Uint8Array[]>;
  /** Closes the sender (again) and removes what the fixture made. */
  cleanup(): Promise<void>;
}

/** What the suite gives the factory. */
export interface MailSenderFixtureOptions {
  /** The clock the sender must use for `Date:` when the mail has none. */
  now: () => number;
}

/** Options of {@link mailSenderConformance}. */
export interface MailSenderConformanceOptions {
  /** Registers the tests as ignored (e.g. the mail stack is not running). Default: false. */
  ignore?: boolean;
}

/** The sender's clock: 2026-03-01 09:30:00 UTC. */
const CLOCK_MS = Date.UTC(2026, 2, 1, 9, 30, 0);
/** A `Date:` the caller sets: 2026-01-02 03:04:05 UTC. */
const GIVEN_DATE = new Date(Date.UTC(2026, 0, 2, 3, 4, 5));
/** "Cannot <do what>: <what is wrong>; <what to do>" (docs: error messages). */
const CLEAR_ERROR = /^Cannot .+: .+; .+/s;

/** A subject tag no other test's mail carries. */
function newTag(): string {
  return `[conformance ${crypto.randomUUID().slice(0, 8)}]`;
}

/** An armored block of `bytes` random bytes: many lines, as a request's body is. */
function armoredBlock(bytes: number): { block: Uint8Array; text: string } {
  const block = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i += 65_536) {
    crypto.getRandomValues(block.subarray(i, Math.min(bytes, i + 65_536)));
  }
  return { block, text: armor(block) };
}

/** The body section of a raw mail (after the first empty line). */
function bodyOf(raw: Uint8Array): string {
  const text = new TextDecoder().decode(raw);
  const end = text.indexOf("\r\n\r\n");
  assert.ok(end >= 0, "the mail has no empty line after its header");
  return text.slice(end + 4);
}

/** Asserts `err` is an Error whose message says what failed, why, and what to do. */
function assertClearError(err: unknown, about: RegExp): true {
  assert.ok(err instanceof Error, `rejected with a non-Error: ${String(err)}`);
  assert.match(err.message, CLEAR_ERROR);
  assert.match(err.message, about);
  return true;
}

/** Registers the MailSender conformance tests, each named `${name}: ...`. */
export function mailSenderConformance(
  name: string,
  makeFixture: (options: MailSenderFixtureOptions) => Promise<MailSenderFixture>,
  options: MailSenderConformanceOptions = {},
): void {
  const test = (title: string, fn: (f: MailSenderFixture) => Promise<void>) =>
    Deno.test({
      name: `${name}: ${title}`,
      ignore: options.ignore ?? false,
      fn: async () => {
        const fixture = await makeFixture({ now: () => CLOCK_MS });
        try {
          await fn(fixture);
        } finally {
          await fixture.cleanup();
        }
      },
    });

  /** The one mail with `tag` in `address`'s mailbox, parsed, with its raw bytes. */
  const receivedOne = async (f: MailSenderFixture, address: string, tag: string) => {
    const raws = await f.received(address, tag, 1);
    assert.equal(raws.length, 1, `${address} got ${raws.length} mails tagged ${tag}`);
    return { raw: raws[0]!, mail: await parseMail(raws[0]!) };
  };

  /**
   * Sends a mail that must arrive (`marker`) after one that was refused, and asserts the
   * marker is all each recipient got: the refused mail left nothing behind.
   */
  const assertOnlyMarkerArrives = async (f: MailSenderFixture, tag: string) => {
    const subject = `${tag} marker`;
    await f.sender.send({ from: f.from, to: f.recipients, subject, text: "marker\n" });
    for (const address of f.recipients) {
      const raws = await f.received(address, tag, 1);
      const subjects = await Promise.all(raws.map(async (r) => (await parseMail(r)).subject));
      assert.deepEqual(subjects, [subject], `${address} got a refused mail`);
    }
  };

  test("subject, text, From, To, Date, Message-ID and In-Reply-To arrive as sent", async (f) => {
    const tag = newTag();
    const outgoing: OutgoingMail = {
      from: f.from,
      to: [f.recipients[0]],
      subject: `${tag} lan reply`,
      text: "hello host\nsecond line\n",
      date: GIVEN_DATE,
      messageId: `<${crypto.randomUUID()}@conformance.test>`,
      inReplyTo: "<request-1@conformance.test>",
    };
    const { messageId } = await f.sender.send(outgoing);
    assert.equal(messageId, outgoing.messageId);

    const { mail } = await receivedOne(f, f.recipients[0], tag);
    const expected: Partial<ParsedMail> = {
      subject: outgoing.subject,
      text: outgoing.text,
      from: f.from,
      to: [f.recipients[0]],
      date: GIVEN_DATE,
      messageId: outgoing.messageId,
      inReplyTo: outgoing.inReplyTo,
    };
    assert.deepEqual({
      subject: mail.subject,
      text: mail.text,
      from: mail.from,
      to: mail.to,
      date: mail.date,
      messageId: mail.messageId,
      inReplyTo: mail.inReplyTo,
    }, expected);
  });

  test("without a Message-ID or Date the mail gets a fresh Message-ID and the sender's clock", async (f) => {
    const tag = newTag();
    const first = await f.sender.send({
      from: f.from,
      to: [f.recipients[0]],
      subject: `${tag} one`,
      text: "one\n",
    });
    const second = await f.sender.send({
      from: f.from,
      to: [f.recipients[0]],
      subject: `${tag} two`,
      text: "two\n",
    });
    assert.match(first.messageId, /^<[^<>@\s]+@[^<>@\s]+>$/);
    assert.notEqual(first.messageId, second.messageId);

    const mails = await Promise.all(
      (await f.received(f.recipients[0], tag, 2)).map((raw) => parseMail(raw)),
    );
    mails.sort((a, b) => a.subject.localeCompare(b.subject));
    assert.deepEqual(mails.map((m) => m.messageId), [first.messageId, second.messageId]);
    assert.deepEqual(mails.map((m) => m.date), [new Date(CLOCK_MS), new Date(CLOCK_MS)]);
  });

  test("every recipient gets the same mail, and no mail arrives twice", async (f) => {
    const tag = newTag();
    const { messageId } = await f.sender.send({
      from: f.from,
      to: f.recipients,
      subject: `${tag} to both`,
      text: "for both of you\n",
    });
    for (const address of f.recipients) {
      const { mail } = await receivedOne(f, address, tag);
      assert.equal(mail.messageId, messageId);
      assert.deepEqual(mail.to, [...f.recipients]);
      assert.equal(mail.text, "for both of you\n");
    }
  });

  test("non-ASCII subject, text and sender name arrive intact", async (f) => {
    const tag = newTag();
    const subject = `${tag} Grüße aus Zürich — 東京 ✓`;
    const text = "Grüße, ünïcödé ✓\nΚαλημέρα κόσμε\n日本語のテキスト\n🙂 emoji line\n";
    await f.sender.send({
      from: `Jürgen Müller <${f.from}>`,
      to: [f.recipients[0]],
      subject,
      text,
    });
    const { mail } = await receivedOne(f, f.recipients[0], tag);
    assert.equal(mail.subject, subject);
    assert.equal(mail.text, text);
    assert.equal(mail.from, f.from);
  });

  test("a long armored body arrives byte for byte, dot and From lines included", async (f) => {
    const tag = newTag();
    // the largest block a receiver accepts: a few hundred lines of armor
    const { block, text: armored } = armoredBlock(MAX_BLOCK_BYTES);
    // lines SMTP must escape (a lone dot ends DATA; ".." is unstuffed) or mbox-quotes ("From ")
    const text = `Request follows.\n.\n..\n.leading dot\nFrom the terminal\n${armored}${
      armored.endsWith("\n") ? "" : "\n"
    }`;
    assert.ok(text.split("\n").length > 200, "the body is many lines long");
    await f.sender.send({ from: f.from, to: [f.recipients[0]], subject: `${tag} long`, text });

    const { raw, mail } = await receivedOne(f, f.recipients[0], tag);
    assert.equal(bodyOf(raw), text.replaceAll("\n", "\r\n"));
    assert.equal(mail.text, text);
    assert.deepEqual(dearmor(mail.text), block);
  });

  test("a mail without recipients is refused with a clear error and nothing is sent", async (f) => {
    const tag = newTag();
    await assert.rejects(
      f.sender.send({ from: f.from, to: [], subject: `${tag} nobody`, text: "lost\n" }),
      (err) => assertClearError(err, /recipient/i),
    );
    await assertOnlyMarkerArrives(f, tag);
  });

  test("a line break in the subject is refused with a clear error and nothing is sent", async (f) => {
    const tag = newTag();
    for (const subject of [`${tag} hi\r\nBcc: ${f.recipients[1]}`, `${tag} hi\nX-Evil: 1`]) {
      await assert.rejects(
        f.sender.send({ from: f.from, to: [f.recipients[0]], subject, text: "injected\n" }),
        (err) => assertClearError(err, /subject|line break/i),
      );
    }
    await assertOnlyMarkerArrives(f, tag);
  });

  test("a line break in an address is refused with a clear error and nothing is sent", async (f) => {
    const tag = newTag();
    const [to, other] = f.recipients;
    const bad: Pick<OutgoingMail, "from" | "to">[] = [
      { from: f.from, to: [`${to}\r\nBcc: ${other}`] },
      { from: f.from, to: [other, `${to}\nSubject: ${tag} forged`] },
      { from: `${f.from}\r\nBcc: ${other}`, to: [to] },
    ];
    for (const addresses of bad) {
      await assert.rejects(
        f.sender.send({ ...addresses, subject: `${tag} injected`, text: "injected\n" }),
        (err) => assertClearError(err, /address|line break|control/i),
      );
    }
    await assertOnlyMarkerArrives(f, tag);
  });

  test("close() may be called twice, and send() after it is refused clearly", async (f) => {
    const tag = newTag();
    await f.sender.send({
      from: f.from,
      to: [f.recipients[0]],
      subject: `${tag} before`,
      text: "x\n",
    });
    await f.sender.close();
    await f.sender.close();
    await assert.rejects(
      f.sender.send({ from: f.from, to: [f.recipients[0]], subject: `${tag} after`, text: "y\n" }),
      (err) => assertClearError(err, /closed/),
    );
    const subjects = await Promise.all(
      (await f.received(f.recipients[0], tag, 1)).map(async (r) => (await parseMail(r)).subject),
    );
    assert.deepEqual(subjects, [`${tag} before`]);
  });

  test("close() before any send resolves, and send() after it is refused clearly", async (f) => {
    const tag = newTag();
    await f.sender.close();
    await f.sender.close();
    await assert.rejects(
      f.sender.send({ from: f.from, to: f.recipients, subject: `${tag} after`, text: "y\n" }),
      (err) => assertClearError(err, /closed/),
    );
  });

  test("concurrent sends are all delivered, each intact", async (f) => {
    const tag = newTag();
    const count = 12;
    const sent = await Promise.all(
      Array.from({ length: count }, (_, i) =>
        f.sender.send({
          from: f.from,
          to: [f.recipients[i % 2]!],
          subject: `${tag} number ${i}`,
          text: `mail number ${i}\n`,
        })),
    );
    assert.equal(new Set(sent.map((s) => s.messageId)).size, count);

    const got: ParsedMail[] = [];
    for (const [r, address] of f.recipients.entries()) {
      const raws = await f.received(address, tag, count / 2);
      got.push(...await Promise.all(raws.map((raw) => parseMail(raw))));
      assert.equal(raws.length, count / 2, `${address} got ${raws.length} mails (recipient ${r})`);
    }
    const byId = new Map(got.map((m) => [m.messageId, m]));
    sent.forEach(({ messageId }, i) => {
      const mail = byId.get(messageId);
      assert.ok(mail, `mail number ${i} did not arrive`);
      assert.equal(mail.subject, `${tag} number ${i}`);
      assert.equal(mail.text, `mail number ${i}\n`);
      assert.deepEqual(mail.to, [f.recipients[i % 2]]);
    });
  });

  test("an already aborted signal sends nothing", async (f) => {
    const tag = newTag();
    const controller = new AbortController();
    controller.abort(new Error("shutting down"));
    await assert.rejects(
      f.sender.send(
        { from: f.from, to: f.recipients, subject: `${tag} aborted`, text: "no\n" },
        { signal: controller.signal },
      ),
      /shutting down/,
    );
    await assertOnlyMarkerArrives(f, tag);
  });
}
