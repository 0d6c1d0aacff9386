/**
 * A listener speaks through its TURN relay (issue 14): listener A holds an allocation on the
 * loopback coturn on its own socket (`attachRelay`), listener B is plain and punches to A's
 * relayed address like to any candidate. A's punch permits B's address; B's direct candidate
 * never answers (a closed NAT), so the only way is the relay. Both roles, a sealed reliable
 * stream, and nothing that crossed the relay holds the plaintext. Skipped when no coturn runs.
 */
import assert from "node:assert/strict";
import { PeerError } from "../../src/errors.ts";
import type { Endpoint } from "../../src/message/types.ts";
import { encodeConnect, NONCE_BYTES } from "../../src/peer/frame.ts";
import { encodeDatagram, FrameType } from "../../src/peer/frame.ts";
import { TurnClient } from "../../src/peer/turn_client.ts";
import type { PeerIdentity } from "../../src/peer/types.ts";
import type { ListenerRelay } from "../../src/peer/types.ts";
import { punchRole } from "../../src/peer/udp_punch.ts";
import { PUNCH_RELAY_DELAY_MS } from "../../src/limits.ts";
import { ManualClock } from "../support/manual_clock.ts";
import { UdpTransport } from "../../src/peer/udp_transport.ts";
import { makeIdentity } from "../conformance/peer_transport.ts";
import { REAL_TURN } from "../support/coturn.ts";
import { Events } from "../support/punch_events.ts";
import { silentPort } from "../support/silent_udp.ts";

const TURN = REAL_TURN;
const LOCAL = { address: "127.0.0.1", port: 0 };

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

async function relayedPunch(ownerControls: boolean) {
  const secret = new Uint8Array(256 * 1024);
  for (let i = 0; i < secret.length; i += 65_536) {
    crypto.getRandomValues(secret.subarray(i, i + 65_536));
  }
  const x = await makeIdentity("owner");
  const y = await makeIdentity("peer");
  const xControls = punchRole(x.publicKey, y.publicKey) === "controlling";
  const [ownerId, peerId]: [PeerIdentity, PeerIdentity] = xControls === ownerControls
    ? [x, y]
    : [y, x];
  const udp = new UdpTransport();
  const a = await udp.listen(LOCAL, { identity: ownerId });
  const b = await udp.listen(LOCAL, { identity: peerId });
  const closedNat = silentPort();
  // What crossed the relay: every datagram coturn sent to A's socket.
  const crossed: Uint8Array[] = [];
  const tap = a.stunSocket().subscribe((bytes) => crossed.push(new Uint8Array(bytes)));
  const turn = await TurnClient.allocate(
    { url: TURN!.url, user: TURN!.user, password: TURN!.password },
    { socket: a.stunSocket() },
  );
  a.attachRelay(turn);
  const events = new Events();
  try {
    const [ra, rb] = await Promise.all([
      // A knows B only at an address that does not answer; its punch permits that address.
      a.punch({
        peerKey: peerId.publicKey,
        candidates: [{ ...closedNat.endpoint, kind: "srflx" }],
        windowMs: 10_000,
        onEvent: events.on,
      }),
      // B knows nothing of TURN: A's relayed address is one more candidate.
      b.punch({
        peerKey: ownerId.publicKey,
        candidates: [{ ...turn.relayed, kind: "relay" }],
        windowMs: 10_000,
      }),
    ]);
    assert.equal(ra.role, ownerControls ? "controlling" : "controlled");
    assert.deepEqual(turn.permissions, ["127.0.0.1"]);
    assert.equal(ra.path, "relayed");
    assert.equal(rb.path, "relayed");
    assert.deepEqual(ra.local, turn.relayed); // the owner's end of the pair is the relay
    assert.deepEqual(ra.remote, b.endpoint); // B's real address, as coturn saw it
    assert.deepEqual(rb.remote, turn.relayed);
    assert.equal(ra.link.remote.userId, peerId.userId);
    assert.equal(rb.link.remote.userId, ownerId.userId);
    if (ownerControls) assert.deepEqual(ra.reached, turn.relayed); // learned from B's probe
    // A reliable stream through the relay, both ways.
    const [, got] = await Promise.all([ra.link.send(secret), rb.link.receive()]);
    assert.deepEqual(got, secret);
    await rb.link.send(new TextEncoder().encode("and back"));
    assert.equal(new TextDecoder().decode((await ra.link.receive())!), "and back");
    // Sealed end to end: coturn relayed ChannelData, never the plaintext.
    assert.ok(crossed.some((d) => d[0]! >= 0x40 && d[0]! <= 0x4f));
    assert.equal(crossed.some((d) => contains(d, secret.subarray(0, 32))), false);
    assert.equal(events.list.some((e) => e.type === "permit-failed"), false);
    await ra.link.close();
    await rb.link.close();
  } finally {
    tap();
    await a.close(); // releases the relay, then closes the socket
    await b.close();
    closedNat.close();
  }
  assert.equal(turn.closed, true);
}

Deno.test({
  name: "a plain peer reaches a listener through its relay when the owner controls the punch",
  ignore: !TURN,
  fn: () => relayedPunch(true),
});

Deno.test({
  name: "a plain peer reaches a listener through its relay when the peer controls the punch",
  ignore: !TURN,
  fn: () => relayedPunch(false),
});

Deno.test({
  name: "two listeners with relays, punching to each other's relayed address at the same moment, " +
    "end up on one and the same link",
  ignore: !TURN,
  async fn() {
    // As behind two symmetric NATs: no direct candidate answers, and two pairs work at once,
    // A to B's relayed address and A's relay to B (learned from B's probe to A's relay).
    const x = await makeIdentity("xavier");
    const y = await makeIdentity("yvonne");
    const [low, high] = punchRole(x.publicKey, y.publicKey) === "controlling" ? [x, y] : [y, x];
    const clock = new ManualClock();
    const udp = new UdpTransport({ clock });
    const a = await udp.listen(LOCAL, { identity: low });
    const b = await udp.listen(LOCAL, { identity: high });
    const closedA = silentPort();
    const closedB = silentPort();
    const server = { url: TURN!.url, user: TURN!.user, password: TURN!.password };
    const turnA = await TurnClient.allocate(server, { socket: a.stunSocket() });
    const turnB = await TurnClient.allocate(server, { socket: b.stunSocket() });
    a.attachRelay(turnA);
    b.attachRelay(turnB);
    // Permitted up front, so that the first datagram through either relay gets through.
    await Promise.all([turnA.permit("127.0.0.1"), turnB.permit("127.0.0.1")]);
    try {
      const punches = Promise.all([
        a.punch({
          peerKey: high.publicKey,
          candidates: [{ ...closedB.endpoint, kind: "srflx" }, { ...turnB.relayed, kind: "relay" }],
        }),
        b.punch({
          peerKey: low.publicKey,
          candidates: [{ ...closedA.endpoint, kind: "srflx" }, { ...turnA.relayed, kind: "relay" }],
        }),
      ]);
      // Both relay candidates start now: A's CONNECT to B's relayed address, B's probe to A's.
      clock.advance(PUNCH_RELAY_DELAY_MS);
      const [ra, rb] = await punches;
      assert.equal(ra.path, "relayed");
      assert.equal(rb.path, "relayed");
      // One pair at both ends: either A's relay to B, or A to B's relayed address.
      const same = (p: Endpoint, q: Endpoint) => p.address === q.address && p.port === q.port;
      assert.ok(
        same(ra.local, turnA.relayed) && same(rb.remote, turnA.relayed) ||
          same(ra.remote, turnB.relayed) && same(rb.local, turnB.relayed),
        `A: ${JSON.stringify([ra.local, ra.remote])} B: ${JSON.stringify([rb.local, rb.remote])}`,
      );
      await ra.link.send(new TextEncoder().encode("from A"));
      assert.equal(new TextDecoder().decode((await rb.link.receive())!), "from A");
      await rb.link.send(new TextEncoder().encode("from B"));
      assert.equal(new TextDecoder().decode((await ra.link.receive())!), "from B");
      await ra.link.close();
      await rb.link.close();
    } finally {
      await a.close();
      await b.close();
      closedA.close();
      closedB.close();
    }
  },
});

/** A relay in memory: records what is asked of it and lets the test deliver datagrams. */
function fakeRelay() {
  const listeners = new Set<(peer: Endpoint, bytes: Uint8Array) => void>();
  const calls: string[] = [];
  let closed = false;
  const relay: ListenerRelay = {
    relayed: { transport: "udp", address: "192.0.2.7", port: 50_000 },
    get closed() {
      return closed;
    },
    permit: (peer) => {
      calls.push(`permit ${typeof peer === "string" ? peer : peer.address}`);
      return peer === "198.51.100.9"
        ? Promise.reject(new PeerError("ERELAY", "refused"))
        : Promise.resolve();
    },
    bindChannel: (peer) => {
      calls.push(`bind ${peer.address}:${peer.port}`);
      return Promise.resolve(0x4000);
    },
    send: (peer, bytes) => {
      calls.push(`send ${peer.address}:${peer.port} ${bytes.length}`);
      return Promise.resolve();
    },
    onData: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close: () => {
      calls.push("close");
      closed = true;
      return Promise.resolve();
    },
  };
  return {
    relay,
    calls,
    deliver: (p: Endpoint, b: Uint8Array) => listeners.forEach((l) => l(p, b)),
  };
}

Deno.test("a punch permits each distinct candidate address on the listener's relay; a refusal is an event", async () => {
  const a = await new UdpTransport().listen(LOCAL, { identity: await makeIdentity("owner") });
  const fake = fakeRelay();
  a.attachRelay(fake.relay);
  assert.throws(() => a.attachRelay(fake.relay), /has one already/);
  const events = new Events();
  const stop = new AbortController();
  const punching = a.punch({
    peerKey: (await makeIdentity("peer")).publicKey,
    candidates: [
      { transport: "udp", address: "127.0.0.1", port: 9, kind: "host" },
      { transport: "udp", address: "198.51.100.9", port: 40_000, kind: "srflx" },
      { transport: "udp", address: "198.51.100.9", port: 40_001, kind: "srflx" },
    ],
    windowMs: 60_000,
    onEvent: events.on,
    signal: stop.signal,
  });
  const refused = await events.next((e) => e.type === "permit-failed");
  assert.deepEqual(fake.calls.filter((c) => c.startsWith("permit")), [
    "permit 127.0.0.1",
    "permit 198.51.100.9",
  ]);
  assert.equal(refused.type === "permit-failed" && refused.address, "198.51.100.9");
  stop.abort(new Error("enough"));
  await assert.rejects(punching, /enough/);
  await a.close();
  assert.equal(fake.calls.at(-1), "close"); // the listener released its relay
});

Deno.test("a first CONNECT that came through the relay gets its COOKIE back through the relay", async () => {
  const a = await new UdpTransport().listen(LOCAL, { identity: await makeIdentity("owner") });
  const fake = fakeRelay();
  a.attachRelay(fake.relay);
  // B's real socket: anything A sends it directly would arrive here.
  const direct = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const from: Endpoint = {
    transport: "udp",
    address: "127.0.0.1",
    port: (direct.addr as Deno.NetAddr).port,
  };
  try {
    // A plain client's first CONNECT, as coturn would deliver it.
    const peer = await makeIdentity("peer");
    const connect = encodeDatagram({
      type: FrameType.CONNECT,
      body: encodeConnect({
        destination: fake.relay.relayed,
        source: from,
        userId: peer.userId,
        identityKey: peer.publicKey,
        nonce: crypto.getRandomValues(new Uint8Array(NONCE_BYTES)),
        ephemeralKey: crypto.getRandomValues(new Uint8Array(32)),
      }),
    });
    fake.deliver(from, connect);
    // The stateless COOKIE went back through the relay, to the address coturn saw.
    assert.deepEqual(fake.calls.filter((c) => c.startsWith("send")).length, 1);
    assert.match(fake.calls[0]!, new RegExp(`^send 127\\.0\\.0\\.1:${from.port} \\d+$`));
  } finally {
    direct.close();
    await a.close();
  }
});
