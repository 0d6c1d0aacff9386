/**
 * The UDP socket wrapper of src/peer/udp_listener.ts: it reads every datagram into one reused
 * buffer and hands on copies (DATA ones share a slab), so what it handed on must never change
 * when later datagrams arrive; and DATA decodes without a copy but with the same checks.
 */
import assert from "node:assert/strict";
import { decodeDatagram, encodeDatagram, FrameType } from "../../src/peer/frame.ts";
import { decodeUdpDatagram, UdpSocket } from "../../src/peer/udp_listener.ts";
import { PeerError } from "../../src/errors.ts";

Deno.test("datagrams handed on by a UDP socket keep their bytes while later ones arrive", async () => {
  const receiver = UdpSocket.open({ address: "127.0.0.1", port: 0 }, undefined);
  const sender = UdpSocket.open({ address: "127.0.0.1", port: 0 }, undefined);
  const sent: Uint8Array[] = [];
  for (let i = 0; i < 40; i++) { // DATA of varied sizes (several slabs), a PING among them
    const type = i % 10 === 9 ? FrameType.PING : FrameType.DATA;
    const body = new Uint8Array(100 + (i * 397) % 1100).fill(i);
    sent.push(encodeDatagram({ type, body }));
  }
  const got: Uint8Array[] = [];
  let done!: () => void;
  const all = new Promise<void>((resolve) => done = resolve);
  const running = receiver.run((bytes) => {
    got.push(bytes);
    if (got.length === sent.length) done();
  });
  try {
    for (const d of sent) await sender.send(d, receiver.endpoint); // loopback: in order
    await all;
    assert.deepEqual(got, sent, "each as it was sent, after all the others arrived");
  } finally {
    receiver.close();
    sender.close();
    await running;
  }
});

Deno.test("decodeUdpDatagram gives DATA's body as a view of the datagram, and checks everything as decodeDatagram does", () => {
  const data = encodeDatagram({ type: FrameType.DATA, body: Uint8Array.of(1, 2, 3) });
  const frame = decodeUdpDatagram(data);
  assert.deepEqual(frame, decodeDatagram(data));
  assert.equal(frame.body.buffer, data.buffer, "no copy");
  const ping = encodeDatagram({ type: FrameType.PING, body: Uint8Array.of(4) });
  assert.deepEqual(decodeUdpDatagram(ping), decodeDatagram(ping));
  const otherVersion = data.slice();
  otherVersion[0] = 99;
  assert.throws(() => decodeUdpDatagram(otherVersion), PeerError);
  assert.throws(() => decodeUdpDatagram(Uint8Array.of(1)), PeerError);
});
