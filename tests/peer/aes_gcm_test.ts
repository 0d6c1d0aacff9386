import assert from "node:assert/strict";
import { aesGcmKey, opensslAvailable, TAG_BYTES } from "../../src/peer/aes_gcm.ts";
import { encodeFrame, FrameDecoder, FrameType } from "../../src/peer/frame.ts";

async function material() {
  const raw = crypto.getRandomValues(new Uint8Array(32));
  const key = await crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
  return { key, raw };
}
const hasOpenSsl = opensslAvailable();

Deno.test({
  name: "OpenSSL and WebCrypto seal the same bytes and open each other's",
  ignore: !hasOpenSsl,
  fn: async () => {
    const m = await material();
    const web = aesGcmKey(m, { implementation: "webcrypto" });
    const ssl = aesGcmKey(m, { implementation: "openssl" });
    assert.equal(ssl.implementation, "openssl");
    const nonce = crypto.getRandomValues(new Uint8Array(12));
    const aad = Uint8Array.of(1, 4, 0, 0, 0, 0, 0, 0, 0, 7);
    for (const size of [0, 1, 15, 16, 17, 4096, 262_117]) {
      const plain = crypto.getRandomValues(new Uint8Array(Math.min(size, 65536)));
      const full = new Uint8Array(size);
      for (let at = 0; at < size; at += plain.length || 1) {
        full.set(plain.subarray(0, size - at), at);
      }
      const a = new Uint8Array(size + 1 + TAG_BYTES);
      const b = new Uint8Array(size + 1 + TAG_BYTES);
      await web.seal(nonce, aad, [Uint8Array.of(1), full], a);
      await ssl.seal(nonce, aad, [Uint8Array.of(1), full], b);
      assert.deepEqual(b, a, `${size} bytes`);
      const opened = await ssl.open(nonce, aad, a);
      assert.deepEqual(opened?.subarray(1), full);
      assert.deepEqual((await web.open(nonce, aad, b))?.subarray(1), full);
    }
  },
});

Deno.test({
  name: "OpenSSL rejects any altered byte, wrong nonce or wrong additional data",
  ignore: !hasOpenSsl,
  fn: async () => {
    const ssl = aesGcmKey(await material(), { implementation: "openssl" });
    const nonce = new Uint8Array(12);
    const aad = Uint8Array.of(9);
    const sealed = new Uint8Array(40 + TAG_BYTES);
    ssl.seal(nonce, aad, [new Uint8Array(40).fill(7)], sealed);
    for (let at = 0; at < sealed.length; at++) {
      const altered = sealed.slice();
      altered[at]! ^= 1;
      assert.equal(ssl.open(nonce, aad, altered), null, `byte ${at}`);
      assert.equal(ssl.open(nonce, aad, altered, { inPlace: true }), null, `in place, ${at}`);
      assert.ok(altered.subarray(0, 40).every((x) => x === 0), "no unauthenticated plaintext");
    }
    assert.equal(ssl.open(Uint8Array.of(1, ...new Uint8Array(11)), aad, sealed), null);
    assert.equal(ssl.open(nonce, Uint8Array.of(8), sealed), null);
    assert.equal(ssl.open(nonce, aad, sealed.subarray(0, 10)), null);
    const inPlace = sealed.slice();
    assert.deepEqual(ssl.open(nonce, aad, inPlace, { inPlace: true }), new Uint8Array(40).fill(7));
  },
});

Deno.test("without the ffi permission or a raw key the session falls back to WebCrypto", async () => {
  const m = await material();
  assert.equal(aesGcmKey({ key: m.key }).implementation, "webcrypto");
  assert.equal(aesGcmKey(m, { implementation: "webcrypto" }).implementation, "webcrypto");
  assert.throws(() => aesGcmKey({ key: m.key }, { implementation: "openssl" }), TypeError);
});

Deno.test("large frames split anywhere decode whole, each in a buffer of its own", () => {
  const bodies = [100_000, 3, 262_140, 20_000].map((n, i) => new Uint8Array(n).fill(i + 1));
  const stream = new Uint8Array(bodies.reduce((n, b) => n + b.length + 6, 0));
  let at = 0;
  for (const body of bodies) {
    const frame = encodeFrame({ type: FrameType.DATA, body });
    stream.set(frame, at);
    at += frame.length;
  }
  for (const step of [1000, 4, 5, 65_536, 262_144, stream.length]) {
    const decoder = new FrameDecoder();
    const got = [];
    for (let i = 0; i < stream.length; i += step) {
      got.push(...decoder.push(stream.slice(i, i + step)));
    }
    assert.equal(decoder.buffered, 0);
    assert.deepEqual(got.map((f) => f.body), bodies, `chunks of ${step}`);
  }
});

Deno.test("a frame built in place is written as it is", () => {
  const encoded = encodeFrame({ type: FrameType.PING, body: Uint8Array.of(1, 2) });
  const frame = { type: FrameType.PING, body: encoded.subarray(6), encoded };
  assert.equal(encodeFrame(frame), encoded);
});
