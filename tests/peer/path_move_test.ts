/**
 * A relayed session moves to a direct path while it runs (issue 14, docs/nat.md "Moving a session
 * to a direct path"): listener A speaks through its TURN relay on the loopback coturn, B reaches
 * it there, then both probe each other's direct address. Both links move, a stream in flight
 * arrives whole and in order, and what follows no longer crosses the relay. Skipped when no
 * coturn runs.
 */
import assert from "node:assert/strict";
import type { Endpoint } from "../../src/message/types.ts";
import { FrameType } from "../../src/peer/frame.ts";
import type { PathMove } from "../../src/peer/link_paths.ts";
import { TurnClient } from "../../src/peer/turn_client.ts";
import type { PeerLink } from "../../src/peer/types.ts";
import { UdpTransport, type UdpTransportOptions } from "../../src/peer/udp_transport.ts";
import { PEER_FRAME_VERSION } from "../../src/protocol.ts";
import { makeIdentity } from "../conformance/peer_transport.ts";
import { REAL_TURN } from "../support/coturn.ts";
import { silentPort } from "../support/silent_udp.ts";

const TURN = REAL_TURN;
const LOCAL = { address: "127.0.0.1", port: 0 };

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65_536) crypto.getRandomValues(out.subarray(i, i + 65_536));
  return out;
}

/** Reads `count` messages from `link` into one array. */
async function receiveAll(link: PeerLink, count: number): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const m = await link.receive();
    assert.ok(m, `message ${i} of ${count} never came`);
    out.push(m);
  }
  return out;
}

/** The next move of `link`. */
function nextMove(link: PeerLink): Promise<PathMove> {
  return new Promise((resolve) => {
    const off = link.paths!.onMove((move) => {
      off();
      resolve(move);
    });
  });
}

/**
 * Listener A speaks through its relay on the loopback coturn; B reaches it only there (A's
 * direct candidate for B is a closed NAT). `crossed()` counts what coturn sent to A's socket.
 */
async function relayedPair(options: { lossyA?: UdpTransportOptions["lossy"] } = {}) {
  const x = await makeIdentity("owner");
  const y = await makeIdentity("peer");
  const udp = new UdpTransport();
  const a = await new UdpTransport({ lossy: options.lossyA }).listen(LOCAL, { identity: x });
  const b = await udp.listen(LOCAL, { identity: y });
  const closedNat = silentPort();
  let crossed = 0;
  const tap = a.stunSocket().subscribe(() => crossed++);
  const turn = await TurnClient.allocate(
    { url: TURN!.url, user: TURN!.user, password: TURN!.password },
    { socket: a.stunSocket() },
  );
  a.attachRelay(turn);
  const [ra, rb] = await Promise.all([
    a.punch({ peerKey: y.publicKey, candidates: [{ ...closedNat.endpoint, kind: "srflx" }] }),
    b.punch({ peerKey: x.publicKey, candidates: [{ ...turn.relayed, kind: "relay" }] }),
  ]);
  return {
    a,
    b,
    ra,
    rb,
    turn,
    closedNat,
    crossed: () => crossed,
    async close() {
      await ra.link.close();
      await rb.link.close();
      tap();
      await a.close();
      await b.close();
      closedNat.close();
    },
  };
}

Deno.test({
  name: "a relayed session moves to a direct path mid-stream without losing a byte",
  ignore: !TURN,
  async fn() {
    const { a, b, ra, rb, turn, crossed, close } = await relayedPair();
    try {
      assert.equal(ra.path, "relayed");
      assert.equal(rb.path, "relayed");
      assert.equal(ra.link.paths?.relayed, true); // through A's own relay
      assert.equal(rb.link.paths?.relayed, true); // to A's relay candidate
      assert.deepEqual(rb.link.paths?.active.remote, turn.relayed);

      // 64 messages of 64 KiB in flight from A to B while the paths move.
      const messages = Array.from({ length: 64 }, () => randomBytes(64 * 1024));
      const receiving = receiveAll(rb.link, messages.length);
      const sending = (async () => {
        for (const m of messages) await ra.link.send(m);
      })();
      const moves = Promise.all([nextMove(ra.link), nextMove(rb.link)]);
      const [pa, pb] = await Promise.all([
        ra.link.paths!.probe([b.endpoint], { windowMs: 10_000 }),
        rb.link.paths!.probe([a.endpoint], { windowMs: 10_000 }),
      ]);
      const [ma, mb] = await moves;
      await sending;
      const got = await receiving;
      assert.equal(got.length, messages.length);
      got.forEach((m, i) => assert.deepEqual(m, messages[i], `message ${i} differs`));

      // A moved from its relay to B's own address, B from A's relayed address to A's own.
      assert.deepEqual(pa, ma);
      assert.deepEqual(pb, mb);
      assert.deepEqual([ma.from.route, ma.to.route], ["relay", "direct"]);
      assert.deepEqual(ma.to.remote, b.endpoint);
      assert.deepEqual(mb.from.remote, turn.relayed);
      assert.deepEqual(mb.to, { route: "direct", remote: a.endpoint });
      assert.deepEqual(ma.observed, a.endpoint); // how B saw A on the new path
      assert.equal(ra.link.paths!.relayed, false);
      assert.equal(rb.link.paths!.relayed, false);

      // From now on the session skips the relay: 256 KiB each way, at most a straggler relayed.
      const before = crossed();
      const more = randomBytes(256 * 1024);
      const [, there] = await Promise.all([ra.link.send(more), rb.link.receive()]);
      const [, back] = await Promise.all([rb.link.send(more), ra.link.receive()]);
      assert.deepEqual(there, more);
      assert.deepEqual(back, more);
      assert.ok(crossed() - before < 10, `${crossed() - before} datagrams still crossed the relay`);
      // Moved already: another probe has nothing to do.
      assert.equal(await ra.link.paths!.probe([b.endpoint]), null);
    } finally {
      await close();
    }
  },
});

Deno.test({
  name: "a probe to an address that never answers leaves the session on its relay, working",
  ignore: !TURN,
  async fn() {
    const { ra, rb, closedNat, close } = await relayedPair();
    try {
      // Only A probes, and only the dead address: the window ends, nothing moved.
      assert.equal(await ra.link.paths!.probe([closedNat.endpoint], { windowMs: 300 }), null);
      assert.equal(ra.link.paths!.relayed, true);
      assert.equal(ra.link.paths!.active.route, "relay");
      const hello = new TextEncoder().encode("still here");
      const [, got] = await Promise.all([ra.link.send(hello), rb.link.receive()]);
      assert.deepEqual(got, hello);
    } finally {
      await close();
    }
  },
});

Deno.test({
  name:
    "when the direct path dies, both ends fall back to the relay they left and the stream goes on",
  ignore: !TURN,
  async fn() {
    // A's socket drops every peer frame sent or received straight (a relay's datagrams are
    // STUN or ChannelData, never a bare frame) once `dead` is set: the direct path dies.
    let dead = false;
    const lossyA = (_: "in" | "out", bytes: Uint8Array) => dead && bytes[0] === PEER_FRAME_VERSION;
    const { a, b, ra, rb, turn, close } = await relayedPair({ lossyA });
    try {
      const up = Promise.all([nextMove(ra.link), nextMove(rb.link)]);
      await Promise.all([
        ra.link.paths!.probe([b.endpoint], { windowMs: 10_000 }),
        rb.link.paths!.probe([a.endpoint], { windowMs: 10_000 }),
      ]);
      await up;
      assert.equal(ra.link.paths!.relayed, false);

      const messages = Array.from({ length: 32 }, () => randomBytes(64 * 1024));
      const receiving = receiveAll(rb.link, messages.length);
      const down = Promise.all([nextMove(ra.link), nextMove(rb.link)]);
      const sending = (async () => {
        for (const [i, m] of messages.entries()) {
          if (i === 8) dead = true; // mid-stream
          await ra.link.send(m);
        }
      })();
      const [ma, mb] = await down;
      // A went back to its relay; B back to A's relayed address (A's challenge came that way).
      assert.deepEqual([ma.from.route, ma.to.route], ["direct", "relay"]);
      assert.deepEqual(mb.to, { route: "direct", remote: turn.relayed });
      assert.equal(ra.link.paths!.relayed, true);
      assert.equal(rb.link.paths!.relayed, true);
      await sending;
      const got = await receiving;
      got.forEach((m, i) => assert.deepEqual(m, messages[i], `message ${i} differs`));
    } finally {
      await close();
    }
  },
});

/** A UDP socket the test reads from: an attacker's, or a silent peer's. */
function socket() {
  const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const port = (conn.addr as Deno.NetAddr).port;
  return {
    conn,
    endpoint: { transport: "udp", address: "127.0.0.1", port } as Endpoint,
    send: (bytes: Uint8Array, to: Endpoint) =>
      conn.send(bytes, { transport: "udp", hostname: to.address, port: to.port }),
  };
}

Deno.test("a forged or replayed path frame from another address is never answered", async () => {
  const x = await makeIdentity("a");
  const y = await makeIdentity("b");
  // What reaches A's socket, as an on-path observer would see it.
  let sawChallenge!: (bytes: Uint8Array) => void;
  const challengeAtA = new Promise<Uint8Array>((resolve) => sawChallenge = resolve);
  const a = await new UdpTransport({
    lossy: (direction, bytes) => {
      if (direction === "in" && bytes[1] === FrameType.PATH_CHALLENGE) sawChallenge(bytes.slice());
      return false;
    },
  }).listen(LOCAL, { identity: x });
  const b = await new UdpTransport().listen(LOCAL, { identity: y });
  const mallory = socket();
  try {
    const [ra, rb] = await Promise.all([
      a.punch({ peerKey: y.publicKey, candidates: [{ ...b.endpoint, kind: "host" }] }),
      b.punch({ peerKey: x.publicKey, candidates: [{ ...a.endpoint, kind: "host" }] }),
    ]);
    // B takes its path to A for a relayed one, so it probes: A's address and one of Mallory's.
    rb.link.paths!.markRelayed(a.endpoint);
    const stop = new AbortController();
    const probing = rb.link.paths!.probe([mallory.endpoint, a.endpoint], { signal: stop.signal });
    const [toMallory] = await mallory.conn.receive(); // she learns the path id from it
    const toA = await challengeAtA; // and an on-path observer sees the one A got
    stop.abort(new Error("enough"));
    await probing.catch(() => {});
    assert.equal(toMallory[1], FrameType.PATH_CHALLENGE);

    // A forged challenge with the right path id but no session key, and A's own challenge
    // replayed from Mallory's address.
    const forged = new Uint8Array(2 + 8 + 8 + 40);
    forged.set(toMallory.subarray(0, 10));
    crypto.getRandomValues(forged.subarray(10));
    await mallory.send(forged, a.endpoint);
    await mallory.send(toA, a.endpoint);
    // B's next path frame comes after both: once A hands it on, A has dealt with them.
    const announced = new Promise((resolve) => ra.link.paths!.onCandidates(resolve));
    await rb.link.paths!.announce([{ ...b.endpoint, kind: "host" }]);
    assert.deepEqual(await announced, [{ ...b.endpoint, kind: "host" }]);

    // Nothing from A ever reached Mallory: a datagram from A's port would come before the one
    // she sends herself now.
    await mallory.send(new Uint8Array([0xff]), mallory.endpoint);
    for (;;) {
      const [bytes, from] = await mallory.conn.receive();
      const port = (from as Deno.NetAddr).port;
      assert.notEqual(port, a.endpoint.port, "A answered Mallory");
      if (port === mallory.endpoint.port && bytes.length === 1) break;
    }
    assert.equal(ra.link.paths!.active.remote.port, b.endpoint.port); // A never moved
    const hello = new TextEncoder().encode("hello");
    const [, got] = await Promise.all([ra.link.send(hello), rb.link.receive()]);
    assert.deepEqual(got, hello);
    await ra.link.close();
    await rb.link.close();
  } finally {
    await a.close();
    await b.close();
    mallory.conn.close();
  }
});
