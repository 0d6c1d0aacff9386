/**
 * The rules of moving a link between paths (`link_paths.ts`), from the attacker's side too: a
 * link moves only on a response that echoes a token it sent by that very path; a forged or
 * replayed PATH_* datagram is never handed on; bounds hold. A fake carrier records what is sent,
 * a manual clock drives the backoff.
 */
import assert from "node:assert/strict";
import type { Endpoint } from "../../src/message/types.ts";
import { decodePathProbe, encodePathCandidates, encodePathProbe } from "../../src/peer/frame.ts";
import { FrameType } from "../../src/peer/frame.ts";
import {
  type LinkPath,
  LinkPaths,
  type PathFrameType,
  type PathMove,
} from "../../src/peer/link_paths.ts";
import { ManualClock } from "../support/manual_clock.ts";

const udp = (address: string, port: number): Endpoint => ({ transport: "udp", address, port });
const RELAY: LinkPath = { route: "relay", remote: udp("203.0.113.5", 4000) };
const DIRECT: LinkPath = { route: "direct", remote: udp("203.0.113.5", 4000) };
const OTHER: LinkPath = { route: "direct", remote: udp("198.51.100.7", 5000) };

function setup(initial: LinkPath = RELAY) {
  const clock = new ManualClock();
  const sent: { type: PathFrameType; plaintext: Uint8Array; path: LinkPath }[] = [];
  const admitted: LinkPath[] = [];
  const used: LinkPath[] = [];
  let waiting: (() => void) | null = null;
  const paths = new LinkPaths({
    clock,
    backoff: () => 100,
    random: (n) => crypto.getRandomValues(new Uint8Array(n)),
    send: (type, plaintext, path) => {
      sent.push({ type, plaintext, path });
      waiting?.();
      return Promise.resolve();
    },
    admit: (path) => (admitted.push(path), true),
    use: (path) => void used.push(path),
  }, initial);
  /** Resolves once `n` frames were sent in all. */
  const sentCount = (n: number) =>
    new Promise<void>((resolve) => {
      const check = () => sent.length >= n ? (waiting = null, resolve()) : undefined;
      waiting = check;
      check();
    });
  return { clock, sent, admitted, used, paths, sentCount };
}

Deno.test("a response by the path its challenge took moves a relayed link to that direct path", async () => {
  const t = setup();
  const moves: PathMove[] = [];
  t.paths.onMove((m) => moves.push(m));
  const probing = t.paths.probe([DIRECT.remote], { windowMs: 5_000 });
  await t.sentCount(1);
  const challenge = t.sent[0]!;
  assert.equal(challenge.type, FrameType.PATH_CHALLENGE);
  assert.deepEqual(challenge.path, DIRECT);
  const { token, endpoint } = decodePathProbe(challenge.plaintext);
  assert.deepEqual(endpoint, DIRECT.remote); // where it was sent: which address of the peer
  const observed = udp("192.0.2.1", 6000);
  t.paths.received(FrameType.PATH_RESPONSE, encodePathProbe({ token, endpoint: observed }), DIRECT);
  const move = await probing;
  assert.deepEqual(move, { from: RELAY, to: DIRECT, observed });
  assert.deepEqual(moves, [move]);
  assert.deepEqual(t.used, [DIRECT]);
  assert.deepEqual(t.admitted, [DIRECT]);
  assert.equal(t.paths.relayed, false);
  assert.deepEqual(t.paths.active, DIRECT);
});

Deno.test("a response by another path, or with a token never sent, moves nothing", async () => {
  const t = setup();
  const probing = t.paths.probe([DIRECT.remote], { windowMs: 5_000 });
  await t.sentCount(1);
  const { token } = decodePathProbe(t.sent[0]!.plaintext);
  // The right token from an address it was not sent to (an attacker who saw it, or a NAT that
  // rewrote the source): not this path's round trip.
  t.paths.received(
    FrameType.PATH_RESPONSE,
    encodePathProbe({ token, endpoint: OTHER.remote }),
    OTHER,
  );
  const wrong = crypto.getRandomValues(new Uint8Array(8));
  t.paths.received(
    FrameType.PATH_RESPONSE,
    encodePathProbe({ token: wrong, endpoint: OTHER.remote }),
    DIRECT,
  );
  // Malformed plaintexts are dropped without a word.
  t.paths.received(FrameType.PATH_RESPONSE, new Uint8Array(3), DIRECT);
  t.clock.advance(5_000);
  assert.equal(await probing, null);
  assert.deepEqual(t.used, []);
  assert.equal(t.paths.relayed, true);
});

Deno.test("a challenge is answered by the path it came on, that path admitted and challenged back", async () => {
  const t = setup();
  const token = crypto.getRandomValues(new Uint8Array(8));
  t.paths.received(
    FrameType.PATH_CHALLENGE,
    encodePathProbe({ token, endpoint: udp("192.0.2.1", 6000) }),
    OTHER,
  );
  await t.sentCount(2);
  const [answer, back] = t.sent;
  assert.equal(answer!.type, FrameType.PATH_RESPONSE);
  assert.deepEqual(answer!.path, OTHER);
  assert.deepEqual(decodePathProbe(answer!.plaintext), { token, endpoint: OTHER.remote });
  assert.equal(back!.type, FrameType.PATH_CHALLENGE);
  assert.deepEqual(back!.path, OTHER);
  assert.deepEqual(t.admitted, [OTHER]);
  // Re-sent with the backoff while the learned window runs, then silent.
  await t.clock.sleeping(2); // the learned window and the backoff
  t.clock.advance(100);
  await t.sentCount(3);
  assert.deepEqual(t.sent[2]!.path, OTHER);
  const n = t.sent.length;
  t.paths.close();
  t.clock.advance(60_000);
  assert.equal(t.sent.length, n);
});

Deno.test("a link on a direct path answers challenges but never moves to another path", async () => {
  const t = setup(DIRECT);
  assert.equal(t.paths.relayed, false);
  assert.equal(await t.paths.probe([OTHER.remote]), null); // nothing better to find
  const token = crypto.getRandomValues(new Uint8Array(8));
  t.paths.received(
    FrameType.PATH_CHALLENGE,
    encodePathProbe({ token, endpoint: DIRECT.remote }),
    OTHER,
  );
  await t.sentCount(1);
  assert.equal(t.sent.length, 1); // the answer only, no challenge back
  assert.equal(t.sent[0]!.type, FrameType.PATH_RESPONSE);
  assert.deepEqual(t.used, []);
});

Deno.test("a path to the peer's relay candidate counts as relayed; the peer's own address beats it", async () => {
  const relayCandidate: LinkPath = { route: "direct", remote: udp("203.0.113.80", 49_152) };
  const t = setup(relayCandidate);
  assert.equal(t.paths.relayed, false);
  t.paths.markRelayed(relayCandidate.remote);
  assert.equal(t.paths.relayed, true);
  const probing = t.paths.probe([OTHER.remote], { windowMs: 5_000 });
  await t.sentCount(1);
  const { token } = decodePathProbe(t.sent[0]!.plaintext);
  t.paths.received(
    FrameType.PATH_RESPONSE,
    encodePathProbe({ token, endpoint: OTHER.remote }),
    OTHER,
  );
  assert.deepEqual((await probing)?.to, OTHER);
});

Deno.test("probes are bounded: candidate count, transport, window; announced candidates too", async () => {
  const t = setup();
  const nine = Array.from({ length: 9 }, (_, i) => udp("198.51.100.1", 1000 + i));
  assert.throws(() => t.paths.probe(nine), /at most 8/);
  assert.throws(
    () => t.paths.probe([{ transport: "tcp", address: "198.51.100.1", port: 1 }]),
    /udp candidates/,
  );
  assert.throws(() => t.paths.probe([OTHER.remote], { windowMs: 0 }), /window/);
  assert.throws(() => t.paths.probe([OTHER.remote], { windowMs: 3_600_000 }), /window/);
  await assert.rejects(t.paths.announce(nine), RangeError);
  // A peer that announces more than the bound is dropped, not half read.
  const heard: unknown[] = [];
  t.paths.onCandidates((c) => heard.push(c));
  const many = encodePathCandidates(nine, 9);
  t.paths.received(FrameType.PATH_CANDIDATES, many, RELAY);
  assert.deepEqual(heard, []);
  const two = [{ ...OTHER.remote, kind: "srflx" as const }, {
    ...DIRECT.remote,
    kind: "host" as const,
  }];
  t.paths.received(FrameType.PATH_CANDIDATES, encodePathCandidates(two, 8), RELAY);
  assert.deepEqual(heard, [two]);
  await t.paths.announce(two);
  assert.deepEqual(t.sent.at(-1)?.path, RELAY); // announced by the active path
});

Deno.test("an aborted probe rejects with the reason and stops challenging", async () => {
  const t = setup();
  const stop = new AbortController();
  const probing = t.paths.probe([OTHER.remote], { windowMs: 5_000, signal: stop.signal });
  await t.sentCount(1);
  stop.abort(new Error("user quit"));
  await assert.rejects(probing, /user quit/);
  const n = t.sent.length;
  t.clock.advance(1_000);
  assert.equal(t.sent.length, n);
});

/** A carrier that also opens auxiliary sockets (numbered from 40000) and records closes. */
function sprayable() {
  const t = setup();
  const opened: number[] = [];
  const closed: number[] = [];
  let next = 40_000;
  // The carrier is private to LinkPaths: give it the socket hooks the listener has.
  const paths = new LinkPaths({
    clock: t.clock,
    backoff: () => 100,
    random: (n) => crypto.getRandomValues(new Uint8Array(n)),
    send: (type, plaintext, path) => {
      t.sent.push({ type, plaintext, path });
      return Promise.resolve();
    },
    admit: (path) => (t.admitted.push(path), true),
    use: (path) => void t.used.push(path),
    openSockets: (count) => {
      const ports = Array.from({ length: count }, () => next++);
      opened.push(...ports);
      return ports;
    },
    closeSockets: (ports) => void closed.push(...ports),
  }, RELAY);
  return { ...t, paths, opened, closed };
}

Deno.test("a spray opens its sockets towards the peer's mappings and scans only the peer's NAT address", async () => {
  const t = sprayable();
  const aim = [{ ...DIRECT.remote, kind: "srflx" as const }, {
    ...OTHER.remote,
    kind: "srflx" as const,
  }];
  const spraying = t.paths.spray({
    aim,
    scan: ["203.0.113.5"],
    sockets: 4,
    probes: 10,
    windowMs: 1_000,
  });
  assert.deepEqual(t.opened, [40_000, 40_001, 40_002, 40_003]);
  // Sockets i aim at mapping i mod 2 (staggered by 1 ms); 10 random probes, 4 every 8 ms.
  for (let ms = 0; ms < 40; ms++) {
    await t.clock.sleeping(1);
    t.clock.advance(1);
  }
  const fromAux = t.sent.filter((s) => s.path.via !== undefined);
  assert.deepEqual(
    fromAux.map((s) => [s.path.via, s.path.remote.port]).slice(0, 4),
    [[40_000, 4000], [40_001, 5000], [40_002, 4000], [40_003, 5000]],
  );
  const scans = t.sent.filter((s) => s.path.via === undefined);
  assert.equal(scans.length, 10);
  for (const s of scans) {
    assert.equal(s.type, FrameType.PATH_CHALLENGE);
    assert.equal(s.path.remote.address, "203.0.113.5");
    assert.ok(s.path.remote.port >= 1024 && s.path.remote.port <= 65535);
  }
  // One random probe hits: the peer answers it by the path it was sent on, and the link moves.
  const hit = scans[3]!;
  const { token } = decodePathProbe(hit.plaintext);
  t.paths.received(
    FrameType.PATH_RESPONSE,
    encodePathProbe({ token, endpoint: OTHER.remote }),
    hit.path,
  );
  const move = await spraying;
  assert.deepEqual(move?.to, hit.path);
  assert.deepEqual(t.closed.sort(), [40_000, 40_001, 40_002, 40_003]); // none carries the session
});

Deno.test("the auxiliary socket whose path won a spray stays open; the others close", async () => {
  const t = sprayable();
  const aim = [{ ...DIRECT.remote, kind: "srflx" as const }];
  const spraying = t.paths.spray({ aim, scan: [], sockets: 3, probes: 0, windowMs: 1_000 });
  for (let ms = 0; ms < 3; ms++) {
    await t.clock.sleeping(1);
    t.clock.advance(1);
  }
  // The peer's probe reached socket 40001 (its NAT opened towards that socket's mapping): the
  // challenge is answered from that socket and that path challenged back; its answer moves us.
  const via: LinkPath = { ...DIRECT, via: 40_001 };
  const token = crypto.getRandomValues(new Uint8Array(8));
  t.paths.received(
    FrameType.PATH_CHALLENGE,
    encodePathProbe({ token, endpoint: DIRECT.remote }),
    via,
  );
  const answer = t.sent.find((s) => s.type === FrameType.PATH_RESPONSE)!;
  assert.deepEqual(answer.path, via);
  const back = t.sent.filter((s) => s.type === FrameType.PATH_CHALLENGE && s.path.via === 40_001)
    .at(-1)!;
  const echoed = decodePathProbe(back.plaintext).token;
  t.paths.received(
    FrameType.PATH_RESPONSE,
    encodePathProbe({ token: echoed, endpoint: DIRECT.remote }),
    via,
  );
  assert.deepEqual((await spraying)?.to, via);
  assert.deepEqual(t.used, [via]);
  assert.deepEqual(t.closed.sort(), [40_000, 40_002]);
});

Deno.test("a spray is bounded and runs one at a time", async () => {
  const t = sprayable();
  const aim = [{ ...DIRECT.remote, kind: "srflx" as const }];
  assert.throws(() => t.paths.spray({ aim, scan: [], sockets: 513 }), /0 to 512/);
  assert.throws(() => t.paths.spray({ aim, scan: [], probes: 2049 }), /0 to 2048/);
  assert.throws(() => t.paths.spray({ aim, scan: ["a", "b", "c"] }), /at most 2/);
  assert.throws(() => t.paths.spray({ aim: [], scan: [] }), /1 to 8/);
  const first = t.paths.spray({ aim, scan: [], sockets: 1, probes: 0, windowMs: 100 });
  assert.equal(await t.paths.spray({ aim, scan: [], sockets: 1, probes: 0 }), null); // busy
  assert.equal(t.opened.length, 1);
  await t.clock.sleeping(1);
  t.clock.advance(100);
  assert.equal(await first, null);
  assert.deepEqual(t.closed, [40_000]);
});

/** A link moved from RELAY to DIRECT, with a `heard` time the test sets. */
async function moved() {
  const clock = new ManualClock();
  const sent: { type: PathFrameType; plaintext: Uint8Array; path: LinkPath }[] = [];
  const used: LinkPath[] = [];
  const state = { heard: clock.now() };
  const paths = new LinkPaths({
    clock,
    backoff: () => 100,
    send: (type, plaintext, path) => (sent.push({ type, plaintext, path }), Promise.resolve()),
    admit: () => true,
    use: (path) => void used.push(path),
    heardAt: () => state.heard,
  }, RELAY);
  const moves: PathMove[] = [];
  paths.onMove((m) => moves.push(m));
  const probing = paths.probe([DIRECT.remote], { windowMs: 5_000 });
  const { token } = decodePathProbe(sent[0]!.plaintext);
  paths.received(
    FrameType.PATH_RESPONSE,
    encodePathProbe({ token, endpoint: OTHER.remote }),
    DIRECT,
  );
  await probing;
  sent.length = 0;
  return { clock, sent, used, state, paths, moves };
}

Deno.test("a moved link that stops hearing its peer challenges the path, then falls back to the relay", async () => {
  const t = await moved();
  // Heard a second ago each time the watch looks: nothing happens.
  for (let s = 0; s < 5; s++) {
    await t.clock.sleeping(1);
    t.clock.advance(1_000);
    t.state.heard = t.clock.now();
  }
  assert.equal(t.sent.length, 0);
  // Silence: after 3 s a challenge by the direct path, after 6 s back to the relay.
  for (let s = 0; s < 3; s++) {
    await t.clock.sleeping(1);
    t.clock.advance(1_000);
  }
  await t.clock.sleeping(1); // the watch looked, and sleeps again
  assert.deepEqual(t.sent.map((x) => [x.type, x.path]), [[FrameType.PATH_CHALLENGE, DIRECT]]);
  const back = new Promise((resolve) => t.paths.onMove(resolve));
  for (let s = 0; s < 3; s++) {
    await t.clock.sleeping(1);
    t.clock.advance(1_000);
  }
  await back;
  assert.deepEqual(t.moves.at(-1), { from: DIRECT, to: RELAY, observed: RELAY.remote });
  assert.deepEqual(t.used, [DIRECT, RELAY]);
  assert.equal(t.paths.relayed, true);
  // The peer learns it: a challenge by the relay.
  assert.deepEqual(t.sent.at(-1)?.path, RELAY);
  assert.equal(t.sent.at(-1)?.type, FrameType.PATH_CHALLENGE);
});

Deno.test("a moved link falls back at once when the peer's challenge comes by the relay it left", async () => {
  const t = await moved();
  const token = crypto.getRandomValues(new Uint8Array(8));
  t.paths.received(
    FrameType.PATH_CHALLENGE,
    encodePathProbe({ token, endpoint: RELAY.remote }),
    RELAY,
  );
  assert.equal(t.paths.relayed, true);
  assert.deepEqual(t.moves.at(-1)?.to, RELAY);
  assert.equal(t.sent[0]!.type, FrameType.PATH_RESPONSE); // answered first, by the relay
  assert.deepEqual(t.sent[0]!.path, RELAY);
});

Deno.test("a link full of learned paths forgets the oldest for the newest challenge, never its first", () => {
  const clock = new ManualClock();
  const admitted: string[] = [];
  const forgotten: string[] = [];
  const answered: string[] = [];
  const paths = new LinkPaths({
    clock,
    backoff: () => 100,
    send: (type, _plaintext, path) => {
      if (type === FrameType.PATH_RESPONSE) answered.push(`${path.remote.port}`);
      return Promise.resolve();
    },
    admit: (path) => (admitted.push(`${path.remote.port}`), true),
    forget: (path) => void forgotten.push(`${path.remote.port}`),
    use: () => {},
  }, RELAY);
  // Nine challenges from nine new sources (a spray's hits, a NAT's new ports), eight slots.
  for (let port = 6001; port <= 6009; port++) {
    const token = crypto.getRandomValues(new Uint8Array(8));
    const via: LinkPath = { route: "direct", remote: udp("198.51.100.7", port) };
    paths.received(FrameType.PATH_CHALLENGE, encodePathProbe({ token, endpoint: via.remote }), via);
  }
  assert.equal(answered.length, 9); // every authentic challenge is answered
  assert.equal(admitted.length, 9); // and its path admitted, the newest too
  assert.deepEqual(forgotten, ["6001", "6002"]); // the oldest learned ones made room; not the relay
  paths.close();
});
