import assert from "node:assert/strict";
import fc from "fast-check";
import { PeerError } from "../../src/errors.ts";
import { MAX_FRAME_BYTES, PEER_FRAME_VERSION } from "../../src/protocol.ts";
import type { Endpoint } from "../../src/message/types.ts";
import {
  type ConnectBody,
  decodeAck,
  decodeConnect,
  decodeConnectAck,
  decodeConnectWithCookie,
  decodeCookie,
  decodeData,
  decodeDisconnect,
  decodeStreamAck,
  encodeAck,
  encodeConnect,
  encodeConnectAck,
  encodeConnectWithCookie,
  encodeCookie,
  encodeData,
  encodeDisconnect,
  encodeStreamAck,
} from "../../src/peer/frame.ts";
import {
  decodeDatagram,
  decodeFrame,
  encodeDatagram,
  encodeFrame,
  type Frame,
  FrameDecoder,
  FrameReader,
  FrameType,
  MAX_FRAME_BODY_BYTES,
} from "../../src/peer/frame.ts";

const frameArb: fc.Arbitrary<Frame> = fc.record({
  type: fc.constantFrom(...Object.values(FrameType)),
  body: fc.uint8Array({ maxLength: 600 }),
}, { noNullPrototype: true });
const endpointArb: fc.Arbitrary<Endpoint> = fc.record({
  transport: fc.constantFrom("tcp" as const, "udp" as const),
  address: fc.oneof(fc.ipV4(), fc.ipV6()),
  port: fc.integer({ min: 0, max: 65535 }),
}, { noNullPrototype: true });
const userIdArb = fc.string({ minLength: 1, maxLength: 8, unit: "grapheme" });
const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });

function isFrameError(err: unknown): boolean {
  return err instanceof PeerError && err.code === "EFRAME" &&
    /^Cannot .+: .+; .+/.test(err.message);
}

Deno.test("every frame survives a round trip as a stream frame and as a datagram", () => {
  fc.assert(fc.property(frameArb, (frame) => {
    assert.deepEqual(decodeFrame(encodeFrame(frame)), frame);
    assert.deepEqual(decodeDatagram(encodeDatagram(frame)), frame);
  }));
});

Deno.test("a stream frame is length-prefixed and carries the protocol version", () => {
  const wire = encodeFrame({ type: FrameType.PING, body: Uint8Array.of(9, 8) });
  assert.deepEqual(wire, Uint8Array.of(0, 0, 0, 4, PEER_FRAME_VERSION, FrameType.PING, 9, 8));
});

Deno.test("the stream decoder yields the same frames however the bytes are split", () => {
  fc.assert(fc.property(
    fc.array(frameArb, { maxLength: 8 }),
    fc.array(fc.nat(), { maxLength: 12 }),
    (frames, cuts) => {
      const wire = frames.map(encodeFrame);
      const all = new Uint8Array(wire.reduce((n, w) => n + w.length, 0));
      let at = 0;
      for (const w of wire) {
        all.set(w, at);
        at += w.length;
      }
      const points = [...new Set(cuts.map((c) => c % (all.length + 1)))].sort((a, b) => a - b);
      const decoder = new FrameDecoder();
      const out: Frame[] = [];
      let from = 0;
      for (const p of [...points, all.length]) {
        out.push(...decoder.push(all.subarray(from, p)));
        from = p;
      }
      assert.deepEqual(out, frames);
      assert.equal(decoder.buffered, 0);
    },
  ));
});

Deno.test("the reused-buffer reader yields the same frames, as views, however reads split", () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          type: fc.constantFrom(...Object.values(FrameType)),
          body: fc.oneof(
            fc.uint8Array({ maxLength: 600 }),
            fc.integer({ min: 60_000, max: MAX_FRAME_BODY_BYTES }).map((n) =>
              new Uint8Array(n).fill(n & 0xff)
            ),
          ),
        }, { noNullPrototype: true }),
        { maxLength: 8 },
      ),
      fc.array(fc.integer({ min: 1, max: 400_000 }), { minLength: 1, maxLength: 20 }),
      (frames, reads) => {
        const wire = frames.map(encodeFrame);
        const all = new Uint8Array(wire.reduce((n, w) => n + w.length, 0));
        let at = 0;
        for (const w of wire) {
          all.set(w, at);
          at += w.length;
        }
        const reader = new FrameReader();
        const out: Frame[] = [];
        let from = 0;
        for (let i = 0; from < all.length; i++) {
          const space = reader.space();
          assert.ok(space.length > 0);
          const n = Math.min(space.length, reads[i % reads.length]!, all.length - from);
          space.set(all.subarray(from, from + n));
          reader.filled(n);
          from += n;
          for (let frame = reader.next(); frame; frame = reader.next()) {
            out.push({ type: frame.type, body: frame.body.slice() }); // valid until space()
          }
        }
        assert.deepEqual(out, frames);
        assert.equal(reader.buffered, 0);
      },
    ),
    { numRuns: 60 },
  );
});

Deno.test("the reader rejects a bad header as soon as it is in", () => {
  const reader = new FrameReader();
  const space = reader.space();
  space.set([0, 4, 0, 1]); // 262,145 bytes: one more than the limit
  reader.filled(4);
  assert.throws(() => reader.next(), isFrameError);
  const other = new FrameReader();
  other.space().set([0, 0, 1, 0, PEER_FRAME_VERSION + 1]);
  other.filled(5);
  assert.throws(() => other.next(), isFrameError);
});

Deno.test("the stream decoder rejects an oversize length before its body arrives", () => {
  const header = new Uint8Array(4);
  new DataView(header.buffer).setUint32(0, MAX_FRAME_BYTES + 1);
  assert.throws(() => new FrameDecoder().push(header), isFrameError);
});

Deno.test("garbage, wrong versions and unknown types are rejected with EFRAME", () => {
  const decoder = () => new FrameDecoder();
  assert.throws(() => decoder().push(new TextEncoder().encode("GET / HTTP/1.1\r\n")), isFrameError);
  assert.throws(() => decoder().push(Uint8Array.of(0, 0, 0, 2, 99, 1)), isFrameError);
  assert.throws(
    () => decoder().push(Uint8Array.of(0, 0, 0, 2, PEER_FRAME_VERSION, 0)),
    isFrameError,
  );
  assert.throws(() => decoder().push(Uint8Array.of(0, 0, 0, 1, PEER_FRAME_VERSION)), isFrameError);
  assert.throws(() => decodeDatagram(Uint8Array.of(PEER_FRAME_VERSION)), isFrameError);
  assert.throws(
    () => decodeDatagram(Uint8Array.of(PEER_FRAME_VERSION + 1, FrameType.DATA)),
    isFrameError,
  );
  assert.throws(() => decodeFrame(Uint8Array.of(0, 0, 0, 3, PEER_FRAME_VERSION, 1)), isFrameError);
  assert.throws(
    () => decodeFrame(Uint8Array.of(0, 0, 0, 2, PEER_FRAME_VERSION, 1, 7)),
    isFrameError,
  );
});

Deno.test("arbitrary bytes never crash a decoder: a frame or EFRAME", () => {
  const decoders = [
    decodeDatagram,
    decodeFrame,
    decodeConnect,
    decodeConnectAck,
    decodeAck,
    decodeData,
    decodeDisconnect,
  ];
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (input) => {
    for (const decode of decoders) {
      try {
        decode(input);
      } catch (err) {
        assert.ok(isFrameError(err), `${decode.name}: ${err}`);
      }
    }
  }));
});

Deno.test("handshake bodies survive a round trip", () => {
  fc.assert(fc.property(
    endpointArb,
    endpointArb,
    userIdArb,
    bytes(32),
    bytes(16),
    bytes(32),
    bytes(64),
    (destination, source, userId, identityKey, nonce, ephemeralKey, signature) => {
      const connect: ConnectBody = {
        destination,
        source,
        userId,
        identityKey,
        nonce,
        ephemeralKey,
      };
      assert.deepEqual(decodeConnect(encodeConnect(connect)), connect);
      const ack = { userId, identityKey, nonce, ephemeralKey, signature };
      assert.deepEqual(decodeConnectAck(encodeConnectAck(ack)), ack);
      assert.deepEqual(decodeAck(encodeAck(signature)), signature);
    },
  ));
});

Deno.test("DATA bodies and DISCONNECT reasons survive a round trip", () => {
  fc.assert(fc.property(
    fc.bigInt({ min: 0n, max: 0xffff_ffff_ffff_ffffn }),
    fc.uint8Array({ maxLength: 100 }),
    fc.string({ maxLength: 40 }),
    (sequence, ciphertext, reason) => {
      assert.deepEqual(decodeData(encodeData({ sequence, ciphertext })), { sequence, ciphertext });
      assert.equal(decodeDisconnect(encodeDisconnect(reason)), reason);
    },
  ));
});

Deno.test("a truncated or padded CONNECT is rejected with EFRAME", () => {
  const body = encodeConnect({
    destination: { transport: "tcp", address: "192.0.2.1", port: 4000 },
    source: { transport: "tcp", address: "2001:db8::1", port: 5000 },
    userId: "alice",
    identityKey: new Uint8Array(32),
    nonce: new Uint8Array(16),
    ephemeralKey: new Uint8Array(32),
  });
  assert.throws(() => decodeConnect(body.subarray(0, body.length - 1)), isFrameError);
  assert.throws(() => decodeConnect(Uint8Array.of(...body, 0)), isFrameError);
});

Deno.test("encoding refuses what the decoder would reject (caller bugs are RangeErrors)", () => {
  const big = new Uint8Array(MAX_FRAME_BODY_BYTES + 1);
  assert.throws(() => encodeFrame({ type: FrameType.DATA, body: big }), RangeError);
  assert.throws(() => encodeAck(new Uint8Array(63)), RangeError);
  assert.throws(
    () =>
      encodeConnectAck({
        userId: "x".repeat(65),
        identityKey: new Uint8Array(32),
        nonce: new Uint8Array(16),
        ephemeralKey: new Uint8Array(32),
        signature: new Uint8Array(64),
      }),
    RangeError,
  );
  const longest = encodeFrame({ type: FrameType.DATA, body: new Uint8Array(MAX_FRAME_BODY_BYTES) });
  assert.equal(decodeFrame(longest).body.length, MAX_FRAME_BODY_BYTES);
});

Deno.test("a long DISCONNECT reason is cut to the limit without breaking UTF-8", () => {
  const reason = "é".repeat(200); // 400 bytes
  const body = encodeDisconnect(reason);
  assert.ok(body.length <= 256);
  assert.ok(reason.startsWith(decodeDisconnect(body)));
});

Deno.test("a UDP CONNECT carries the listener's cookie after its body, and a COOKIE only the cookie", () => {
  const connect: ConnectBody = {
    destination: { transport: "udp", address: "192.0.2.1", port: 4000 },
    source: { transport: "udp", address: "2001:db8::1", port: 5000 },
    userId: "alice",
    identityKey: new Uint8Array(32).fill(1),
    nonce: new Uint8Array(16).fill(2),
    ephemeralKey: new Uint8Array(32).fill(3),
  };
  const body = encodeConnect(connect);
  const cookie = new Uint8Array(16).fill(9);
  assert.deepEqual(decodeConnectWithCookie(body), { connect, connectBytes: body, cookie: null });
  assert.deepEqual(decodeConnectWithCookie(encodeConnectWithCookie(body, cookie)), {
    connect,
    connectBytes: body,
    cookie,
  });
  assert.throws(() => decodeConnectWithCookie(Uint8Array.of(...body, 1, 2)), isFrameError);
  assert.deepEqual(decodeCookie(encodeCookie(cookie)), cookie);
  assert.throws(() => decodeCookie(cookie.subarray(1)), isFrameError);
  assert.throws(() => encodeCookie(new Uint8Array(15)), RangeError);
  const datagram = encodeDatagram({ type: FrameType.COOKIE, body: encodeCookie(cookie) });
  assert.ok(datagram.length < encodeDatagram({ type: FrameType.CONNECT, body }).length);
});

Deno.test("a reader limited for a handshake refuses a longer frame at its header, and takes it once allowed", () => {
  const limited = () => new FrameReader({ capacity: 4 + 4096, maxFrameBytes: 4096 });
  const reader = limited();
  reader.space().set([0, 0, 0x10, 0x01]); // 4097 bytes announced
  reader.filled(4);
  assert.throws(() => reader.next(), isFrameError);
  const big = encodeFrame({ type: FrameType.DATA, body: new Uint8Array(60_000).fill(3) });
  const allowed = limited();
  allowed.space().set(big.subarray(0, 1000));
  allowed.filled(1000);
  allowed.allow();
  for (let at = 1000; at < big.length;) {
    const space = allowed.space();
    const n = Math.min(space.length, big.length - at);
    space.set(big.subarray(at, at + n));
    allowed.filled(n);
    at += n;
  }
  assert.equal(allowed.next()?.body.length, 60_000);
});

Deno.test("a STREAM_ACK round-trips, and a malformed one is EFRAME", () => {
  const ack = { cumulative: 2 ** 40 + 5, window: 1024, ranges: [[2 ** 40 + 7, 2 ** 40 + 9]] } as {
    cumulative: number;
    window: number;
    ranges: [number, number][];
  };
  const bytes = encodeStreamAck(ack, 16);
  assert.equal(bytes.length, 11 + 10);
  assert.deepEqual(decodeStreamAck(bytes, 16), ack);
  assert.throws(() => decodeStreamAck(bytes.subarray(0, 10), 16), isFrameError);
  assert.throws(() => decodeStreamAck(bytes.subarray(0, 20), 16), isFrameError);
  assert.throws(() => decodeStreamAck(bytes, 0), isFrameError, "more ranges than allowed");
  const empty = bytes.slice();
  empty.set([0, 0, 0, 0], 17); // a range of length 0
  assert.throws(() => decodeStreamAck(empty, 16), isFrameError);
  assert.throws(() => encodeStreamAck({ ...ack, ranges: [[1, 2], [3, 4]] }, 1), RangeError);
});
