/**
 * A reply lists the peers a requester can reach on its own transport first, and only those are
 * introduced to it (docs/decisions.md "Peers on another transport"): a terminal tries no other.
 */
import assert from "node:assert/strict";
import { candidatePriority, endpointsOf } from "../../src/message/candidate.ts";
import { generateX25519 } from "../../src/message/keys.ts";
import { subjectFor } from "../../src/message/mail_text.ts";
import type { TransportKind } from "../../src/message/types.ts";
import { NETWORK, type Player, World } from "../support/world.ts";

async function on(w: World, userId: string, transport: TransportKind): Promise<Player> {
  const p = await w.player(userId, 4000);
  return { ...p, endpoints: p.endpoints.map((e) => ({ ...e, transport })) };
}

/** A player whose request carries typed candidates and an introduction key (version 2). */
async function introducible(w: World, userId: string, transport: TransportKind): Promise<Player> {
  const candidates = [{
    transport,
    address: "198.51.100.7",
    port: 4000,
    type: "srflx" as const,
    priority: candidatePriority("srflx"),
  }];
  return {
    ...await w.player(userId, 4000),
    endpoints: endpointsOf(candidates),
    candidates,
    introduction: await generateX25519(),
  };
}

async function introductionCount(w: World, p: Player): Promise<number> {
  const source = await w.sourceOf(p.email);
  return (await source.list({ subject: subjectFor(NETWORK, "introduction"), mode: "exact" }))
    .length;
}

Deno.test("a TCP requester's reply lists TCP peers before newer UDP peers, and only them when the reply is full", async () => {
  const w = await World.create({ policy: { peersPerReply: 2 } });
  try {
    // Oldest first: a TCP peer, then two newer UDP peers.
    for (const [id, t] of [["tom", "tcp"], ["uma", "udp"], ["ula", "udp"]] as const) {
      await w.request(await on(w, id, t));
      await w.host.processPending();
      w.clock.advance(1000);
    }
    const alice = await on(w, "alice", "tcp");
    const r = await w.request(alice);
    await w.host.processPending();
    const [reply] = await w.replies(alice, r.replyPrivateKey);
    assert.deepEqual(reply?.peers.map((p) => p.userId), ["tom", "ula"]);

    // A UDP requester gets the UDP peers, newest first, and no TCP peer in a full reply.
    w.clock.advance(1000);
    const bob = await on(w, "bob", "udp");
    const rb = await w.request(bob);
    await w.host.processPending();
    const [toBob] = await w.replies(bob, rb.replyPrivateKey);
    assert.deepEqual(toBob?.peers.map((p) => p.userId), ["ula", "uma"]);
  } finally {
    await w.close();
  }
});

Deno.test("a listed peer on another transport is not mailed an introduction it could not act on", async () => {
  const w = await World.create();
  try {
    const tom = await introducible(w, "tom", "tcp");
    const uma = await introducible(w, "uma", "udp");
    for (const p of [tom, uma]) {
      await w.request(p);
      await w.host.processPending();
      w.clock.advance(1000);
    }
    const alice = await introducible(w, "alice", "udp");
    const r = await w.request(alice);
    await w.host.processPending();
    const [reply] = await w.replies(alice, r.replyPrivateKey);
    assert.deepEqual(reply?.peers.map((p) => p.userId), ["uma", "tom"]);
    assert.equal(await introductionCount(w, uma), 1, "uma is told of alice");
    assert.equal(await introductionCount(w, tom), 0, "tom, on TCP, is not");
  } finally {
    await w.close();
  }
});
