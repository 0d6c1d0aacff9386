/**
 * The SMTP fast lane (src/mail/smtp/smtp_lane.ts, docs/decisions.md "The SMTP fast lane")
 * through SmtpSender, against a fake server on loopback: which mails it carries, the bytes it
 * sends, how refusals read, and — from a hostile server's side — that a lane that breaks hands
 * its mail back to nodemailer, so nothing is lost. The real-Postfix side is in
 * smtp_sender_test.ts.
 */
import assert from "node:assert/strict";
import { MailError } from "../../src/errors.ts";
import { SmtpSender, type SmtpSenderOptions } from "../../src/mail/smtp/sender.ts";
import { LANE_IDLE_MS } from "../../src/mail/smtp/smtp_lane.ts";
import { composeMail } from "../../src/mail/rfc5322/compose.ts";
import { type Envelope, fakeSmtp, type FakeSmtpOptions } from "../support/fake_smtp.ts";
import { ManualClock } from "../support/manual_clock.ts";

const FROM = "host@host.test";
const NOW = () => Date.UTC(2026, 11, 5, 12);

function senderFor(port: number, options: SmtpSenderOptions): SmtpSender {
  return new SmtpSender(
    { host: "127.0.0.1", port, tls: "none", user: "" },
    { now: NOW, hostname: "host.test", ...options },
  );
}

function mail(i: number, to = `peer${i}@a.test`) {
  return {
    from: FROM,
    to: [to],
    subject: `[mailpeer] lane reply ${i}`,
    text: `line ${i}\r\n.a leading dot\r\n`,
    messageId: `<lane-${i}@host.test>`,
  };
}

/** Runs `fn` with a fake server and a sender on it; closes both. */
async function withServer(
  options: FakeSmtpOptions,
  fn: (smtp: ReturnType<typeof fakeSmtp>, sender: SmtpSender) => Promise<void>,
  senderOptions: SmtpSenderOptions = {},
): Promise<void> {
  const smtp = fakeSmtp(options);
  const sender = senderFor(smtp.port, senderOptions);
  try {
    await fn(smtp, sender);
  } finally {
    await smtp.close(); // first: the sender's sockets then close at once
    await sender.close();
  }
}

Deno.test("smtp lane: after nodemailer's first mail, the rest go pipelined as BDAT, byte for byte", async () => {
  // connections from the 2nd on answer MAIL and RCPT only once the BDAT chunk is in: a client
  // that waited for each answer (no pipelining) would never get one there
  await withServer({ chunking: true, holdFrom: 2 }, async (smtp, sender) => {
    await sender.send(mail(0));
    await Promise.all(Array.from({ length: 9 }, (_, i) => sender.send(mail(i + 1))));
    assert.deepEqual(sender.carried, { lane: 9, nodemailer: 1 });
    assert.equal(smtp.envelopes.length, 10);
    assert.deepEqual(smtp.envelopes.map((e) => e.via).sort(), [
      ...Array(9).fill("BDAT"),
      "DATA",
    ]);
    for (let i = 0; i <= 9; i++) {
      const got = smtp.envelopes.find((e) => e.to[0] === `<peer${i}@a.test>`);
      assert.ok(got !== undefined, `mail ${i} did not arrive`);
      assert.equal(got.from, `<${FROM}>`);
      const { raw } = await composeMail(mail(i), { now: NOW, hostname: "host.test" });
      // the same bytes nodemailer sends (its DATA is dot-unstuffed by the server)
      assert.equal(got.message, new TextDecoder().decode(raw).replace(/(\r\n)?$/, "\r\n"));
    }
  });
});

Deno.test("smtp lane: a server without CHUNKING is never asked for a lane", async () => {
  await withServer({}, async (smtp, sender) => {
    for (let i = 0; i < 4; i++) await sender.send(mail(i));
    assert.deepEqual(sender.carried, { lane: 0, nodemailer: 4 });
    assert.ok(smtp.envelopes.every((e) => e.via === "DATA"));
  });
});

Deno.test("smtp lane: `lanes: false` keeps every mail on nodemailer", async () => {
  await withServer({ chunking: true }, async (smtp, sender) => {
    for (let i = 0; i < 3; i++) await sender.send(mail(i));
    assert.deepEqual(sender.carried, { lane: 0, nodemailer: 3 });
    assert.equal(smtp.envelopes.length, 3);
  }, { lanes: false });
});

Deno.test("smtp lane: a refused recipient is ESEND for that mail alone; the next mails still arrive", async () => {
  const rcptReply = (to: string) =>
    to === "gone@a.test" ? "550 5.1.1 <gone@a.test>: Recipient address rejected" : undefined;
  await withServer({ chunking: true, rcptReply }, async (smtp, sender) => {
    await sender.send(mail(0));
    const results = await Promise.allSettled([
      sender.send(mail(1)),
      sender.send(mail(2, "gone@a.test")),
      sender.send(mail(3)),
    ]);
    assert.equal(results[0]!.status, "fulfilled");
    assert.equal(results[2]!.status, "fulfilled");
    const refused = results[1]!;
    assert.ok(refused.status === "rejected" && refused.reason instanceof MailError);
    assert.equal(refused.reason.code, "ESEND");
    assert.match(refused.reason.message, /^Cannot send mail to gone@a\.test via .*550 5\.1\.1/);
    assert.ok(!refused.reason.message.includes("\n"));
    await sender.send(mail(4));
    const arrived = smtp.envelopes.map((e) => e.to[0]).sort();
    assert.deepEqual(arrived, [0, 1, 3, 4].map((i) => `<peer${i}@a.test>`));
    assert.equal(sender.carried.nodemailer, 1, "the refusal was not retried through nodemailer");
  });
});

Deno.test("smtp lane: a 4xx answer is EDEFER (tried again later), not a refusal", async () => {
  const rcptReply = (to: string) => to === "busy@a.test" ? "451 4.3.0 try again later" : undefined;
  await withServer({ chunking: true, rcptReply }, async (_smtp, sender) => {
    await sender.send(mail(0));
    await assert.rejects(
      sender.send(mail(1, "busy@a.test")),
      (err) => err instanceof MailError && err.code === "EDEFER" && /451 4\.3\.0/.test(err.message),
    );
  });
});

for (const hostileBdat of ["garbage", "endless", "hangup"] as const) {
  Deno.test(`smtp lane: a server that answers BDAT with ${hostileBdat} loses no mail (nodemailer carries it)`, async () => {
    await withServer({ chunking: true, hostileBdat }, async (smtp, sender) => {
      await sender.send(mail(0));
      const sent = await Promise.allSettled(
        Array.from({ length: 5 }, (_, i) => sender.send(mail(i + 1))),
      );
      assert.deepEqual(sent.map((s) => s.status), Array(5).fill("fulfilled"));
      const arrived = smtp.envelopes.map((e) => e.to[0]).sort();
      assert.deepEqual(arrived, [0, 1, 2, 3, 4, 5].map((i) => `<peer${i}@a.test>`).sort());
      assert.ok(smtp.envelopes.every((e) => e.via === "DATA"));
      assert.equal(sender.carried.lane, 0);
    });
  });
}

Deno.test("smtp lane: a server that takes a BDAT chunk and then says nothing fails the lane after timeoutMs; nodemailer carries the mail", async () => {
  const deadlines = new ManualClock();
  await withServer({ chunking: true, hostileBdat: "silent" }, async (smtp, sender) => {
    await sender.send(mail(0)); // nodemailer
    const second = sender.send(mail(1)); // the lane, to a server that goes quiet
    second.catch(() => {}); // awaited below; a failed assertion must not leave it unhandled
    await smtp.silenced;
    // the lane waits for the answers, against its deadline (a lane on another timer ends on
    // that one: the mail then settles first, and the test fails instead of hanging)
    await Promise.race([
      deadlines.sleeping(),
      second.then(() => assert.fail("the lane's deadline did not run on its clock")),
    ]);
    assert.equal(deadlines.nextWakeIn, 12_000);
    deadlines.advance(11_999);
    assert.equal(deadlines.sleepers, 1, "the lane gave up before its deadline");
    deadlines.advance(1);
    await second; // carried again by nodemailer, on a connection of its own
    assert.equal(arrived(smtp, 1).via, "DATA");
    assert.deepEqual(sender.carried, { lane: 0, nodemailer: 2 });
  }, { deadlineClock: deadlines, timeoutMs: 12_000 }); // above the 10 s connect limit
});

Deno.test("smtp lane: 8-bit mail where the server lacks 8BITMIME, and mail over its SIZE, stay on nodemailer", async () => {
  await withServer({ chunking: true, no8BitMime: true, size: 2_000 }, async (smtp, sender) => {
    await sender.send(mail(0));
    await sender.send(mail(1)); // 7-bit and small: the lane
    const eightBit = new TextEncoder().encode(
      `From: ${FROM}\r\nTo: peer2@a.test\r\nSubject: forwarded\r\n\r\nGr\u00fc\u00dfe\r\n`,
    );
    await sender.forward(eightBit, { from: FROM, to: ["peer2@a.test"] });
    await sender.send({ ...mail(3), text: "x".repeat(3_000) + "\r\n" });
    assert.deepEqual(sender.carried, { lane: 1, nodemailer: 3 });
    assert.deepEqual(smtp.envelopes.map((e) => e.via), ["DATA", "BDAT", "DATA", "DATA"]);
  });
});

/** The envelope of `mail(i)` as the server got it. */
function arrived(smtp: { envelopes: Envelope[] }, i: number): Envelope {
  const got = smtp.envelopes.find((e) => e.to[0] === `<peer${i}@a.test>`);
  assert.ok(got !== undefined, `mail ${i} did not arrive`);
  return got;
}

/**
 * Runs `fn` once a lane carried mail 1 (nodemailer carries mail 0) and waits idle on `clock`;
 * `lane` is its connection's number.
 */
async function withIdleLane(
  fn: (
    smtp: ReturnType<typeof fakeSmtp>,
    sender: SmtpSender,
    clock: ManualClock,
    lane: number,
  ) => Promise<void>,
): Promise<void> {
  const clock = new ManualClock();
  await withServer({ chunking: true }, async (smtp, sender) => {
    await sender.send(mail(0));
    await sender.send(mail(1));
    assert.equal(arrived(smtp, 1).via, "BDAT");
    await clock.sleeping(); // the lane is idle: its QUIT waits
    assert.equal(clock.nextWakeIn, LANE_IDLE_MS);
    await fn(smtp, sender, clock, arrived(smtp, 1).connection);
  }, { clock });
}

Deno.test("smtp lane: an idle lane says QUIT after LANE_IDLE_MS, and the next mail still arrives (on a new lane)", async () => {
  await withIdleLane(async (smtp, sender, clock, lane) => {
    clock.advance(LANE_IDLE_MS);
    await sender.send(mail(2));
    const next = arrived(smtp, 2);
    assert.equal(next.via, "BDAT");
    assert.notEqual(next.connection, lane, "the idle lane carried the next mail");
    assert.equal(await smtp.ended(lane), "QUIT");
    assert.deepEqual(sender.carried, { lane: 2, nodemailer: 1 });
  });
});

Deno.test("smtp lane: a mail within LANE_IDLE_MS restarts the idle time; the lane does not QUIT under it", async () => {
  await withIdleLane(async (smtp, sender, clock, lane) => {
    clock.advance(LANE_IDLE_MS - 1);
    await sender.send(mail(2));
    await clock.sleeping();
    assert.equal(clock.sleepers, 1, "the idle wait before the mail still runs");
    assert.equal(clock.nextWakeIn, LANE_IDLE_MS);
    clock.advance(1); // when the first idle wait would have ended
    await sender.send(mail(3));
    for (const i of [2, 3]) {
      assert.equal(arrived(smtp, i).via, "BDAT");
      assert.equal(arrived(smtp, i).connection, lane, `mail ${i} came on another connection`);
    }
    const open = await Promise.race([smtp.ended(lane), Promise.resolve("open")]);
    assert.equal(open, "open");
    assert.deepEqual(sender.carried, { lane: 3, nodemailer: 1 });
  });
});

Deno.test("smtp lane: closing the sender ends an idle lane with QUIT and its idle wait with it", async () => {
  await withIdleLane(async (smtp, sender, clock, lane) => {
    await sender.close();
    assert.equal(clock.sleepers, 0, "the idle wait outlived the sender");
    assert.equal(await smtp.ended(lane), "QUIT");
  });
});
