/**
 * The TURN client against a real coturn on loopback (scripts/coturn/coturn.sh start writes
 * `stun.json` with the TURN realm, user and password file). Skipped when none runs; fails when
 * MAILPEER_REQUIRE_STACK is set. The error paths against fake servers need no coturn.
 */
import assert from "node:assert/strict";
import { PeerError } from "../../src/errors.ts";
import {
  TURN_CHANNEL_REFRESH_MS,
  TURN_MAX_CHANNELS,
  TURN_MAX_PERMISSIONS,
  TURN_PERMISSION_REFRESH_MS,
  TURN_REFRESH_TICK_MS,
} from "../../src/limits.ts";
import type { Endpoint } from "../../src/message/types.ts";
import {
  checkStunIntegrity,
  decodeStunMessage,
  encodeErrorCode,
  encodeStunMessage,
  encodeText,
  encodeUint32,
  encodeXorAddress,
  longTermKey,
  StunAttr,
  stunAttribute,
  StunClass,
  StunMethod,
} from "../../src/net/stun_message.ts";
import {
  openTurnSocket,
  parseTurnUrl,
  TurnClient,
  type TurnMaintenance,
} from "../../src/peer/turn_client.ts";
import type { TurnSocket } from "../../src/peer/turn_client.ts";
import { UdpTransport } from "../../src/peer/udp_transport.ts";
import { makeIdentity } from "../conformance/peer_transport.ts";
import { ManualClock } from "../support/manual_clock.ts";
import { answerOverRelay, firstPeer } from "../support/relay_responder.ts";
import { type LoopbackTurn, REAL_TURN } from "../support/coturn.ts";

// ---------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------

const TURN = REAL_TURN;

/** A loopback UDP socket as a TurnSocket that records the STUN methods and ChannelData sent. */
function openSocket(address = "127.0.0.1") {
  const socket = openTurnSocket({ address });
  const sent: string[] = [];
  const turn: TurnSocket = {
    send(bytes, host, port) {
      const m = decodeStunMessage(bytes, { maxBytes: 65_535 });
      sent.push(m ? `${m.method}/${m.class}` : bytes[0]! >= 0x40 ? "channel-data" : "other");
      return socket.send(bytes, host, port);
    },
    subscribe: (listener) => socket.subscribe(listener),
  };
  return {
    turn,
    sent,
    endpoint: socket.endpoint,
    /** Count of requests of `method` sent. */
    requests: (method: number) => sent.filter((s) => s === `${method}/${StunClass.request}`).length,
    /** Resolves with the next datagram received from anyone. */
    next: () =>
      new Promise<{ bytes: Uint8Array; from: Endpoint }>((resolve) => {
        const off = socket.subscribe((bytes, from) => {
          off();
          resolve({ bytes, from: from as Endpoint });
        });
      }),
    sendTo: (bytes: Uint8Array, to: Endpoint) => socket.send(bytes, to.address, to.port),
    close: () => socket.close(),
  };
}

const text = (s: string) => new TextEncoder().encode(s);
const textOf = (b: Uint8Array) => new TextDecoder().decode(b);

/** The next datagram `client` relays from anyone. */
function nextData(client: TurnClient): Promise<{ peer: Endpoint; bytes: Uint8Array }> {
  return new Promise((resolve) => {
    const off = client.onData((peer, bytes) => {
      off();
      resolve({ peer, bytes });
    });
  });
}

/** The error `promise` rejects with (asserting that it does). */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  let caught: unknown;
  await assert.rejects(promise, (err) => {
    caught = err;
    return true;
  });
  return caught;
}

/** Allocates on `socket`, retrying on 437 for up to 5 s (coturn closes a released session late). */
async function allocateWhenFree(socket: TurnSocket): Promise<TurnClient> {
  const until = Date.now() + 5_000;
  for (;;) {
    try {
      return await TurnClient.allocate(server(TURN!), { socket });
    } catch (err) {
      if (!(err instanceof PeerError) || !/\(437/.test(err.message) || Date.now() > until) {
        throw err;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

function server(t: LoopbackTurn, password = t.password) {
  return { url: t.url, user: t.user, password };
}

// ---------------------------------------------------------------------------------------
// real coturn
// ---------------------------------------------------------------------------------------

Deno.test({
  name: "a TURN client allocates a relayed address on coturn and releases it on close",
  ignore: !TURN,
  async fn() {
    const s = openSocket();
    try {
      const client = await TurnClient.allocate(server(TURN!), { socket: s.turn });
      assert.equal(client.relayed.address, "127.0.0.1");
      assert.ok(
        client.relayed.port >= TURN!.relayPorts[0] && client.relayed.port <= TURN!.relayPorts[1],
      );
      assert.deepEqual(client.mapped, s.endpoint);
      assert.ok(client.expiresAt > Date.now() + 60_000);
      // A second allocation on a socket that holds one: refused, with what to do.
      const again = await rejection(TurnClient.allocate(server(TURN!), { socket: s.turn }));
      assert.ok(again instanceof PeerError && again.code === "ERELAY");
      assert.match(again.message, /already holds an allocation for this socket \(437/);
      await client.close();
      assert.equal(s.requests(StunMethod.refresh), 1); // the release: LIFETIME 0
      // Released: the same socket (the same 5-tuple) allocates again, once coturn has closed
      // the released session (it does so about a second later; an unreleased allocation keeps
      // the 5-tuple for its whole lifetime, 10 minutes).
      const next = await allocateWhenFree(s.turn);
      assert.equal(next.relayed.address, "127.0.0.1");
      await next.close();
      await client.close(); // idempotent
      const closed = await rejection(client.send(next.relayed, text("late")));
      assert.ok(closed instanceof PeerError && /closed or lost/.test(closed.message));
    } finally {
      await s.close();
    }
  },
});

Deno.test({
  name: "two relayed peers exchange datagrams both ways: Send/Data first, then ChannelData",
  ignore: !TURN,
  async fn() {
    const sa = openSocket();
    const sb = openSocket();
    const a = await TurnClient.allocate(server(TURN!), { socket: sa.turn });
    const b = await TurnClient.allocate(server(TURN!), { socket: sb.turn });
    try {
      await a.permit(b.relayed);
      await b.permit(a.relayed);
      assert.deepEqual(a.permissions, ["127.0.0.1"]);
      // Send indication → Data indication.
      let got = nextData(b);
      await a.send(b.relayed, text("hello through the relay"));
      let { peer, bytes } = await got;
      assert.deepEqual(peer, a.relayed);
      assert.equal(textOf(bytes), "hello through the relay");
      got = nextData(a);
      await b.send(a.relayed, text("and back"));
      ({ peer, bytes } = await got);
      assert.deepEqual(peer, b.relayed);
      assert.equal(textOf(bytes), "and back");
      assert.ok(sa.sent.includes(`${StunMethod.send}/${StunClass.indication}`));
      // Channels: the bulk path, 4 bytes of overhead.
      const ca = await a.bindChannel(b.relayed);
      const cb = await b.bindChannel(a.relayed);
      assert.ok(ca >= 0x4000 && ca <= 0x4fff && cb >= 0x4000 && cb <= 0x4fff);
      const big = crypto.getRandomValues(new Uint8Array(1200));
      got = nextData(b);
      await a.send(b.relayed, big);
      ({ peer, bytes } = await got);
      assert.deepEqual(peer, a.relayed);
      assert.deepEqual(bytes, big);
      const channelB = b.datagrams(a.relayed);
      const back = new Promise<Uint8Array>((resolve) => {
        const off = a.datagrams(b.relayed).subscribe((bytes) => {
          off();
          resolve(bytes);
        });
      });
      await channelB.send(text("over the channel"));
      assert.equal(textOf(await back), "over the channel");
      assert.equal(sa.sent.at(-1), "channel-data");
      assert.equal(sb.sent.at(-1), "channel-data");
    } finally {
      await a.close();
      await b.close();
      await sa.close();
      await sb.close();
    }
  },
});

Deno.test({
  name: "a third party without a permission cannot reach a peer through its relay",
  ignore: !TURN,
  async fn() {
    const s = openSocket();
    const friend = openSocket("127.0.0.1");
    const stranger = openSocket("127.0.0.2");
    const client = await TurnClient.allocate(server(TURN!), { socket: s.turn });
    try {
      await client.permit(friend.endpoint); // 127.0.0.1 only: permissions are per address
      client.onData(() => {
        throw new Error("a listener that throws stops nothing");
      });
      const got = nextData(client);
      await stranger.sendTo(text("let me in"), client.relayed);
      await stranger.sendTo(text("let me in"), client.relayed);
      await friend.sendTo(text("from a friend"), client.relayed);
      const { peer, bytes } = await got;
      assert.deepEqual(peer, friend.endpoint);
      assert.equal(textOf(bytes), "from a friend");
      // And the peer gets the relay's answer from the relayed address.
      const answer = friend.next();
      await client.send(friend.endpoint, text("hi friend"));
      const { bytes: reply, from } = await answer;
      assert.equal(textOf(reply), "hi friend");
      assert.deepEqual(from, client.relayed);
      // Sending to an address without permission is refused before it leaves.
      const refused = await rejection(client.send(stranger.endpoint, text("x")));
      assert.ok(refused instanceof PeerError && refused.code === "ERELAY");
      assert.match(refused.message, /no permission for 127\.0\.0\.2; call permit\(\)/);
    } finally {
      await client.close();
      await s.close();
      await friend.close();
      await stranger.close();
    }
  },
});

Deno.test({
  name: "a wrong TURN password ends in one line naming the credentials to check",
  ignore: !TURN,
  async fn() {
    const s = openSocket();
    try {
      const err = await rejection(
        TurnClient.allocate(server(TURN!, "not-the-password"), { socket: s.turn }),
      );
      assert.ok(err instanceof PeerError && err.code === "ERELAY");
      assert.equal(
        err.message,
        `Cannot allocate a TURN relay on ${TURN!.host}:${TURN!.port}: the server refused the ` +
          "credentials (401 Unauthorized); check terminal.turn_servers' user and password",
      );
      // A name is resolved once; the answers come from its address.
      const s2 = openSocket(); // a released allocation holds its socket's 5-tuple a while
      const named = await TurnClient.allocate(
        { ...server(TURN!), url: `turn:localhost:${TURN!.port}` },
        { socket: s2.turn },
      );
      assert.deepEqual(named.server, { host: "127.0.0.1", port: TURN!.port });
      await named.close();
      await s2.close();
      const realm = await rejection(
        TurnClient.allocate({ ...server(TURN!), realm: "other.test" }, { socket: s.turn }),
      );
      assert.match((realm as Error).message, /names realm "mailpeer.test", not the configured/);
    } finally {
      await s.close();
    }
  },
});

Deno.test({
  name: "allocation, permissions and channels are refreshed on the clock before they end",
  ignore: !TURN,
  async fn() {
    const sa = openSocket();
    const sb = openSocket();
    const clock = new ManualClock(Date.now());
    const reports: TurnMaintenance[] = [];
    let waiting: (() => void) | undefined;
    const a = await TurnClient.allocate(server(TURN!), {
      socket: sa.turn,
      clock,
      onMaintained(report) {
        reports.push(report);
        waiting?.();
      },
    });
    const b = await TurnClient.allocate(server(TURN!), { socket: sb.turn });
    try {
      await a.bindChannel(b.relayed);
      await b.permit(a.relayed);
      const expires = a.expiresAt;
      // Ten minutes of refresh rounds, one tick at a time: no sleeps.
      for (let t = 0; t < 10; t++) {
        await clock.sleeping(1);
        const round = new Promise<void>((resolve) => (waiting = resolve));
        clock.advance(TURN_REFRESH_TICK_MS);
        await round;
      }
      const total = reports.reduce(
        (sum, r) => ({
          allocation: sum.allocation + Number(r.allocation),
          permissions: sum.permissions + r.permissions,
          channels: sum.channels + r.channels,
        }),
        { allocation: 0, permissions: 0, channels: 0 },
      );
      // 600 s lifetime: refreshed at 480 s; permission (5 min) every 3 min; channel (10 min) at 7.
      assert.equal(total.allocation, 1);
      assert.equal(total.permissions, Math.floor(600_000 / TURN_PERMISSION_REFRESH_MS));
      assert.equal(total.channels, Math.floor(600_000 / TURN_CHANNEL_REFRESH_MS));
      assert.equal(sa.requests(StunMethod.refresh), 1);
      assert.ok(a.expiresAt >= expires + 480_000);
      // The relay still carries data after all that.
      const got = nextData(b);
      await a.send(b.relayed, text("still here"));
      assert.equal(textOf((await got).bytes), "still here");
    } finally {
      await a.close();
      await b.close();
      await sa.close();
      await sb.close();
    }
  },
});

Deno.test({
  name: "a relay runs over the peer listener's own socket, beside its peers",
  ignore: !TURN,
  async fn() {
    const listener = await new UdpTransport().listen({ address: "127.0.0.1", port: 0 }, {
      identity: await makeIdentity("relay-user"),
    });
    const peer = openSocket("127.0.0.3");
    const turn = await TurnClient.allocate(server(TURN!), { socket: listener.stunSocket() });
    try {
      assert.deepEqual(turn.mapped, listener.endpoint); // the punch's socket, seen by coturn
      await turn.permit(peer.endpoint);
      // Data indications in, Send indications out.
      let got = nextData(turn);
      await peer.sendTo(text("to the listener's relay"), turn.relayed);
      assert.equal(textOf((await got).bytes), "to the listener's relay");
      // ChannelData both ways: the listener hands it over instead of reading it as a frame.
      await turn.bindChannel(peer.endpoint);
      const answer = peer.next();
      await turn.send(peer.endpoint, text("bulk"));
      assert.equal(textOf((await answer).bytes), "bulk");
      got = nextData(turn);
      await peer.sendTo(text("bulk back"), turn.relayed);
      assert.equal(textOf((await got).bytes), "bulk back");
    } finally {
      await turn.close();
      await listener.close();
      await peer.close();
    }
  },
});

Deno.test({
  name: "permissions and channels are capped, even when asked for all at once",
  ignore: !TURN,
  async fn() {
    const s = openSocket();
    const client = await TurnClient.allocate(server(TURN!), { socket: s.turn });
    try {
      const extra = 6;
      // Distinct loopback addresses: a permission is per address.
      const permits = await Promise.allSettled(
        Array.from(
          { length: TURN_MAX_PERMISSIONS + extra },
          (_, i) => client.permit(`127.0.${1 + (i >> 8)}.${i & 0xff}`),
        ),
      );
      const refused = permits.filter((r) => r.status === "rejected");
      assert.equal(refused.length, extra);
      for (const r of refused) {
        const err = (r as PromiseRejectedResult).reason;
        assert.ok(err instanceof PeerError && err.code === "ERELAY");
        assert.match(err.message, /already permits 64 peer addresses; close relayed sessions/);
      }
      assert.equal(client.permissions.length, TURN_MAX_PERMISSIONS);
      // Channels to ports of permitted addresses, all at once: distinct numbers, then the cap.
      const binds = await Promise.allSettled(
        Array.from(
          { length: TURN_MAX_CHANNELS + extra },
          (_, i) => client.bindChannel({ transport: "udp", address: "127.0.1.0", port: 20000 + i }),
        ),
      );
      const numbers = binds.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
      assert.equal(numbers.length, TURN_MAX_CHANNELS);
      assert.equal(new Set(numbers).size, TURN_MAX_CHANNELS);
      assert.ok(numbers.every((n) => n >= 0x4000 && n <= 0x4fff));
      assert.match(
        String((binds.find((r) => r.status === "rejected") as PromiseRejectedResult).reason),
        /already binds 64 channels; send to this peer without a channel/,
      );
    } finally {
      await client.close();
      await s.close();
    }
  },
});

Deno.test({
  name: "a sealed peer session runs through the relay: the relay carries only ciphertext",
  ignore: !TURN,
  async fn() {
    // A holds the allocation and answers as a responder over it; B dials A's relayed address
    // with the ordinary UDP transport. What A's socket gets from coturn is what crossed the relay.
    const sa = openSocket();
    const crossed: Uint8Array[] = [];
    sa.turn.subscribe((bytes) => crossed.push(new Uint8Array(bytes)));
    const turn = await TurnClient.allocate(server(TURN!), { socket: sa.turn });
    const alice = await makeIdentity("alice");
    const bob = await makeIdentity("bob");
    const secret = text("the plaintext the relay must never see ".repeat(8));
    try {
      await turn.permit("127.0.0.1");
      const first = firstPeer(turn);
      const dialling = new UdpTransport().connect(turn.relayed, {
        identity: bob,
        expectedIdentityKey: alice.publicKey,
        timeoutMs: 5_000,
      });
      const linkA = await answerOverRelay(turn, await first, alice);
      const linkB = await dialling;
      assert.equal(linkA.remote.userId, "bob");
      await linkB.send(secret);
      assert.deepEqual(await linkA.receive(), secret);
      await linkA.send(text("and the answer"));
      assert.equal(textOf((await linkB.receive())!), "and the answer");
      // Every datagram that crossed the relay is STUN or ChannelData around sealed frames.
      const needle = secret.subarray(0, 16);
      const seen = crossed.some((d) =>
        d.some((_, i) => i + needle.length <= d.length && needle.every((b, j) => d[i + j] === b))
      );
      assert.equal(seen, false);
      assert.ok(crossed.some((d) => d[0]! >= 0x40 && d[0]! <= 0x4f)); // ChannelData did cross
      await linkB.close();
      await linkA.close();
    } finally {
      await turn.close();
      await sa.close();
    }
  },
});

// ---------------------------------------------------------------------------------------
// fake servers: what coturn will not do on request
// ---------------------------------------------------------------------------------------

/**
 * A scripted TURN server on loopback: `answer` returns the datagrams to send back for each
 * request (its decoded message and raw bytes).
 */
function fakeServer(
  answer: (request: ReturnType<typeof decodeStunMessage> & object, raw: Uint8Array) => Uint8Array[],
) {
  const s = openSocket();
  s.turn.subscribe((bytes, from) => {
    const m = decodeStunMessage(bytes, { maxBytes: 65_535 });
    if (!m || m.class !== StunClass.request) return;
    for (const out of answer(m, bytes)) void s.sendTo(out, from as Endpoint);
  });
  return { ...s, url: `turn:127.0.0.1:${s.endpoint.port}` };
}

const REALM = "fake.test";
const key = longTermKey("u", REALM, "p");

function challenge(tid: Uint8Array, code: number, nonce: string): Uint8Array {
  return encodeStunMessage(StunMethod.allocate, StunClass.error, {
    transactionId: tid,
    attributes: [
      [StunAttr.ERROR_CODE, encodeErrorCode(code, code === 401 ? "Unauthorized" : "Stale Nonce")],
      [StunAttr.REALM, encodeText(REALM)],
      [StunAttr.NONCE, encodeText(nonce)],
    ],
  });
}

function allocated(tid: Uint8Array, integrityKey?: Uint8Array): Uint8Array {
  const at = { family: "IPv4" as const, address: "127.0.0.1", port: 40000 };
  return encodeStunMessage(StunMethod.allocate, StunClass.success, {
    transactionId: tid,
    attributes: [
      [StunAttr.XOR_RELAYED_ADDRESS, encodeXorAddress(at, tid)],
      [StunAttr.XOR_MAPPED_ADDRESS, encodeXorAddress(at, tid)],
      [StunAttr.LIFETIME, encodeUint32(600)],
    ],
    integrityKey,
  });
}

Deno.test("a 438 Stale Nonce is retried with the new nonce; forged successes are dropped", async () => {
  const nonces: string[] = [];
  const fake = fakeServer((m, raw) => {
    const nonce = m.attributes.find(([t]) => t === StunAttr.NONCE)?.[1];
    if (!nonce) return [challenge(m.transactionId, 401, "first")];
    nonces.push(textOf(nonce));
    assert.ok(checkStunIntegrity(raw, m, key));
    if (textOf(nonce) === "first") return [challenge(m.transactionId, 438, "second")];
    // A success without integrity (a spoofer) first, then the server's.
    return [allocated(m.transactionId), allocated(m.transactionId, key)];
  });
  const s = openSocket();
  try {
    const client = await TurnClient.allocate(
      { url: fake.url, user: "u", password: "p" },
      { socket: s.turn, lifetimeSeconds: 600 },
    );
    assert.deepEqual(nonces, ["first", "second"]);
    assert.equal(client.relayed.port, 40000);
    await client.close();
  } finally {
    await s.close();
    await fake.close();
  }
});

Deno.test("an allocation without credentials, a redirect or silence is refused in one line", async () => {
  const open = fakeServer((m) => [allocated(m.transactionId)]);
  const redirect = fakeServer((m) => [
    encodeStunMessage(StunMethod.allocate, StunClass.error, {
      transactionId: m.transactionId,
      attributes: [[StunAttr.ERROR_CODE, encodeErrorCode(300, "Try Alternate")]],
    }),
  ]);
  const silent = fakeServer(() => []);
  const s = openSocket();
  try {
    const opts = { socket: s.turn, requests: 2, backoff: () => 20 };
    const a = await rejection(
      TurnClient.allocate({ url: open.url, user: "u", password: "p" }, opts),
    );
    assert.match((a as Error).message, /allocated without asking for credentials/);
    const b = await rejection(
      TurnClient.allocate({ url: redirect.url, user: "u", password: "p" }, opts),
    );
    assert.match((b as Error).message, /redirects to another one \(300 Try Alternate\)/);
    const c = await rejection(
      TurnClient.allocate({ url: silent.url, user: "u", password: "p" }, opts),
    );
    assert.ok(c instanceof PeerError && c.code === "ETIMEOUT");
    assert.match(c.message, /did not answer 2 requests; check terminal.turn_servers' url/);
  } finally {
    await s.close();
    await open.close();
    await redirect.close();
    await silent.close();
  }
});

Deno.test("TURN URLs: turn:host:port, the default port, UDP only", () => {
  assert.deepEqual(parseTurnUrl("turn:127.0.0.1:3578"), { host: "127.0.0.1", port: 3578 });
  assert.deepEqual(parseTurnUrl("turn:relay.example"), { host: "relay.example", port: 3478 });
  assert.deepEqual(parseTurnUrl("turn:[::1]:3478?transport=udp"), { host: "::1", port: 3478 });
  assert.throws(() => parseTurnUrl("turns:relay.example"), /TLS\) is not supported/);
  assert.throws(() => parseTurnUrl("turn:relay.example?transport=tcp"), /only \?transport=udp/);
  assert.throws(() => parseTurnUrl("turn:relay.example:99999"), TypeError);
});

Deno.test("an allocation the server no longer holds is reported lost, in one line", async () => {
  const fake = fakeServer((m) => {
    const nonce = stunAttribute(m, StunAttr.NONCE);
    if (!nonce) return [challenge(m.transactionId, 401, "n")];
    if (m.method === StunMethod.allocate) return [allocated(m.transactionId, key)];
    return [
      encodeStunMessage(m.method, StunClass.error, {
        transactionId: m.transactionId,
        attributes: [[StunAttr.ERROR_CODE, encodeErrorCode(437, "Allocation Mismatch")]],
      }),
    ];
  });
  const s = openSocket();
  const clock = new ManualClock(Date.now());
  try {
    let lost: PeerError | undefined;
    let roundDone: (() => void) | undefined;
    const client = await TurnClient.allocate(
      { url: fake.url, user: "u", password: "p" },
      {
        socket: s.turn,
        clock,
        onMaintained: () => roundDone?.(),
        onLost: (err) => {
          lost = err;
          roundDone?.();
        },
      },
    );
    // Rounds of a minute until the refresh at 480 s gets 437.
    while (!client.closed) {
      await clock.sleeping(1);
      const round = new Promise<void>((resolve) => (roundDone = resolve));
      clock.advance(TURN_REFRESH_TICK_MS);
      await round;
    }
    assert.ok(client.closed);
    assert.ok(lost && lost.code === "ERELAY");
    assert.equal(
      lost.message,
      `Cannot refresh the TURN relay on 127.0.0.1:${fake.endpoint.port}: the server holds no ` +
        "allocation for this socket (437 Allocation Mismatch); allocate again",
    );
    const late = await rejection(client.permit("127.0.0.9"));
    assert.match((late as Error).message, /closed or lost; allocate again/);
    await client.close();
  } finally {
    await s.close();
    await fake.close();
  }
});

Deno.test("a refresh that goes unanswered is tried again next round while time is left", async () => {
  const refreshes: string[] = [];
  let dropped: (() => void) | undefined;
  const fake = fakeServer((m) => {
    if (!stunAttribute(m, StunAttr.NONCE)) return [challenge(m.transactionId, 401, "n")];
    if (m.method === StunMethod.allocate) return [allocated(m.transactionId, key)];
    refreshes.push(textOf(m.transactionId));
    if (refreshes.length === 1) {
      dropped?.(); // the first Refresh gets no answer at all
      return [];
    }
    return [
      encodeStunMessage(StunMethod.refresh, StunClass.success, {
        transactionId: m.transactionId,
        attributes: [[StunAttr.LIFETIME, encodeUint32(600)]],
        integrityKey: key,
      }),
    ];
  });
  const s = openSocket();
  const clock = new ManualClock(Date.now());
  const reports: TurnMaintenance[] = [];
  let roundDone: (() => void) | undefined;
  let lost: PeerError | undefined;
  try {
    const client = await TurnClient.allocate(
      { url: fake.url, user: "u", password: "p" },
      {
        socket: s.turn,
        clock,
        requests: 1,
        backoff: () => 10,
        onMaintained: (r) => {
          reports.push(r);
          roundDone?.();
        },
        onLost: (err) => (lost = err),
      },
    );
    // Round 8 (480 s) refreshes into silence; round 9 (540 s) refreshes again and succeeds.
    for (let t = 0; t < 9; t++) {
      await clock.sleeping(1);
      const round = new Promise<void>((resolve) => (roundDone = resolve));
      const silence = new Promise<void>((resolve) => (dropped = resolve));
      clock.advance(TURN_REFRESH_TICK_MS);
      if (await Promise.race([round.then(() => false), silence.then(() => true)])) {
        await clock.sleeping(1); // the one request's wait
        clock.advance(10);
        await round;
      }
    }
    assert.equal(lost, undefined);
    assert.ok(!client.closed);
    assert.equal(refreshes.length, 2);
    assert.deepEqual(reports.map((r) => r.allocation), [...Array(8).fill(false), true]);
    await client.close();
  } finally {
    await s.close();
    await fake.close();
  }
});
