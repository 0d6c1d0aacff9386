/**
 * Issue 12, from the attacker's side: datagrams forged with the source address and port a UDP
 * peer expects (injected through a relay on the path) must not end, stall or keep alive a link.
 */
import assert from "node:assert/strict";
import { encodeData, encodeDatagram, FrameType } from "../../src/peer/frame.ts";
import type { PeerLink } from "../../src/peer/types.ts";
import { UdpTransport } from "../../src/peer/udp_transport.ts";
import { makeIdentity } from "../conformance/peer_transport.ts";
import { type Direction, UdpRelay } from "../support/udp_relay.ts";

const LOCAL = { address: "127.0.0.1", port: 0 };
const text = (s: string) => new TextEncoder().encode(s);

/** Alice connects to Bob's listener through a relay that lets a test inject datagrams. */
async function relayedPair(udp: UdpTransport, options: Parameters<typeof UdpRelay.open>[1] = {}) {
  const listener = await udp.listen(LOCAL, { identity: await makeIdentity("bob") });
  const relay = UdpRelay.open(listener.endpoint, options);
  const [alice, bob] = await Promise.all([
    udp.connect(relay.endpoint, { identity: await makeIdentity("alice") }),
    listener.accept(),
  ]);
  const close = async () => {
    await Promise.all([alice.close(), bob.close()]);
    await listener.close();
    await relay.close();
  };
  return { alice, bob, relay, close };
}

/** DATA with the largest sequence number and a body that cannot authenticate. */
const FORGED_DATA = encodeDatagram({
  type: FrameType.DATA,
  body: encodeData({ sequence: 0xffff_ffff_ffff_ffffn, ciphertext: new Uint8Array(32).fill(7) }),
});

async function forgedDataChangesNothing(victim: "listener" | "client"): Promise<void> {
  const { alice, bob, relay, close } = await relayedPair(new UdpTransport());
  const [sender, receiver]: [PeerLink, PeerLink] = victim === "listener"
    ? [alice, bob]
    : [bob, alice];
  const toVictim: Direction = victim === "listener" ? "toListener" : "toClient";
  try {
    await sender.send(text("before"));
    assert.deepEqual(await receiver.receive(), text("before"));
    await relay.inject(toVictim, FORGED_DATA);
    await sender.send(text("after the forgery"));
    const closing = sender.close(); // its DISCONNECT follows the message on the same path
    assert.deepEqual(
      await receiver.receive(),
      text("after the forgery"),
      "the message sent after the forged datagram arrives",
    );
    await closing;
  } finally {
    await close();
  }
}

Deno.test("a forged DATA datagram with a huge sequence number does not stall the listener's side of a link", async () => {
  await forgedDataChangesNothing("listener");
});

Deno.test("a forged DATA datagram with a huge sequence number does not stall the connecting side of a link", async () => {
  await forgedDataChangesNothing("client");
});
