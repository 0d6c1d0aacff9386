import assert from "node:assert/strict";
import fc from "fast-check";
import { MessageError } from "../../src/errors.ts";
import { MAX_BLOCK_BYTES, PROTOCOL_VERSION } from "../../src/protocol.ts";
import {
  blockKindOf,
  openNotice,
  openReply,
  openRequest,
  sealNotice,
  sealReply,
  sealRequest,
} from "../../src/message/block.ts";
import { generateX25519 } from "../../src/message/keys.ts";
import { generateHostKeys, generateIdentityKeys, hostCardOf } from "../../src/message/key_file.ts";
import type { ReplyPayload, RequestPayload } from "../../src/message/types.ts";
import { assertMessageError, noticeArb, replyArb, requestArb } from "./helpers.ts";

const host = await generateHostKeys("host@example.org");
const otherHost = await generateHostKeys("other@example.net");
const card = hostCardOf(host);
const alice = await generateIdentityKeys("alice");
const mallory = await generateIdentityKeys("mallory");
const replyPair = await generateX25519();

const request: RequestPayload = {
  network: "lan-party",
  userId: "alice",
  identityKey: alice.ed25519.publicKey,
  endpoints: [{ transport: "udp", address: "2001:db8::7", port: 4000 }],
  sessionId: new Uint8Array(16).fill(9),
  createdAt: 1_767_225_600_000,
  replyKey: replyPair.publicKey,
  hostCards: [],
};

const reply: ReplyPayload = {
  network: "lan-party",
  sessionId: request.sessionId,
  hostId: host.ed25519.publicKey,
  createdAt: 1_767_225_601_000,
  peers: [{
    userId: "bob",
    identityKey: new Uint8Array(32).fill(4),
    endpoints: [{ transport: "tcp", address: "198.51.100.4", port: 5000 }],
    lastSeen: 1_767_225_000_000,
    failures: 0,
  }],
};

Deno.test("a request sealed to a host opens with that host's keys, unchanged", async () => {
  await fc.assert(
    fc.asyncProperty(requestArb, async (p) => {
      const payload = { ...p, identityKey: alice.ed25519.publicKey };
      const block = await sealRequest(payload, { identity: alice, hostCard: card });
      assert.equal(blockKindOf(block), "request");
      assert.deepEqual(await openRequest(block, host), payload);
    }),
    { numRuns: 40 },
  );
});

Deno.test("a reply sealed to the reply key opens with its private key, unchanged", async () => {
  await fc.assert(
    fc.asyncProperty(replyArb, async (p) => {
      const payload = { ...p, hostId: host.ed25519.publicKey };
      const block = await sealReply(payload, { hostKeys: host, replyKey: replyPair.publicKey });
      assert.equal(blockKindOf(block), "reply");
      const opened = await openReply(block, {
        replyPrivateKey: replyPair.privateKey,
        hostCard: card,
        sessionId: payload.sessionId,
      });
      assert.deepEqual(opened, payload);
    }),
    { numRuns: 40 },
  );
});

Deno.test("a notice sealed to a host opens with that host's keys, unchanged", async () => {
  await fc.assert(
    fc.asyncProperty(noticeArb, async (p) => {
      const payload = { ...p, identityKey: alice.ed25519.publicKey };
      const block = await sealNotice(payload, { identity: alice, hostCard: card });
      assert.equal(blockKindOf(block), "notice");
      assert.deepEqual(await openNotice(block, host), payload);
    }),
    { numRuns: 40 },
  );
});

Deno.test("sealing the same request twice gives different blocks (fresh HPKE key each time)", async () => {
  const a = await sealRequest(request, { identity: alice, hostCard: card });
  const b = await sealRequest(request, { identity: alice, hostCard: card });
  assert.notDeepEqual(a, b);
  assert.equal(a[0], PROTOCOL_VERSION);
  assert.equal(a[1], 1);
});

Deno.test("a request block with any one byte changed is refused, never opened", async () => {
  const block = await sealRequest(request, { identity: alice, hostCard: card });
  const codes = new Set<string>();
  for (let i = 0; i < block.length; i++) {
    const altered = block.slice();
    altered[i] = altered[i]! ^ 0x01;
    const err = await openRequest(altered, host).then(
      () => assert.fail(`byte ${i} changed, yet the request opened`),
      (e) => e,
    );
    assert.ok(err instanceof MessageError, `byte ${i}: ${err}`);
    codes.add(err.code);
  }
  assert.deepEqual([...codes].sort(), ["EBLOCK", "ESEAL"]);
});

Deno.test("a request block changed by any byte value at any position is refused", async () => {
  const block = await sealRequest(request, { identity: alice, hostCard: card });
  await fc.assert(
    fc.asyncProperty(
      fc.nat(block.length - 1),
      fc.integer({ min: 1, max: 255 }),
      async (at, mask) => {
        const altered = block.slice();
        altered[at] = altered[at]! ^ mask;
        await assert.rejects(openRequest(altered, host), MessageError);
      },
    ),
    { numRuns: 100 },
  );
});

Deno.test("a request sealed to another host cannot be opened (ESEAL)", async () => {
  const block = await sealRequest(request, { identity: alice, hostCard: card });
  await assertMessageError(() => openRequest(block, otherHost), "ESEAL", /^Cannot open request/);
});

Deno.test("a request signed by someone other than the identity it claims is refused", async () => {
  // Mallory claims Alice's public key but can only sign with her own private key.
  const forger = {
    userId: "alice",
    ed25519: { ...mallory.ed25519, publicKey: alice.ed25519.publicKey },
  };
  const block = await sealRequest(request, { identity: forger, hostCard: card });
  await assertMessageError(() => openRequest(block, host), "ESIGNATURE", /user id "alice"/);
});

Deno.test("sealing a request for an identity key that is not the signer's is a programming error", async () => {
  await assert.rejects(
    sealRequest(request, { identity: mallory, hostCard: card }),
    TypeError,
  );
});

Deno.test("a reply signed by a host other than the card's is refused, even with the right session", async () => {
  const forged = await sealReply(
    { ...reply, hostId: otherHost.ed25519.publicKey },
    { hostKeys: otherHost, replyKey: replyPair.publicKey },
  );
  await assertMessageError(
    () =>
      openReply(forged, {
        replyPrivateKey: replyPair.privateKey,
        hostCard: card,
        sessionId: request.sessionId,
      }),
    "ESIGNATURE",
    /not signed by the host host@example\.org/,
  );
});

Deno.test("a reply to a different request is refused (ESESSION)", async () => {
  const block = await sealReply(reply, { hostKeys: host, replyKey: replyPair.publicKey });
  await assertMessageError(
    () =>
      openReply(block, {
        replyPrivateKey: replyPair.privateKey,
        hostCard: card,
        sessionId: new Uint8Array(16).fill(8),
      }),
    "ESESSION",
  );
  const opened = await openReply(block, { replyPrivateKey: replyPair.privateKey, hostCard: card });
  assert.deepEqual(opened, reply);
});

Deno.test("a reply sealed to another reply key cannot be opened (ESEAL)", async () => {
  const block = await sealReply(reply, { hostKeys: host, replyKey: replyPair.publicKey });
  const stranger = await generateX25519();
  await assertMessageError(
    () => openReply(block, { replyPrivateKey: stranger.privateKey, hostCard: card }),
    "ESEAL",
  );
});

Deno.test("a notice signed by someone other than the reporter it claims is refused", async () => {
  const notice = {
    network: "lan-party",
    userId: "alice",
    identityKey: alice.ed25519.publicKey,
    sessionId: request.sessionId,
    createdAt: 1,
    failed: [{ userId: "bob", reason: "timeout" }],
  };
  const forger = {
    userId: "alice",
    ed25519: { ...mallory.ed25519, publicKey: alice.ed25519.publicKey },
  };
  const block = await sealNotice(notice, { identity: forger, hostCard: card });
  await assertMessageError(() => openNotice(block, host), "ESIGNATURE");
});

Deno.test("a block of one kind is not accepted as another kind", async () => {
  const block = await sealRequest(request, { identity: alice, hostCard: card });
  await assertMessageError(() => openNotice(block, host), "EBLOCK", /request block, not a notice/);
});

Deno.test("blocks that are too short, too large, of another version or unknown kind are refused", async () => {
  const block = await sealRequest(request, { identity: alice, hostCard: card });
  await assertMessageError(() => blockKindOf(block.subarray(0, 50)), "EBLOCK", /50 bytes/);
  const huge = new Uint8Array(MAX_BLOCK_BYTES + 1);
  huge.set(block.subarray(0, 2));
  await assertMessageError(() => blockKindOf(huge), "EBLOCK", /more than/);
  const v2 = block.slice();
  v2[0] = 2;
  await assertMessageError(() => blockKindOf(v2), "EBLOCK", /version 2/);
  const kind9 = block.slice();
  kind9[1] = 9;
  await assertMessageError(() => blockKindOf(kind9), "EBLOCK", /kind byte 9/);
});

Deno.test("a reply too large for one block is refused when sealing", async () => {
  const endpoints = Array.from({ length: 8 }, (_, i) => ({
    transport: "udp" as const,
    address: `2001:db8:1234:5678:9abc:def0:1234:${i}`,
    port: 65000 + i,
  }));
  const peer = { ...reply.peers[0]!, endpoints };
  const big = {
    ...reply,
    peers: Array.from({ length: 30 }, (_, i) => ({ ...peer, userId: `peer-${i}` })),
  };
  await assertMessageError(
    () => sealReply(big, { hostKeys: host, replyKey: replyPair.publicKey }),
    "EPAYLOAD",
    /more than 16384; send fewer/,
  );
});
