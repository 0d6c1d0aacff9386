import assert from "node:assert/strict";
import {
  decodeDatagram,
  encodeDatagram,
  openDatagramChannel,
} from "../../src/apps/datagram_channel.ts";
import { FrameType } from "../../src/peer/frame.ts";
import { TcpTransport } from "../../src/peer/tcp_transport.ts";
import { UdpTransport } from "../../src/peer/udp_transport.ts";
import { makeIdentity, rejectsWithCode } from "../conformance/peer_transport.ts";
import { fakeLinkPair } from "./fake_link.ts";

const state = (n: number) => Uint8Array.of(n);
const text = (s: string) => new TextEncoder().encode(s);

Deno.test("a game state sent on one side is read on the other, numbered from 0", async () => {
  const { a, b } = fakeLinkPair({ transport: "udp" });
  const alice = openDatagramChannel(a);
  const bob = openDatagramChannel(b);
  await alice.send(state(42));
  assert.deepEqual(await bob.receive(), { sequence: 0n, data: state(42) });
  await bob.send(state(7));
  assert.deepEqual(await alice.receive(), { sequence: 0n, data: state(7) });
  await Promise.all([alice.close(), bob.close()]);
});

Deno.test("datagrams that arrive after a newer one are dropped as stale", async () => {
  const { b } = fakeLinkPair({ transport: "udp" });
  const bob = openDatagramChannel(b);
  b.inject(encodeDatagram(5n, state(5)));
  assert.deepEqual(await bob.receive(), { sequence: 5n, data: state(5) });
  b.inject(encodeDatagram(3n, state(3)));
  b.inject(encodeDatagram(5n, state(55)));
  b.inject(encodeDatagram(6n, state(6)));
  assert.deepEqual(await bob.receive(), { sequence: 6n, data: state(6) });
  assert.deepEqual(bob.stats, { sent: 0, received: 2, stale: 2, superseded: 0 });
  await bob.close();
});

Deno.test("a reader that falls behind gets only the newest state", async () => {
  const { a, b } = fakeLinkPair();
  const alice = openDatagramChannel(a);
  const bob = openDatagramChannel(b);
  for (let i = 0; i < 5; i++) await alice.send(state(i));
  await alice.close(); // ends bob's iteration once the newest state is read
  const seen = [];
  for await (const d of bob) seen.push(d);
  assert.deepEqual(seen, [{ sequence: 4n, data: state(4) }]);
  assert.equal(bob.stats.superseded, 4);
  assert.equal(alice.stats.sent, 5);
});

Deno.test("sequence numbers beyond 2^53 still order exactly (64-bit, no wrap)", async () => {
  const { b } = fakeLinkPair({ transport: "udp" });
  const bob = openDatagramChannel(b);
  const big = 2n ** 53n;
  b.inject(encodeDatagram(big + 1n, state(1)));
  assert.equal((await bob.receive())?.sequence, big + 1n);
  b.inject(encodeDatagram(big, state(0))); // equal to big + 1 as a float, but older
  b.inject(encodeDatagram(2n ** 64n - 1n, state(2)));
  assert.deepEqual(await bob.receive(), { sequence: 2n ** 64n - 1n, data: state(2) });
  assert.equal(bob.stats.stale, 1);
  assert.throws(() => encodeDatagram(2n ** 64n, state(0)), RangeError);
  await bob.close();
});

Deno.test("a datagram round-trips through its encoding", () => {
  const bytes = encodeDatagram(258n, Uint8Array.of(9, 8, 7));
  assert.deepEqual(decodeDatagram(bytes), { sequence: 258n, data: Uint8Array.of(9, 8, 7) });
  assert.deepEqual(decodeDatagram(bytes.subarray(0)), decodeDatagram(bytes.slice()));
});

Deno.test("a peer that sends something other than datagrams ends the channel with EFRAME", async () => {
  const { b } = fakeLinkPair();
  const bob = openDatagramChannel(b);
  b.inject(new TextEncoder().encode("hello"));
  await rejectsWithCode(bob.receive(), "EFRAME");
});

Deno.test("a state too large for one UDP datagram is refused before sending", async () => {
  const { a } = fakeLinkPair({ transport: "udp" });
  const alice = openDatagramChannel(a);
  await assert.rejects(alice.send(new Uint8Array(5000)), RangeError);
  await alice.send(new Uint8Array(1000));
  await alice.close();
});

Deno.test("game states flow over a real TCP link and closing ends the peer's iteration", async () => {
  const tcp = new TcpTransport();
  const listener = await tcp.listen({ address: "127.0.0.1", port: 0 }, {
    identity: await makeIdentity("bob"),
  });
  try {
    const [a, b] = await Promise.all([
      tcp.connect(listener.endpoint, { identity: await makeIdentity("alice") }),
      listener.accept(),
    ]);
    const alice = openDatagramChannel(a);
    const bob = openDatagramChannel(b);
    await alice.send(state(1));
    assert.deepEqual(await bob.receive(), { sequence: 0n, data: state(1) });
    await alice.send(state(2));
    await alice.close();
    const rest = [];
    for await (const d of bob) rest.push(d.sequence);
    assert.deepEqual(rest, [1n]);
    await bob.close();
  } finally {
    await listener.close();
  }
});

Deno.test("receive can be abandoned with a signal", async () => {
  const { b } = fakeLinkPair();
  const bob = openDatagramChannel(b);
  const stop = new AbortController();
  const waiting = bob.receive({ signal: stop.signal });
  stop.abort(new Error("frame deadline"));
  await assert.rejects(waiting, /frame deadline/);
  await bob.close();
});

Deno.test("over UDP game state takes the best-effort lane: a lost state is skipped, never resent, and chat on the same link still arrives", async () => {
  let datagramsOut = 0;
  const udp = new UdpTransport({
    lossy: (direction, bytes) => {
      if (direction !== "out" || bytes[1] !== FrameType.DATAGRAM) return false;
      return ++datagramsOut === 2; // the second state is lost on the way
    },
  });
  const listener = await udp.listen({ address: "127.0.0.1", port: 0 }, {
    identity: await makeIdentity("bob"),
  });
  const [a, b] = await Promise.all([
    udp.connect(listener.endpoint, { identity: await makeIdentity("alice") }),
    listener.accept(),
  ]);
  const sender = openDatagramChannel(a);
  const receiver = openDatagramChannel(b);
  try {
    await sender.send(text("state 0"));
    assert.deepEqual(await receiver.receive(), { sequence: 0n, data: text("state 0") });
    await sender.send(text("state 1")); // lost
    await a.send(text("chat beside the game"));
    assert.deepEqual(await b.receive(), text("chat beside the game"));
    await sender.send(text("state 2"));
    assert.deepEqual(await receiver.receive(), { sequence: 2n, data: text("state 2") });
    assert.equal(datagramsOut, 3, "nothing was sent again");
  } finally {
    await Promise.all([sender.close(), receiver.close()]);
    await listener.close();
  }
});
