/**
 * Issue 13: the reliable stream of a UDP link, from the user's side and the attacker's. Datagrams
 * pass through a relay on the path that can drop, record and inject them with the source
 * address and port the victim expects.
 */
import assert from "node:assert/strict";
import { PeerError } from "../../src/errors.ts";
import { STREAM_STALL_TIMEOUT_MS } from "../../src/limits.ts";
import { encodeDatagram, FrameType } from "../../src/peer/frame.ts";
import type { ReliableLink } from "../../src/peer/reliable_link.ts";
import { UdpTransport } from "../../src/peer/udp_transport.ts";
import { ManualClock } from "../support/manual_clock.ts";
import { makeIdentity } from "../conformance/peer_transport.ts";
import { UdpRelay, type UdpRelayOptions } from "../support/udp_relay.ts";

const LOCAL = { address: "127.0.0.1", port: 0 };
const text = (s: string) => new TextEncoder().encode(s);
const typeOf = (datagram: Uint8Array) => datagram[1];

/** Alice connects to Bob's listener through a relay. */
async function relayedPair(client: UdpTransport, options: UdpRelayOptions = {}) {
  const listener = await new UdpTransport({ disconnectTimeoutMs: 50 }).listen(LOCAL, {
    identity: await makeIdentity("bob"),
  });
  const relay = UdpRelay.open(listener.endpoint, options);
  const [alice, bob] = await Promise.all([
    client.connect(relay.endpoint, { identity: await makeIdentity("alice") }),
    listener.accept(),
  ]);
  const close = async () => {
    await Promise.all([alice.close(), bob.close()]);
    await listener.close();
    await relay.close();
  };
  return { alice: alice as ReliableLink, bob, relay, close };
}

Deno.test("messages of every size arrive whole and in send order over a UDP link", async () => {
  const { alice, bob, close } = await relayedPair(new UdpTransport());
  try {
    const sizes = [0, 1, 1150, 1151, 5000, 64 * 1024, 300_000, 3];
    const messages = sizes.map((n, i) => new Uint8Array(n).fill(i + 1));
    await Promise.all(messages.map((m) => alice.send(m)));
    for (const m of messages) assert.deepEqual(await bob.receive(), m);
    await bob.send(text("got them"));
    assert.deepEqual(await alice.receive(), text("got them"));
  } finally {
    await close();
  }
});

Deno.test("replayed DATA and STREAM_ACK datagrams and forged acks deliver nothing twice and change nothing", async () => {
  const dataToBob: Uint8Array[] = [];
  const acksToAlice: Uint8Array[] = [];
  const { alice, bob, relay, close } = await relayedPair(new UdpTransport(), {
    filter: (direction, bytes) => {
      if (direction === "toListener" && typeOf(bytes) === FrameType.DATA) {
        dataToBob.push(bytes.slice());
      }
      if (direction === "toClient" && typeOf(bytes) === FrameType.STREAM_ACK) {
        acksToAlice.push(bytes.slice());
      }
      return true;
    },
  });
  try {
    await alice.send(text("one"));
    assert.deepEqual(await bob.receive(), text("one"));
    await alice.send(new Uint8Array(20_000).fill(2));
    assert.deepEqual(await bob.receive(), new Uint8Array(20_000).fill(2));
    assert.ok(dataToBob.length > 10 && acksToAlice.length > 2, "there is something to replay");
    for (const d of dataToBob) await relay.inject("toListener", d); // replays to Bob
    for (const a of acksToAlice) await relay.inject("toClient", a); // replays to Alice
    const forgedAck = encodeDatagram({
      type: FrameType.STREAM_ACK,
      body: new Uint8Array(8 + 11 + 16).fill(0xee), // cumulative and window far ahead
    });
    await relay.inject("toClient", forgedAck);
    await alice.send(text("three"));
    assert.deepEqual(await bob.receive(), text("three"), "nothing replayed was delivered again");
    await bob.send(text("back"));
    assert.deepEqual(await alice.receive(), text("back"));
    assert.equal(alice.stats.ignoredAcks, 0, "no forged or replayed ack reached the stream");
    assert.equal(alice.stats.retransmitted, 0, "no ack was faked into a retransmission");
  } finally {
    await close();
  }
});

Deno.test("a peer that stops acknowledging ends the UDP link with ETIMEOUT after the stall timeout", async () => {
  const clock = new ManualClock();
  let bobSilent = false;
  const { alice, close } = await relayedPair(
    new UdpTransport({ clock, keepaliveMs: 600_000, idleTimeoutMs: 600_000 }),
    { filter: (direction) => !(bobSilent && direction === "toClient") },
  );
  try {
    bobSilent = true;
    const start = clock.now();
    const outcome = alice.receive().then(() => null, (err) => err);
    await alice.send(text("anyone there?"));
    let err: unknown = null;
    while (err === null) {
      err = await Promise.race([outcome, clock.sleeping(2).then(() => null)]);
      if (err === null) clock.advance(clock.nextWakeIn!);
    }
    assert.ok(err instanceof PeerError, `expected a PeerError, got ${err}`);
    assert.equal(err.code, "ETIMEOUT");
    assert.match(err.message, /^Cannot send to peer bob: it acknowledged nothing for \d+ ms;/);
    assert.ok(clock.now() - start >= STREAM_STALL_TIMEOUT_MS);
    await assert.rejects(alice.send(text("more")), (e) => e === err);
  } finally {
    bobSilent = false;
    await close();
  }
});
