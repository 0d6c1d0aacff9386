/**
 * A reply lists the peers a requester can reach on its own transport first (docs/decisions.md
 * "Peers on another transport"): a terminal tries no other.
 */
import assert from "node:assert/strict";
import type { TransportKind } from "../../src/message/types.ts";
import { type Player, World } from "../support/world.ts";

async function on(w: World, userId: string, transport: TransportKind): Promise<Player> {
  const p = await w.player(userId, 4000);
  return { ...p, endpoints: p.endpoints.map((e) => ({ ...e, transport })) };
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
