/**
 * The host handles its mail in batches: every mail of a batch is checked, the batch's rows are
 * saved in one table update, the replies go out, and the batch is deleted (host.ts).
 */
import { wrapSource } from "../support/source_wrap.ts";
import assert from "node:assert/strict";
import { MailError } from "../../src/errors.ts";
import { Host } from "../../src/host/host.ts";
import type { HostOptions, HostStep } from "../../src/host/host.ts";
import { applyRequests, type CheckedRequest } from "../../src/host/host_request.ts";
import { DEFAULT_TABLE_POLICY } from "../../src/host/table.ts";
import type { PeerRow, TableStore } from "../../src/host/types.ts";
import type { MaildirSource } from "../../src/mail/maildir/source.ts";
import type { MailRef, MailSender } from "../../src/mail/types.ts";
import { MemoryStore } from "../../src/host/store/memory_store.ts";
import { HOST_REPLY_CONCURRENCY } from "../../src/host/host.ts";
import { toBase64Url } from "../../src/message/base64.ts";
import { NETWORK, type Player, World } from "../support/world.ts";

/** A store that counts its updates. */
function counting(store: TableStore): TableStore & { updates: number } {
  const counted = {
    updates: 0,
    read: () => store.read(),
    update: <T>(fn: (rows: PeerRow[]) => { rows: PeerRow[]; result: T }) => {
      counted.updates++;
      return store.update(fn);
    },
    close: () => store.close(),
  };
  return counted;
}

/** A host over the world's mailbox and table, with some of its seams or options replaced. */
function hostOn(w: World, options: Partial<HostOptions>): Host {
  return new Host({
    keys: w.hostKeys,
    network: NETWORK,
    source: w.hostSource,
    sender: w.sender,
    store: w.store,
    clock: w.clock,
    allowPrivateAddresses: true,
    ...options,
  });
}

async function players(w: World, n: number): Promise<Player[]> {
  const out: Player[] = [];
  for (let i = 0; i < n; i++) out.push(await w.player(`p${i}`, 4000 + i));
  return out;
}

Deno.test("requests that arrive together are saved in one table update and each reply lists the others", async () => {
  const store = counting(new MemoryStore());
  const w = await World.create({ store });
  try {
    const ps = await players(w, 3);
    const rs = [];
    for (const p of ps) rs.push(await w.request(p));
    assert.deepEqual(await w.host.processPending(), {
      answered: 3,
      notices: 0,
      quarantined: 0,
      stale: 0,
    });
    assert.equal(store.updates, 1, "one table update for the whole batch");
    for (const [i, p] of ps.entries()) {
      const replies = await w.replies(p, rs[i]!.replyPrivateKey);
      assert.equal(replies.length, 1, `${p.identity.userId} got one reply`);
      assert.deepEqual(
        replies[0]!.peers.map((e) => e.userId).sort(),
        ps.filter((q) => q !== p).map((q) => q.identity.userId).sort(),
        `${p.identity.userId} is told of the other two`,
      );
    }
    assert.equal((await store.read()).length, 3);
  } finally {
    await w.close();
  }
});

Deno.test("a mail server failing in the middle of a batch repeats no reply and loses no request", async () => {
  const w = await World.create();
  let sends = 0;
  let down = true;
  const flaky: MailSender = {
    send: (mail, options) => {
      if (down && ++sends === 3) {
        return Promise.reject(new MailError("EDEFER", "Cannot send: 421 try later; wait"));
      }
      return w.sender.send(mail, options);
    },
    close: () => Promise.resolve(),
  };
  const host = hostOn(w, { sender: flaky });
  try {
    const ps = await players(w, 5);
    const rs = [];
    for (const p of ps) rs.push(await w.request(p));
    await assert.rejects(host.processPending(), (err: unknown) => {
      assert.ok(err instanceof MailError && err.code === "EDEFER", String(err));
      return true;
    });
    // The requests answered before the failure (two, plus those already on their way beside
    // the failing one: up to HOST_REPLY_CONCURRENCY in all) are done and gone; the others
    // wait, the failed one among them.
    const waiting = [
      ...await w.files("host@host.test", "new"),
      ...await w.files("host@host.test", "cur"),
    ];
    assert.ok(
      waiting.length >= 3 - HOST_REPLY_CONCURRENCY + 1 && waiting.length <= 3,
      `${waiting.length} requests wait in the mailbox`,
    );
    down = false;
    assert.deepEqual(await host.processPending(), {
      answered: waiting.length,
      notices: 0,
      quarantined: 0,
      stale: 0,
    });
    for (const [i, p] of ps.entries()) {
      const replies = await w.replies(p, rs[i]!.replyPrivateKey);
      assert.equal(replies.length, 1, `${p.identity.userId} got exactly one reply`);
    }
  } finally {
    await w.close();
  }
});

Deno.test("with a batch of two, the next batch is fetched while this one's replies are out, and each mail is deleted only after its reply", async () => {
  const w = await World.create();
  // One log of the calls the host makes into its mailbox and its sender, in call order.
  const calls: string[] = [];
  const source = wrapSource(w.hostSource, {
    fetch: (ref, options) => {
      calls.push(`fetch ${ref.id}`);
      return w.hostSource.fetch(ref, options);
    },
    deleteMany: (refs) => {
      calls.push(`delete ${refs.map((r) => r.id).join(" ")}`);
      return w.hostSource.deleteMany(refs);
    },
  });
  const sender: MailSender = {
    send: (mail, options) => {
      calls.push("send");
      return w.sender.send(mail, options);
    },
    close: () => Promise.resolve(),
  };
  const steps: HostStep[] = [];
  const host = hostOn(w, { source, sender, batchSize: 2, onStep: (s) => void steps.push(s) });
  try {
    const ps = await players(w, 5);
    const rs = [];
    for (const p of ps) rs.push(await w.request(p));
    assert.equal((await host.processPending()).answered, 5);
    const log = calls.join(" | ");
    const fetches = calls.flatMap((c, i) => c.startsWith("fetch ") ? [i] : []);
    const sends = calls.flatMap((c, i) => c === "send" ? [i] : []);
    assert.equal(fetches.length, 5, log);
    assert.equal(sends.length, 5, log);
    // the second batch's first mail is fetched before the first batch's replies go out
    assert.ok(fetches[2]! < sends[0]!, log);
    // the last batch is fetched before the second batch's replies go out
    assert.ok(fetches[4]! < sends[2]!, log);
    // a batch is deleted after its replies were sent, and while the next batch's go out
    const deletes = calls.flatMap((c, i) => c.startsWith("delete ") ? [i] : []);
    assert.equal(deletes.length, 3, log);
    assert.ok(sends[1]! < deletes[0]! && deletes[0]! < sends[3]!, log);
    // each mail: fetched → table saved → reply sent → deleted (deleted only after its reply)
    const ids = [...new Set(steps.map((s) => s.id))];
    assert.equal(ids.length, 5);
    for (const id of ids) {
      assert.deepEqual(
        steps.filter((s) => s.id === id).map((s) => s.step),
        ["fetched", "table-saved", "reply-sent", "deleted"],
      );
    }
    // the table is updated batch after batch: all of one batch's rows before the next one's
    const saved = steps.filter((s) => s.step === "table-saved").map((s) => s.id);
    const fetched = steps.filter((s) => s.step === "fetched").map((s) => s.id);
    assert.deepEqual(saved, fetched);
    for (const [i, p] of ps.entries()) {
      assert.equal((await w.replies(p, rs[i]!.replyPrivateKey)).length, 1);
    }
  } finally {
    await w.close();
  }
});

/** The host's Maildir source, counting the claims the host asks for. */
function claimCounting(source: MaildirSource) {
  const calls = { claim: 0, claimMany: [] as number[] };
  const wrapped = wrapSource(source, {
    claim: (ref) => {
      calls.claim++;
      return source.claim(ref);
    },
    claimMany: (refs) => {
      calls.claimMany.push(refs.length);
      return source.claimMany(refs);
    },
  });
  return { source: wrapped, calls };
}

Deno.test(
  "on a shared mailbox each batch is claimed at once, before any of it is handled",
  async () => {
    const w = await World.create();
    const { source, calls } = claimCounting(w.hostSource);
    const host = hostOn(w, {
      source,
      sharedMailbox: true,
      batchSize: 2,
    });
    try {
      const ps = await players(w, 5);
      const rs = [];
      for (const p of ps) rs.push(await w.request(p));
      assert.equal((await host.processPending()).answered, 5);
      assert.deepEqual(calls, { claim: 0, claimMany: [2, 2, 1] });
      for (const [i, p] of ps.entries()) {
        assert.equal((await w.replies(p, rs[i]!.replyPrivateKey)).length, 1);
      }
      assert.deepEqual(await w.hostSource.list({ subject: "[mailpeer]", mode: "prefix" }), []);
    } finally {
      await w.close();
    }
  },
);

Deno.test("a mail another host process claimed first is left to it", async () => {
  const w = await World.create();
  const { source } = claimCounting(w.hostSource);
  const rival = await w.sourceOf("host@host.test");
  const claimMany = source.claimMany;
  let taken: MailRef | undefined;
  source.claimMany = async (refs) => {
    taken ??= await rival.claim(refs[0]!); // the rival wins the first mail of the first batch
    return await claimMany(refs);
  };
  const host = hostOn(w, {
    source,
    sharedMailbox: true,
  });
  try {
    const ps = await players(w, 3);
    for (const p of ps) await w.request(p);
    assert.equal((await host.processPending()).answered, 2);
    assert.ok(taken !== undefined, "the rival holds one");
    assert.ok((await rival.fetch(taken)).length > 0, "untouched, in the rival's hands");
  } finally {
    await w.close();
  }
});

Deno.test("on a shared mailbox, a batch another process took whole ends the pass, and the host lists again at once for the rest", async () => {
  const w = await World.create();
  const { source, calls } = claimCounting(w.hostSource);
  const rival = await w.sourceOf("host@host.test");
  const claimMany = source.claimMany;
  let rivalTook = 0;
  source.claimMany = async (refs) => {
    // the rival takes the whole second batch of the first pass, before this host asks
    if (calls.claimMany.length === 1) {
      for (const ref of refs) if (await rival.claim(ref)) rivalTook++;
    }
    return await claimMany(refs);
  };
  const host = hostOn(w, { source, sharedMailbox: true, batchSize: 2 });
  try {
    const ps = await players(w, 6);
    for (const p of ps) await w.request(p);
    const first = await host.processPending();
    // batch 1 answered, batch 2 lost to the rival: batch 3 is left for a fresh listing
    assert.equal(rivalTook, 2);
    assert.equal(first.answered, 2);
    assert.deepEqual(calls.claimMany, [2, 2]);
    assert.equal(host.relistNow, true, "list again now: two requests still wait");
    const second = await host.processPending();
    assert.equal(second.answered, 2);
    assert.equal(host.relistNow, false);
    assert.deepEqual(await w.hostSource.list({ subject: "[mailpeer]", mode: "prefix" }), []);
  } finally {
    await w.close();
  }
});

Deno.test("a shared-mailbox host that keeps losing every claim stops listing again after a few passes", async () => {
  const w = await World.create();
  const { source } = claimCounting(w.hostSource);
  source.claimMany = () => Promise.resolve([]); // another process always wins
  const host = hostOn(w, { source, sharedMailbox: true, batchSize: 2 });
  try {
    for (const p of await players(w, 3)) await w.request(p);
    const relists: boolean[] = [];
    for (let pass = 0; pass < 5; pass++) {
      assert.equal((await host.processPending()).answered, 0);
      relists.push(host.relistNow);
    }
    assert.deepEqual(relists, [true, true, true, false, false]);
  } finally {
    await w.close();
  }
});

/** A checked request as host_request.ts makes it, for the pure table rule. */
function checked(userId: string, session: number, now: number): CheckedRequest {
  const sessionId = new Uint8Array(16).fill(session);
  return {
    ref: { id: `${userId}-${session}`, subject: "" },
    mail: { from: `${userId}@player.test`, to: [], subject: "", text: "", headers: new Map() },
    request: {
      network: NETWORK,
      userId,
      identityKey: new Uint8Array(32).fill(1),
      endpoints: [{ transport: "tcp", address: "192.0.2.1", port: 4000 }],
      sessionId,
      createdAt: now,
      replyKey: new Uint8Array(32),
      hostCards: [],
    },
    who: userId,
    sessionId: toBase64Url(sessionId),
    requestedAt: now,
    now,
  };
}

Deno.test("in one batch, a user's rate counts the requests before it and a replayed session is refused", () => {
  const now = 1_000_000_000_000;
  const o = {
    network: NETWORK,
    policy: DEFAULT_TABLE_POLICY,
    now,
    rates: { perUser: 2, perSender: 100, windowMs: 3_600_000 },
  };
  const { rows, outcomes } = applyRequests([], [
    checked("ann", 1, now),
    checked("ann", 2, now + 1),
    checked("ann", 1, now + 2), // session 1 again, after session 2: a replay
    checked("ann", 3, now + 3), // a third new session in the window: over the rate
    checked("ben", 1, now + 4),
  ], o);
  const codes = outcomes.map((x) => "refused" in x ? x.refused.code : "ok");
  assert.deepEqual(codes, ["ok", "ok", "EREPLAY", "ERATE", "ok"]);
  assert.deepEqual(rows.map((r) => r.userId).sort(), ["ann", "ben"]);
  const ann = rows.find((r) => r.userId === "ann")!;
  assert.equal(ann.sessionId, toBase64Url(new Uint8Array(16).fill(2)));
  // Both answered requests of ann name ben, whose request came later in the batch.
  const first = outcomes[0]!;
  assert.ok("peers" in first);
  assert.deepEqual(first.peers.map((r) => r.userId), ["ben"]);
});
