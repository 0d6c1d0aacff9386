import assert from "node:assert/strict";
import { Aes128Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";
import fc from "fast-check";
import {
  hpkeRecipientKeyPair,
  hpkeSuite,
  NodeAes128Gcm,
  NodeDhkemX25519HkdfSha256,
  NodeHkdfSha256,
} from "../../src/message/hpke_suite.ts";
import { generateX25519, x25519, x25519KeyPair } from "../../src/message/keys.ts";
import { bytes } from "./helpers.ts";

const stock = new CipherSuite({
  kem: new DhkemX25519HkdfSha256(),
  kdf: new HkdfSha256(),
  aead: new Aes128Gcm(),
});

const hex = (text: string) => Uint8Array.from(text.match(/../g)!, (h) => parseInt(h, 16));
const ab = (b: Uint8Array) => b.slice().buffer as ArrayBuffer;

// RFC 9180 A.1.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, base mode, sequence 0.
const A11 = {
  info: hex("4f6465206f6e2061204772656369616e2055726e"),
  skEm: hex("52c4a758a802cd8b936eceea314432798d5baf2d7e9235dc084ab1b9cfa2f736"),
  pkEm: hex("37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431"),
  skRm: hex("4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8"),
  pkRm: hex("3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d"),
  aad: hex("436f756e742d30"),
  pt: hex("4265617574792069732074727574682c20747275746820626561757479"),
  ct: hex(
    "f938558b5d72f1a23810b4be2ab4f84331acc02fc97babc53a52ae8218a355a96d8770ac83d07bea87e13c512a",
  ),
};

Deno.test("the block suite opens the RFC 9180 A.1.1 test vector with a cached key pair", async () => {
  const recipientKey = await x25519KeyPair(A11.skRm);
  assert.deepEqual(
    new Uint8Array(await crypto.subtle.exportKey("raw", recipientKey.publicKey)),
    A11.pkRm,
  );
  const ctx = await hpkeSuite.createRecipientContext({
    recipientKey,
    enc: ab(A11.pkEm),
    info: ab(A11.info),
  });
  assert.deepEqual(new Uint8Array(await ctx.open(ab(A11.ct), ab(A11.aad))), A11.pt);
});

Deno.test("the block suite seals the RFC 9180 A.1.1 test vector byte for byte", async () => {
  const ekm = {
    privateKey: await hpkeSuite.kem.deserializePrivateKey(ab(A11.skEm)),
    publicKey: await hpkeSuite.kem.deserializePublicKey(ab(A11.pkEm)),
  };
  const ctx = await hpkeSuite.createSenderContext({
    recipientPublicKey: await hpkeSuite.kem.deserializePublicKey(ab(A11.pkRm)),
    info: ab(A11.info),
    ekm,
  });
  assert.deepEqual(new Uint8Array(ctx.enc), A11.pkEm);
  assert.deepEqual(new Uint8Array(await ctx.seal(ab(A11.pt), ab(A11.aad))), A11.ct);
});

Deno.test("the node:crypto KEM opens the RFC 9180 A.1.1 test vector with a host's cached keys", async () => {
  const ctx = await hpkeSuite.createRecipientContext({
    recipientKey: await hpkeRecipientKeyPair(A11.skRm),
    enc: ab(A11.pkEm),
    info: ab(A11.info),
  });
  assert.deepEqual(new Uint8Array(await ctx.open(ab(A11.ct), ab(A11.aad))), A11.pt);
  // the cached pair names the seed's public key (the KEM binds it into the shared secret)
  const pair = await hpkeRecipientKeyPair(A11.skRm);
  assert.deepEqual(
    new Uint8Array(await hpkeSuite.kem.serializePublicKey(pair.publicKey)),
    A11.pkRm,
  );
});

Deno.test("a small-order X25519 key is refused: no block sealed to it, no session key with it", async () => {
  // all-zero and order-1 points (RFC 7748 §6.1): the agreement would be all zeros
  for (const point of [new Uint8Array(32), Uint8Array.of(1, ...new Uint8Array(31))]) {
    await assert.rejects(
      hpkeSuite.createSenderContext({
        recipientPublicKey: await hpkeSuite.kem.deserializePublicKey(ab(point)),
      }),
    );
    const mine = await generateX25519();
    await assert.rejects(x25519(mine.privateKey, point));
    await assert.rejects(
      hpkeSuite.createRecipientContext({
        recipientKey: await hpkeRecipientKeyPair(mine.privateKey),
        enc: ab(point),
      }),
    );
  }
});

Deno.test("the block suite and @hpke/core's stock suite open each other's blocks", async () => {
  const recipient = await generateX25519();
  const pair = await x25519KeyPair(recipient.privateKey);
  const nodePair = await hpkeRecipientKeyPair(recipient.privateKey);
  const stockKey = await stock.kem.deserializePrivateKey(ab(recipient.privateKey));
  await fc.assert(
    fc.asyncProperty(
      fc.uint8Array({ maxLength: 2000 }),
      fc.uint8Array({ maxLength: 40 }),
      fc.uint8Array({ maxLength: 64 }),
      fc.boolean(),
      async (pt, aad, info, ours) => {
        const [sealer, opener] = ours ? [hpkeSuite, stock] : [stock, hpkeSuite];
        const sender = await sealer.createSenderContext({
          recipientPublicKey: await sealer.kem.deserializePublicKey(ab(recipient.publicKey)),
          info: ab(info),
        });
        const ct = await sender.seal(ab(pt), ab(aad));
        const receiver = await opener.createRecipientContext({
          recipientKey: ours ? stockKey : (pt.length % 2 === 0 ? pair : nodePair),
          enc: sender.enc,
          info: ab(info),
        });
        assert.deepEqual(new Uint8Array(await receiver.open(ct, ab(aad))), pt);
      },
    ),
    { numRuns: 30 },
  );
});

Deno.test("node:crypto HKDF-SHA256 gives the same bytes as @hpke/core's WebCrypto HKDF", async () => {
  const suiteId = new TextEncoder().encode("HPKE\0\0\0\0\0\0");
  const ours = new NodeHkdfSha256();
  const theirs = new HkdfSha256();
  ours.init(suiteId);
  theirs.init(suiteId);
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(bytes(0), bytes(32)),
      fc.uint8Array({ maxLength: 200 }),
      fc.uint8Array({ maxLength: 1100 }),
      fc.constantFrom(12, 16, 32, 33, 64, 255),
      async (salt, ikm, info, len) => {
        assert.deepEqual(await ours.extract(salt, ikm), await theirs.extract(salt, ikm));
        assert.deepEqual(
          await ours.extractAndExpand(salt, ikm, info, len),
          await theirs.extractAndExpand(salt, ikm, info, len),
        );
      },
    ),
    { numRuns: 60 },
  );
  await assert.rejects(ours.extract(new Uint8Array(7), new Uint8Array(1)), /salt length/);
});

Deno.test("the KEM with node:crypto HKDF agrees with the stock KEM on the shared secret", async () => {
  const kem = new NodeDhkemX25519HkdfSha256();
  const recipient = await generateX25519();
  const pair = await x25519KeyPair(recipient.privateKey);
  const stockKem = new DhkemX25519HkdfSha256();
  const { enc, sharedSecret } = await kem.encap({ recipientPublicKey: pair.publicKey });
  assert.deepEqual(await stockKem.decap({ recipientKey: pair, enc }), sharedSecret);
});

Deno.test("node:crypto AES-128-GCM matches WebCrypto and refuses any altered input", async () => {
  await fc.assert(
    fc.asyncProperty(
      bytes(16),
      bytes(12),
      fc.uint8Array({ maxLength: 300 }),
      fc.uint8Array({ maxLength: 40 }),
      async (key, iv, pt, aad) => {
        const ours = new NodeAes128Gcm().createEncryptionContext(key.slice());
        const theirs = new Aes128Gcm().createEncryptionContext(key.slice());
        const ct = new Uint8Array(await ours.seal(iv, pt, aad));
        assert.deepEqual(ct, new Uint8Array(await theirs.seal(iv, pt, aad)));
        assert.deepEqual(new Uint8Array(await ours.open(iv, ct, aad)), pt);
        const flip = (b: Uint8Array, at: number) => {
          const c = b.slice();
          c[at % c.length] = c[at % c.length]! ^ 0x80;
          return c;
        };
        const at = ct.length + pt.length;
        await assert.rejects(ours.open(iv, flip(ct, at), aad));
        await assert.rejects(ours.open(flip(iv, at), ct, aad));
        await assert.rejects(ours.open(iv, ct, new Uint8Array([...aad, 0])));
        if (aad.length > 0) await assert.rejects(ours.open(iv, ct, flip(aad, at)));
        await assert.rejects(ours.open(iv, ct.subarray(0, ct.length - 1), aad));
        await assert.rejects(ours.open(iv, ct.subarray(0, 15), aad));
      },
    ),
    { numRuns: 60 },
  );
});

Deno.test("an AES-128-GCM context takes only a 16-byte key and wipes the caller's copy", () => {
  assert.throws(() => new NodeAes128Gcm().createEncryptionContext(new Uint8Array(32)), RangeError);
  const key = new Uint8Array(16).fill(5);
  new NodeAes128Gcm().createEncryptionContext(key);
  assert.deepEqual(key, new Uint8Array(16));
});
