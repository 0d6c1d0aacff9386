import assert from "node:assert/strict";
import {
  type AesGcmEngine,
  aesGcmKey,
  opensslAvailable,
  TAG_BYTES,
} from "../../src/peer/aes_gcm.ts";
import { encodeFrame, FrameDecoder, FrameType } from "../../src/peer/frame.ts";

async function material() {
  const raw = crypto.getRandomValues(new Uint8Array(32));
  const key = await crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
  return { key, raw };
}
const hasOpenSsl = opensslAvailable();

const ENGINES: AesGcmEngine[] = hasOpenSsl
  ? ["webcrypto", "node", "openssl"]
  : ["webcrypto", "node"];
const SIZES = [0, 1, 15, 16, 17, 4096, 65_536, 262_117];

function filled(size: number): Uint8Array {
  const plain = crypto.getRandomValues(new Uint8Array(Math.min(size, 65536)));
  const full = new Uint8Array(size);
  for (let at = 0; at < size; at += plain.length || 1) full.set(plain.subarray(0, size - at), at);
  return full;
}

Deno.test(`every AES-GCM implementation (${ENGINES.join(", ")}) seals the same bytes and opens the others'`, async () => {
  const m = await material();
  const keys = ENGINES.map((implementation) => aesGcmKey(m, { implementation }));
  assert.deepEqual(keys.map((k) => k.implementation), ENGINES);
  const aad = Uint8Array.of(1, 4, 0, 0, 0, 0, 0, 0, 0, 7);
  for (const size of [...SIZES, ...SIZES]) { // a new nonce each time, on the same keys
    const nonce = crypto.getRandomValues(new Uint8Array(12));
    const full = filled(size);
    const sealed = [];
    for (const key of keys) {
      const out = new Uint8Array(size + 1 + TAG_BYTES);
      await key.seal(nonce, aad, [Uint8Array.of(1), full], out);
      sealed.push(out);
    }
    for (const [i, out] of sealed.entries()) {
      assert.deepEqual(out, sealed[0], `${keys[i]!.implementation} sealed ${size} bytes alike`);
    }
    for (const opener of keys) {
      const what = `${opener.implementation}, ${size} bytes`;
      const opened = await opener.open(nonce, aad, sealed[0]!);
      assert.ok(opened instanceof Uint8Array && opened.constructor === Uint8Array, what);
      assert.deepEqual(opened.subarray(1), full, what);
      const into = new Uint8Array(size + 9).fill(0xee);
      const view = await opener.open(nonce, aad, sealed[0]!, { into });
      assert.equal(view?.buffer, into.buffer, `${what}: into the given buffer`);
      assert.equal(view?.length, size + 1);
      assert.deepEqual(into.subarray(1, size + 1), full, `${what}: into`);
      assert.ok(into.subarray(size + 1).every((x) => x === 0xee), `${what}: nothing past it`);
      const inPlace = sealed[0]!.slice();
      assert.deepEqual(
        (await opener.open(nonce, aad, inPlace, { inPlace: true }))?.subarray(1),
        full,
      );
    }
  }
});

for (const implementation of ENGINES) {
  Deno.test(`${implementation} AES-GCM rejects any altered byte, wrong nonce or wrong additional data`, async () => {
    const m = await material();
    const key = aesGcmKey(m, { implementation });
    const other = aesGcmKey(m, { implementation: "webcrypto" });
    const nonce = new Uint8Array(12);
    const aad = Uint8Array.of(9);
    const sealed = new Uint8Array(40 + TAG_BYTES);
    await other.seal(nonce, aad, [new Uint8Array(40).fill(7)], sealed);
    for (let at = 0; at < sealed.length; at++) {
      const altered = sealed.slice();
      altered[at]! ^= 1;
      assert.equal(await key.open(nonce, aad, altered), null, `byte ${at}`);
      assert.equal(await key.open(nonce, aad, altered, { inPlace: true }), null, `in place, ${at}`);
      const into = new Uint8Array(40).fill(0xee);
      assert.equal(await key.open(nonce, aad, altered, { into }), null, `into, ${at}`);
      assert.ok(into.every((x) => x === 0 || x === 0xee), "no unauthenticated plaintext");
    }
    for (let at = 0; at < 12; at++) {
      const wrong = nonce.slice();
      wrong[at]! ^= 0x80;
      assert.equal(await key.open(wrong, aad, sealed), null, `nonce byte ${at}`);
    }
    assert.equal(await key.open(nonce, Uint8Array.of(8), sealed), null, "other aad");
    assert.equal(await key.open(nonce, new Uint8Array(0), sealed), null, "no aad");
    assert.equal(await key.open(nonce, aad, sealed.subarray(0, 10)), null, "shorter than a tag");
    assert.equal(await key.open(nonce, aad, sealed.subarray(0, 40)), null, "tag cut off");
    assert.equal(await key.open(nonce, aad, sealed.subarray(1)), null, "a byte dropped");
    const inPlace = sealed.slice();
    assert.deepEqual(
      await key.open(nonce, aad, inPlace, { inPlace: true }),
      new Uint8Array(40).fill(7),
    );
  });
}

for (const implementation of ENGINES) {
  Deno.test(`${implementation} AES-GCM seals several frames at once on one key, each its own bytes`, async () => {
    // A session keeps several seals in flight (WebCrypto's run on other threads): each must
    // take its parts when called, since the caller reuses them at once.
    const m = await material();
    const key = aesGcmKey(m, { implementation });
    const reference = aesGcmKey(m, { implementation: "node" });
    const aad = Uint8Array.of(1, 4);
    const part = new Uint8Array(70_000);
    const frames = [0, 1, 2, 3].map((i) => {
      const nonce = new Uint8Array(12).fill(i);
      part.fill(i + 1); // the same part buffer, refilled before each seal
      const out = new Uint8Array(1 + part.length + TAG_BYTES);
      return { nonce, out, sealing: key.seal(nonce, aad, [Uint8Array.of(i), part], out) };
    });
    await Promise.all(frames.map((f) => f.sealing));
    for (const [i, { nonce, out }] of frames.entries()) {
      const want = new Uint8Array(out.length);
      reference.seal(nonce, aad, [Uint8Array.of(i), new Uint8Array(70_000).fill(i + 1)], want);
      const wrong = out.findIndex((byte, at) => byte !== want[at]); // no megabyte diff
      assert.equal(wrong, -1, `frame ${i} sealed its own plaintext (first wrong byte ${wrong})`);
    }
  });
}

Deno.test({
  name: "OpenSSL opening in place leaves no unauthenticated plaintext behind",
  ignore: !hasOpenSsl,
  fn: async () => {
    const ssl = aesGcmKey(await material(), { implementation: "openssl" });
    const nonce = new Uint8Array(12);
    const sealed = new Uint8Array(40 + TAG_BYTES);
    ssl.seal(nonce, Uint8Array.of(9), [new Uint8Array(40).fill(7)], sealed);
    sealed[40]! ^= 1; // the tag
    assert.equal(ssl.open(nonce, Uint8Array.of(9), sealed, { inPlace: true }), null);
    assert.ok(sealed.subarray(0, 40).every((x) => x === 0));
  },
});

Deno.test("without the ffi permission or a raw key the session falls back to WebCrypto", async () => {
  const m = await material();
  assert.equal(aesGcmKey({ key: m.key }).implementation, "webcrypto");
  assert.equal(aesGcmKey(m, { implementation: "webcrypto" }).implementation, "webcrypto");
  assert.throws(() => aesGcmKey({ key: m.key }, { implementation: "openssl" }), TypeError);
  assert.throws(() => aesGcmKey({ key: m.key }, { implementation: "node" }), TypeError);
  assert.equal(aesGcmKey(m, { implementation: "node" }).implementation, "node");
});

Deno.test("WebCrypto keyed from raw bytes takes its inputs when called, while its key is still being imported", async () => {
  const { raw } = await material();
  const reference = aesGcmKey({ raw }, { implementation: "node" });
  const nonce = crypto.getRandomValues(new Uint8Array(12));
  const aad = Uint8Array.of(1, 4, 0, 0, 0, 0, 0, 0, 0, 3);
  const part = filled(70_000);
  const want = new Uint8Array(part.length + TAG_BYTES);
  reference.seal(nonce, aad, [part], want);
  const expected = part.slice();

  // The session reuses its nonce, AAD and frame buffers as soon as seal() and open() return.
  const sealer = aesGcmKey({ raw }, { implementation: "webcrypto" });
  const out = new Uint8Array(want.length);
  const sealing = sealer.seal(nonce.slice(), aad.slice(), [part], out);
  part.fill(0);
  await sealing;
  assert.equal(out.findIndex((byte, at) => byte !== want[at]), -1, "sealed what it was given");

  const opener = aesGcmKey({ raw }, { implementation: "webcrypto" });
  const [n, a, sealed] = [nonce.slice(), aad.slice(), want.slice()];
  const opening = opener.open(n, a, sealed);
  n.fill(0);
  a.fill(0);
  sealed.fill(0);
  const opened = await opening;
  assert.ok(opened && opened.findIndex((byte, at) => byte !== expected[at]) === -1, "opened");
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
