import assert from "node:assert/strict";
import { Host } from "../../src/host/host.ts";
import { selectPeers } from "../../src/host/table.ts";
import type { PeerRow } from "../../src/host/types.ts";
import { toBase64Url } from "../../src/message/base64.ts";
import { DEFAULT_EXPIRY_MS } from "../../src/limits.ts";
import { NETWORK, World } from "../support/world.ts";

Deno.test("the first requester gets a formal empty reply and the second gets the first", async () => {
  const w = await World.create();
  try {
    const bob = await w.player("bob", 4000);
    const alice = await w.player("alice", 4001);
    const rb = await w.request(bob);
    assert.deepEqual(await w.host.processPending(), {
      answered: 1,
      notices: 0,
      quarantined: 0,
      stale: 0,
    });
    const [emptyReply] = await w.replies(bob, rb.replyPrivateKey);
    assert.ok(emptyReply, "bob got a reply");
    assert.deepEqual(emptyReply.peers, []);
    assert.deepEqual(emptyReply.sessionId, rb.sessionId);

    w.clock.advance(1000);
    const ra = await w.request(alice);
    await w.host.processPending();
    const [reply] = await w.replies(alice, ra.replyPrivateKey);
    assert.equal(reply?.peers.length, 1);
    assert.equal(reply?.peers[0]?.userId, "bob");
    assert.deepEqual(reply?.peers[0]?.endpoints, bob.endpoints);
    assert.deepEqual(reply?.peers[0]?.identityKey, bob.identity.ed25519.publicKey);
    // The request mails are gone from the host mailbox once answered.
    assert.deepEqual([
      ...await w.files("host@host.test", "new"),
      ...await w.files("host@host.test", "cur"),
    ], []);
  } finally {
    await w.close();
  }
});

Deno.test("a request with one byte changed in its block is quarantined and never answered", async () => {
  const w = await World.create();
  try {
    const mallory = await w.player("mallory", 4000);
    const r = await w.requestBlock(mallory);
    const tampered = r.block.slice();
    tampered[tampered.length - 20]! ^= 0x01;
    await w.mailBlock(mallory, tampered);
    const pass = await w.host.processPending();
    assert.deepEqual(pass, { answered: 0, notices: 0, quarantined: 1, stale: 0 });
    assert.deepEqual(await w.files(mallory.email, "new"), [], "no reply was sent");
    assert.equal((await w.files("host@host.test", ".Quarantine/cur")).length, 1);
    const q = w.events.find((e) => e.event === "quarantined");
    assert.ok(q && q.event === "quarantined" && q.code === "ESEAL", JSON.stringify(q));
    assert.deepEqual(await w.store.read(), []);
  } finally {
    await w.close();
  }
});

Deno.test("a request dated older than the expiry is deleted unanswered", async () => {
  const w = await World.create();
  try {
    const old = await w.player("old", 4000);
    await w.request(old, { date: new Date(w.clock.now() - DEFAULT_EXPIRY_MS - 60_000) });
    assert.deepEqual(await w.host.processPending(), {
      answered: 0,
      notices: 0,
      quarantined: 0,
      stale: 1,
    });
    assert.deepEqual(await w.files(old.email, "new"), []);
    assert.deepEqual(await w.files("host@host.test", "new"), []);
    assert.deepEqual(await w.files("host@host.test", ".Quarantine/cur"), []);
    assert.deepEqual(await w.store.read(), []);
  } finally {
    await w.close();
  }
});

Deno.test("the same request processed again after a crash is answered again and leaves the same row", async () => {
  const w = await World.create();
  try {
    const bob = await w.player("bob", 4000);
    const r = await w.requestBlock(bob);
    await w.mailBlock(bob, r.block);
    await w.host.processPending();
    const withoutHistory = (rows: PeerRow[]) => rows.map(({ history: _, ...row }) => row);
    const once = withoutHistory(await w.store.read());
    await w.mailBlock(bob, r.block); // as after a crash before the delete: a new host process
    const restarted = new Host({
      keys: w.hostKeys,
      network: NETWORK,
      source: w.hostSource,
      sender: w.sender,
      store: w.store,
      clock: w.clock,
      allowPrivateAddresses: true,
    });
    await restarted.processPending();
    assert.deepEqual(withoutHistory(await w.store.read()), once);
    assert.equal((await w.replies(bob, r.replyPrivateKey)).length, 2);
  } finally {
    await w.close();
  }
});

Deno.test("an ordinary mail in the host mailbox is left where it was, unread", async () => {
  const w = await World.create();
  try {
    await w.sender.send({
      from: "friend@else.test",
      to: ["host@host.test"],
      subject: "lunch?",
      text: "at noon\n",
    });
    const before = await w.files("host@host.test", "new");
    const bob = await w.player("bob", 4000);
    await w.request(bob);
    await w.host.processPending();
    assert.deepEqual(await w.files("host@host.test", "new"), before);
    assert.deepEqual(await w.files("host@host.test", "cur"), []);
  } finally {
    await w.close();
  }
});

Deno.test("a notice flags the failed peer by user id and the next reply ranks it last", async () => {
  const w = await World.create();
  try {
    const [bob, carol, alice] = await Promise.all([
      w.player("bob", 4000),
      w.player("carol", 4001),
      w.player("alice", 4002),
    ]);
    await w.request(bob);
    await w.host.processPending();
    w.clock.advance(1000);
    await w.request(carol);
    await w.host.processPending();
    w.clock.advance(1000);
    const ra = await w.request(alice);
    await w.host.processPending();
    const [first] = await w.replies(alice, ra.replyPrivateKey);
    assert.deepEqual(first?.peers.map((p) => p.userId), ["carol", "bob"]);

    await w.notice(alice, "carol", ra.sessionId);
    assert.equal((await w.host.processPending()).notices, 1);
    const rows = await w.store.read();
    assert.equal(rows.find((r) => r.userId === "carol")?.failures, 1);
    const again = selectPeers(rows, { userId: "alice", network: NETWORK }, {
      now: w.clock.now(),
      expiryMs: DEFAULT_EXPIRY_MS,
      max: 8,
    });
    assert.deepEqual(again.map((r) => r.userId), ["bob", "carol"]);
  } finally {
    await w.close();
  }
});

Deno.test("a notice from someone without a row is quarantined and flags nothing", async () => {
  const w = await World.create();
  try {
    const bob = await w.player("bob", 4000);
    const stranger = await w.player("stranger", 4001);
    await w.request(bob);
    await w.host.processPending();
    await w.notice(stranger, "bob", new Uint8Array(16));
    assert.equal((await w.host.processPending()).quarantined, 1);
    assert.equal((await w.store.read())[0]?.failures, 0);
    assert.equal(
      (await w.store.read())[0]?.identityKey,
      toBase64Url(bob.identity.ed25519.publicKey),
    );
  } finally {
    await w.close();
  }
});
