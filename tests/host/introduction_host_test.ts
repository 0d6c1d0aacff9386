/**
 * Host introductions (issue 13): a listed terminal that asked for them is mailed a sealed,
 * host-signed introduction of its requester, to the address only the host knows; bounded per
 * target and per host, never to the requester itself.
 */
import assert from "node:assert/strict";
import { planIntroductions } from "../../src/host/introductions.ts";
import type { PeerRow } from "../../src/host/types.ts";
import { INTRODUCTIONS_PER_TARGET_PER_HOUR, RATE_WINDOW_MS } from "../../src/limits.ts";
import { dearmor } from "../../src/message/armor.ts";
import { candidatePriority, endpointsOf } from "../../src/message/candidate.ts";
import { openIntroduction } from "../../src/message/introduction.ts";
import { generateX25519 } from "../../src/message/keys.ts";
import { subjectFor } from "../../src/message/mail_text.ts";
import type { Candidate } from "../../src/message/types.ts";
import { parseMail } from "../../src/mail/rfc5322/parse.ts";
import { NETWORK, type Player, World } from "../support/world.ts";

function candidatesAt(port: number): Candidate[] {
  return [{
    transport: "udp",
    address: "198.51.100.7",
    port,
    type: "srflx",
    priority: candidatePriority("srflx"),
  }];
}

async function v2Player(w: World, userId: string, port: number): Promise<Player> {
  const candidates = candidatesAt(port);
  return {
    ...await w.player(userId, port),
    endpoints: endpointsOf(candidates),
    candidates,
    introduction: await generateX25519(),
  };
}

async function introductionsOf(w: World, p: Player) {
  const source = await w.sourceOf(p.email);
  const match = { subject: subjectFor(NETWORK, "introduction"), mode: "exact" as const };
  const refs = await source.list(match);
  return await Promise.all(refs.map(async (ref) => {
    const mail = await parseMail(await source.fetch(ref));
    return { mail, block: dearmor(mail.text) };
  }));
}

Deno.test("when the host lists bob to alice, bob is mailed a sealed introduction of alice", async () => {
  const w = await World.create();
  try {
    const bob = await v2Player(w, "bob", 4000);
    const alice = await v2Player(w, "alice", 4001);
    const rb = await w.request(bob);
    await w.host.processPending();
    w.clock.advance(1000);
    const ra = await w.request(alice);
    await w.host.processPending();
    const [reply] = await w.replies(alice, ra.replyPrivateKey);
    assert.equal(reply?.peers[0]?.userId, "bob");

    const mails = await introductionsOf(w, bob);
    assert.equal(mails.length, 1);
    assert.equal(mails[0]!.mail.from, "host@host.test");
    const { introduction } = await openIntroduction(mails[0]!.block, {
      introductionPrivateKey: bob.introduction!.privateKey,
      hosts: [w.card],
      network: NETWORK,
      sessionId: rb.sessionId,
      now: w.clock.now(),
    });
    assert.equal(introduction.peer.userId, "alice");
    assert.deepStrictEqual(introduction.peer.identityKey, alice.identity.ed25519.publicKey);
    assert.deepStrictEqual(introduction.peer.candidates, alice.candidates);
    assert.deepStrictEqual(introduction.peerSessionId, ra.sessionId);
    assert.ok(introduction.punchStart >= w.clock.now());
    // alice asked first-hand: nobody was listed to bob's first request, so alice got nothing.
    assert.deepStrictEqual(await introductionsOf(w, alice), []);
    assert.ok(w.events.some((e) => e.event === "introduction-sent" && e.userId === "bob"));
  } finally {
    await w.close();
  }
});

Deno.test("a listed terminal that announced no introduction key (version 1) is mailed none", async () => {
  const w = await World.create();
  try {
    const bob = await w.player("bob", 4000);
    const alice = await v2Player(w, "alice", 4001);
    await w.request(bob);
    await w.host.processPending();
    w.clock.advance(1000);
    await w.request(alice);
    await w.host.processPending();
    assert.deepStrictEqual(await introductionsOf(w, bob), []);
  } finally {
    await w.close();
  }
});

Deno.test("one target gets at most the hourly number of introductions however many ask", async () => {
  const w = await World.create();
  try {
    const bob = await v2Player(w, "bob", 4000);
    await w.request(bob);
    await w.host.processPending();
    for (let i = 0; i < INTRODUCTIONS_PER_TARGET_PER_HOUR + 3; i++) {
      w.clock.advance(1000);
      await w.request(await v2Player(w, `asker${i}`, 5000 + i));
      await w.host.processPending();
    }
    assert.equal((await introductionsOf(w, bob)).length, INTRODUCTIONS_PER_TARGET_PER_HOUR);
    const row = (await w.store.read()).find((r) => r.userId === "bob");
    assert.equal(row?.introduced?.length, INTRODUCTIONS_PER_TARGET_PER_HOUR);
  } finally {
    await w.close();
  }
});

function row(userId: string, extra: Partial<PeerRow> = {}): PeerRow {
  return {
    userId,
    network: "n",
    identityKey: "k",
    endpoints: [],
    email: `${userId}@x.test`,
    sessionId: "s",
    requestedAt: 1,
    failures: 0,
    introductionKey: "key",
    ...extra,
  };
}

Deno.test("introductions go never to the requester, nor to rows without a key or address, and stop at the host's limit", () => {
  const rows = [
    row("alice"),
    row("bob"),
    row("nokey", { introductionKey: undefined }),
    row("synced", { email: "" }),
  ];
  const limits = { perTarget: 2, perHour: 3, windowMs: RATE_WINDOW_MS, now: 10_000_000 };
  const ask = (peers: string[]) => [{ requestIndex: 0, requester: "alice", network: "n", peers }];
  const own = planIntroductions(rows, ask(["alice", "nokey", "synced"]), limits);
  assert.deepStrictEqual(own.plans, []);
  const first = planIntroductions(rows, ask(["bob", "bob", "bob"]), limits);
  assert.deepStrictEqual(first.plans.map((p) => p.target.userId), ["bob", "bob"]);
  // The host-wide limit counts what the rows recorded within the hour, whoever the target.
  const full = planIntroductions(
    [...first.rows, row("carol", { introduced: [limits.now - 1] })],
    [{ requestIndex: 0, requester: "dave", network: "n", peers: ["alice", "carol"] }],
    limits,
  );
  assert.deepStrictEqual(full.plans, []);
  // An hour later the counts are free again.
  const later = planIntroductions(first.rows, ask(["bob"]), {
    ...limits,
    now: limits.now + RATE_WINDOW_MS + 1,
  });
  assert.equal(later.plans.length, 1);
});
