/**
 * Host-wide limits (issue 12): a flood of requests from invented senders, each a new user id,
 * cannot evict the real rows (a per-network cap on new rows per hour) and cannot make the host
 * answer without bound (a host-wide request rate).
 */
import assert from "node:assert/strict";
import { NETWORK, World } from "../support/world.ts";

const HOUR = 3_600_000;

Deno.test("a flood of new user ids from invented senders cannot evict the real rows", async () => {
  const w = await World.create({
    policy: { capacity: 30 },
    limits: { newRowsPerHour: 10 },
  });
  try {
    const real: string[] = [];
    for (let i = 0; i < 20; i++) {
      if (i === 10) w.clock.advance(HOUR); // the real users came over two hours
      await w.request(await w.player(`real${i}`, 4000 + i));
      real.push(`real${i}`);
      assert.equal((await w.host.processPending()).answered, 1);
    }
    w.clock.advance(2 * HOUR);
    for (let i = 0; i < 100; i++) {
      const p = await w.player(`fake${i}`, 5000 + i);
      p.email = `fake${i}@invented${i}.test`;
      await w.request(p);
    }
    const pass = await w.host.processPending();
    assert.equal(pass.answered, 10);
    assert.equal(pass.quarantined, 90);
    const users = new Set((await w.store.read()).map((r) => r.userId));
    assert.deepEqual(real.filter((u) => !users.has(u)), [], "every real row is still there");
    const refused = w.events.filter((e) => e.event === "quarantined" && e.code === "ERATE");
    assert.match(
      refused[0]?.event === "quarantined" ? refused[0].reason : "",
      new RegExp(
        `network ${NETWORK} got 10 new users within 60 min \\(limit 10, host\\.new_rows_per_hour\\)`,
      ),
    );
  } finally {
    await w.close();
  }
});

Deno.test("a host-wide request rate bounds the replies to forged senders", async () => {
  const w = await World.create({ limits: { requestsPerHour: 20 } });
  try {
    for (let i = 0; i < 50; i++) {
      const p = await w.player(`fake${i}`, 5000 + i);
      p.email = `fake${i}@invented${i}.test`;
      await w.request(p);
    }
    const pass = await w.host.processPending();
    assert.equal(pass.answered, 20);
    assert.equal(pass.quarantined, 30);
    assert.equal(w.events.filter((e) => e.event === "reply-sent").length, 20);
    // An hour later the host answers again.
    w.clock.advance(HOUR + 1000);
    const late = await w.player("late", 6000);
    const r = await w.request(late);
    assert.equal((await w.host.processPending()).answered, 1);
    assert.equal((await w.replies(late, r.replyPrivateKey)).length, 1);
  } finally {
    await w.close();
  }
});
