import { wrapSource } from "../support/source_wrap.ts";
import assert from "node:assert/strict";
import { join } from "node:path";
import { JsonFileHostDirectory, MemoryHostDirectory } from "../../src/host/pool/host_directory.ts";
import { MemoryStore } from "../../src/host/store/memory_store.ts";
import { SyncAgent, type SyncAgentOptions } from "../../src/host/pool/sync_agent.ts";
import { mergeSyncRows } from "../../src/host/pool/sync_merge.ts";
import type { PeerRow, TableStore } from "../../src/host/types.ts";
import { parseMail } from "../../src/mail/rfc5322/parse.ts";
import { toBase64Url } from "../../src/message/base64.ts";
import { sealSignedBlock, signedBlockData } from "../../src/message/block.ts";
import { encodeRequest } from "../../src/message/codec.ts";
import { formatHostCard } from "../../src/message/host_card.ts";
import {
  generateHostKeys,
  generateIdentityKeys,
  hostCardOf,
  type HostKeys,
  type IdentityKeys,
} from "../../src/message/key_file.ts";
import { sign } from "../../src/message/keys.ts";
import { bodyFor, subjectFor } from "../../src/message/mail_text.ts";
import { encodeSyncPayload, type SyncRow } from "../../src/host/pool/sync_payload.ts";
import { dearmorSync, openSync } from "../../src/host/pool/sync_seal.ts";
import { NETWORK, World } from "../support/world.ts";

const HOUR = 3_600_000;

/** A second (or third) host of the pool in the world's post office, with its own table. */
interface PoolHost {
  keys: HostKeys;
  store: TableStore;
  directory: MemoryHostDirectory;
  agent: SyncAgent;
}

async function poolHost(
  w: World,
  email: string,
  options: Partial<SyncAgentOptions> & { keys?: HostKeys } = {},
): Promise<PoolHost> {
  const keys = options.keys ?? await generateHostKeys(email);
  const store = options.store ?? new MemoryStore();
  const directory = new MemoryHostDirectory({ self: hostCardOf(keys) });
  const agent = new SyncAgent({
    keys,
    network: NETWORK,
    source: await w.sourceOf(keys.email),
    sender: w.sender,
    store,
    directory,
    clock: w.clock,
    allowPrivateAddresses: true,
    onEvent: (e) => w.events.push(e),
    ...options,
  });
  return { keys, store, directory, agent };
}

/** The world's own host (A) as a pool host: its keys and table. */
function hostA(w: World, options: Partial<SyncAgentOptions> = {}): Promise<PoolHost> {
  return poolHost(w, w.hostKeys.email, { keys: w.hostKeys, store: w.store, ...options });
}

/** Five players mail requests to A, which answers them: A's table has five rows. */
async function fivePlayers(w: World): Promise<void> {
  for (let i = 0; i < 5; i++) await w.request(await w.player(`player-${i}`, 7000 + i));
  const pass = await w.host.processPending();
  assert.equal(pass.answered, 5);
}

const identities = new Map<string, IdentityKeys>();

/**
 * A row as a host makes it from a terminal's request, signed by that terminal (one identity
 * key per user id, so both hosts' rows of a user are the same user's).
 */
async function pairRow(
  userId: string,
  requestedAt: number,
  extra: Partial<PeerRow> = {},
): Promise<PeerRow> {
  let identity = identities.get(userId);
  if (identity === undefined) identities.set(userId, identity = await generateIdentityKeys(userId));
  const sessionId = crypto.getRandomValues(new Uint8Array(16));
  const endpoints: PeerRow["endpoints"] = [{
    transport: "tcp",
    address: "198.51.100.7",
    port: 7000,
  }];
  const body = encodeRequest({
    network: NETWORK,
    userId,
    identityKey: identity.ed25519.publicKey,
    endpoints,
    sessionId,
    createdAt: requestedAt,
    replyKey: new Uint8Array(32),
    hostCards: [],
  });
  const recipient = new Uint8Array(32).fill(7);
  const signature = await sign(
    identity.ed25519.privateKey,
    signedBlockData("request", recipient, body),
  );
  return {
    userId,
    network: NETWORK,
    identityKey: toBase64Url(identity.ed25519.publicKey),
    endpoints,
    email: "",
    sessionId: toBase64Url(sessionId),
    requestedAt,
    failures: 0,
    proof: {
      body: toBase64Url(body),
      signature: toBase64Url(signature),
      recipient: toBase64Url(recipient),
    },
    ...extra,
  };
}

Deno.test("a host started after another has the other's rows after bootstrap", async () => {
  const w = await World.create();
  try {
    await fivePlayers(w);
    const a = await hostA(w);
    const b = await poolHost(w, "b@host.test");
    await b.directory.add([w.card], { trusted: true }); // B is configured with A's card
    await a.agent.learn([formatHostCard(hostCardOf(b.keys))]); // A saw B in a request's cards

    assert.deepEqual(await b.agent.requestTables(), { sent: 1, failed: 0 });
    const answered = await a.agent.processPending();
    assert.equal(answered.answered, 1);
    const merged = await b.agent.processPending();
    assert.deepEqual(merged, { answered: 0, merged: 1, rows: 5, quarantined: 0, stale: 0 });

    const rows = await b.store.read();
    assert.deepEqual(rows.map((r) => r.userId).sort(), [0, 1, 2, 3, 4].map((i) => `player-${i}`));
    assert.ok(rows.every((r) => r.email === ""), "B must not learn the players' addresses");
    const fromA = new Map((await w.store.read()).map((r) => [r.userId, r]));
    for (const r of rows) {
      assert.deepEqual(r.endpoints, fromA.get(r.userId)!.endpoints);
      assert.equal(r.identityKey, fromA.get(r.userId)!.identityKey);
    }
    // Answering a learned host does not make it trusted: A does not push to B yet.
    assert.deepEqual(await a.directory.list({ trustedOnly: true }), []);
    assert.equal((await w.files("host@host.test", "new")).length, 0);
  } finally {
    await w.close();
  }
});

Deno.test("a sync pass can take the host's listing instead of listing the mailbox again", async () => {
  const w = await World.create();
  try {
    await fivePlayers(w);
    const inner = w.hostSource;
    let lists = 0;
    const source = wrapSource(inner, {
      list: (match, options) => (lists++, inner.list(match, options)),
    });
    const a = await hostA(w, { source });
    const b = await poolHost(w, "b@host.test");
    await b.directory.add([w.card], { trusted: true });
    await a.agent.learn([formatHostCard(hostCardOf(b.keys))]);
    await b.agent.requestTables();
    await w.request(await w.player("player-5", 7005)); // a request waits beside the sync mail

    const listing = await inner.list({ subject: `[mailpeer] ${NETWORK} `, mode: "prefix" });
    assert.equal(listing.length, 2);
    const pass = await a.agent.processPending({ listing });
    assert.deepEqual(pass, { answered: 1, merged: 0, rows: 0, quarantined: 0, stale: 0 });
    assert.equal(lists, 0, "the sync pass must not list the mailbox again");
    assert.equal((await b.agent.processPending()).rows, 5);
    assert.equal((await w.host.processPending()).answered, 1, "the request is left to the host");
  } finally {
    await w.close();
  }
});

Deno.test("a table request from an unknown host is answered only in an open pool", async () => {
  const w = await World.create();
  try {
    await fivePlayers(w);
    const closed = await hostA(w);
    const b = await poolHost(w, "b@host.test");
    await b.directory.add([w.card], { trusted: true });
    await b.agent.requestTables();
    assert.equal((await closed.agent.processPending()).quarantined, 1);

    const open = await hostA(w, { acceptUnknownHosts: true });
    await b.agent.requestTables();
    assert.equal((await open.agent.processPending()).answered, 1);
    assert.equal((await open.directory.list({ trustedOnly: true })).length, 1);
    assert.equal((await b.agent.processPending()).rows, 5);
  } finally {
    await w.close();
  }
});

Deno.test("periodic push keeps a peer host current", async () => {
  const w = await World.create();
  try {
    const a = await hostA(w);
    const b = await poolHost(w, "b@host.test");
    await a.directory.add([hostCardOf(b.keys)], { trusted: true });
    await b.directory.add([w.card], { trusted: true });

    const carol = await w.player("carol", 7100);
    await w.request(carol);
    await w.host.processPending();
    assert.deepEqual(await a.agent.pushSnapshots(), { sent: 1, failed: 0 });
    assert.equal((await b.agent.processPending()).rows, 1);
    assert.equal((await b.store.read())[0]!.endpoints[0]!.port, 7100);

    // An hour later carol is at another port, and a notice flags dave's row on A.
    w.clock.advance(HOUR);
    const dave = await w.player("dave", 7200);
    await w.request(dave);
    carol.endpoints = [{ transport: "tcp", address: "192.0.2.11", port: 7101 }];
    const carolRequest = await w.request(carol);
    await w.host.processPending();
    // carol's reply listed dave; her notice names the session of that reply.
    await w.notice(carol, "dave", carolRequest.sessionId);
    await w.host.processPending();
    await a.agent.pushSnapshots();
    assert.equal((await b.agent.processPending()).rows, 2);
    const onB = new Map((await b.store.read()).map((r) => [r.userId, r]));
    assert.equal(onB.get("carol")!.endpoints[0]!.port, 7101);
    assert.equal(onB.get("dave")!.failures, 1, "failure flags travel with the rows");

    // Pushing back changes nothing on A: it has every row already.
    await b.agent.pushSnapshots();
    assert.deepEqual(await a.agent.processPending(), {
      answered: 0,
      merged: 1,
      rows: 0,
      quarantined: 0,
      stale: 0,
    });
    assert.equal(
      (await w.store.read()).find((r) => r.userId === "carol")!.email,
      "carol@player.test",
    );
  } finally {
    await w.close();
  }
});

Deno.test("a newer row wins a merge, an older one does not", async () => {
  const w = await World.create();
  try {
    const now = w.clock.now();
    const aStore = new MemoryStore([
      await pairRow("older", now - 2 * HOUR, { email: "older@player.test" }),
      await pairRow("newer", now - HOUR, { email: "newer@player.test" }),
    ]);
    const bStore = new MemoryStore([
      await pairRow("older", now - HOUR, { email: "older@b.test" }),
      await pairRow("newer", now - 2 * HOUR, { email: "newer@b.test" }),
    ]);
    const a = await poolHost(w, "a2@host.test", { store: aStore });
    const b = await poolHost(w, "b@host.test", { store: bStore });
    await a.directory.add([hostCardOf(b.keys)], { trusted: true });
    await b.directory.add([hostCardOf(a.keys)], { trusted: true });
    const before = new Map((await bStore.read()).map((r) => [r.userId, r]));

    await a.agent.pushSnapshots();
    assert.equal((await b.agent.processPending()).rows, 1);
    const after = new Map((await bStore.read()).map((r) => [r.userId, r]));
    assert.deepEqual(after.get("older"), before.get("older"), "B's newer row stays");
    assert.equal(after.get("newer")!.requestedAt, now - HOUR, "A's newer row wins");
    assert.equal(after.get("newer")!.email, "newer@b.test", "B keeps its own e-mail address");
  } finally {
    await w.close();
  }
});

Deno.test("a snapshot from an unknown host is quarantined", async () => {
  const w = await World.create();
  try {
    const b = await poolHost(w, "b@host.test");
    const stranger = await poolHost(w, "stranger@evil.test", {
      store: new MemoryStore([await pairRow("ghost", w.clock.now())]),
    });
    await stranger.directory.add([hostCardOf(b.keys)], { trusted: true });
    await stranger.agent.pushSnapshots();
    const pass = await b.agent.processPending();
    assert.equal(pass.quarantined, 1);
    assert.deepEqual(await b.store.read(), []);
    assert.equal((await w.files("b@host.test", ".Quarantine/cur")).length, 1);
    const event = w.events.find((e) => e.event === "quarantined");
    assert.ok(event?.event === "quarantined" && event.code === "ESIGNATURE", JSON.stringify(event));
    assert.deepEqual(await b.directory.list(), [], "nothing learned from a stranger");
  } finally {
    await w.close();
  }
});

Deno.test("a forged snapshot (signed by another key) is refused", async () => {
  const w = await World.create();
  try {
    const b = await poolHost(w, "b@host.test");
    await b.directory.add([w.card], { trusted: true });
    const mallory = await generateHostKeys("mallory@evil.test");
    // Mallory names A as the sender but can only sign with her own key.
    const body = encodeSyncPayload({
      network: NETWORK,
      hostId: w.hostKeys.ed25519.publicKey,
      createdAt: w.clock.now(),
      kind: "snapshot",
      rows: [{
        userId: "alice",
        network: NETWORK,
        identityKey: mallory.ed25519.publicKey,
        endpoints: [{ transport: "tcp", address: "203.0.113.66", port: 6666 }],
        sessionId: new Uint8Array(16),
        requestedAt: w.clock.now(),
        failures: 0,
      }],
      cards: [formatHostCard(w.card)],
    });
    const block = await sealSignedBlock("sync", body, {
      signer: mallory.ed25519.privateKey,
      recipient: b.keys.x25519.publicKey,
      maxBytes: 1 << 20,
    });
    await w.sender.send({
      from: w.hostKeys.email,
      to: [b.keys.email],
      subject: subjectFor(NETWORK, "sync"),
      text: bodyFor(NETWORK, "sync", block),
    });
    const pass = await b.agent.processPending();
    assert.equal(pass.quarantined, 1);
    assert.equal(pass.merged, 0);
    assert.deepEqual(await b.store.read(), []);
    const event = w.events.find((e) => e.event === "quarantined");
    assert.ok(event?.event === "quarantined" && event.code === "ESIGNATURE");
  } finally {
    await w.close();
  }
});

Deno.test("a snapshot never contains e-mail addresses", async () => {
  const w = await World.create();
  try {
    await fivePlayers(w);
    const a = await hostA(w);
    const b = await poolHost(w, "b@host.test");
    await a.directory.add([hostCardOf(b.keys)], { trusted: true });
    await a.agent.pushSnapshots();

    const source = await w.sourceOf(b.keys.email);
    const refs = await source.list({ subject: subjectFor(NETWORK, "sync"), mode: "exact" });
    assert.equal(refs.length, 1);
    const mail = await parseMail(await source.fetch(refs[0]!), { maxBytes: 4 << 20 });
    const payload = await openSync(dearmorSync(mail.text), { hostKeys: b.keys });
    assert.ok(payload.kind === "snapshot");
    assert.equal(payload.rows.length, 5);
    assert.ok(payload.rows.every((r) => !("email" in r) && !("history" in r)));
    const text = JSON.stringify(payload, (_k, v) => v instanceof Uint8Array ? toBase64Url(v) : v);
    assert.ok(!text.includes("player.test"), text);
    // Host cards (host addresses) are the only addresses in it, and A's own is one of them.
    assert.ok(payload.cards.includes(formatHostCard(w.card)));
  } finally {
    await w.close();
  }
});

Deno.test("merging skips expired, future, foreign-network and refused-address rows", () => {
  const now = Date.UTC(2026, 0, 1);
  const policy = { capacity: 3, expiryMs: 12 * HOUR };
  const sync = (userId: string, at: number, extra: Partial<SyncRow> = {}): SyncRow => ({
    userId,
    network: NETWORK,
    identityKey: new Uint8Array(32),
    endpoints: [{ transport: "tcp", address: "93.184.216.34", port: 1 }],
    sessionId: new Uint8Array(16).fill(userId.length),
    requestedAt: at,
    failures: 0,
    ...extra,
  });
  const result = mergeSyncRows([], [
    sync("ok", now - HOUR),
    sync("expired", now - 13 * HOUR),
    sync("future", now + 2 * HOUR),
    sync("other-net", now, { network: "elsewhere" }),
    sync("lan", now, { endpoints: [{ transport: "udp", address: "10.0.0.1", port: 9 }] }),
  ], { now, network: NETWORK, policy });
  assert.deepEqual(result.rows.map((r) => r.userId), ["ok"]);
  assert.equal(result.rows[0]!.email, "");

  // Same request on both sides: the larger failure count is kept.
  const same = mergeSyncRows(result.rows, [
    sync("ok", now - HOUR, { failures: 2, lastFailureAt: now - 60_000 }),
  ], { now, network: NETWORK, policy });
  assert.equal(same.changed, 1);
  assert.equal(same.rows[0]!.failures, 2);

  // Over capacity the oldest rows go.
  const full = mergeSyncRows(same.rows, [
    sync("b", now - 3 * HOUR),
    sync("c", now - 2 * HOUR),
    sync("dd", now - 30 * 60_000),
  ], { now, network: NETWORK, policy });
  assert.deepEqual(full.rows.map((r) => r.userId).sort(), ["c", "dd", "ok"]);
});

Deno.test("the host directory keeps its pool in a file and never adds itself", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mailpeer-hosts-" });
  try {
    const [self, one, two] = await Promise.all(
      ["self@h.test", "one@h.test", "two@h.test"].map((e) => generateHostKeys(e)),
    );
    const path = join(dir, "sub", "hosts.json");
    const d = new JsonFileHostDirectory(path, { self: hostCardOf(self!) });
    assert.equal(await d.add([hostCardOf(self!), hostCardOf(one!)]), 1);
    assert.equal(await d.add([hostCardOf(one!), hostCardOf(two!)], { trusted: true }), 1);
    // A learned card cannot redirect a known host's mail; a trusted one refreshes it.
    const moved = { ...hostCardOf(two!), email: "elsewhere@evil.test" };
    assert.equal(await d.add([moved]), 0);
    const again = new JsonFileHostDirectory(path, { self: hostCardOf(self!) });
    assert.deepEqual(
      (await again.list()).map((c) => c.email),
      ["one@h.test", "two@h.test"],
    );
    assert.deepEqual(
      (await again.list({ trustedOnly: true })).map((c) => c.email),
      ["one@h.test", "two@h.test"],
    );
    const small = new MemoryHostDirectory({ self: hostCardOf(self!), maxHosts: 1 });
    assert.equal(await small.add([hostCardOf(one!)]), 1);
    assert.equal(await small.add([hostCardOf(two!)]), 0, "full: learned cards are dropped");
    assert.equal(await small.add([hostCardOf(two!)], { trusted: true }), 1);
    assert.deepEqual((await small.list()).map((c) => c.email), ["two@h.test"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
