import assert from "node:assert/strict";
import type { PeerEntry } from "../../src/message/types.ts";
import { acceptsUser, choosePeers } from "../../src/terminal/peer_choice.ts";

function peer(userId: string, lastSeen: number, failures = 0): PeerEntry {
  return {
    userId,
    identityKey: new Uint8Array(32),
    endpoints: [{ transport: "tcp", address: "192.0.2.1", port: 1000 + lastSeen }],
    lastSeen,
    failures,
  };
}

Deno.test("peers are tried newest first, flagged peers last", () => {
  const order = choosePeers([
    peer("old", 1),
    peer("flagged", 9, 2),
    peer("new", 5),
    peer("once", 8, 1),
  ]);
  assert.deepEqual(order.map((p) => p.userId), ["new", "old", "once", "flagged"]);
});

Deno.test("allow-listed peers are tried first and deny-listed peers never", () => {
  const order = choosePeers([peer("a", 3), peer("b", 2), peer("c", 1, 1), peer("d", 4)], {
    allow: ["c"],
    deny: ["d"],
  });
  assert.deepEqual(order.map((p) => p.userId), ["c", "a", "b"]);
});

Deno.test("standby accepts anyone but the denied, or only the allowed when an allow-list is set", () => {
  assert.equal(acceptsUser("x"), true);
  assert.equal(acceptsUser("x", { deny: ["x"] }), false);
  assert.equal(acceptsUser("x", { allow: ["y"] }), false);
  assert.equal(acceptsUser("y", { allow: ["y"], deny: [] }), true);
});
