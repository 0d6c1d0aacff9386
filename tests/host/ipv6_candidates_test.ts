/**
 * IPv6 candidates at the host (issue 14, docs/nat.md "IPv6"): a dual-stack terminal's IPv4 and
 * IPv6 candidates travel through request, table, reply and introduction unchanged; the address
 * policy refuses IPv6 addresses no peer should be sent to, whatever the network allows.
 */
import assert from "node:assert/strict";
import { dearmor } from "../../src/message/armor.ts";
import { candidatePriority, endpointsOf } from "../../src/message/candidate.ts";
import { openIntroduction } from "../../src/message/introduction.ts";
import { generateX25519 } from "../../src/message/keys.ts";
import { subjectFor } from "../../src/message/mail_text.ts";
import type { Candidate } from "../../src/message/types.ts";
import { parseMail } from "../../src/mail/rfc5322/parse.ts";
import { NETWORK, type Player, World } from "../support/world.ts";

/** What a dual-stack terminal in the NAT lab announces: its IPv6 address, its IPv4 mapping. */
function dualStack(port: number, v6 = "2001:db8:4d50:2::10"): Candidate[] {
  return [
    { transport: "udp", address: v6, port, type: "host", priority: candidatePriority("host") },
    {
      transport: "udp",
      address: "198.18.0.2",
      port: 40_000 + port % 1000,
      type: "srflx",
      priority: candidatePriority("srflx"),
      mapping: "endpoint-independent",
    },
  ];
}

async function v2Player(w: World, userId: string, candidates: Candidate[]): Promise<Player> {
  return {
    ...await w.player(userId, candidates[0]!.port),
    endpoints: endpointsOf(candidates),
    candidates,
    introduction: await generateX25519(),
  };
}

Deno.test("a dual-stack terminal's IPv6 and IPv4 candidates reach its peer in the reply and itself the peer's in the introduction", async () => {
  // The lab's prefixes are documentation and benchmarking space: a host for it allows them.
  const w = await World.create({ allowPrivateAddresses: true });
  try {
    const bob = await v2Player(w, "bob", dualStack(4000));
    const alice = await v2Player(w, "alice", dualStack(4001, "2001:db8:4d50:1::10"));
    const rb = await w.request(bob);
    await w.host.processPending();
    w.clock.advance(1000);
    const ra = await w.request(alice);
    await w.host.processPending();
    const [reply] = await w.replies(alice, ra.replyPrivateKey);
    assert.deepStrictEqual(reply?.peers[0]?.candidates, bob.candidates);
    assert.deepStrictEqual(reply?.peers[0]?.endpoints, endpointsOf(bob.candidates!));

    const source = await w.sourceOf(bob.email);
    const refs = await source.list({
      subject: subjectFor(NETWORK, "introduction"),
      mode: "exact",
    });
    assert.equal(refs.length, 1);
    const mail = await parseMail(await source.fetch(refs[0]!));
    const { introduction } = await openIntroduction(dearmor(mail.text), {
      introductionPrivateKey: bob.introduction!.privateKey,
      hosts: [w.card],
      network: NETWORK,
      sessionId: rb.sessionId,
      now: w.clock.now(),
    });
    assert.deepStrictEqual(introduction.peer.candidates, alice.candidates);
  } finally {
    await w.close();
  }
});

Deno.test("an internet host refuses the lab's IPv6 documentation prefix, as it refuses 198.18.0.0/15", async () => {
  const w = await World.create({ allowPrivateAddresses: false });
  try {
    await w.request(await v2Player(w, "bob", dualStack(4000)));
    const result = await w.host.processPending();
    assert.equal(result.quarantined, 1);
    assert.deepStrictEqual(await w.store.read(), []);
    const q = w.events.find((e) => e.event === "quarantined");
    assert.ok(q && q.event === "quarantined" && q.code === "EPOLICY", JSON.stringify(q));
  } finally {
    await w.close();
  }
});

Deno.test("a request announcing an IPv6 link-local, multicast or unspecified address is quarantined even where private addresses are allowed", async () => {
  const w = await World.create({ allowPrivateAddresses: true });
  try {
    for (const [i, address] of ["fe80::1", "ff02::1", "::", "fe80::a:b:c:d"].entries()) {
      const [good] = dualStack(4000 + i);
      const bad: Candidate = { ...good!, address, type: "host" };
      await w.request(await v2Player(w, `p${i}`, [good!, bad]));
    }
    const result = await w.host.processPending();
    assert.equal(result.quarantined, 4);
    assert.deepStrictEqual(await w.store.read(), []);
  } finally {
    await w.close();
  }
});
