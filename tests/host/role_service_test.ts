/**
 * Members of a group with no standing host on one shared mailbox (docs/decisions.md "First
 * receiver becomes host"), on a local post office and a manual clock: who takes the role, who
 * defers, how the role passes on with the table, and what a forged or flooding role mail does.
 */
import assert from "node:assert/strict";
import { Host } from "../../src/host/host.ts";
import { roleMailBody, roleSubject } from "../../src/host/role/role_mail.ts";
import { RoleService } from "../../src/host/role/role_service.ts";
import { MemoryStore } from "../../src/host/store/memory_store.ts";
import type { MailpeerEvent } from "../../src/events.ts";
import type { MailSender, OutgoingMail } from "../../src/mail/types.ts";
import { MAX_ROLE_MAILS } from "../../src/limits.ts";
import { REPLY_READS_ROLE } from "../../src/protocol.ts";
import { generateHostKeys, type HostKeys } from "../../src/message/key_file.ts";
import { NETWORK, World } from "../support/world.ts";

const LEASE_MS = 60_000;
const SHARED = "host@host.test";

interface Member {
  role: RoleService;
  store: MemoryStore;
  events: MailpeerEvent[];
  of: (event: string) => Record<string, unknown>[];
}

async function member(w: World, name: string, sender: MailSender = w.sender): Promise<Member> {
  const events: MailpeerEvent[] = [];
  const onEvent = (e: MailpeerEvent) => events.push(e);
  const source = await w.sourceOf(SHARED);
  const store = new MemoryStore();
  const host = new Host({
    keys: w.hostKeys,
    network: NETWORK,
    source,
    sender: w.sender,
    store,
    clock: w.clock,
    allowPrivateAddresses: true,
    onEvent,
  });
  const role = new RoleService({
    host,
    sender,
    store,
    keys: w.hostKeys,
    member: name,
    policy: { capacity: 100, expiryMs: 12 * 3600_000 },
    allowPrivateAddresses: true,
    leaseMs: LEASE_MS,
    clock: w.clock,
    onEvent,
  });
  const of = (event: string) =>
    (events as unknown as Record<string, unknown>[]).filter((e) => e.event === event);
  return { role, store, events, of };
}

/** Mails a role mail made with `keys` (a member's or a stranger's) to the shared mailbox. */
async function mailRole(w: World, keys: HostKeys, epoch: number, holder = "mallory") {
  const now = w.clock.now();
  const lease = { network: NETWORK, epoch, holder, taken: now, since: now, until: now + LEASE_MS };
  const body = await roleMailBody(lease, [], keys, now);
  await w.sender.send({
    from: "mallory@evil.test",
    to: [SHARED],
    subject: roleSubject(NETWORK),
    text: body.text,
  });
}

const userIds = async (m: Member) => (await m.store.read()).map((r) => r.userId).sort();

Deno.test("the first member to find a request takes the role; the other defers and leaves the next request to it", async () => {
  const w = await World.create();
  try {
    const [a, b] = [await member(w, "anna"), await member(w, "ben")];
    await b.role.pass(); // nothing to answer: nobody takes the role
    assert.equal(b.of("role-taken").length, 0);
    const bob = await w.player("bob", 7001);
    const bobReq = await w.request(bob);
    await a.role.pass();
    assert.deepEqual(a.of("role-taken"), [{ event: "role-taken", epoch: 1, holder: "anna" }]);
    assert.equal((await w.replies(bob, bobReq.replyPrivateKey)).length, 1);

    const alice = await w.player("alice", 7002);
    const aliceReq = await w.request(alice);
    await b.role.pass();
    assert.deepEqual(b.of("role-deferred"), [{ event: "role-deferred", epoch: 1, holder: "anna" }]);
    assert.equal(b.of("reply-sent").length, 0, "ben left alice's request alone");
    assert.deepEqual(await userIds(b), ["bob"], "ben merged anna's table from her role mail");
    await a.role.pass();
    const [reply] = await w.replies(alice, aliceReq.replyPrivateKey);
    assert.deepEqual(reply?.peers.map((p) => p.userId), ["bob"]);
    await b.role.pass();
    assert.deepEqual(await userIds(b), ["alice", "bob"]);
  } finally {
    await w.close();
  }
});

Deno.test("the holder renews its lease; when it stops, the next member takes epoch 2 with the table", async () => {
  const w = await World.create();
  try {
    const [a, b] = [await member(w, "anna"), await member(w, "ben")];
    await w.request(await w.player("bob", 7001));
    await a.role.pass();
    await b.role.pass();
    // A third of the lease after her last role mail anna renews (her role mail after answering
    // bob ends a millisecond after the one she took the role with); ben, past anna's first term,
    // still defers.
    w.clock.advance(LEASE_MS / 3 + 1);
    await a.role.pass();
    assert.equal(a.role.lease?.until, w.clock.now() + LEASE_MS);
    w.clock.advance(LEASE_MS - LEASE_MS / 3 + 1);
    const carol = await w.player("carol", 7003);
    const carolReq = await w.request(carol);
    await b.role.pass();
    assert.equal(b.of("role-taken").length, 0, "anna's renewed lease still runs");
    // anna stops (no more passes); her lease runs out.
    w.clock.advance(LEASE_MS);
    await b.role.pass();
    assert.deepEqual(b.of("role-taken"), [{ event: "role-taken", epoch: 2, holder: "ben" }]);
    const [reply] = await w.replies(carol, carolReq.replyPrivateKey);
    assert.deepEqual(reply?.peers.map((p) => p.userId), ["bob"], "no row lost with anna");
  } finally {
    await w.close();
  }
});

Deno.test("the holder's reply names it and its epoch to a request that reads the role; other requests get a plain reply", async () => {
  const w = await World.create();
  try {
    const [a, b] = [await member(w, "anna"), await member(w, "ben")];
    /** The role a reply says: the lease as the holder held it when it answered (renewed after). */
    const said = (holder: string, epoch: number) => ({
      holder,
      epoch,
      until: w.clock.now() + LEASE_MS,
      address: SHARED,
    });
    const bob = await w.player("bob", 7001);
    const bobReq = await w.request(bob, { reads: [REPLY_READS_ROLE] });
    await a.role.pass();
    const [toBob] = await w.replies(bob, bobReq.replyPrivateKey);
    assert.deepEqual(toBob?.role, said("anna", 1));
    assert.deepEqual(a.of("reply-sent")[0]?.role, { holder: "anna", epoch: 1 });

    // a terminal of an earlier version does not read the role: its reply is what it always was
    const old = await w.player("olga", 7004);
    const oldReq = await w.request(old);
    await a.role.pass();
    const [toOld] = await w.replies(old, oldReq.replyPrivateKey);
    assert.ok(toOld !== undefined && !("role" in toOld), JSON.stringify(toOld));
    assert.equal(a.of("reply-sent")[1]?.role, undefined);

    // a host that holds no role (plain `mailpeer host` on its own mailbox) says none
    const carol = await w.player("carol", 7003);
    const carolReq = await w.request(carol, { reads: [REPLY_READS_ROLE] });
    await b.role.pass(); // ben defers: the request stays for the holder
    await w.host.processPending();
    const [toCarol] = await w.replies(carol, carolReq.replyPrivateKey);
    assert.ok(toCarol !== undefined && !("role" in toCarol), JSON.stringify(toCarol));

    // anna stops; her lease runs out and ben's reply names him in epoch 2
    w.clock.advance(2 * LEASE_MS);
    const dave = await w.player("dave", 7005);
    const daveReq = await w.request(dave, { reads: [REPLY_READS_ROLE, "some-later-field"] });
    await b.role.pass();
    const [toDave] = await w.replies(dave, daveReq.replyPrivateKey);
    assert.deepEqual(toDave?.role, said("ben", 2));
  } finally {
    await w.close();
  }
});

Deno.test("two members taking the role at once settle on the first taker, who gets the other's rows", async () => {
  const w = await World.create();
  try {
    const [a, b] = [await member(w, "anna"), await member(w, "ben")];
    // ben claims a request before anna's role mail reaches him: both hold epoch 1.
    await w.request(await w.player("bob", 7001));
    await a.role.pass();
    const roleMails = await (await w.sourceOf(SHARED)).list({
      subject: roleSubject(NETWORK),
      mode: "exact",
    });
    const hidden = await w.sourceOf(SHARED);
    for (const ref of roleMails) await hidden.quarantine(ref, "held back by the test");
    w.clock.advance(1);
    await w.request(await w.player("alice", 7002));
    await b.role.pass();
    assert.deepEqual(b.of("role-taken"), [{ event: "role-taken", epoch: 1, holder: "ben" }]);
    // anna's mail arrives late: ben gives way to the earlier taker; anna merges ben's rows.
    const dir = w.postOffice.maildirOf(SHARED);
    for (const name of await w.files(SHARED, ".Quarantine/cur")) {
      await Deno.rename(`${dir}/.Quarantine/cur/${name}`, `${dir}/new/${name.split(":")[0]}`);
    }
    await b.role.pass();
    assert.deepEqual(b.of("role-lost"), [{ event: "role-lost", epoch: 1, holder: "anna" }]);
    await a.role.pass();
    assert.equal(a.of("role-lost").length, 0);
    assert.deepEqual(await userIds(a), ["alice", "bob"]);
  } finally {
    await w.close();
  }
});

Deno.test("a role mail of a key outside the group is set aside and does not stop a member taking the role", async () => {
  const w = await World.create();
  try {
    const a = await member(w, "anna");
    const stranger = await generateHostKeys(SHARED);
    await mailRole(w, stranger, 99);
    const bob = await w.player("bob", 7001);
    const req = await w.request(bob);
    await a.role.pass();
    assert.equal(a.of("quarantined").length, 1);
    assert.match(
      String(a.of("quarantined")[0]?.reason),
      /did not sign|not signed|ESIGNATURE|known host/,
    );
    assert.deepEqual(a.of("role-taken"), [{ event: "role-taken", epoch: 1, holder: "anna" }]);
    assert.equal((await w.replies(bob, req.replyPrivateKey)).length, 1);
  } finally {
    await w.close();
  }
});

Deno.test("a flood of forged role mails is read at most MAX_ROLE_MAILS a pass and the request is still answered", async () => {
  const w = await World.create();
  try {
    const a = await member(w, "anna");
    const stranger = await generateHostKeys(SHARED);
    for (let i = 0; i < MAX_ROLE_MAILS + 9; i++) await mailRole(w, stranger, 1 + i);
    const bob = await w.player("bob", 7001);
    const req = await w.request(bob);
    await a.role.pass();
    assert.equal(a.of("quarantined").length, MAX_ROLE_MAILS);
    assert.equal((await w.replies(bob, req.replyPrivateKey)).length, 1);
    await a.role.pass();
    assert.equal(a.of("quarantined").length, MAX_ROLE_MAILS + 9, "the rest go next pass");
    assert.equal(a.of("role-taken").length, 1);
  } finally {
    await w.close();
  }
});

Deno.test("a member's lease in a far epoch is followed, and the role after it stays at the epoch bound", async () => {
  const w = await World.create();
  try {
    const a = await member(w, "anna");
    await mailRole(w, w.hostKeys, 2 ** 31 - 1, "mallory");
    await w.request(await w.player("bob", 7001));
    await a.role.pass();
    assert.deepEqual(a.of("role-deferred"), [
      { event: "role-deferred", epoch: 2 ** 31 - 1, holder: "mallory" },
    ], "a member's lease is a member's: it is followed while it runs (at most MAX_ROLE_LEASE_MS)");
    w.clock.advance(LEASE_MS + 1);
    await a.role.pass();
    assert.deepEqual(a.of("role-taken"), [
      { event: "role-taken", epoch: 2 ** 31 - 1, holder: "anna" },
    ]);
  } finally {
    await w.close();
  }
});

Deno.test("while the holder's renewed role mail is still on its way, the mailbox keeps the old one: a newcomer defers", async () => {
  const w = await World.create();
  try {
    // anna's role mails are held in transit until the test lets them go (a real server delivers
    // some time after it accepted): she must not delete the role mail they supersede before then.
    const transit: OutgoingMail[] = [];
    const held: MailSender = {
      send: (mail) => {
        transit.push(mail);
        return Promise.resolve({ messageId: `<held-${transit.length}@test>` });
      },
      close: () => Promise.resolve(),
    };
    const deliver = async () => {
      for (const mail of transit.splice(0)) await w.sender.send(mail);
    };
    const roleMailCount = async () =>
      (await (await w.sourceOf(SHARED)).list({ subject: roleSubject(NETWORK), mode: "exact" }))
        .length;
    const a = await member(w, "anna", held);
    await w.request(await w.player("bob", 7001));
    await a.role.pass();
    await deliver();
    await a.role.pass(); // anna reads her first role mail back
    for (let renewal = 1; renewal <= 3; renewal++) {
      w.clock.advance(LEASE_MS / 3);
      await a.role.pass(); // renews: the new role mail is in transit
      assert.ok(await roleMailCount() >= 1, `renewal ${renewal}: a role mail stays in the mailbox`);
      const newcomer = await member(w, `newcomer${renewal}`);
      await w.request(await w.player(`p${renewal}`, 7100 + renewal));
      await newcomer.role.pass();
      assert.equal(newcomer.of("role-taken").length, 0, `renewal ${renewal}: the newcomer defers`);
      await deliver();
      await a.role.pass(); // reads the new one back, drops what it supersedes
      assert.equal(
        await roleMailCount(),
        1,
        `renewal ${renewal}: superseded role mails are deleted`,
      );
    }
  } finally {
    await w.close();
  }
});

Deno.test("role mails sent within one millisecond: the holder keeps its newest, and a member merges the whole table", async () => {
  const w = await World.create();
  try {
    const [a, b] = [await member(w, "anna"), await member(w, "ben")];
    // The clock stands still: anna takes the role, answers bob, then alice, and reads her own
    // role mails back between passes; each of her role mails must still supersede the last.
    await w.request(await w.player("bob", 7001));
    await a.role.pass();
    await w.request(await w.player("alice", 7002));
    await a.role.pass();
    await a.role.pass();
    await b.role.pass();
    assert.deepEqual(await userIds(b), ["alice", "bob"], "ben merged anna's newest table");
    const roleMails = await (await w.sourceOf(SHARED)).list({
      subject: roleSubject(NETWORK),
      mode: "exact",
    });
    assert.equal(roleMails.length, 1, "only the newest role mail is left");
  } finally {
    await w.close();
  }
});
