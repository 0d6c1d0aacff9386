/**
 * Notices are bounded (issue 12): a reporter can flag only peers the host listed to it
 * recently, a notice counts once, old notices are not acted on, a reporter has a notice rate,
 * and the `failed` list has a cap. Refused notices are quarantined (or deleted when merely
 * old) with a log line, and flag nobody.
 */
import assert from "node:assert/strict";
import { sealNotice } from "../../src/message/block.ts";
import { NOTICE_MAX_AGE_MS, NOTICES_PER_USER_PER_HOUR } from "../../src/limits.ts";
import { MAX_NOTICE_FAILED } from "../../src/protocol.ts";
import { NETWORK, type Player, World } from "../support/world.ts";

async function noticeBlock(
  w: World,
  p: Player,
  failed: string[],
  sessionId: Uint8Array,
  createdAt = w.clock.now(),
) {
  return await sealNotice({
    network: NETWORK,
    userId: p.identity.userId,
    identityKey: p.identity.ed25519.publicKey,
    sessionId,
    createdAt,
    failed: failed.map((userId) => ({ userId, reason: "ETIMEOUT" })),
  }, { identity: p.identity, hostCard: w.card });
}

/** bob and carol have rows; alice asks and is listed both; carol's row is made after, too. */
async function threePlayers(w: World) {
  const [bob, carol, alice, dave] = await Promise.all([
    w.player("bob", 4000),
    w.player("carol", 4001),
    w.player("alice", 4002),
    w.player("dave", 4003),
  ]);
  await w.request(bob);
  await w.host.processPending();
  w.clock.advance(1000);
  const ra = await w.request(alice);
  await w.host.processPending();
  w.clock.advance(1000);
  await w.request(carol); // carol asks after alice: alice was never given carol
  await w.host.processPending();
  w.clock.advance(1000);
  return { bob, carol, alice, dave, ra };
}

async function failuresOf(w: World, userId: string): Promise<number | undefined> {
  return (await w.store.read()).find((r) => r.userId === userId)?.failures;
}

Deno.test("a terminal can flag only peers the host listed to it", async () => {
  const w = await World.create();
  try {
    const { alice, ra } = await threePlayers(w);
    await w.mailBlock(alice, await noticeBlock(w, alice, ["carol"], ra.sessionId), {
      kind: "notice",
    });
    const pass = await w.host.processPending();
    assert.equal(pass.notices, 0);
    assert.equal(pass.quarantined, 1);
    assert.equal(await failuresOf(w, "carol"), 0, "carol was never listed to alice");
    // The peer alice was given can be flagged.
    await w.mailBlock(alice, await noticeBlock(w, alice, ["bob"], ra.sessionId), {
      kind: "notice",
    });
    assert.equal((await w.host.processPending()).notices, 1);
    assert.equal(await failuresOf(w, "bob"), 1);
  } finally {
    await w.close();
  }
});

Deno.test("the same notice mailed twice flags the peer once", async () => {
  const w = await World.create();
  try {
    const { alice, ra } = await threePlayers(w);
    const block = await noticeBlock(w, alice, ["bob"], ra.sessionId);
    await w.mailBlock(alice, block, { kind: "notice" });
    await w.host.processPending();
    for (let i = 0; i < 5; i++) {
      w.clock.advance(1000);
      await w.mailBlock(alice, block, { kind: "notice" });
      const pass = await w.host.processPending();
      assert.equal(pass.notices, 0);
      assert.equal(pass.quarantined, 1);
    }
    assert.equal(await failuresOf(w, "bob"), 1);
    const q = w.events.findLast((e) => e.event === "quarantined");
    assert.ok(q && q.event === "quarantined" && q.code === "EREPLAY", JSON.stringify(q));
  } finally {
    await w.close();
  }
});

Deno.test("a notice signed longer ago than the notice window flags nobody", async () => {
  const w = await World.create();
  try {
    const { alice, ra } = await threePlayers(w);
    const old = w.clock.now() - NOTICE_MAX_AGE_MS - 1000;
    await w.mailBlock(alice, await noticeBlock(w, alice, ["bob"], ra.sessionId, old), {
      kind: "notice",
    });
    const pass = await w.host.processPending();
    assert.equal(pass.notices, 0);
    assert.equal(await failuresOf(w, "bob"), 0);
  } finally {
    await w.close();
  }
});

Deno.test("a reporter over its notice rate flags nobody more", async () => {
  const w = await World.create();
  try {
    const { alice, ra } = await threePlayers(w);
    for (let i = 0; i < NOTICES_PER_USER_PER_HOUR + 5; i++) {
      await w.mailBlock(alice, await noticeBlock(w, alice, ["bob"], ra.sessionId), {
        kind: "notice",
      });
      w.clock.advance(1000);
    }
    const pass = await w.host.processPending();
    assert.equal(pass.notices, NOTICES_PER_USER_PER_HOUR);
    assert.equal(pass.quarantined, 5);
    assert.equal(await failuresOf(w, "bob"), NOTICES_PER_USER_PER_HOUR);
  } finally {
    await w.close();
  }
});

Deno.test("a notice with more failed peers than the cap is refused whole", async () => {
  const w = await World.create();
  try {
    const { alice, ra } = await threePlayers(w);
    const failed = Array.from({ length: MAX_NOTICE_FAILED + 1 }, () => "bob");
    await w.mailBlock(alice, await noticeBlock(w, alice, failed, ra.sessionId), {
      kind: "notice",
    });
    const pass = await w.host.processPending();
    assert.equal(pass.notices, 0);
    assert.equal(pass.quarantined, 1);
    assert.equal(await failuresOf(w, "bob"), 0);
  } finally {
    await w.close();
  }
});
