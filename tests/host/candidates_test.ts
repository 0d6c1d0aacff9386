/**
 * The host keeps a requester's signed candidates in its row and lists them to the next
 * requester (issue 13); the address policy judges every candidate.
 */
import assert from "node:assert/strict";
import { candidatePriority, endpointsOf } from "../../src/message/candidate.ts";
import { validateRows } from "../../src/host/table.ts";
import { JsonFileStore } from "../../src/host/store/json_file_store.ts";
import type { Candidate } from "../../src/message/types.ts";
import { World } from "../support/world.ts";

const BOB_CANDIDATES: Candidate[] = [
  {
    transport: "udp",
    address: "192.0.2.10",
    port: 4000,
    type: "host",
    priority: candidatePriority("host"),
  },
  {
    transport: "udp",
    address: "198.51.100.7",
    port: 61_000,
    type: "srflx",
    priority: candidatePriority("srflx"),
    mapping: "endpoint-independent",
  },
];

Deno.test("the host stores a requester's candidates and lists them, typed, to the next requester", async () => {
  const w = await World.create();
  try {
    const bob = {
      ...await w.player("bob", 4000),
      endpoints: endpointsOf(BOB_CANDIDATES),
      candidates: BOB_CANDIDATES,
    };
    const alice = await w.player("alice", 4001);
    await w.request(bob);
    await w.host.processPending();
    const [row] = await w.store.read();
    assert.deepStrictEqual(row?.candidates, BOB_CANDIDATES);
    // The stored row survives the store's own validation (a JSON file or Redis read back).
    assert.deepStrictEqual(validateRows(await w.store.read())[0]?.candidates, BOB_CANDIDATES);

    w.clock.advance(1000);
    const ra = await w.request(alice);
    await w.host.processPending();
    const [reply] = await w.replies(alice, ra.replyPrivateKey);
    assert.deepStrictEqual(reply?.peers[0]?.candidates, BOB_CANDIDATES);
    assert.deepStrictEqual(reply?.peers[0]?.endpoints, endpointsOf(BOB_CANDIDATES));
    // alice asked in the version 1 format: bob gets her endpoints, no candidates.
    w.clock.advance(1000);
    const rb = await w.request(bob);
    await w.host.processPending();
    const [toBob] = await w.replies(bob, rb.replyPrivateKey);
    assert.equal(toBob?.peers[0]?.userId, "alice");
    assert.equal(toBob?.peers[0]?.candidates, undefined);
  } finally {
    await w.close();
  }
});

Deno.test("a request whose STUN candidate is a multicast address is quarantined, never listed", async () => {
  const w = await World.create();
  try {
    const bad: Candidate[] = [BOB_CANDIDATES[0]!, { ...BOB_CANDIDATES[1]!, address: "239.1.2.3" }];
    const bob = { ...await w.player("bob", 4000), endpoints: endpointsOf(bad), candidates: bad };
    await w.request(bob);
    const result = await w.host.processPending();
    assert.equal(result.quarantined, 1);
    assert.deepStrictEqual(await w.store.read(), []);
  } finally {
    await w.close();
  }
});

Deno.test("a stored table with a malformed candidate is refused whole when loaded", () => {
  const row = {
    userId: "bob",
    network: "n",
    identityKey: "k",
    endpoints: endpointsOf(BOB_CANDIDATES),
    candidates: BOB_CANDIDATES,
    email: "",
    sessionId: "s",
    requestedAt: 1,
    failures: 0,
  };
  assert.equal(validateRows([row]).length, 1);
  for (const spoil of [{ priority: 0 }, { type: "prflx" }, { extra: 1 }, { mapping: "cone" }]) {
    const bad = { ...row, candidates: [{ ...BOB_CANDIDATES[1]!, ...spoil }] };
    assert.throws(() => validateRows([bad]), /candidate 0/);
  }
});

Deno.test("the JSON file table keeps candidates, the introduction key and introduction times across a restart", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mailpeer-candidates-" });
  try {
    const path = `${dir}/table.json`;
    const row = {
      userId: "bob",
      network: "n",
      identityKey: "k",
      endpoints: endpointsOf(BOB_CANDIDATES),
      candidates: BOB_CANDIDATES,
      introductionKey: "intro-key",
      introduced: [5, 6],
      email: "bob@x.test",
      sessionId: "s",
      requestedAt: 1,
      failures: 0,
    };
    const first = new JsonFileStore(path);
    await first.update(() => ({ rows: [row], result: undefined }));
    // An update that changes only the introduction times is written too.
    await first.update((rows) => ({
      rows: rows.map((r) => ({ ...r, introduced: [...(r.introduced ?? []), 7] })),
      result: undefined,
    }));
    await first.close();
    const second = new JsonFileStore(path);
    assert.deepStrictEqual(await second.read(), [{ ...row, introduced: [5, 6, 7] }]);
    await second.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
