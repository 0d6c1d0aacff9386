/**
 * The hostile-mail corpus (tests/fixtures/hostile/, made by scripts/gen-hostile-fixtures.ts,
 * described in docs/hostile-mail.md): each fixture goes into a host mailbox together with one
 * valid request; the host must do what manifest.json says with the fixture, answer the valid
 * request, and send no other reply.
 */
import assert from "node:assert/strict";
import { Host } from "../../src/host/host.ts";
import type { HostPassResult } from "../../src/host/host.ts";
import { MemoryStore } from "../../src/host/store/memory_store.ts";
import type { MailpeerEvent } from "../../src/events.ts";
import { MessageError } from "../../src/errors.ts";
import { MAX_MAIL_BYTES } from "../../src/limits.ts";
import { composeMail } from "../../src/mail/rfc5322/compose.ts";
import { parseMail } from "../../src/mail/rfc5322/parse.ts";
import { dearmor } from "../../src/message/armor.ts";
import { openReply, sealRequest } from "../../src/message/block.ts";
import { decodeRequest, encodeRequest } from "../../src/message/codec.ts";
import { formatHostCard } from "../../src/message/host_card.ts";
import { generateIdentityKeys, hostCardOf, type HostKeys } from "../../src/message/key_file.ts";
import { generateX25519 } from "../../src/message/keys.ts";
import { bodyFor, subjectFor } from "../../src/message/mail_text.ts";
import { ManualClock } from "../support/manual_clock.ts";
import {
  type FixtureExpectation,
  fixtureIdentity,
  loadFixtureHostKeys,
  rawMail,
  wireRequest,
} from "../../scripts/gen-hostile-fixtures.ts";
import { MemoryMailbox, MemoryPostOffice } from "../support/memory_mail.ts";

const DIR = new URL("../fixtures/hostile/", import.meta.url);
const manifest = JSON.parse(await Deno.readTextFile(new URL("manifest.json", DIR))) as {
  network: string;
  now: number;
  fixtures: FixtureExpectation[];
};
const NETWORK = manifest.network;
const NOW = manifest.now;
const HONEST = "honest@player.test";

interface Batch {
  result: HostPassResult;
  box: MemoryMailbox;
  po: MemoryPostOffice;
  store: MemoryStore;
  events: MailpeerEvent[];
  /** Ids of the hostile mails, in delivery order. */
  ids: string[];
}

let keysPromise: Promise<HostKeys> | undefined;
const hostKeys = () => keysPromise ??= loadFixtureHostKeys();

/** A valid request mail from HONEST, and the key that opens its reply. */
async function honestRequest(keys: HostKeys) {
  const identity = await generateIdentityKeys("honest");
  const reply = await generateX25519();
  const sessionId = crypto.getRandomValues(new Uint8Array(16));
  const card = hostCardOf(keys);
  const block = await sealRequest({
    network: NETWORK,
    userId: "honest",
    identityKey: identity.ed25519.publicKey,
    endpoints: [{ transport: "tcp", address: "192.0.2.10", port: 4000 }],
    sessionId,
    createdAt: NOW,
    replyKey: reply.publicKey,
    hostCards: [formatHostCard(card)],
  }, { identity, hostCard: card });
  const { raw } = await composeMail({
    from: HONEST,
    to: [keys.email],
    subject: subjectFor(NETWORK, "request"),
    text: bodyFor(NETWORK, "request", block),
    date: new Date(NOW),
  });
  return { raw, replyPrivateKey: reply.privateKey, sessionId };
}

/** Delivers `hostile` and then one valid request, runs one pass and checks the valid one. */
async function runBatch(
  hostile: Uint8Array[],
  options: { reportSize?: boolean } = {},
): Promise<Batch> {
  const keys = await hostKeys();
  const box = new MemoryMailbox(options);
  const po = new MemoryPostOffice({ now: () => NOW });
  const store = new MemoryStore();
  const events: MailpeerEvent[] = [];
  const host = new Host({
    keys,
    network: NETWORK,
    source: box,
    sender: po.sender(),
    store,
    clock: new ManualClock(NOW),
    allowPrivateAddresses: true,
    onEvent: (e) => events.push(e),
  });
  const ids = hostile.map((raw) => box.deliver(raw));
  const honest = await honestRequest(keys);
  box.deliver(honest.raw);
  const result = await host.processPending();

  const toHonest = po.sent.filter((s) => s.mail.to.includes(HONEST));
  assert.equal(toHonest.length, 1, "the valid request got exactly one reply");
  const mail = await parseMail(toHonest[0]!.raw);
  const reply = await openReply(dearmor(mail.text), {
    replyPrivateKey: honest.replyPrivateKey,
    hostCard: hostCardOf(keys),
    sessionId: honest.sessionId,
  });
  assert.deepEqual(reply.sessionId, honest.sessionId);
  assert.ok((await store.read()).some((r) => r.userId === "honest"), "the valid row is stored");
  assert.deepEqual(box.mails, [], "no mailpeer mail is left behind to be retried forever");
  return { result, box, po, store, events, ids };
}

/** The quarantine code of mail `id`: the n-th quarantined event is the n-th quarantined mail. */
function quarantineCode(b: Batch, id: string): string | undefined {
  const at = b.box.quarantined.findIndex((m) => m.id === id);
  if (at < 0) return undefined;
  const event = b.events.filter((e) => e.event === "quarantined")[at];
  return event?.event === "quarantined" ? event.code : undefined;
}

for (const fixture of manifest.fixtures) {
  const name = fixture.files.join(" + ");
  const outcomes = fixture.outcomes.map((o) =>
    o.action === "answer" ? `answered` : `${o.action}d (${o.code})`
  ).join(", ");
  Deno.test(`hostile ${name} is ${outcomes}, and the valid request beside it is answered`, async () => {
    const raws = await Promise.all(fixture.files.map((f) => Deno.readFile(new URL(f, DIR))));
    const b = await runBatch(raws);
    const answers = fixture.outcomes.filter((o) => o.action === "answer");
    assert.equal(b.po.sent.length, 1 + answers.length, "no reply other than the expected ones");
    assert.equal(b.result.answered, 1 + answers.length);
    for (const [i, outcome] of fixture.outcomes.entries()) {
      const id = b.ids[i]!;
      const where = `${fixture.files[i]}: ${JSON.stringify(b.events)}`;
      if (outcome.action === "quarantine") {
        assert.equal(quarantineCode(b, id), outcome.code, where);
      } else if (outcome.action === "delete") {
        assert.ok(b.box.deleted.includes(id), where);
        assert.ok(!b.box.quarantined.some((m) => m.id === id), where);
      } else {
        assert.ok(b.box.deleted.includes(id), where);
        assert.ok(b.po.sent.some((s) => s.mail.to.includes(outcome.to)), where);
      }
    }
    const stale = fixture.outcomes.filter((o) => o.action === "delete").length;
    assert.equal(b.result.stale, stale);
  });
}

function hugeMail(bytes: number): Uint8Array {
  const filler = ("x".repeat(76) + "\n").repeat(Math.ceil(bytes / 77));
  return rawMail({
    body: `${filler}-----BEGIN MAILPEER BLOCK-----\nAQE=\n-----END MAILPEER BLOCK-----\n`,
  });
}

Deno.test("a mail of 8 MiB is quarantined unread when the mailbox reports its size", async () => {
  const b = await runBatch([hugeMail(8 * 1024 * 1024)]);
  assert.equal(quarantineCode(b, b.ids[0]!), "EMAIL");
  assert.ok(!b.box.fetched.includes(b.ids[0]!), "never fetched");
  assert.equal(b.po.sent.length, 1);
});

Deno.test("a mail of 8 MiB is quarantined when the mailbox cannot tell its size beforehand", async () => {
  const b = await runBatch([hugeMail(8 * 1024 * 1024)], { reportSize: false });
  assert.equal(quarantineCode(b, b.ids[0]!), "EMAIL");
  assert.equal(b.po.sent.length, 1);
});

Deno.test("a mail one byte over max_mail_bytes is quarantined, one at the limit is read", async () => {
  const big = hugeMail(MAX_MAIL_BYTES); // its block comes after the first 64 KiB
  const b = await runBatch([big.subarray(0, MAX_MAIL_BYTES + 1), big.subarray(0, MAX_MAIL_BYTES)]);
  assert.equal(quarantineCode(b, b.ids[0]!), "EMAIL");
  assert.equal(quarantineCode(b, b.ids[1]!), "EBLOCK", "read, and no block in it");
});

Deno.test("a user id with CR LF is refused when sealing and when opening", async () => {
  const keys = await hostKeys();
  const evil = { ...await fixtureIdentity("evil"), userId: "evil\r\nBcc: x@y" };
  const wire = await wireRequest(evil, keys, { createdAt: NOW, session: "crlf" });
  const reply = await generateX25519();
  await assert.rejects(
    sealRequest({
      network: NETWORK,
      userId: evil.userId,
      identityKey: evil.ed25519.publicKey,
      endpoints: wire.endpoints,
      sessionId: new Uint8Array(16),
      createdAt: NOW,
      replyKey: reply.publicKey,
      hostCards: [],
    }, { identity: evil, hostCard: hostCardOf(keys) }),
    (err) => err instanceof MessageError && err.code === "EPAYLOAD",
  );
  await assert.rejects(generateIdentityKeys(evil.userId), MessageError);
  assert.throws(
    () => decodeRequest(new TextEncoder().encode(JSON.stringify(wire))),
    (err) => err instanceof MessageError && err.code === "EPAYLOAD",
  );
  // The same payload with a clean user id is fine: only the CR LF is the problem.
  const clean = decodeRequest(
    new TextEncoder().encode(JSON.stringify({ ...wire, userId: "evil" })),
  );
  assert.deepEqual(decodeRequest(encodeRequest(clean)), clean);
});
