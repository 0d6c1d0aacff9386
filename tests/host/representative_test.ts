/**
 * The host-pool representative over the Maildir post office: requests and notices go to the
 * workers round-robin, resent with the terminal's From and Subject unchanged, and leave the
 * representative's mailbox; ordinary mail stays.
 */
import assert from "node:assert/strict";
import { Representative, type RepresentativeEvent } from "../../src/host/pool/representative.ts";
import { headerValues } from "../../src/mail/rfc5322/header_values.ts";
import { MaildirPostOffice } from "../../src/mail/maildir/post_office.ts";
import { MaildirSender } from "../../src/mail/maildir/sender.ts";
import { MaildirSource } from "../../src/mail/maildir/source.ts";
import type { MailSender } from "../../src/mail/types.ts";
import { subjectFor } from "../../src/message/mail_text.ts";

const NETWORK = "lan";
const REP = "pool@lan.test";
const WORKERS = ["host1@lan.test", "host2@lan.test"];
const REQUEST = { subject: subjectFor(NETWORK, "request"), mode: "exact" as const };
const NOTICE = { subject: subjectFor(NETWORK, "notice"), mode: "exact" as const };

async function withPostOffice(
  fn: (po: MaildirPostOffice, sender: MaildirSender) => Promise<void>,
): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "mprep" });
  try {
    const po = new MaildirPostOffice(root);
    await fn(po, new MaildirSender(po));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

/** The From of every matching mail in `address`'s mailbox. */
async function fromsIn(po: MaildirPostOffice, address: string, kind = REQUEST) {
  const source = new MaildirSource(po.maildirOf(address));
  try {
    const froms: string[] = [];
    for (const ref of await source.list(kind)) {
      const raw = await source.fetch(ref);
      assert.deepEqual(headerValues(raw, "Subject"), [kind.subject]);
      assert.deepEqual(headerValues(raw, "Resent-From"), [REP]);
      froms.push(...headerValues(raw, "From"));
    }
    return froms;
  } finally {
    await source.close();
  }
}

Deno.test("the representative shares 40 requests evenly between 2 workers, senders unchanged", async () => {
  await withPostOffice(async (po, sender) => {
    const terminals = Array.from({ length: 40 }, (_, i) => `player${i}@a.test`);
    for (const from of terminals) {
      await sender.send({ from, to: [REP], subject: REQUEST.subject, text: "block\n" });
    }
    await sender.send({ from: "bob@a.test", to: [REP], subject: "Lunch?", text: "hi\n" });
    const events: RepresentativeEvent[] = [];
    const source = new MaildirSource(po.maildirOf(REP));
    const rep = new Representative({
      network: NETWORK,
      source,
      sender,
      email: REP,
      workers: WORKERS,
      onEvent: (e) => events.push(e),
    });
    assert.deepEqual(await rep.processPending(), { forwarded: 40, quarantined: 0 });
    await source.close();

    const first = await fromsIn(po, WORKERS[0]!);
    const second = await fromsIn(po, WORKERS[1]!);
    assert.equal(first.length, 20);
    assert.equal(second.length, 20);
    assert.deepEqual([...first, ...second].sort(), [...terminals].sort());
    const left = new MaildirSource(po.maildirOf(REP));
    assert.deepEqual(await left.list(REQUEST), [], "the representative's mailbox is empty");
    assert.equal((await left.list({ subject: "Lunch?", mode: "exact" })).length, 1);
    await left.close();
    const forwards = events.filter((e) => e.event === "forwarded");
    assert.equal(forwards.length, 40);
  });
});

Deno.test("notices are forwarded too, and a shared counter continues the rotation", async () => {
  await withPostOffice(async (po, sender) => {
    await sender.send({ from: "p1@a.test", to: [REP], subject: NOTICE.subject, text: "n\n" });
    await sender.send({ from: "p2@a.test", to: [REP], subject: REQUEST.subject, text: "r\n" });
    let n = 1; // another representative process already used slot 0
    const source = new MaildirSource(po.maildirOf(REP));
    const rep = new Representative({
      network: NETWORK,
      source,
      sender,
      email: REP,
      workers: WORKERS,
      counter: { next: () => Promise.resolve(n++) },
    });
    assert.deepEqual(await rep.processPending(), { forwarded: 2, quarantined: 0 });
    await source.close();
    assert.deepEqual(await fromsIn(po, WORKERS[1]!, NOTICE), ["p1@a.test"]);
    assert.deepEqual(await fromsIn(po, WORKERS[0]!), ["p2@a.test"]);
  });
});

Deno.test("two representative processes on one mailbox forward each request once", async () => {
  await withPostOffice(async (po, sender) => {
    for (let i = 0; i < 30; i++) {
      await sender.send({ from: `t${i}@a.test`, to: [REP], subject: REQUEST.subject, text: "r" });
    }
    const sources = [0, 1].map(() => new MaildirSource(po.maildirOf(REP)));
    const reps = sources.map((source) =>
      new Representative({ network: NETWORK, source, sender, email: REP, workers: WORKERS })
    );
    const results = await Promise.all(reps.map((r) => r.processPending()));
    await Promise.all(sources.map((s) => s.close()));
    assert.equal(results[0]!.forwarded + results[1]!.forwarded, 30);
    const all = [...await fromsIn(po, WORKERS[0]!), ...await fromsIn(po, WORKERS[1]!)];
    assert.equal(all.length, 30);
    assert.equal(new Set(all).size, 30);
  });
});

Deno.test("oversize mail is quarantined, not forwarded; a sender that cannot forward is refused", async () => {
  await withPostOffice(async (po, sender) => {
    await sender.send({ from: "big@a.test", to: [REP], subject: REQUEST.subject, text: "x" });
    const source = new MaildirSource(po.maildirOf(REP));
    const rep = new Representative({
      network: NETWORK,
      source,
      sender,
      email: REP,
      workers: WORKERS,
      maxMailBytes: 10,
    });
    assert.deepEqual(await rep.processPending(), { forwarded: 0, quarantined: 1 });
    await source.close();
    assert.deepEqual(await fromsIn(po, WORKERS[0]!), []);
    const plain: MailSender = { send: sender.send.bind(sender), close: () => Promise.resolve() };
    assert.throws(
      () =>
        new Representative({
          network: NETWORK,
          source,
          sender: plain,
          email: REP,
          workers: WORKERS,
        }),
      TypeError,
    );
  });
});
