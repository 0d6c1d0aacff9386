/**
 * The UDP handshake channel's retransmission (src/peer/datagram_channel.ts), on a manual clock:
 * an initiator whose peer probes it (a punch, docs/nat.md) sends its pending CONNECT at once.
 */
import assert from "node:assert/strict";
import { DatagramFrameChannel } from "../../src/peer/datagram_channel.ts";
import { encodeConnect, NONCE_BYTES } from "../../src/peer/frame.ts";
import { encodeDatagram, FrameType } from "../../src/peer/frame.ts";
import { ManualClock } from "../support/manual_clock.ts";
import { makeIdentity } from "../conformance/peer_transport.ts";

Deno.test("an initiator probed by its peer sends its pending CONNECT at once, at most once per backoff step", async () => {
  const clock = new ManualClock();
  const sent: Uint8Array[] = [];
  const remote = { transport: "udp" as const, address: "192.0.2.8", port: 4000 };
  const channel = new DatagramFrameChannel({
    role: "initiator",
    remote,
    sendDatagram: (bytes) => {
      sent.push(bytes);
      return Promise.resolve();
    },
    clock,
    backoff: (n) => Math.min(100 * 2 ** n, 1000),
    keepaliveMs: 10_000,
    idleTimeoutMs: 30_000,
  });
  const peer = await makeIdentity("peer");
  const body = (destination: typeof remote) =>
    encodeConnect({
      destination,
      source: remote,
      userId: peer.userId,
      identityKey: peer.publicKey,
      nonce: new Uint8Array(NONCE_BYTES),
      ephemeralKey: new Uint8Array(32),
    });
  try {
    await channel.send({ type: FrameType.CONNECT, body: body(remote) });
    assert.equal(sent.length, 1);
    // The peer's probe: a CONNECT of its own, without cookie.
    const probe = { type: FrameType.CONNECT, body: body({ ...remote, port: 5000 }) };
    channel.deliver(probe, encodeDatagram(probe));
    assert.equal(sent.length, 2, "sent again at once, not after the 100 ms backoff");
    assert.deepEqual(sent[1], sent[0]);
    // Forged or repeated probes cannot make it send faster than its backoff.
    channel.deliver(probe, encodeDatagram(probe));
    assert.equal(sent.length, 2);
    clock.advance(100);
    await new Promise((resolve) => setTimeout(resolve, 0)); // the scheduled retransmission
    assert.equal(sent.length, 3);
    channel.deliver(probe, encodeDatagram(probe));
    assert.equal(sent.length, 4, "a probe one backoff step later counts again");
  } finally {
    channel.close();
  }
});

Deno.test("sendData puts an encoded DATA datagram on the wire as it is, and refuses once the channel is closed", async () => {
  const sent: Uint8Array[] = [];
  const channel = new DatagramFrameChannel({
    role: "initiator",
    remote: { transport: "udp", address: "192.0.2.8", port: 4000 },
    sendDatagram: (bytes) => {
      sent.push(bytes);
      return Promise.resolve();
    },
    clock: new ManualClock(),
    backoff: () => 100,
    keepaliveMs: 10_000,
    idleTimeoutMs: 30_000,
  });
  const datagram = encodeDatagram({ type: FrameType.DATA, body: Uint8Array.of(1, 2, 3) });
  await channel.sendData(datagram);
  assert.equal(sent.length, 1);
  assert.equal(sent[0], datagram, "the same bytes: no copy, no re-encoding");
  channel.close();
  await assert.rejects(channel.sendData(datagram), /the channel is closed; connect again/);
  assert.equal(sent.length, 1);
});
