/**
 * Repeats of one valid request (issue 12): re-mailed with new Message-IDs and another `From:`,
 * they count against the per-user and per-sender rates, and a repeat within a short window
 * gets no second reply.
 */
import assert from "node:assert/strict";
import { REPEAT_REPLY_WINDOW_MS } from "../../src/limits.ts";
import { type Player, World } from "../support/world.ts";

const bob2: Pick<Player, "email"> = { email: "bob2@b.test" };

Deno.test("a request re-mailed 130 times from another address gets no second reply", async () => {
  const w = await World.create();
  try {
    const bob = await w.player("bob", 4000);
    const r = await w.requestBlock(bob);
    await w.mailBlock(bob, r.block);
    assert.equal((await w.host.processPending()).answered, 1);
    const forger = { ...bob, ...bob2 };
    for (let i = 0; i < 130; i++) await w.mailBlock(forger, r.block);
    const pass = await w.host.processPending();
    assert.equal(pass.answered, 0);
    assert.equal(pass.quarantined, 130, "nothing is lost: every copy is set aside");
    assert.deepEqual(await w.files(bob2.email, "new"), [], "bob2 got no reply");
    assert.equal((await w.replies(bob, r.replyPrivateKey)).length, 1);
  } finally {
    await w.close();
  }
});

Deno.test("repeats of one request count against the user's request rate", async () => {
  const w = await World.create({ limits: { requestsPerUserPerHour: 3 } });
  try {
    const bob = await w.player("bob", 4000);
    const r = await w.requestBlock(bob);
    await w.mailBlock(bob, r.block);
    await w.host.processPending();
    const forger = { ...bob, ...bob2 };
    for (let i = 0; i < 5; i++) {
      w.clock.advance(REPEAT_REPLY_WINDOW_MS + 1000);
      await w.mailBlock(forger, r.block);
      await w.host.processPending();
    }
    assert.equal(w.events.filter((e) => e.event === "reply-sent").length, 3);
    const refused = w.events.filter((e) => e.event === "quarantined" && e.code === "ERATE");
    assert.equal(refused.length, 3);
  } finally {
    await w.close();
  }
});

Deno.test("repeats of one request count against the sender's request rate", async () => {
  const w = await World.create({ limits: { requestsPerSenderPerHour: 2 } });
  try {
    const bob = await w.player("bob", 4000);
    const r = await w.requestBlock(bob);
    await w.mailBlock(bob, r.block);
    await w.host.processPending();
    const forger = { ...bob, ...bob2 };
    for (let i = 0; i < 4; i++) {
      w.clock.advance(REPEAT_REPLY_WINDOW_MS + 1000);
      await w.mailBlock(forger, r.block);
      await w.host.processPending();
    }
    const toBob2 = w.events.filter((e) => e.event === "reply-sent" && e.to === bob2.email);
    assert.equal(toBob2.length, 2);
  } finally {
    await w.close();
  }
});
