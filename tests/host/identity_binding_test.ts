/**
 * A user id belongs to the identity key of its live row (issue 12): a request or a synced row
 * signed by another key cannot take the user id over, and requests are ordered by their signed
 * creation time, so a forged `Date:` cannot lock the owner out.
 */
import assert from "node:assert/strict";
import { mergeSyncRows } from "../../src/host/pool/sync_merge.ts";
import type { LogFields, LogLevel } from "../../src/log.ts";
import { toBase64Url } from "../../src/message/base64.ts";
import { MAX_CLOCK_SKEW_MS } from "../../src/limits.ts";
import { NETWORK, World } from "../support/world.ts";

function captureLog() {
  const lines: { level: LogLevel; message: string; fields?: LogFields }[] = [];
  return {
    lines,
    logger: {
      log: (level: LogLevel, message: string, fields?: LogFields) =>
        lines.push({ level, message, ...(fields ? { fields } : {}) }),
    },
  };
}

Deno.test("mallory cannot take over alice's user id with her own key, and alice is still answered", async () => {
  const log = captureLog();
  const w = await World.create({ logger: log.logger });
  try {
    const alice = await w.player("alice", 4000);
    await w.request(alice);
    assert.equal((await w.host.processPending()).answered, 1);
    const before = await w.store.read();

    // Mallory signs a request for user id "alice" with her own key, dated 10 minutes ahead.
    const mallory = await w.player("alice", 6666);
    mallory.email = "mallory@evil.test";
    mallory.endpoints = [{ transport: "tcp", address: "198.51.100.66", port: 6666 }];
    w.clock.advance(1000);
    await w.request(mallory, { date: new Date(w.clock.now() + MAX_CLOCK_SKEW_MS - 1000) });
    const pass = await w.host.processPending();
    assert.deepEqual(pass, { answered: 0, notices: 0, quarantined: 1, stale: 0 });
    assert.deepEqual(await w.files(mallory.email, "new"), [], "mallory got no reply");
    assert.deepEqual(await w.store.read(), before, "alice's row, key and endpoints are unchanged");
    const q = w.events.findLast((e) => e.event === "quarantined");
    assert.ok(q && q.event === "quarantined" && q.code === "EOWNER", JSON.stringify(q));
    assert.ok(log.lines.some((l) => l.fields?.code === "EOWNER" && /alice/.test(l.message)));

    // Alice's next real request is answered and updates her row.
    w.clock.advance(1000);
    alice.endpoints = [{ transport: "tcp", address: "192.0.2.11", port: 4001 }];
    const r = await w.request(alice);
    assert.equal((await w.host.processPending()).answered, 1);
    assert.equal((await w.replies(alice, r.replyPrivateKey)).length, 1);
    const [row] = await w.store.read();
    assert.deepEqual(row?.endpoints, alice.endpoints);
    assert.equal(row?.identityKey, toBase64Url(alice.identity.ed25519.publicKey));
  } finally {
    await w.close();
  }
});

Deno.test("a Date header in the future does not lock the user out of later requests", async () => {
  const w = await World.create();
  try {
    const bob = await w.player("bob", 4000);
    await w.request(bob, { date: new Date(w.clock.now() + MAX_CLOCK_SKEW_MS - 1000) });
    assert.equal((await w.host.processPending()).answered, 1);
    w.clock.advance(60_000);
    const r = await w.request(bob);
    assert.equal((await w.host.processPending()).answered, 1);
    assert.equal((await w.replies(bob, r.replyPrivateKey)).length, 1);
  } finally {
    await w.close();
  }
});

Deno.test("a synced row of another key does not replace a live row of the same user id", async () => {
  const w = await World.create();
  try {
    const alice = await w.player("alice", 4000);
    await w.request(alice);
    await w.host.processPending();
    const rows = await w.store.read();
    const mallory = await w.player("alice", 6666);
    const merged = mergeSyncRows(rows, [{
      userId: "alice",
      network: NETWORK,
      identityKey: mallory.identity.ed25519.publicKey,
      endpoints: [{ transport: "tcp", address: "198.51.100.66", port: 6666 }],
      sessionId: crypto.getRandomValues(new Uint8Array(16)),
      requestedAt: w.clock.now() + 60_000,
      failures: 0,
    }], {
      now: w.clock.now(),
      network: NETWORK,
      policy: { capacity: 10, expiryMs: 3_600_000 },
      allowPrivateAddresses: true,
    });
    assert.equal(merged.changed, 0);
    assert.deepEqual(merged.rows, rows);
  } finally {
    await w.close();
  }
});
