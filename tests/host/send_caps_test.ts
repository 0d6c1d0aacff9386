/**
 * Sending caps (src/host/send_caps.ts, docs/providers.md "Sending limits"): the first account
 * under its caps sends, the next takes over at the cap, and when all are at their caps the mail
 * waits (EDEFER) and its request stays until a later pass answers it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { MailError } from "../../src/errors.ts";
import { Host } from "../../src/host/host.ts";
import { CappedSender } from "../../src/host/send_caps.ts";
import type { MailSender, OutgoingMail } from "../../src/mail/types.ts";
import { ManualClock } from "../support/manual_clock.ts";
import { NETWORK, World } from "../support/world.ts";

const HOUR = 60 * 60 * 1000;

/** A sender that records what it sent, or fails while `failing` is set. */
function recorder(name: string) {
  const sent: string[] = [];
  const state = { failing: false };
  const sender: MailSender = {
    send: (mail: OutgoingMail) => {
      if (state.failing) {
        return Promise.reject(new MailError("ECONNECT", `Cannot send: ${name} is down; wait`));
      }
      sent.push(mail.subject);
      return Promise.resolve({ messageId: `<${sent.length}@${name}>` });
    },
    close: () => Promise.resolve(),
  };
  return { sender, sent, state };
}

const mail = (n: number): OutgoingMail => ({
  from: "host@host.test",
  to: ["ann@player.test"],
  subject: `reply ${n}`,
  text: "x\n",
});

async function withLedger(fn: (ledger: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "mailpeer-caps-" });
  try {
    await fn(join(dir, "table.json.sent.json"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("the first account sends up to its hourly cap, the next takes over, and at every cap the mail waits with EDEFER", async () => {
  await withLedger(async (ledger) => {
    const clock = new ManualClock(Date.UTC(2026, 11, 4, 12));
    const a = recorder("a");
    const b = recorder("b");
    const capped = new CappedSender([
      { sender: a.sender, name: "smtp a@x:587", maxPerHour: 2 },
      { sender: b.sender, name: "smtp b@x:587", maxPerDay: 1 },
    ], { ledger, clock });
    for (let n = 0; n < 3; n++) await capped.send(mail(n));
    assert.deepEqual([a.sent, b.sent], [["reply 0", "reply 1"], ["reply 2"]]);
    await assert.rejects(
      capped.send(mail(3)),
      (err: MailError) =>
        err.code === "EDEFER" &&
        /every sending account is at its cap \(smtp a@x:587: 2 per hour; smtp b@x:587: 1 per day\); it waits and goes out after 2026-12-04T13:00:00.000Z/
          .test(err.message),
    );
    assert.deepEqual(await capped.usage(), [
      { name: "smtp a@x:587", lastHour: 2, lastDay: 2 },
      { name: "smtp b@x:587", lastHour: 1, lastDay: 1 },
    ]);
    // An hour later the first account has room again; the second's day is not over.
    clock.advance(HOUR);
    await capped.send(mail(4));
    assert.deepEqual(a.sent.at(-1), "reply 4");
  });
});

Deno.test("a mail that fails to send gives its slot back", async () => {
  await withLedger(async (ledger) => {
    const clock = new ManualClock();
    const a = recorder("a");
    const capped = new CappedSender([{ sender: a.sender, name: "a", maxPerHour: 1 }], {
      ledger,
      clock,
    });
    a.state.failing = true;
    await assert.rejects(capped.send(mail(0)), /a is down/);
    a.state.failing = false;
    await capped.send(mail(1)); // the failed attempt did not use up the only slot
    assert.deepEqual(a.sent, ["reply 1"]);
  });
});

Deno.test("two host processes sharing a ledger never send more than the cap between them", async () => {
  await withLedger(async (ledger) => {
    const clock = new ManualClock();
    const a = recorder("a");
    const one = new CappedSender([{ sender: a.sender, name: "a", maxPerDay: 5 }], {
      ledger,
      clock,
    });
    const two = new CappedSender([{ sender: a.sender, name: "a", maxPerDay: 5 }], {
      ledger,
      clock,
    });
    const results = await Promise.allSettled(
      Array.from({ length: 12 }, (_, n) => (n % 2 ? one : two).send(mail(n))),
    );
    assert.equal(a.sent.length, 5);
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 5);
    assert.ok(
      results.every((r) => r.status === "fulfilled" || (r.reason as MailError).code === "EDEFER"),
    );
  });
});

Deno.test("a damaged or forged ledger stops sending with one line, never sends past the cap", async () => {
  for (
    const content of [
      "{not json",
      JSON.stringify({ version: 2, sent: {} }),
      JSON.stringify({ version: 1, sent: { a: ["x"] } }),
      JSON.stringify({ version: 1, sent: { a: Array(100_001).fill(1) } }),
    ]
  ) {
    await withLedger(async (ledger) => {
      await Deno.writeTextFile(ledger, content);
      const a = recorder("a");
      const capped = new CappedSender([{ sender: a.sender, name: "a", maxPerDay: 5 }], {
        ledger,
        clock: new ManualClock(),
      });
      await assert.rejects(
        capped.send(mail(0)),
        /^HostError: Cannot count the mail sent: the sending ledger .* (is not JSON|is not a mailpeer sending ledger); remove it to count afresh/,
      );
      assert.deepEqual(a.sent, []);
    });
  }
});

Deno.test("a host at its sending cap leaves the request in the mailbox and answers it on a later pass", async () => {
  const w = await World.create();
  try {
    const capped = new CappedSender([{ sender: w.sender, name: "maildir", maxPerHour: 1 }], {
      ledger: join(w.dir, "table.json.sent.json"),
      clock: w.clock,
    });
    const host = new Host({
      keys: w.hostKeys,
      network: NETWORK,
      source: w.hostSource,
      sender: capped,
      store: w.store,
      clock: w.clock,
      allowPrivateAddresses: true,
    });
    const ann = await w.player("ann", 4001);
    const ben = await w.player("ben", 4002);
    const ra = await w.request(ann);
    const rb = await w.request(ben);
    await assert.rejects(host.processPending(), (err: MailError) => err.code === "EDEFER");
    // One reply went out; the other request waits in the mailbox, not lost.
    const answered = [
      (await w.replies(ann, ra.replyPrivateKey)).length,
      (await w.replies(ben, rb.replyPrivateKey)).length,
    ];
    assert.deepEqual(answered.sort(), [0, 1]);
    assert.equal(
      (await w.hostSource.list({ subject: `[mailpeer] ${NETWORK} request`, mode: "exact" }))
        .length,
      1,
    );
    w.clock.advance(HOUR);
    const pass = await host.processPending();
    assert.equal(pass.answered, 1);
    assert.equal((await w.replies(ann, ra.replyPrivateKey)).length, 1);
    assert.equal((await w.replies(ben, rb.replyPrivateKey)).length, 1);
  } finally {
    await w.close();
  }
});
