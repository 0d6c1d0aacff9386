import assert from "node:assert/strict";
import type { PeerEntry } from "../../src/message/types.ts";
import { keyFingerprint } from "../../src/message/key_fingerprint.ts";
import { acceptsPeer, checkPeerPolicy, choosePeers } from "../../src/terminal/peer_choice.ts";

/** A distinct identity key per user id (tests only look at lists, not signatures). */
function keyOf(userId: string): Uint8Array {
  const key = new Uint8Array(32);
  key.set(new TextEncoder().encode(userId).subarray(0, 32));
  return key;
}

function fp(userId: string): string {
  return keyFingerprint(keyOf(userId));
}

function peer(userId: string, lastSeen: number, failures = 0): PeerEntry {
  return {
    userId,
    identityKey: keyOf(userId),
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

Deno.test("allow-listed keys are tried first and deny-listed keys never", () => {
  const order = choosePeers([peer("a", 3), peer("b", 2), peer("c", 1, 1), peer("d", 4)], {
    allow: [`c@${fp("c")}`],
    deny: [fp("d")],
  });
  assert.deepEqual(order.map((p) => p.userId), ["c", "a", "b"]);
});

Deno.test("a deny-listed key is never tried under another user id, an allow entry needs its user id", () => {
  const renamed = { ...peer("d", 9), userId: "someone-else" };
  assert.deepEqual(
    choosePeers([renamed, peer("a", 1)], { deny: [`d@${fp("d")}`] }).map((p) => p.userId),
    ["a"],
  );
  const order = choosePeers([peer("a", 3), { ...peer("c", 1), userId: "not-c" }], {
    allow: [`c@${fp("c")}`],
  });
  assert.deepEqual(order.map((p) => p.userId), ["a", "not-c"], "the entry does not match");
});

Deno.test("standby accepts anyone but denied keys, or only listed keys when an allow-list is set", () => {
  const claim = (userId: string, keyUser = userId) => ({ userId, identityKey: keyOf(keyUser) });
  assert.equal(acceptsPeer(claim("x")), true);
  assert.equal(acceptsPeer(claim("x"), { deny: [fp("x")] }), false);
  assert.equal(acceptsPeer(claim("x"), { allow: [fp("y")] }), false);
  assert.equal(acceptsPeer(claim("y"), { allow: [`y@${fp("y")}`], deny: [] }), true);
  assert.equal(
    acceptsPeer(claim("y", "mallory"), { allow: [`y@${fp("y")}`] }),
    false,
    "claimed id, other key",
  );
  assert.equal(
    acceptsPeer(claim("z", "y"), { allow: [`y@${fp("y")}`] }),
    false,
    "listed key, other id",
  );
  assert.equal(
    acceptsPeer(claim("z", "y"), { allow: [fp("y")] }),
    true,
    "a bare fingerprint takes any id",
  );
});

Deno.test("the key fingerprint is the base64url SHA-256 of the key, 43 characters", () => {
  assert.equal(keyFingerprint(new Uint8Array(32)), "Zmh6rfhivXdsj8GLjp-OIAiXFIVu4jOzkCpZHQ1fKSU");
});

Deno.test("a list entry that names no key is a programming error, not a silent refusal", () => {
  assert.throws(
    () => checkPeerPolicy({ allow: ["bob"] }),
    /names no key; write "user@<fingerprint>"/,
  );
  assert.throws(() => choosePeers([], { deny: ["eve@short"] }), TypeError);
  checkPeerPolicy({ allow: [`bob@${fp("bob")}`], deny: [fp("eve")] });
});
