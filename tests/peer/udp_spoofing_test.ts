/**
 * Issue 12, from the attacker's side: datagrams forged with the source address and port a UDP
 * peer expects (injected through a relay on the path) must not end, stall or keep alive a link.
 */
import assert from "node:assert/strict";
import { PeerError } from "../../src/errors.ts";
import { DEFAULT_CONNECT_TIMEOUT_MS } from "../../src/limits.ts";
import type { Endpoint } from "../../src/message/types.ts";
import { encodeConnect, encodeData, NONCE_BYTES } from "../../src/peer/frame.ts";
import { encodeDatagram, FrameType } from "../../src/peer/frame.ts";
import type { PeerLink } from "../../src/peer/types.ts";
import { UdpTransport } from "../../src/peer/udp_transport.ts";
import { ManualClock } from "../support/manual_clock.ts";
import { makeIdentity } from "../conformance/peer_transport.ts";
import { type Direction, UdpRelay, type UdpRelayOptions } from "../support/udp_relay.ts";

const LOCAL = { address: "127.0.0.1", port: 0 };
const text = (s: string) => new TextEncoder().encode(s);

const typeOf = (datagram: Uint8Array) => datagram[1];

/** A promise and the function that resolves it. */
function signal<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => resolve = r);
  return { promise, resolve };
}

/**
 * Resolves once Alice has read every datagram injected to her before: the relay replays Bob's
 * CONNECT_ACK, which she answers with her ACK, and datagrams from one source are read in order.
 */
class ReadBarrier {
  connectAck: Uint8Array | undefined;
  #acked: { resolve: () => void } | null = null;

  /** Call from the relay's filter. */
  see(direction: Direction, bytes: Uint8Array): void {
    const type = typeOf(bytes);
    if (direction === "toClient" && type === FrameType.CONNECT_ACK) {
      this.connectAck ??= bytes.slice();
    }
    if (direction === "toListener" && type === FrameType.ACK) this.#acked?.resolve();
  }

  async pass(relay: UdpRelay): Promise<void> {
    const acked = signal();
    this.#acked = acked;
    await relay.inject("toClient", this.connectAck!);
    await acked.promise;
    this.#acked = null;
  }
}

/**
 * Alice (on `client`) connects to Bob's listener (on `server`, default the same transport)
 * through a relay that lets a test drop and inject datagrams.
 */
async function relayedPair(
  client: UdpTransport,
  options: UdpRelayOptions & { server?: UdpTransport } = {},
) {
  const listener = await (options.server ?? client).listen(LOCAL, {
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

/** A PONG, PING or DISCONNECT_ACK as an attacker who holds no session key can write it. */
const forged = (type: FrameType) => encodeDatagram({ type, body: new Uint8Array(0) });

Deno.test("spoofed PONGs do not keep a link to a vanished UDP peer alive", async () => {
  const clock = new ManualClock();
  let vanished = false;
  let pinged = signal();
  const barrier = new ReadBarrier();
  const { alice, relay, close } = await relayedPair(
    new UdpTransport({ clock, keepaliveMs: 15_000, idleTimeoutMs: 45_000 }),
    {
      server: new UdpTransport({ disconnectTimeoutMs: 20 }),
      filter: (direction, bytes) => {
        barrier.see(direction, bytes);
        if (direction === "toListener" && typeOf(bytes) === FrameType.PING) pinged.resolve();
        return !vanished; // Bob is gone: nothing reaches him and nothing comes back
      },
    },
  );
  try {
    vanished = true;
    const outcome = alice.receive().then((v) => v, (err) => err);
    for (let tick = 1; tick <= 2; tick++) {
      clock.advance(15_000);
      await pinged.promise; // Alice asks whether Bob is still there ...
      pinged = signal();
      await relay.inject("toClient", forged(FrameType.PONG)); // ... and the attacker answers
      await barrier.pass(relay);
    }
    clock.advance(15_000); // 45 s without a word from Bob
    const err = await Promise.race([
      outcome,
      pinged.promise.then(() => new Error("the link stayed up: Alice sent another PING")),
    ]);
    assert.ok(err instanceof PeerError, `expected EPEER "vanished", got ${err}`);
    assert.equal(err.code, "EPEER");
    assert.match(err.message, /vanished/);
  } finally {
    vanished = false;
    await close();
  }
});

Deno.test("a spoofed DISCONNECT_ACK does not end a UDP link before the peer got its DISCONNECT", async () => {
  const clock = new ManualClock();
  let dropped = false;
  let disconnectsForwarded = 0;
  const disconnectSeen = signal();
  const barrier = new ReadBarrier();
  const { alice, bob, relay, close } = await relayedPair(
    new UdpTransport({ clock, backoff: () => 1_000, disconnectTimeoutMs: 600_000 }),
    {
      server: new UdpTransport({ disconnectTimeoutMs: 20 }), // cleanup only
      filter: (direction, bytes) => {
        barrier.see(direction, bytes);
        if (direction === "toListener" && typeOf(bytes) === FrameType.DISCONNECT) {
          disconnectSeen.resolve();
          if (!dropped) return !(dropped = true); // the first DISCONNECT is lost
          disconnectsForwarded++;
        }
        return true;
      },
    },
  );
  try {
    const closing = alice.close();
    await disconnectSeen.promise;
    await relay.inject("toClient", forged(FrameType.DISCONNECT_ACK));
    await barrier.pass(relay);
    // Alice retransmits her DISCONNECT when her backoff timer fires, unless the forgery
    // stopped her: then her close() has settled and there is no timer to wait for.
    await Promise.race([clock.sleeping(2), closing]);
    clock.advance(1_000);
    await closing;
    assert.ok(disconnectsForwarded >= 1, "Bob got a DISCONNECT before Alice's close() ended");
    assert.equal(await bob.receive(), null, "Bob sees a clean disconnect");
  } finally {
    await close();
  }
});

/** A well-formed first CONNECT as an attacker writes it, claiming to come from `source`. */
function spoofedConnect(destination: Endpoint, source: Endpoint): Uint8Array {
  const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));
  return encodeDatagram({
    type: FrameType.CONNECT,
    body: encodeConnect({
      destination,
      source,
      userId: "mallory",
      identityKey: random(32),
      nonce: random(NONCE_BYTES),
      ephemeralKey: random(32),
    }),
  });
}

/** A raw socket standing for the host whose address the attacker puts on its CONNECTs. */
function victimSocket(): { conn: Deno.DatagramConn; endpoint: Endpoint } {
  const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const port = (conn.addr as Deno.NetAddr).port;
  return { conn, endpoint: { transport: "udp", address: "127.0.0.1", port } };
}

const addrOf = (e: Endpoint): Deno.NetAddr => ({
  transport: "udp",
  hostname: e.address,
  port: e.port,
});

Deno.test("a spoofed CONNECT earns its victim one answer no larger than itself, and no handshake state", async () => {
  const clock = new ManualClock();
  const listener = await new UdpTransport({ clock }).listen(LOCAL, {
    identity: await makeIdentity("bob"),
  });
  const victim = victimSocket();
  try {
    const connect = spoofedConnect(listener.endpoint, victim.endpoint);
    await victim.conn.send(connect, addrOf(listener.endpoint));
    const [answer] = await victim.conn.receive();
    assert.ok(
      answer.length <= connect.length,
      `a ${answer.length}-byte answer to a ${connect.length}-byte CONNECT`,
    );
    assert.equal(clock.sleepers, 0, "the listener runs no timer (no handshake) for it");
    // Whatever the listener had scheduled would leave before the answer to a second CONNECT.
    clock.advance(DEFAULT_CONNECT_TIMEOUT_MS);
    const probe = spoofedConnect(listener.endpoint, victim.endpoint);
    await victim.conn.send(probe, addrOf(listener.endpoint));
    const [next] = await victim.conn.receive();
    assert.equal(next.length, answer.length, "the next datagram answers the second CONNECT");
    assert.notDeepEqual(next, answer, "it is another answer, not a repeat of the first one");
  } finally {
    victim.conn.close();
    await listener.close();
  }
});

Deno.test("a flood of spoofed CONNECTs from 300 addresses does not keep a real peer from connecting", async () => {
  const clock = new ManualClock(); // the attackers' handshakes, if any, never time out
  const outcomes = new Map<number, () => void>();
  let flooded = false;
  const turnedAway = signal<unknown>();
  const udp = new UdpTransport({
    clock,
    onDropped: (err, from) => {
      if (flooded) turnedAway.resolve(err);
      outcomes.get(from.port)?.();
    },
  });
  const listener = await udp.listen(LOCAL, { identity: await makeIdentity("bob") });
  const victims = Array.from({ length: 300 }, victimSocket);
  try {
    await Promise.all(victims.map(async ({ conn, endpoint }) => {
      const dropped = new Promise<void>((resolve) => outcomes.set(endpoint.port, resolve));
      await conn.send(spoofedConnect(listener.endpoint, endpoint), addrOf(listener.endpoint));
      await Promise.race([conn.receive(), dropped]); // answered, or turned away
    }));
    flooded = true;
    const connected = Promise.all([
      new UdpTransport().connect(listener.endpoint, { identity: await makeIdentity("alice") }),
      listener.accept(),
    ]);
    const result = await Promise.race([
      connected,
      turnedAway.promise.then((err) => new Error(`the real peer was turned away: ${err}`)),
    ]);
    assert.ok(Array.isArray(result), `${result}`);
    const [a, b] = result;
    await a.send(text("made it"));
    assert.deepEqual(await b.receive(), text("made it"));
    await Promise.all([a.close(), b.close()]);
  } finally {
    for (const { conn } of victims) conn.close();
    await listener.close();
  }
});
