/**
 * What the user is told when bytes that are no mailpeer data arrive on a peer link or in a
 * block: garbage is called garbage, and "run the same mailpeer version" is said only when a
 * version byte really names another mailpeer version (docs/cli.md "Honest errors").
 */
import assert from "node:assert/strict";
import { PeerError } from "../../src/errors.ts";
import { PEER_FRAME_VERSION, PROTOCOL_VERSION } from "../../src/protocol.ts";
import { blockKindOf } from "../../src/message/block.ts";
import { decodeDatagram, FrameDecoder } from "../../src/peer/frame.ts";

function frameErrorOf(decode: () => unknown): string {
  try {
    decode();
  } catch (err) {
    assert.ok(err instanceof PeerError && err.code === "EFRAME", String(err));
    return err.message;
  }
  assert.fail("decoded garbage without an error");
}

const text = (s: string) => new TextEncoder().encode(s);

Deno.test("another program on the peer's port is not blamed on a mailpeer version", () => {
  for (
    const garbage of [
      text("HTTP/1.1 400 Bad Request\r\n\r\n"),
      text("SSH-2.0-OpenSSH_9.6\r\n"),
      new Uint8Array([0, 0, 0, 8, 0x48, 1, 2, 3, 4, 5, 6, 7]), // a sane length, then junk
    ]
  ) {
    const message = frameErrorOf(() => new FrameDecoder().push(garbage));
    assert.match(message, /does not speak mailpeer/);
    assert.doesNotMatch(message, /same mailpeer version/);
  }
  const datagram = frameErrorOf(() => decodeDatagram(text("GET / HTTP/1.1")));
  assert.match(datagram, /does not speak mailpeer/);
});

Deno.test("random bytes mention a mailpeer version only when their version byte is one", () => {
  let seed = 0x2545f491;
  const next = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
  let versions = 0;
  for (let i = 0; i < 2000; i++) {
    const bytes = Uint8Array.from({ length: 2 + (i % 40) }, next);
    let message: string;
    try {
      decodeDatagram(bytes);
      continue;
    } catch (err) {
      message = (err as Error).message;
    }
    const isVersion = bytes[0]! >= 1 && bytes[0]! <= PEER_FRAME_VERSION + 2 &&
      bytes[0] !== PEER_FRAME_VERSION;
    assert.equal(/same mailpeer version/.test(message), isVersion, `${bytes}: ${message}`);
    if (isVersion) versions++;
  }
  assert.ok(versions > 0, "some random datagrams did carry a near version byte");
});

Deno.test("a peer of another frame version is told to run the same mailpeer version", () => {
  const older = PEER_FRAME_VERSION - 1;
  const stream = frameErrorOf(() =>
    new FrameDecoder().push(new Uint8Array([0, 0, 0, 2, older, 1]))
  );
  assert.match(
    stream,
    new RegExp(`frame version ${older}, this mailpeer version ${PEER_FRAME_VERSION}`),
  );
  assert.match(stream, /run the same mailpeer version on both ends/);
  assert.match(frameErrorOf(() => decodeDatagram(new Uint8Array([older, 1]))), /same mailpeer/);
});

Deno.test("a damaged block is called damaged; a block of another protocol version says so", () => {
  const block = (first: number) => {
    const b = new Uint8Array(200);
    b[0] = first;
    b[1] = 1;
    return b;
  };
  assert.throws(() => blockKindOf(block(0xa7)), (err: Error) => {
    assert.match(err.message, /version byte 167 is no mailpeer version; the mail was damaged/);
    return true;
  });
  assert.throws(() => blockKindOf(block(PROTOCOL_VERSION + 1)), (err: Error) => {
    assert.match(err.message, /run the same mailpeer version on both sides/);
    return true;
  });
});
