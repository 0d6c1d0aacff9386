/**
 * Introductions (issue 13) from the attacker's side: only an introduction sealed to our
 * introduction key, signed by one of our hosts, for our network and current request, inside
 * its punch window, is ever accepted.
 */
import assert from "node:assert/strict";
import { MessageError } from "../../src/errors.ts";
import { MAX_PUNCH_WINDOW_MS } from "../../src/protocol.ts";
import { sealSignedBlock } from "../../src/message/block.ts";
import { candidatePriority } from "../../src/message/candidate.ts";
import {
  decodeIntroduction,
  encodeIntroduction,
  openIntroduction,
  sealIntroduction,
} from "../../src/message/introduction.ts";
import { generateHostKeys, hostCardOf } from "../../src/message/key_file.ts";
import { generateX25519 } from "../../src/message/keys.ts";
import type { IntroductionPayload } from "../../src/message/types.ts";
import { assertMessageError } from "./helpers.ts";

const NOW = Date.UTC(2026, 11, 4, 12);

async function setup() {
  const hostKeys = await generateHostKeys("host@intro.test");
  const key = await generateX25519();
  const sessionId = crypto.getRandomValues(new Uint8Array(16));
  const payload: IntroductionPayload = {
    network: "net",
    hostId: hostKeys.ed25519.publicKey,
    sessionId,
    createdAt: NOW,
    peer: {
      userId: "alice",
      identityKey: crypto.getRandomValues(new Uint8Array(32)),
      candidates: [{
        transport: "udp",
        address: "203.0.113.5",
        port: 61_000,
        type: "srflx",
        priority: candidatePriority("srflx"),
      }],
    },
    peerSessionId: crypto.getRandomValues(new Uint8Array(16)),
    punchStart: NOW + 5_000,
    punchEnd: NOW + 65_000,
  };
  const check = {
    introductionPrivateKey: key.privateKey,
    hosts: [hostCardOf(hostKeys)],
    network: "net",
    sessionId,
    now: NOW,
  };
  return { hostKeys, key, payload, check };
}

Deno.test("an introduction from our host opens to exactly what it sent", async () => {
  const { hostKeys, key, payload, check } = await setup();
  assert.deepStrictEqual(decodeIntroduction(encodeIntroduction(payload)), payload);
  const block = await sealIntroduction(payload, { hostKeys, introductionKey: key.publicKey });
  const { introduction, host } = await openIntroduction(block, check);
  assert.deepStrictEqual(introduction, payload);
  assert.equal(host.email, "host@intro.test");
});

Deno.test("a forged, misdirected, replayed, expired or foreign introduction is refused", async () => {
  const { hostKeys, key, payload, check } = await setup();
  const seal = (p: IntroductionPayload) =>
    sealIntroduction(p, { hostKeys, introductionKey: key.publicKey });
  // Signed by another host that claims our host's id.
  const mallory = await generateHostKeys("mallory@intro.test");
  const forged = await sealSignedBlock("introduction", encodeIntroduction(payload), {
    signer: mallory.ed25519.privateKey,
    recipient: key.publicKey,
  });
  await assertMessageError(() => openIntroduction(forged, check), "ESIGNATURE");
  // Signed by a host we did not ask, naming itself.
  const other = await sealIntroduction({ ...payload, hostId: mallory.ed25519.publicKey }, {
    hostKeys: mallory,
    introductionKey: key.publicKey,
  });
  await assertMessageError(() => openIntroduction(other, check), "ESIGNATURE");
  // Sealed to someone else's introduction key.
  const elsewhere = await sealIntroduction(payload, {
    hostKeys,
    introductionKey: (await generateX25519()).publicKey,
  });
  await assertMessageError(() => openIntroduction(elsewhere, check), "ESEAL");
  // For an earlier request of ours.
  const stale = await seal({ ...payload, sessionId: new Uint8Array(16) });
  await assertMessageError(() => openIntroduction(stale, check), "ESESSION");
  // Its punch window is over.
  const expired = await seal({ ...payload, punchStart: NOW - 70_000, punchEnd: NOW - 10_000 });
  await assertMessageError(() => openIntroduction(expired, check), "ESTALE");
  // For another network.
  const foreign = await seal({ ...payload, network: "other" });
  await assertMessageError(() => openIntroduction(foreign, check), "EPAYLOAD", /network other/);
  // A request block is not an introduction, whatever it holds.
  const wrongKind = await sealSignedBlock("reply", encodeIntroduction(payload), {
    signer: hostKeys.ed25519.privateKey,
    recipient: key.publicKey,
  });
  await assertMessageError(() => openIntroduction(wrongKind, check), "EBLOCK");
});

Deno.test("an introduction's fields are checked strictly before it is sealed or opened", async () => {
  const { payload } = await setup();
  const bad: [string, IntroductionPayload, RegExp][] = [
    ["window backwards", { ...payload, punchEnd: payload.punchStart }, /punch window/],
    [
      "window too long",
      { ...payload, punchEnd: payload.punchStart + MAX_PUNCH_WINDOW_MS + 1 },
      /punch window/,
    ],
    [
      "a user id with a newline",
      { ...payload, peer: { ...payload.peer, userId: "a\nb" } },
      /peer\.userId/,
    ],
    [
      "a short key",
      { ...payload, peer: { ...payload.peer, identityKey: new Uint8Array(31) } },
      /identityKey/,
    ],
    [
      "nine candidates",
      {
        ...payload,
        peer: {
          ...payload.peer,
          candidates: Array.from(
            { length: 9 },
            (_, i) => ({ ...payload.peer.candidates[0]!, port: 1000 + i }),
          ),
        },
      },
      /candidates has 9 entries/,
    ],
  ];
  for (const [what, p, message] of bad) {
    assert.throws(() => encodeIntroduction(p), (err: unknown) => {
      assert.ok(err instanceof MessageError, what);
      assert.equal(err.code, "EPAYLOAD", what);
      assert.match(err.message, message, what);
      return true;
    });
  }
  const wire = JSON.parse(new TextDecoder().decode(encodeIntroduction(payload)));
  delete wire.peer;
  await assertMessageError(
    () => decodeIntroduction(new TextEncoder().encode(JSON.stringify(wire))),
    "EPAYLOAD",
    /peer is missing/,
  );
});
