import assert from "node:assert/strict";
import { openRequest, sealReply, sealRequest } from "../../src/message/block.ts";
import {
  decodeHostKeys,
  encodeHostKeys,
  generateHostKeys,
  generateIdentityKeys,
  hostCardOf,
  type HostKeys,
} from "../../src/message/key_file.ts";
import {
  generateEd25519,
  generateX25519,
  importPrivateKey,
  importPublicKey,
  publicKeyOf,
  sign,
  verify,
  verifyKeyCacheSize,
  x25519,
  x25519KeyPair,
} from "../../src/message/keys.ts";
import { VERIFY_KEY_CACHE_SIZE } from "../../src/limits.ts";
import type { RequestPayload } from "../../src/message/types.ts";
import { assertMessageError } from "./helpers.ts";

const hostA = await generateHostKeys("a@example.org");
const hostB = await generateHostKeys("b@example.net");
const alice = await generateIdentityKeys("alice");
const replyPair = await generateX25519();

const request: RequestPayload = {
  network: "lan-party",
  userId: "alice",
  identityKey: alice.ed25519.publicKey,
  endpoints: [{ transport: "udp", address: "192.0.2.1", port: 4000 }],
  sessionId: new Uint8Array(16).fill(3),
  createdAt: 1_767_225_600_000,
  replyKey: replyPair.publicKey,
  hostCards: [],
};

function sealTo(host: HostKeys): Promise<Uint8Array> {
  return sealRequest(request, { identity: alice, hostCard: hostCardOf(host) });
}

Deno.test("two hosts alternating: each block opens only with its own host's keys", async () => {
  const blocks = { a: await sealTo(hostA), b: await sealTo(hostB) };
  for (let round = 0; round < 6; round++) {
    assert.deepEqual(await openRequest(blocks.a, hostA), request);
    await assertMessageError(() => openRequest(blocks.a, hostB), "ESEAL");
    assert.deepEqual(await openRequest(blocks.b, hostB), request);
    await assertMessageError(() => openRequest(blocks.b, hostA), "ESEAL");
  }
});

Deno.test("two hosts opening at the same time never borrow each other's keys", async () => {
  const blocks = { a: await sealTo(hostA), b: await sealTo(hostB) };
  const results = await Promise.allSettled(
    Array.from({ length: 40 }, (_, i) => {
      const [block, host] = i % 4 < 2
        ? [blocks.a, i % 2 ? hostA : hostB]
        : [blocks.b, i % 2 ? hostB : hostA];
      return openRequest(block, host);
    }),
  );
  results.forEach((r, i) => {
    if (i % 2) assert.deepEqual(r.status === "fulfilled" && r.value, request, `call ${i}`);
    else assert.equal(r.status === "rejected" && r.reason.code, "ESEAL", `call ${i}`);
  });
});

Deno.test("host keys read again from their file open the same blocks", async () => {
  const block = await sealTo(hostA);
  const reread = await decodeHostKeys(encodeHostKeys(hostA));
  assert.notEqual(reread.x25519.privateKey, hostA.x25519.privateKey);
  assert.deepEqual(await openRequest(block, reread), request);
  assert.deepEqual(await openRequest(block, hostA), request);
});

Deno.test("a key array changed in place is used with its new bytes, never the cached ones", async () => {
  const mutable: HostKeys = {
    email: "m@example.org",
    x25519: { ...hostA.x25519, privateKey: hostA.x25519.privateKey.slice() },
    ed25519: { ...hostA.ed25519, privateKey: hostA.ed25519.privateKey.slice() },
  };
  const blockA = await sealTo(hostA);
  const blockB = await sealTo(hostB);
  assert.deepEqual(await openRequest(blockA, mutable), request);
  mutable.x25519.privateKey.set(hostB.x25519.privateKey);
  mutable.x25519.publicKey = hostB.x25519.publicKey;
  await assertMessageError(() => openRequest(blockA, mutable), "ESEAL");
  assert.deepEqual(await openRequest(blockB, mutable), request);
  assert.deepEqual(
    await publicKeyOf("X25519", mutable.x25519.privateKey),
    hostB.x25519.publicKey,
  );

  const data = new TextEncoder().encode("signed by whoever holds the array now");
  const before = await sign(mutable.ed25519.privateKey, data);
  assert.ok(await verify(hostA.ed25519.publicKey, data, before));
  mutable.ed25519.privateKey.set(hostB.ed25519.privateKey);
  const after = await sign(mutable.ed25519.privateKey, data);
  assert.ok(await verify(hostB.ed25519.publicKey, data, after));
  assert.ok(!await verify(hostA.ed25519.publicKey, data, after));
});

Deno.test("alternating signers: each signature verifies under its own key only", async () => {
  const keys = await Promise.all(Array.from({ length: 4 }, () => generateEd25519()));
  const data = new TextEncoder().encode("mailpeer");
  for (let round = 0; round < 3; round++) {
    for (const [i, signer] of keys.entries()) {
      const signature = await sign(signer.privateKey, data);
      for (const [j, other] of keys.entries()) {
        assert.equal(await verify(other.publicKey, data, signature), i === j, `${i} by ${j}`);
      }
    }
  }
});

Deno.test("a host key pair whose X25519 public key is wrong still fails as before (ESIGNATURE)", async () => {
  const block = await sealTo(hostA);
  const mixed = { ...hostA, x25519: { ...hostA.x25519, publicKey: hostB.x25519.publicKey } };
  await assertMessageError(() => openRequest(block, mixed), "ESIGNATURE");
});

Deno.test("a private key of the wrong length gives the same errors as before", async () => {
  const block = await sealTo(hostA);
  const short = { ...hostA, x25519: { ...hostA.x25519, privateKey: new Uint8Array(31) } };
  await assertMessageError(() => openRequest(block, short), "ESEAL");
  await assertMessageError(() => sign(new Uint8Array(31), new Uint8Array(1)), "EKEY");
  await assertMessageError(() => x25519KeyPair(new Uint8Array(33)), "EKEY");
  const badSigner = { ...hostA, ed25519: { ...hostA.ed25519, privateKey: new Uint8Array(5) } };
  await assertMessageError(
    () =>
      sealReply(
        {
          network: "n",
          sessionId: new Uint8Array(16),
          hostId: hostA.ed25519.publicKey,
          createdAt: 1,
          peers: [],
        },
        { hostKeys: badSigner, replyKey: replyPair.publicKey },
      ),
    "EKEY",
  );
});

Deno.test("cached private keys are not extractable and derived public keys are copies", async () => {
  const pair = await x25519KeyPair(hostA.x25519.privateKey);
  assert.equal(pair.privateKey.extractable, false);
  await assert.rejects(crypto.subtle.exportKey("pkcs8", pair.privateKey));
  const pub = await publicKeyOf("X25519", hostA.x25519.privateKey);
  pub.fill(0);
  assert.deepEqual(await publicKeyOf("X25519", hostA.x25519.privateKey), hostA.x25519.publicKey);
  const peer = await generateX25519();
  assert.deepEqual(
    await x25519(hostA.x25519.privateKey, peer.publicKey),
    await x25519(peer.privateKey, hostA.x25519.publicKey),
  );
});

Deno.test("the verification key cache stays bounded however many keys strangers send", async () => {
  const data = new TextEncoder().encode("one of many");
  const first = await generateEd25519();
  const firstSignature = await sign(first.privateKey, data);
  assert.ok(await verify(first.publicKey, data, firstSignature));
  for (let i = 0; i < VERIFY_KEY_CACHE_SIZE + 40; i++) {
    const stranger = await generateEd25519();
    assert.ok(!await verify(stranger.publicKey, data, firstSignature));
    assert.ok(verifyKeyCacheSize() <= VERIFY_KEY_CACHE_SIZE);
  }
  assert.equal(verifyKeyCacheSize(), VERIFY_KEY_CACHE_SIZE);
  // Evicted long ago, the first key is imported again and still verifies.
  assert.ok(await verify(first.publicKey, data, firstSignature));
  assert.ok(!await verify(first.publicKey, new TextEncoder().encode("other"), firstSignature));
});

Deno.test("a public key that cannot be imported is refused and not kept", async () => {
  const data = new Uint8Array(8);
  const size = verifyKeyCacheSize();
  const bogus = new Uint8Array(32).fill(0xff);
  assert.equal(await verify(bogus, data, new Uint8Array(64)), false);
  assert.equal(await verify(bogus, data, new Uint8Array(64)), false);
  assert.ok(verifyKeyCacheSize() <= Math.min(size + 1, VERIFY_KEY_CACHE_SIZE));
});

Deno.test("a generated pair's public key is the one its private seed derives, by WebCrypto too", async () => {
  for (let i = 0; i < 8; i++) {
    const x = await generateX25519();
    const other = await generateX25519();
    // a copy of the seed is a new array: nothing cached, derived afresh
    assert.deepEqual(await publicKeyOf("X25519", x.privateKey.slice()), x.publicKey);
    const shared = await x25519(x.privateKey, other.publicKey);
    assert.deepEqual(await x25519(other.privateKey.slice(), x.publicKey), shared);
    const bits = await crypto.subtle.deriveBits(
      { name: "X25519", public: await importPublicKey("X25519", other.publicKey) },
      await importPrivateKey("X25519", x.privateKey.slice()),
      256,
    );
    assert.deepEqual(new Uint8Array(bits), shared, "WebCrypto agrees on the same secret");

    const ed = await generateEd25519();
    assert.deepEqual(await publicKeyOf("Ed25519", ed.privateKey.slice()), ed.publicKey);
    const data = crypto.getRandomValues(new Uint8Array(40));
    const signature = await sign(ed.privateKey, data);
    const publicKey = await importPublicKey("Ed25519", ed.publicKey);
    assert.ok(await crypto.subtle.verify("Ed25519", publicKey, signature.slice(), data));
  }
});
