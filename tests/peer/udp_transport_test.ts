import assert from "node:assert/strict";
import { PeerError } from "../../src/errors.ts";
import { DEFAULT_CONNECT_TIMEOUT_MS } from "../../src/limits.ts";
import { PEER_FRAME_VERSION } from "../../src/protocol.ts";
import { FrameType } from "../../src/peer/frame.ts";
import { DEFAULT_MAX_DATAGRAM_BYTES, UdpTransport } from "../../src/peer/udp_transport.ts";
import { ManualClock } from "../support/manual_clock.ts";
import {
  makeIdentity,
  peerTransportConformance,
  rejectsWithCode,
} from "../conformance/peer_transport.ts";

peerTransportConformance("UdpTransport", (options) => new UdpTransport(options));

const LOCAL = { address: "127.0.0.1", port: 0 };
const text = (s: string) => new TextEncoder().encode(s);
const typeOf = (datagram: Uint8Array) => datagram[1];

/** A tiny seeded PRNG (xorshift32), so the loss pattern is reproducible. */
function xorshift32(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

/** A promise and the function that resolves it. */
function signal<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => resolve = r);
  return { promise, resolve };
}

Deno.test("the UDP handshake completes with 20 % of datagrams dropped on purpose", async () => {
  const random = xorshift32(0x2545f491);
  let seen = 0;
  let dropped = 0;
  const udp = new UdpTransport({
    backoff: () => 10,
    lossy: () => {
      seen++;
      const drop = random() < 0.2;
      if (drop) dropped++;
      return drop;
    },
  });
  const bob = await makeIdentity("bob");
  const listener = await udp.listen(LOCAL, { identity: bob });
  let completed = 0;
  try {
    for (let i = 0; i < 20; i++) {
      const alice = await makeIdentity(`alice${i}`);
      const [a, b] = await Promise.all([
        udp.connect(listener.endpoint, { identity: alice, expectedIdentityKey: bob.publicKey }),
        listener.accept(),
      ]);
      assert.equal(a.remote.userId, "bob");
      assert.equal(b.remote.userId, `alice${i}`);
      await a.close(); // DISCONNECT and its ACK face the same loss
      assert.equal(await b.receive(), null);
      await b.close();
      completed++;
    }
  } finally {
    await listener.close();
  }
  assert.equal(completed, 20);
  assert.ok(dropped > 0, "datagrams were really dropped");
  assert.ok(dropped / seen > 0.1 && dropped / seen < 0.3, `${dropped} of ${seen} dropped`);
});

Deno.test("a duplicate CONNECT gets the same CONNECT_ACK again and yields one link, not two", async () => {
  const acksSent: Uint8Array[] = [];
  const server = new UdpTransport({
    backoff: () => 60_000, // only the duplicate CONNECT can make the server answer again
    lossy: (direction, bytes) => {
      if (direction === "out" && typeOf(bytes) === FrameType.CONNECT_ACK) {
        acksSent.push(bytes.slice());
      }
      return false;
    },
  });
  let connectsSent = 0;
  let firstAckDropped = false;
  const client = new UdpTransport({
    backoff: () => 5,
    lossy: (direction, bytes) => {
      if (direction === "out" && typeOf(bytes) === FrameType.CONNECT) connectsSent++;
      if (direction === "in" && typeOf(bytes) === FrameType.CONNECT_ACK && !firstAckDropped) {
        firstAckDropped = true;
        return true;
      }
      return false;
    },
  });
  const listener = await server.listen(LOCAL, { identity: await makeIdentity("bob") });
  try {
    const [a, b] = await Promise.all([
      client.connect(listener.endpoint, { identity: await makeIdentity("alice") }),
      listener.accept(),
    ]);
    const [c, d] = await Promise.all([
      client.connect(listener.endpoint, { identity: await makeIdentity("carol") }),
      listener.accept(),
    ]);
    assert.equal(b.remote.userId, "alice");
    assert.equal(d.remote.userId, "carol", "the next accepted link is carol's, not alice again");
    assert.ok(connectsSent >= 3, "alice repeated her CONNECT");
    assert.ok(acksSent.length >= 3);
    assert.deepEqual(acksSent[1], acksSent[0], "the repeated answer is the same CONNECT_ACK");
    await a.send(text("one link"));
    assert.deepEqual(await b.receive(), text("one link"));
    await Promise.all([a.close(), b.close(), c.close(), d.close()]);
  } finally {
    await listener.close();
  }
});

Deno.test("garbage datagrams are dropped and the next peer still gets in", async () => {
  const dropped: unknown[] = [];
  const threeDropped = signal();
  const udp = new UdpTransport({
    onDropped: (err) => {
      dropped.push(err);
      if (dropped.length === 3) threeDropped.resolve();
    },
  });
  const listener = await udp.listen(LOCAL, { identity: await makeIdentity("bob") });
  const raw = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    const to = { transport: "udp" as const, hostname: "127.0.0.1", port: listener.endpoint.port };
    await raw.send(text("GET / HTTP/1.1\r\n\r\n"), to);
    await raw.send(Uint8Array.of(PEER_FRAME_VERSION, 99), to); // unknown frame type
    await raw.send(Uint8Array.of(PEER_FRAME_VERSION, FrameType.CONNECT, 0xff, 0xff), to); // broken CONNECT body
    await threeDropped.promise;
    assert.deepEqual(dropped.map((e) => (e as PeerError).code), ["EFRAME", "EFRAME", "EFRAME"]);

    const [a, b] = await Promise.all([
      udp.connect(listener.endpoint, { identity: await makeIdentity("alice") }),
      listener.accept(),
    ]);
    await a.send(text("ok"));
    assert.deepEqual(await b.receive(), text("ok"));
    await Promise.all([a.close(), b.close()]);
  } finally {
    raw.close();
    await listener.close();
  }
});

Deno.test("a peer with another identity key is refused with EIDENTITY and its half-open handshake is dropped", async () => {
  const clock = new ManualClock();
  const timedOut = signal<unknown>();
  const server = new UdpTransport({ clock, onDropped: (err) => timedOut.resolve(err) });
  const listener = await server.listen(LOCAL, { identity: await makeIdentity("bob") });
  try {
    await rejectsWithCode(
      new UdpTransport().connect(listener.endpoint, {
        identity: await makeIdentity("alice"),
        expectedIdentityKey: (await makeIdentity("bob")).publicKey,
      }),
      "EIDENTITY",
    );
    clock.advance(DEFAULT_CONNECT_TIMEOUT_MS);
    const err = await timedOut.promise;
    assert.ok(err instanceof PeerError);
    assert.equal(err.code, "ETIMEOUT");
  } finally {
    await listener.close();
  }
});

Deno.test("a refused peer learns it even when the refusal is lost, and the allow-list runs once", async () => {
  let refusalsSent = 0;
  const server = new UdpTransport({
    lossy: (direction, bytes) => {
      if (direction !== "out" || typeOf(bytes) !== FrameType.DISCONNECT) return false;
      return ++refusalsSent === 1; // the first refusal is lost
    },
  });
  const asked: string[] = [];
  const listener = await server.listen(LOCAL, {
    identity: await makeIdentity("bob"),
    accept: (peer) => {
      asked.push(peer.userId);
      return peer.userId === "alice";
    },
  });
  try {
    await assert.rejects(
      new UdpTransport({ backoff: () => 5 }).connect(listener.endpoint, {
        identity: await makeIdentity("mallory"),
      }),
      (err: unknown) =>
        err instanceof PeerError && err.code === "EPEER" && /refused/.test(err.message),
    );
    assert.ok(refusalsSent >= 2, "the refusal was sent again for the repeated CONNECT");
    assert.deepEqual(asked, ["mallory"]);
  } finally {
    await listener.close();
  }
});

Deno.test("a silent UDP peer is declared gone after idleTimeoutMs", async () => {
  const clock = new ManualClock();
  let pingsSent = 0;
  let pinged = signal();
  const client = new UdpTransport({
    clock,
    keepaliveMs: 15_000,
    idleTimeoutMs: 45_000,
    lossy: (direction, bytes) => {
      if (direction === "out" && typeOf(bytes) === FrameType.PING) {
        pingsSent++;
        pinged.resolve();
      }
      return false;
    },
  });
  let silent = false;
  const server = new UdpTransport({
    disconnectTimeoutMs: 20,
    lossy: (direction) => silent && direction === "out",
  });
  const listener = await server.listen(LOCAL, { identity: await makeIdentity("bob") });
  try {
    const [a, b] = await Promise.all([
      client.connect(listener.endpoint, { identity: await makeIdentity("alice") }),
      listener.accept(),
    ]);
    silent = true; // bob hears the PINGs but his PONGs never arrive
    let settled = false;
    const outcome = a.receive().then((v) => v, (err) => err).finally(() => settled = true);
    for (let tick = 1; tick <= 2; tick++) {
      clock.advance(15_000);
      await pinged.promise;
      pinged = signal();
      assert.equal(settled, false, `still connected after ${tick * 15} s`);
    }
    clock.advance(15_000);
    const err = await outcome;
    assert.ok(err instanceof PeerError, `expected a PeerError, got ${err}`);
    assert.equal(err.code, "EPEER");
    assert.match(err.message, /vanished/);
    assert.equal(pingsSent, 2);
    await rejectsWithCode(a.receive(), "EPEER");
    await a.close();
    silent = false;
    await b.close();
  } finally {
    await listener.close();
  }
});

Deno.test("a DISCONNECT whose ACK is lost is sent again and the other side's receive returns null", async () => {
  const disconnectsSent: Uint8Array[] = [];
  let acksArrived = 0;
  const client = new UdpTransport({
    backoff: () => 5,
    lossy: (direction, bytes) => {
      if (direction === "out" && typeOf(bytes) === FrameType.DISCONNECT) {
        disconnectsSent.push(bytes.slice());
      }
      if (direction === "in" && typeOf(bytes) === FrameType.DISCONNECT_ACK) {
        return ++acksArrived === 1; // the first DISCONNECT_ACK is lost
      }
      return false;
    },
  });
  const listener = await new UdpTransport().listen(LOCAL, { identity: await makeIdentity("bob") });
  try {
    const [a, b] = await Promise.all([
      client.connect(listener.endpoint, { identity: await makeIdentity("alice") }),
      listener.accept(),
    ]);
    await a.close();
    assert.equal(await b.receive(), null);
    assert.ok(disconnectsSent.length >= 2, "DISCONNECT was retransmitted");
    assert.deepEqual(disconnectsSent[1], disconnectsSent[0], "with the same bytes");
    assert.ok(acksArrived >= 2, "the repeated DISCONNECT was acknowledged again");
    await b.close();
  } finally {
    await listener.close();
  }
});

Deno.test("UDP data travels in datagrams of at most 1200 bytes and a lost one is sent again, in order", async () => {
  const dataSizes: number[] = [];
  let dropNextData = false;
  const udp = new UdpTransport({
    lossy: (direction, bytes) => {
      if (direction !== "out" || typeOf(bytes) !== FrameType.DATA) return false;
      dataSizes.push(bytes.length);
      const drop = dropNextData;
      dropNextData = false;
      return drop;
    },
  });
  const listener = await udp.listen(LOCAL, { identity: await makeIdentity("bob") });
  try {
    const [a, b] = await Promise.all([
      udp.connect(listener.endpoint, { identity: await makeIdentity("alice") }),
      listener.accept(),
    ]);
    const big = new Uint8Array(64 * 1024).map((_, i) => i % 251);
    await a.send(big);
    assert.deepEqual(await b.receive(), big);
    assert.ok(dataSizes.length > 50, "the message was split over many datagrams");
    assert.ok(Math.max(...dataSizes) <= DEFAULT_MAX_DATAGRAM_BYTES);

    dropNextData = true;
    await a.send(text("lost state 1"));
    await a.send(text("state 2"));
    assert.deepEqual(await b.receive(), text("lost state 1"));
    assert.deepEqual(await b.receive(), text("state 2"));
    await Promise.all([a.close(), b.close()]);
  } finally {
    await listener.close();
  }
});
