/**
 * Relayed candidates at the host (issue 14): stored with the row and listed like the others, in
 * replies, introductions and synced rows; judged by the same address policy.
 */
import assert from "node:assert/strict";
import { mergeSyncRows } from "../../src/host/pool/sync_merge.ts";
import { DEFAULT_TABLE_POLICY, validateRows } from "../../src/host/table.ts";
import { dearmor } from "../../src/message/armor.ts";
import { parseMail } from "../../src/mail/rfc5322/parse.ts";
import { signedBlockData } from "../../src/message/block.ts";
import { candidatePriority, endpointsOf } from "../../src/message/candidate.ts";
import { encodeRequest } from "../../src/message/codec.ts";
import { openIntroduction } from "../../src/message/introduction.ts";
import { generateIdentityKeys } from "../../src/message/key_file.ts";
import { generateX25519, sign } from "../../src/message/keys.ts";
import { subjectFor } from "../../src/message/mail_text.ts";
import { syncRowProblem } from "../../src/host/pool/request_proof.ts";
import type { SyncRow } from "../../src/host/pool/sync_payload.ts";
import type { Candidate } from "../../src/message/types.ts";
import { NETWORK, type Player, World } from "../support/world.ts";

/** A STUN mapping and a relayed address, both global unless told otherwise. */
function candidates(port: number, relayAddress = "93.184.216.35"): Candidate[] {
  return [
    {
      transport: "udp",
      address: "93.184.216.34",
      port,
      type: "srflx",
      priority: candidatePriority("srflx"),
    },
    {
      transport: "udp",
      address: relayAddress,
      port: 51_000 + port % 1000,
      type: "relay",
      priority: candidatePriority("relay"),
    },
  ];
}

async function relayPlayer(
  w: World,
  userId: string,
  port: number,
  relayAddress?: string,
): Promise<Player> {
  const list = candidates(port, relayAddress);
  return {
    ...await w.player(userId, port),
    endpoints: endpointsOf(list),
    candidates: list,
    introduction: await generateX25519(),
  };
}

Deno.test("the host stores a relay candidate with the row and lists it in replies and introductions", async () => {
  const w = await World.create();
  try {
    const bob = await relayPlayer(w, "bob", 4000);
    const alice = await relayPlayer(w, "alice", 4001);
    const rb = await w.request(bob);
    await w.host.processPending();
    const [row] = await w.store.read();
    assert.deepStrictEqual(row?.candidates, bob.candidates);
    assert.deepStrictEqual(row?.endpoints, endpointsOf(bob.candidates!), "no relayed endpoint");
    assert.deepStrictEqual(validateRows(await w.store.read())[0]?.candidates, bob.candidates);

    w.clock.advance(1000);
    const ra = await w.request(alice);
    await w.host.processPending();
    const [reply] = await w.replies(alice, ra.replyPrivateKey);
    assert.deepStrictEqual(reply?.peers[0]?.candidates, bob.candidates);

    const source = await w.sourceOf(bob.email);
    const [ref] = await source.list({
      subject: subjectFor(NETWORK, "introduction"),
      mode: "exact",
    });
    const mail = await parseMail(await source.fetch(ref!));
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

Deno.test("a relay candidate on a loopback or private address is quarantined unless the host allows private addresses", async () => {
  for (const relayAddress of ["127.0.0.1", "10.0.0.5", "192.0.2.1"]) {
    const strict = await World.create({ allowPrivateAddresses: false });
    try {
      await strict.request(await relayPlayer(strict, "bob", 4000, relayAddress));
      const result = await strict.host.processPending();
      assert.equal(result.quarantined, 1, relayAddress);
      assert.deepStrictEqual(await strict.store.read(), []);
    } finally {
      await strict.close();
    }
  }
  const global = await World.create({ allowPrivateAddresses: false });
  const lan = await World.create({ allowPrivateAddresses: true });
  try {
    await global.request(await relayPlayer(global, "bob", 4000));
    await lan.request(await relayPlayer(lan, "bob", 4000, "127.0.0.1"));
    assert.equal((await global.host.processPending()).quarantined, 0);
    assert.equal((await lan.host.processPending()).quarantined, 0);
    assert.equal((await global.store.read())[0]?.candidates?.[1]?.type, "relay");
    assert.equal((await lan.store.read())[0]?.candidates?.[1]?.address, "127.0.0.1");
  } finally {
    await global.close();
    await lan.close();
  }
});

/** A sync row of bob carrying his signed request with `list`. */
async function syncedRow(list: Candidate[], now: number): Promise<SyncRow> {
  const identity = await generateIdentityKeys("bob");
  const sessionId = crypto.getRandomValues(new Uint8Array(16));
  const body = encodeRequest({
    network: "n",
    userId: "bob",
    identityKey: identity.ed25519.publicKey,
    endpoints: endpointsOf(list),
    candidates: list,
    sessionId,
    createdAt: now,
    replyKey: (await generateX25519()).publicKey,
    hostCards: [],
  });
  const recipient = (await generateX25519()).publicKey;
  const signature = await sign(
    identity.ed25519.privateKey,
    signedBlockData("request", recipient, body),
  );
  return {
    userId: "bob",
    network: "n",
    identityKey: identity.ed25519.publicKey,
    endpoints: endpointsOf(list),
    sessionId,
    requestedAt: now,
    failures: 0,
    proof: { body, signature, recipient },
  };
}

Deno.test("a synced row keeps its signed relay candidate, and one on a loopback address is not merged", async () => {
  const now = Date.UTC(2026, 11, 4, 12);
  const options = { now, network: "n", policy: DEFAULT_TABLE_POLICY };
  const good = await syncedRow(candidates(4000), now);
  assert.equal(await syncRowProblem(good), undefined);
  const merged = mergeSyncRows([], [good], options).rows;
  assert.deepStrictEqual(merged[0]?.candidates, candidates(4000));

  // The endpoints (the direct candidates) are global; only the relayed address is loopback.
  const loopback = await syncedRow(candidates(4000, "127.0.0.1"), now);
  assert.equal(await syncRowProblem(loopback), undefined);
  assert.deepStrictEqual(mergeSyncRows([], [loopback], options).rows, []);
  const lan = mergeSyncRows([], [loopback], { ...options, allowPrivateAddresses: true }).rows;
  assert.equal(lan[0]?.candidates?.[1]?.address, "127.0.0.1");
});
