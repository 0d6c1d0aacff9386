/**
 * UDP hole punching from a listener's socket (issue 13), on 127.0.0.1 with injected clocks:
 * two listeners punch to each other at the same time and get exactly one link; decoys that
 * never answer and a listener with the wrong key do not stop them; the window ends with a
 * `PeerError`; and a punch cannot be turned into an amplifier, a scanner or an open door.
 */
import assert from "node:assert/strict";
import { PeerError } from "../../src/errors.ts";
import {
  PUNCH_MAX_CANDIDATES,
  PUNCH_MAX_PEER_REFLEXIVE,
  PUNCH_MAX_STAGGER_MS,
  PUNCH_MAX_WINDOW_MS,
  PUNCH_RELAY_DELAY_MS,
  PUNCH_STAGGER_MS,
} from "../../src/limits.ts";
import type { Endpoint } from "../../src/message/types.ts";
import { encodeConnect, NONCE_BYTES } from "../../src/peer/frame.ts";
import { encodeDatagram, FrameType } from "../../src/peer/frame.ts";
import type { PeerIdentity } from "../../src/peer/types.ts";
import { pathKindOf, pathKindOfKind, punchRole, UdpPunch } from "../../src/peer/udp_punch.ts";
import { Events } from "../support/punch_events.ts";
import { silentPort } from "../support/silent_udp.ts";
import { UdpTransport } from "../../src/peer/udp_transport.ts";
import { ManualClock } from "../support/manual_clock.ts";
import { decodeBindingRequest, encodeBindingResponse } from "../../src/net/stun_message.ts";
import { StunAddress } from "../../src/terminal/stun.ts";
import { makeIdentity, rejectsWithCode } from "../conformance/peer_transport.ts";

const LOCAL = { address: "127.0.0.1", port: 0 };
const text = (s: string) => new TextEncoder().encode(s);

/** Two identities, ordered so that `low` is the controlling side. */
async function pair(): Promise<{ low: PeerIdentity; high: PeerIdentity }> {
  const x = await makeIdentity("xavier");
  const y = await makeIdentity("yvonne");
  return punchRole(x.publicKey, y.publicKey) === "controlling"
    ? { low: x, high: y }
    : { low: y, high: x };
}

const same = (a: Endpoint, b: Endpoint) => a.address === b.address && a.port === b.port;

Deno.test("two listeners punching to each other get one link, past a silent decoy and a wrong key", async () => {
  const clock = new ManualClock();
  const udp = new UdpTransport({ clock });
  const { low, high } = await pair();
  const stranger = await makeIdentity("mallory");
  const a = await udp.listen(LOCAL, { identity: low });
  const b = await udp.listen(LOCAL, { identity: high });
  const impostor = await udp.listen(LOCAL, { identity: stranger });
  const silent = silentPort();
  const silentToo = silentPort();
  const events = new Events();
  try {
    const punchA = a.punch({
      peerKey: high.publicKey,
      candidates: [silent.endpoint, impostor.endpoint, b.endpoint],
      onEvent: events.on,
    });
    const punchB = b.punch({
      peerKey: low.publicKey,
      candidates: [silentToo.endpoint, { ...a.endpoint, kind: "host" }],
    });
    // Candidate 0 at once, then one more every stagger: not one full timeout after another.
    assert.deepEqual(events.list.map((e) => e.type), ["attempt"]);
    clock.advance(PUNCH_STAGGER_MS);
    const refused = await events.next((e) => e.type === "failed");
    assert.ok(refused.type === "failed" && same(refused.remote, impostor.endpoint));
    assert.ok(refused.error instanceof PeerError && refused.error.code === "EIDENTITY");
    clock.advance(PUNCH_STAGGER_MS);
    const [won, answered] = await Promise.all([punchA, punchB]);

    assert.equal(won.role, "controlling");
    assert.equal(answered.role, "controlled");
    assert.deepEqual(won.link.remote.identityKey, high.publicKey);
    assert.deepEqual(answered.link.remote.identityKey, low.publicKey);
    assert.ok(same(won.remote, b.endpoint) && same(won.local, a.endpoint));
    assert.ok(same(answered.remote, a.endpoint) && same(answered.local, b.endpoint));
    assert.equal(won.path, "punched");
    assert.equal(answered.path, "host", "B listed A's endpoint as a host candidate");

    await won.link.send(text("hello from A"));
    assert.deepEqual(await answered.link.receive(), text("hello from A"));
    await answered.link.send(text("hello from B"));
    assert.deepEqual(await won.link.receive(), text("hello from B"));
    await won.link.close();
    assert.equal(await answered.link.receive(), null);
  } finally {
    silent.close();
    silentToo.close();
    await Promise.all([a.close(), b.close(), impostor.close()]);
  }
});

Deno.test("a peer whose handshake arrived before its punch started gets that link from punch()", async () => {
  const udp = new UdpTransport({ clock: new ManualClock() });
  const { low, high } = await pair();
  const a = await udp.listen(LOCAL, { identity: low });
  const b = await udp.listen(LOCAL, { identity: high });
  try {
    // B has not had the host's introduction yet: A's CONNECTs meet a plain standby listener.
    const won = await a.punch({ peerKey: high.publicKey, candidates: [b.endpoint] });
    const late = await b.punch({ peerKey: low.publicKey, candidates: [a.endpoint] });
    assert.equal(late.role, "controlled");
    assert.deepEqual(late.link.remote.identityKey, low.publicKey);
    await won.link.send(text("you were quick"));
    assert.deepEqual(await late.link.receive(), text("you were quick"));
    await late.link.close();
    await won.link.close();
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

Deno.test("STUN over the listener's own socket reports the port peers will see, and the listener still works", async () => {
  const udp = new UdpTransport();
  const { low, high } = await pair();
  const a = await udp.listen(LOCAL, { identity: low });
  const server = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const seen: number[] = [];
  const serving = (async () => {
    for await (const [packet, from] of server) {
      const tid = decodeBindingRequest(packet);
      const { port } = from as Deno.NetAddr;
      if (!tid) continue;
      seen.push(port);
      await server.send(
        encodeBindingResponse(tid, { family: "IPv4", address: "198.51.100.7", port: 4242 }),
        from,
      );
    }
  })().catch(() => {});
  try {
    const where = `127.0.0.1:${(server.addr as Deno.NetAddr).port}`;
    const found = await new StunAddress([where], { socket: a.stunSocket() }).query();
    assert.deepEqual([found.address, found.port], ["198.51.100.7", 4242]);
    assert.deepEqual(seen, [a.endpoint.port], "the request left from the listener's socket");
    const link = await udp.connect(a.endpoint, { identity: high });
    const accepted = await a.accept();
    await link.send(text("after STUN"));
    assert.deepEqual(await accepted.receive(), text("after STUN"));
    await link.close();
    await accepted.close();
  } finally {
    server.close();
    await serving;
    await a.close();
  }
});

Deno.test("a punch that no candidate answers ends with ETIMEOUT at the window and sends nothing after", async () => {
  const clock = new ManualClock();
  let sent = 0;
  const udp = new UdpTransport({ clock, lossy: (d) => (d === "out" && sent++, false) });
  const { low, high } = await pair();
  const a = await udp.listen(LOCAL, { identity: low });
  const silent = [silentPort(), silentPort()];
  try {
    const windowMs = 2_000;
    const punch = a.punch({
      peerKey: high.publicKey,
      candidates: silent.map((d) => d.endpoint),
      windowMs,
    });
    let settled = false;
    const over = punch.then(() => settled = true, () => settled = true);
    while (!settled) {
      await Promise.race([clock.sleeping(1), over]);
      if (clock.nextWakeIn !== undefined) clock.advance(clock.nextWakeIn);
    }
    await rejectsWithCode(punch, "ETIMEOUT");
    await assert.rejects(
      punch,
      /^PeerError: Cannot punch a hole to peer .*; use a relay or try another peer$/,
    );
    assert.ok(sent > 0);
    assert.equal(clock.sleepers, 0, "no attempt is left that could send again");
  } finally {
    for (const d of silent) d.close();
    await a.close();
  }
});

Deno.test("a punch is bounded: candidates, window, transport, own key, one punch per peer", async () => {
  const udp = new UdpTransport({ clock: new ManualClock() });
  const { low, high } = await pair();
  const a = await udp.listen(LOCAL, { identity: low });
  const c: Endpoint = { transport: "udp", address: "127.0.0.1", port: 9 };
  try {
    const many = Array.from(
      { length: PUNCH_MAX_CANDIDATES + 1 },
      (_, i) => ({ ...c, port: 9 + i }),
    );
    await assert.rejects(a.punch({ peerKey: high.publicKey, candidates: many }), RangeError);
    await assert.rejects(a.punch({ peerKey: high.publicKey, candidates: [] }), RangeError);
    await assert.rejects(
      a.punch({ peerKey: high.publicKey, candidates: [c], windowMs: PUNCH_MAX_WINDOW_MS + 1 }),
      RangeError,
    );
    await assert.rejects(
      a.punch({ peerKey: high.publicKey, candidates: [{ ...c, transport: "tcp" }] }),
      TypeError,
    );
    await assert.rejects(a.punch({ peerKey: low.publicKey, candidates: [c] }), RangeError);
    const stop = new AbortController();
    const first = a.punch({ peerKey: high.publicKey, candidates: [c], signal: stop.signal });
    await rejectsWithCode(a.punch({ peerKey: high.publicKey, candidates: [c] }), "EPEER");
    stop.abort(new Error("stopped"));
    await assert.rejects(first, /stopped/);
  } finally {
    await a.close();
  }
});

Deno.test("a third party connecting to a punching listener gets no punch link, only a standby one", async () => {
  const clock = new ManualClock();
  const udp = new UdpTransport({ clock });
  const { low, high } = await pair();
  const stranger = await makeIdentity("mallory");
  const b = await udp.listen(LOCAL, { identity: high });
  const silent = silentPort();
  try {
    const stop = new AbortController();
    const punch = b.punch({
      peerKey: low.publicKey,
      candidates: [silent.endpoint],
      signal: stop.signal,
    });
    let settled = false;
    punch.then(() => settled = true, () => settled = true);
    const intruder = await udp.connect(b.endpoint, { identity: stranger });
    const standby = await b.accept();
    assert.deepEqual(standby.remote.identityKey, stranger.publicKey);
    assert.equal(settled, false, "the punch still waits for the expected key");
    stop.abort(new Error("gave up"));
    await assert.rejects(punch, /gave up/);
    await intruder.close();
    await standby.close();
  } finally {
    silent.close();
    await b.close();
  }
});

Deno.test("forged probes with the peer's key make a punch try at most a few learned addresses", async () => {
  const clock = new ManualClock();
  const udp = new UdpTransport({ clock });
  const { low, high } = await pair();
  const a = await udp.listen(LOCAL, { identity: low });
  const forgers = Array.from({ length: PUNCH_MAX_PEER_REFLEXIVE + 6 }, () => silentPort());
  const barrier = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const events = new Events();
  const stop = new AbortController();
  const target: Endpoint = { transport: "udp", address: "127.0.0.1", port: 9 };
  const probe = (key: Uint8Array) =>
    encodeDatagram({
      type: FrameType.CONNECT,
      body: encodeConnect({
        destination: a.endpoint,
        source: target,
        userId: "forger",
        identityKey: key,
        nonce: new Uint8Array(NONCE_BYTES),
        ephemeralKey: new Uint8Array(32),
      }),
    });
  try {
    const punch = a.punch({
      peerKey: high.publicKey,
      candidates: [target],
      onEvent: events.on,
      signal: stop.signal,
    });
    const to = { transport: "udp" as const, hostname: "127.0.0.1", port: a.endpoint.port };
    const sockets = forgers.map(() =>
      Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 })
    );
    for (const s of sockets) await s.send(probe(high.publicKey), to);
    // Datagrams to one socket are read in order: once this one's COOKIE is back, every forged
    // probe has been seen.
    await barrier.send(probe(new Uint8Array(32).fill(7)), to);
    const [cookie] = await barrier.receive();
    assert.equal(
      cookie[1],
      FrameType.COOKIE,
      "a stranger's CONNECT gets only the stateless COOKIE",
    );
    const learned = events.list.filter((e) => e.type === "learned");
    assert.equal(learned.length, PUNCH_MAX_PEER_REFLEXIVE);
    stop.abort(new Error("done"));
    await assert.rejects(punch, /done/);
    for (const s of sockets) s.close();
  } finally {
    barrier.close();
    for (const f of forgers) f.close();
    await a.close();
  }
});

Deno.test("a listener trying one peer answers only that peer, and the others once it stands by again", async () => {
  const clock = new ManualClock();
  let cookies = 0;
  const udp = new UdpTransport({
    clock,
    lossy: (direction, bytes) => {
      if (direction === "out" && bytes[1] === FrameType.COOKIE) cookies++;
      return false;
    },
  });
  const { low, high } = await pair();
  // The listener holds the larger key: it answers the peer it punches to with a COOKIE.
  const a = await udp.listen(LOCAL, { identity: high });
  const other = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const peer = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const silent = silentPort();
  const stop = new AbortController();
  const to = { transport: "udp" as const, hostname: "127.0.0.1", port: a.endpoint.port };
  const connect = (key: Uint8Array) =>
    encodeDatagram({
      type: FrameType.CONNECT,
      body: encodeConnect({
        destination: a.endpoint,
        source: silent.endpoint,
        userId: "someone",
        identityKey: key,
        nonce: new Uint8Array(NONCE_BYTES),
        ephemeralKey: new Uint8Array(32),
      }),
    });
  try {
    a.admit("punched");
    const punch = a.punch({
      peerKey: low.publicKey,
      candidates: [silent.endpoint],
      signal: stop.signal,
    });
    punch.catch(() => {}); // aborted below
    // Datagrams to one socket are read in order: once the peer's COOKIE is back, the
    // stranger's CONNECT, sent first, has been seen and dropped without an answer.
    await other.send(connect((await makeIdentity("stranger")).publicKey), to);
    await peer.send(connect(low.publicKey), to);
    const [cookie] = await peer.receive();
    assert.equal(cookie[1], FrameType.COOKIE, "the peer being punched to is answered");
    assert.equal(cookies, 1, "nobody else got anything");

    // Standing by again: the stranger's retransmission is answered like anyone's.
    a.admit("all");
    await other.send(connect((await makeIdentity("stranger")).publicKey), to);
    const [answer] = await other.receive();
    assert.equal(answer[1], FrameType.COOKIE);
    stop.abort(new Error("done"));
    await assert.rejects(punch, /done/);
  } finally {
    other.close();
    peer.close();
    silent.close();
    await a.close();
  }
});

Deno.test("a pair whose remote is the peer's TURN relay candidate is a relayed path", () => {
  const at = (port: number, kind?: "host" | "srflx" | "mapped" | "relay") => ({
    transport: "udp" as const,
    address: "203.0.113.9",
    port,
    ...(kind ? { kind } : {}),
  });
  const candidates = [at(1, "host"), at(2, "srflx"), at(3, "mapped"), at(4, "relay"), at(5)];
  assert.deepEqual([1, 2, 3, 4, 5, 6].map((port) => pathKindOf(at(port), candidates)), [
    "host",
    "punched",
    "mapped",
    "relayed",
    "punched", // no kind: a STUN mapping by default
    "punched", // no candidate at all: a peer-reflexive source
  ]);
  assert.equal(pathKindOfKind("relay"), "relayed");
  assert.equal(pathKindOfKind(undefined), "punched");
});

Deno.test("a peer's relay candidate is tried only once direct candidates had PUNCH_RELAY_DELAY_MS to answer", async () => {
  const clock = new ManualClock();
  const { low, high } = await pair();
  const a = await new UdpTransport({ clock }).listen(LOCAL, { identity: low });
  const host = silentPort();
  const relay = silentPort();
  const events = new Events();
  const stop = new AbortController();
  try {
    const punching = a.punch({
      peerKey: high.publicKey,
      // Best first, as the terminal orders them: the relay (lowest priority) last.
      candidates: [{ ...host.endpoint, kind: "host" }, { ...relay.endpoint, kind: "relay" }],
      windowMs: 10_000,
      onEvent: events.on,
      signal: stop.signal,
    });
    punching.catch(() => {}); // aborted below
    const attempts = () => events.list.filter((e) => e.type === "attempt").map((e) => e.remote);
    const tick = () => new Promise((resolve) => setTimeout(resolve, 0));
    await tick();
    assert.equal(attempts().length, 1);
    clock.advance(PUNCH_STAGGER_MS); // its turn by the stagger alone: not yet
    await tick();
    assert.equal(attempts().length, 1);
    clock.advance(PUNCH_RELAY_DELAY_MS - PUNCH_STAGGER_MS);
    await events.next((e) => e.type === "attempt" && same(e.remote, relay.endpoint));
    assert.deepEqual(attempts().map((e) => e.port), [host.endpoint.port, relay.endpoint.port]);
    stop.abort(new Error("enough"));
    await assert.rejects(punching, /enough/);
  } finally {
    host.close();
    relay.close();
    await a.close();
  }
});

Deno.test("two pairs whose CONNECT_ACKs come together: only the first claims its ACK, and wins", async () => {
  const { low, high } = await pair();
  const clock = new ManualClock();
  const claims: boolean[] = [];
  const acked: ((claim: () => boolean) => void)[] = [];
  let bothStarted!: () => void;
  const started = new Promise<void>((resolve) => bothStarted = resolve);
  const link = (port: number) => ({
    local: { transport: "udp" as const, address: "127.0.0.1", port: 1 },
    remote: {
      userId: high.userId,
      identityKey: high.publicKey,
      endpoint: { transport: "udp" as const, address: "127.0.0.1", port },
    },
    transport: "udp" as const,
    send: () => Promise.resolve(),
    receive: () => Promise.resolve(null),
    close: () => Promise.resolve(),
  });
  const punch = new UdpPunch({
    identity: low,
    local: { transport: "udp", address: "127.0.0.1", port: 1 },
    clock,
    backoff: () => 100,
    // Each attempt waits for the test, which plays both CONNECT_ACKs arriving at once.
    initiate: (remote, _key, _signal, _route, claim) =>
      new Promise((resolve, reject) => {
        acked.push(() => {
          const ok = claim!();
          claims.push(ok);
          if (ok) resolve(link(remote.port));
          else reject(new PeerError("EPEER", "another pair completed first"));
        });
        if (acked.length === 2) bothStarted();
      }),
    send: () => Promise.resolve(),
  }, {
    peerKey: high.publicKey,
    candidates: [
      { transport: "udp", address: "127.0.0.1", port: 2001 },
      { transport: "udp", address: "127.0.0.1", port: 2002 },
    ],
    windowMs: 1_000,
  });
  const result = punch.run();
  await clock.sleeping(2); // the window and the second candidate's stagger
  clock.advance(50);
  await started;
  acked[1]!(() => true); // the second pair's CONNECT_ACK is checked first …
  acked[0]!(() => true); // … and the first one's right after
  assert.deepEqual(claims, [true, false]);
  assert.equal((await result).remote.port, 2002);
  await punch.stopped();
});

Deno.test("staggerMs tries the candidates one after another, and a stagger out of range is refused", async () => {
  const clock = new ManualClock();
  const { low, high } = await pair();
  const a = await new UdpTransport({ clock }).listen(LOCAL, { identity: low });
  const first = silentPort();
  const second = silentPort();
  const events = new Events();
  const stop = new AbortController();
  try {
    for (const staggerMs of [0, PUNCH_STAGGER_MS - 1, PUNCH_MAX_STAGGER_MS + 1, NaN]) {
      await assert.rejects(
        a.punch({ peerKey: high.publicKey, candidates: [first.endpoint], staggerMs }),
        RangeError,
      );
    }
    const punching = a.punch({
      peerKey: high.publicKey,
      candidates: [first.endpoint, second.endpoint],
      staggerMs: 1_000,
      onEvent: events.on,
      signal: stop.signal,
    });
    punching.catch(() => {}); // aborted below
    const attempts = () => events.list.filter((e) => e.type === "attempt").length;
    const tick = () => new Promise((resolve) => setTimeout(resolve, 0));
    await tick();
    assert.equal(attempts(), 1);
    clock.advance(999); // the default stagger would have started the second long ago
    await tick();
    assert.equal(attempts(), 1);
    clock.advance(1);
    await events.next((e) => e.type === "attempt" && same(e.remote, second.endpoint));
    stop.abort(new Error("enough"));
    await assert.rejects(punching, /enough/);
  } finally {
    first.close();
    second.close();
    await a.close();
  }
});
