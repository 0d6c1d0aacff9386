/**
 * The STUN/TURN codec's TURN half: any method and class, the TURN attributes,
 * MESSAGE-INTEGRITY and ChannelData, round trips and hostile inputs. (Binding messages are
 * tested in tests/terminal/stun_test.ts.)
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  checkStunIntegrity,
  decodeChannelData,
  decodeChannelNumber,
  decodeErrorCode,
  decodeStunMessage,
  decodeText,
  decodeUint32,
  decodeXorAddress,
  encodeChannelData,
  encodeChannelNumber,
  encodeErrorCode,
  encodeRequestedTransport,
  encodeStunMessage,
  encodeText,
  encodeUint32,
  encodeXorAddress,
  longTermKey,
  STUN_MAX_ATTRIBUTES,
  STUN_MAX_MESSAGE_BYTES,
  StunAttr,
  stunAttribute,
  StunClass,
  StunMethod,
  stunType,
} from "../../src/net/stun_message.ts";
import { stunFixture as fixture } from "../support/coturn.ts";

const TID = Uint8Array.from({ length: 12 }, (_, i) => i + 1);
const KEY = longTermKey("mailpeer", "mailpeer.test", "secret");
/** RFC 5769's short-term password: the key is the password itself. */
const RFC5769_KEY = new TextEncoder().encode("VOkJxbRl1RmTxUk/WvJxBt");

Deno.test("message types interleave method and class bits as RFC 8489 §5 draws them", () => {
  assert.equal(stunType(StunMethod.binding, StunClass.request), 0x0001);
  assert.equal(stunType(StunMethod.binding, StunClass.success), 0x0101);
  assert.equal(stunType(StunMethod.allocate, StunClass.request), 0x0003);
  assert.equal(stunType(StunMethod.allocate, StunClass.error), 0x0113);
  assert.equal(stunType(StunMethod.send, StunClass.indication), 0x0016);
  assert.equal(stunType(StunMethod.data, StunClass.indication), 0x0017);
  assert.equal(stunType(StunMethod.channelBind, StunClass.success), 0x0109);
  for (const method of Object.values(StunMethod)) {
    for (const cls of Object.values(StunClass)) {
      const packet = encodeStunMessage(method, cls, { transactionId: TID });
      const m = decodeStunMessage(packet)!;
      assert.equal(m.method, method);
      assert.equal(m.class, cls);
    }
  }
});

Deno.test("MESSAGE-INTEGRITY checks out on RFC 5769's vectors and fails on one flipped bit", () => {
  for (
    const name of ["rfc5769_request.hex", "rfc5769_response_ipv4.hex", "rfc5769_response_ipv6.hex"]
  ) {
    const packet = fixture(name);
    const m = decodeStunMessage(packet)!;
    assert.ok(checkStunIntegrity(packet, m, RFC5769_KEY), name);
    assert.ok(!checkStunIntegrity(packet, m, KEY), name);
    const flipped = new Uint8Array(packet);
    flipped[flipped.length - 20]! ^= 1; // inside MESSAGE-INTEGRITY; FINGERPRINT then fails too
    assert.equal(decodeStunMessage(flipped), undefined);
  }
});

Deno.test("an Allocate request round-trips with its TURN attributes and long-term integrity", () => {
  const peer = { family: "IPv4" as const, address: "192.0.2.7", port: 40001 };
  const peer6 = { family: "IPv6" as const, address: "2001:db8::7", port: 40002 };
  const packet = encodeStunMessage(StunMethod.allocate, StunClass.request, {
    transactionId: TID,
    attributes: [
      [StunAttr.REQUESTED_TRANSPORT, encodeRequestedTransport()],
      [StunAttr.LIFETIME, encodeUint32(600)],
      [StunAttr.XOR_PEER_ADDRESS, encodeXorAddress(peer, TID)],
      [StunAttr.XOR_RELAYED_ADDRESS, encodeXorAddress(peer6, TID)],
      [StunAttr.CHANNEL_NUMBER, encodeChannelNumber(0x4001)],
      [StunAttr.USERNAME, encodeText("mailpeer")],
      [StunAttr.REALM, encodeText("mailpeer.test")],
      [StunAttr.NONCE, encodeText("abc")],
      [StunAttr.DATA, Uint8Array.of(1, 2, 3)],
    ],
    integrityKey: KEY,
    fingerprint: true,
  });
  assert.equal(packet.length % 4, 0);
  const m = decodeStunMessage(packet)!;
  assert.ok(checkStunIntegrity(packet, m, KEY));
  assert.ok(!checkStunIntegrity(packet, m, longTermKey("mailpeer", "mailpeer.test", "wrong")));
  assert.deepEqual(stunAttribute(m, StunAttr.REQUESTED_TRANSPORT), Uint8Array.of(17, 0, 0, 0));
  assert.equal(decodeUint32(stunAttribute(m, StunAttr.LIFETIME)!), 600);
  assert.deepEqual(decodeXorAddress(stunAttribute(m, StunAttr.XOR_PEER_ADDRESS)!, TID), peer);
  assert.deepEqual(decodeXorAddress(stunAttribute(m, StunAttr.XOR_RELAYED_ADDRESS)!, TID), peer6);
  assert.equal(decodeChannelNumber(stunAttribute(m, StunAttr.CHANNEL_NUMBER)!), 0x4001);
  assert.equal(decodeText(stunAttribute(m, StunAttr.USERNAME)!), "mailpeer");
  assert.deepEqual(stunAttribute(m, StunAttr.DATA), Uint8Array.of(1, 2, 3));
  // The key is MD5("mailpeer:mailpeer.test:secret").
  assert.equal(KEY.length, 16);
});

Deno.test("attributes after MESSAGE-INTEGRITY are ignored, a tampered one fails integrity", () => {
  const packet = encodeStunMessage(StunMethod.refresh, StunClass.success, {
    transactionId: TID,
    attributes: [[StunAttr.LIFETIME, encodeUint32(600)]],
    integrityKey: KEY,
  });
  // An attacker appends LIFETIME 0 after MESSAGE-INTEGRITY (and fixes the length).
  const extra = Uint8Array.of(0x00, 0x0d, 0x00, 0x04, 0, 0, 0, 0);
  const longer = new Uint8Array(packet.length + 8);
  longer.set(packet);
  longer.set(extra, packet.length);
  new DataView(longer.buffer).setUint16(2, longer.length - 20);
  const m = decodeStunMessage(longer)!;
  assert.deepEqual(m.attributes.filter(([t]) => t === StunAttr.LIFETIME).length, 1);
  assert.ok(checkStunIntegrity(longer, m, KEY)); // MI covers only what precedes it
  // Changing a covered byte: integrity fails.
  const tampered = new Uint8Array(packet);
  tampered[27]! ^= 0xff; // the LIFETIME value
  assert.ok(!checkStunIntegrity(tampered, decodeStunMessage(tampered)!, KEY));
  // No MESSAGE-INTEGRITY at all: fails.
  const bare = encodeStunMessage(StunMethod.refresh, StunClass.success, { transactionId: TID });
  assert.ok(!checkStunIntegrity(bare, decodeStunMessage(bare)!, KEY));
});

Deno.test("ChannelData frames round-trip; bad channel numbers and lengths are refused", () => {
  const data = Uint8Array.of(9, 8, 7, 6, 5);
  const frame = encodeChannelData(0x4000, data);
  assert.deepEqual(Array.from(frame.subarray(0, 4)), [0x40, 0x00, 0x00, 0x05]);
  assert.deepEqual(decodeChannelData(frame), { channel: 0x4000, data });
  const padded = new Uint8Array(frame.length + 3);
  padded.set(frame);
  assert.deepEqual(decodeChannelData(padded)?.data, data); // up to 3 bytes of padding
  const tooLong = new Uint8Array(frame.length + 4);
  tooLong.set(frame);
  assert.equal(decodeChannelData(tooLong), undefined);
  assert.equal(decodeChannelData(frame.subarray(0, 6)), undefined); // truncated
  assert.equal(decodeChannelData(Uint8Array.of(0x50, 0, 0, 0)), undefined); // 0x5000: reserved
  assert.equal(decodeChannelData(Uint8Array.of(0x3f, 0xff, 0, 0)), undefined);
  assert.throws(() => encodeChannelData(0x5000, data), RangeError);
  assert.throws(() => encodeChannelNumber(0x3fff), RangeError);
  assert.equal(decodeChannelNumber(Uint8Array.of(0x50, 0, 0, 0)), undefined);
  assert.equal(decodeChannelNumber(Uint8Array.of(0x40, 0)), undefined);
});

Deno.test("hostile values: oversized text, bad error codes and short numbers decode to undefined", () => {
  assert.equal(decodeText(new Uint8Array(764)), undefined);
  assert.equal(decodeText(Uint8Array.of(0xff, 0xfe)), undefined); // not UTF-8
  assert.throws(() => encodeText("x".repeat(764)), RangeError);
  assert.deepEqual(decodeErrorCode(encodeErrorCode(438, "Stale Nonce")), {
    code: 438,
    reason: "Stale Nonce",
  });
  assert.equal(decodeErrorCode(Uint8Array.of(0, 0, 4)), undefined); // truncated
  assert.equal(decodeErrorCode(Uint8Array.of(0, 0, 4, 100)), undefined); // number over 99
  assert.equal(decodeErrorCode(Uint8Array.of(0, 0, 7, 0)), undefined); // class 7
  assert.equal(decodeErrorCode(Uint8Array.of(0, 0, 1, 0)), undefined); // class 1
  assert.throws(() => encodeErrorCode(200, "OK"), RangeError);
  assert.equal(decodeUint32(Uint8Array.of(0, 0, 1)), undefined);
  assert.equal(decodeXorAddress(Uint8Array.of(0, 1, 0, 0, 1, 2, 3), TID), undefined);
  assert.equal(decodeXorAddress(new Uint8Array(20), TID), undefined); // family 0
});

Deno.test("hostile messages: truncated, oversized or with too many attributes are not decoded", () => {
  const packet = encodeStunMessage(StunMethod.allocate, StunClass.success, {
    transactionId: TID,
    attributes: [[StunAttr.LIFETIME, encodeUint32(600)]],
    integrityKey: KEY,
  });
  for (let n = 0; n < packet.length; n++) {
    assert.equal(decodeStunMessage(packet.subarray(0, n)), undefined, `truncated to ${n}`);
  }
  // An attribute whose length runs past the end.
  const overrun = new Uint8Array(packet);
  new DataView(overrun.buffer).setUint16(22, 400);
  assert.equal(decodeStunMessage(overrun), undefined);
  // MESSAGE-INTEGRITY of the wrong size.
  const shortMi = encodeStunMessage(StunMethod.allocate, StunClass.success, {
    transactionId: TID,
    attributes: [[StunAttr.MESSAGE_INTEGRITY, new Uint8Array(16)]],
  });
  assert.equal(decodeStunMessage(shortMi), undefined);
  // Too many attributes.
  const many = (n: number) =>
    encodeStunMessage(StunMethod.data, StunClass.indication, {
      transactionId: TID,
      attributes: Array.from(
        { length: n },
        () => [0x8022, new Uint8Array()] as [number, Uint8Array],
      ),
    });
  assert.ok(decodeStunMessage(many(STUN_MAX_ATTRIBUTES)));
  assert.equal(decodeStunMessage(many(STUN_MAX_ATTRIBUTES + 1)), undefined);
  // Oversized: past the default limit unless the caller allows more (TURN's Data indications).
  const big = encodeStunMessage(StunMethod.data, StunClass.indication, {
    transactionId: TID,
    attributes: [[StunAttr.DATA, new Uint8Array(STUN_MAX_MESSAGE_BYTES)]],
  });
  assert.equal(decodeStunMessage(big), undefined);
  assert.ok(decodeStunMessage(big, { maxBytes: 65_535 }));
  assert.throws(
    () =>
      encodeStunMessage(StunMethod.data, StunClass.indication, {
        transactionId: TID,
        attributes: [[StunAttr.DATA, new Uint8Array(70_000)]],
      }),
    RangeError,
  );
});

Deno.test("random bytes never make the TURN decoders throw", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      const m = decodeStunMessage(bytes, { maxBytes: 65_535 });
      if (m) checkStunIntegrity(bytes, m, KEY);
      decodeChannelData(bytes);
      decodeErrorCode(bytes);
      decodeText(bytes);
      decodeXorAddress(bytes, TID);
    }),
    { numRuns: 2_000 },
  );
  // And valid-looking headers with random attribute bodies.
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 120 }), (body) => {
      const padded = new Uint8Array((body.length + 3) & ~3);
      padded.set(body);
      const packet = new Uint8Array(20 + padded.length);
      const view = new DataView(packet.buffer);
      view.setUint16(0, 0x0103);
      view.setUint16(2, padded.length);
      view.setUint32(4, 0x2112a442);
      packet.set(TID, 8);
      packet.set(padded, 20);
      const m = decodeStunMessage(packet);
      if (m) checkStunIntegrity(packet, m, KEY);
    }),
    { numRuns: 2_000 },
  );
});
