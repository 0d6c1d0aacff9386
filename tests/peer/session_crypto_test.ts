import assert from "node:assert/strict";
import { PeerError } from "../../src/errors.ts";
import { generateX25519, x25519 } from "../../src/message/keys.ts";
import { decodeData, encodeData } from "../../src/peer/frame.ts";
import { FrameType } from "../../src/peer/frame.ts";
import { CONTROL_REPLAY_WINDOW } from "../../src/limits.ts";
import { deriveSessionKeys, SessionCipher } from "../../src/peer/session_crypto.ts";
import { transcriptHash } from "../../src/peer/handshake.ts";

const text = (s: string) => new TextEncoder().encode(s);
const isFrameError = (err: unknown) => err instanceof PeerError && err.code === "EFRAME";

async function ciphers(options: { ordered?: boolean; otherHash?: boolean } = {}) {
  const a = await generateX25519();
  const b = await generateX25519();
  const hash = crypto.getRandomValues(new Uint8Array(32));
  const initiator = deriveSessionKeys(await x25519(a.privateKey, b.publicKey), hash, {
    role: "initiator",
  });
  const responderHash = options.otherHash ? crypto.getRandomValues(new Uint8Array(32)) : hash;
  const responder = deriveSessionKeys(
    await x25519(b.privateKey, a.publicKey),
    responderHash,
    { role: "responder" },
  );
  return {
    alice: new SessionCipher(initiator, { ordered: options.ordered }),
    bob: new SessionCipher(responder, { ordered: options.ordered }),
  };
}

Deno.test("data sealed by one side opens on the other, in both directions", async () => {
  const { alice, bob } = await ciphers();
  for (let i = 0; i < 3; i++) {
    const opened = await bob.open(await alice.seal(text(`to bob ${i}`)));
    assert.deepEqual(opened, { sequence: BigInt(i), plaintext: text(`to bob ${i}`) });
    assert.deepEqual(
      (await alice.open(await bob.seal(text(`to alice ${i}`)))).plaintext,
      text(`to alice ${i}`),
    );
  }
});

Deno.test("the plaintext is not visible in the DATA body and nonces never repeat", async () => {
  const { alice } = await ciphers();
  const secret = text("attack at dawn, attack at dawn");
  const first = await alice.seal(secret);
  const second = await alice.seal(secret);
  assert.equal(new TextDecoder().decode(first).includes("attack"), false);
  assert.notDeepEqual(decodeData(first).ciphertext, decodeData(second).ciphertext);
  assert.equal(first.length, 8 + secret.length + 16);
});

Deno.test("an altered DATA frame is rejected with EFRAME wherever the change is", async () => {
  for (const at of [0, 7, 8, 12, 8 + 16 + 15]) { // sequence, ciphertext, tag
    const { alice, bob } = await ciphers();
    const good = await alice.seal(text("pay bob 10 coins"));
    const altered = good.slice();
    altered[at]! ^= 0x01;
    await assert.rejects(bob.open(altered), isFrameError, `byte ${at}`);
    assert.deepEqual((await bob.open(good)).plaintext, text("pay bob 10 coins"), "still in sync");
  }
});

Deno.test("a replayed or reordered DATA frame is rejected on an ordered session", async () => {
  const { alice, bob } = await ciphers();
  const first = await alice.seal(text("1"));
  const second = await alice.seal(text("2"));
  await assert.rejects(bob.open(second), isFrameError);
  await bob.open(first);
  await assert.rejects(bob.open(first), isFrameError);
  assert.deepEqual((await bob.open(second)).plaintext, text("2"));
});

Deno.test("on an ordered session opens may overlap: each takes the next sequence when called", async () => {
  const { alice, bob } = await ciphers();
  const sealed = [];
  for (let i = 0; i < 4; i++) sealed.push(await alice.seal(text(`frame ${i}`)));
  const opening = sealed.slice(0, 3).map((body) => bob.open(body)); // none awaited yet
  const opened = await Promise.all(opening);
  assert.deepEqual(opened.map((o) => o.sequence), [0n, 1n, 2n]);
  assert.deepEqual(opened.map((o) => o.plaintext), [0, 1, 2].map((i) => text(`frame ${i}`)));
  const replay = bob.open(sealed[2]!); // started before the next one: still a replay
  const next = bob.open(sealed[3]!);
  await assert.rejects(replay, isFrameError);
  assert.equal((await next).sequence, 3n);
});

Deno.test("a DATA frame relabelled with another sequence number does not open", async () => {
  const { alice, bob } = await ciphers({ ordered: false });
  const body = decodeData(await alice.seal(text("x")));
  await assert.rejects(bob.open(encodeData({ ...body, sequence: 5n })), isFrameError);
});

Deno.test("an unordered (datagram) session accepts gaps but never replays", async () => {
  const { alice, bob } = await ciphers({ ordered: false });
  const frames = [
    await alice.seal(text("a")),
    await alice.seal(text("b")),
    await alice.seal(text("c")),
  ];
  assert.equal((await bob.open(frames[2]!)).sequence, 2n);
  await assert.rejects(bob.open(frames[0]!), isFrameError);
  await assert.rejects(bob.open(frames[2]!), isFrameError);
});

Deno.test("keys derived from another transcript cannot open the session's data", async () => {
  const { alice, bob } = await ciphers({ otherHash: true });
  await assert.rejects(bob.open(await alice.seal(text("hi"))), isFrameError);
});

Deno.test("a side cannot open its own data (one key per direction)", async () => {
  const { alice } = await ciphers();
  await assert.rejects(alice.open(await alice.seal(text("echo"))), isFrameError);
});

Deno.test("a sealed control frame opens once, out of order too, and never as another type", async () => {
  const { alice, bob } = await ciphers({ ordered: false });
  const first = await alice.sealControl(FrameType.DISCONNECT, text("bye"));
  const second = await alice.sealControl(FrameType.PING, new Uint8Array(0));
  assert.deepEqual(await bob.openControl(FrameType.PING, second), new Uint8Array(0));
  assert.equal(await bob.openControl(FrameType.PING, second), null, "a replay is dropped");
  assert.equal(await bob.openControl(FrameType.DISCONNECT_ACK, first), null, "type is bound");
  assert.deepEqual(await bob.openControl(FrameType.DISCONNECT, first), text("bye"), "late is ok");
  assert.equal(await bob.openControl(FrameType.DISCONNECT, first), null);
  const forged = first.slice();
  forged[forged.length - 1]! ^= 1;
  assert.equal(await alice.openControl(FrameType.DISCONNECT, forged), null);
  // DATA and control frames have nonces of their own: both sequences start at 0.
  assert.deepEqual((await bob.open(await alice.seal(text("data")))).plaintext, text("data"));
});

Deno.test("a control frame older than the replay window is dropped, a forged one moves nothing", async () => {
  const { alice, bob } = await ciphers({ ordered: false });
  const old = await alice.sealControl(FrameType.PONG, new Uint8Array(0));
  const sealed = [];
  for (let i = 0; i < CONTROL_REPLAY_WINDOW; i++) {
    sealed.push(await alice.sealControl(FrameType.PONG, new Uint8Array(0)));
  }
  const forged = encodeData({ sequence: 0xffff_ffff_ffff_ffffn, ciphertext: new Uint8Array(16) });
  assert.equal(await bob.openControl(FrameType.PONG, forged), null);
  assert.ok(await bob.openControl(FrameType.PONG, sealed[0]!), "the forgery moved no window");
  assert.ok(await bob.openControl(FrameType.PONG, sealed.at(-1)!));
  assert.equal(await bob.openControl(FrameType.PONG, old), null, "too old to tell: dropped");
});

Deno.test("session keys are HKDF-SHA256 of the shared secret, salted with the transcript hash (as WebCrypto derives them)", async () => {
  const secret = crypto.getRandomValues(new Uint8Array(32));
  const hash = crypto.getRandomValues(new Uint8Array(32));
  const ikm = await crypto.subtle.importKey("raw", secret, "HKDF", false, ["deriveBits"]);
  const okm = new Uint8Array(
    await crypto.subtle.deriveBits(
      {
        name: "HKDF",
        hash: "SHA-256",
        salt: hash,
        info: new TextEncoder().encode("mailpeer v1 session keys"),
      },
      ikm,
      512,
    ),
  );
  const initiator = deriveSessionKeys(secret, hash, { role: "initiator" });
  const responder = deriveSessionKeys(secret, hash, { role: "responder" });
  assert.deepEqual(initiator, { send: okm.slice(0, 32), receive: okm.slice(32) });
  assert.deepEqual(responder, { send: okm.slice(32), receive: okm.slice(0, 32) });
});

Deno.test("the transcript hash is SHA-256 of the domain, the CONNECT body and the CONNECT_ACK fields", async () => {
  const connect = crypto.getRandomValues(new Uint8Array(150));
  const fields = crypto.getRandomValues(new Uint8Array(90));
  const all = new Uint8Array([...text("mailpeer v1 handshake"), ...connect, ...fields]);
  const expected = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  assert.deepEqual(transcriptHash(connect, fields), expected);
  assert.notDeepEqual(transcriptHash(fields, connect), expected, "the order counts");
});
