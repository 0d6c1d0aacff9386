/**
 * TCP simultaneous open from a listener's port (issue 13), on 127.0.0.1: two listeners punching
 * to each other get exactly one link and chat; a peer with another key fails that candidate
 * only; the window ends with `PeerError` `ETIMEOUT`; the listener accepts during and after a
 * punch; and a punch is bounded like the UDP one. Loopback answers a SYN at once (a RST when no
 * socket is there), so the SYNs of two sides never cross here: the sides meet through each
 * other's listener, which is what the roles by key must survive. The NAT lab shows the crossing
 * (tests/natlab/tcp_punch_test.ts).
 */
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { PeerError } from "../../src/errors.ts";
import { PUNCH_MAX_CANDIDATES, PUNCH_MAX_WINDOW_MS, PUNCH_TCP_QUIET_MS } from "../../src/limits.ts";
import type { Endpoint } from "../../src/message/types.ts";
import { TcpPunch } from "../../src/peer/tcp_punch.ts";
import { TcpTransport } from "../../src/peer/tcp_transport.ts";
import type { PeerIdentity } from "../../src/peer/types.ts";
import { punchRole } from "../../src/peer/udp_punch.ts";
import { Events } from "../support/punch_events.ts";
import { ManualClock } from "../support/manual_clock.ts";
import { makeIdentity, rejectsWithCode } from "../conformance/peer_transport.ts";

const LOCAL = { address: "127.0.0.1", port: 0 };
const text = (s: string) => new TextEncoder().encode(s);
const read = (b: Uint8Array | null) => (b === null ? null : new TextDecoder().decode(b));
const tcp = (e: Endpoint): Endpoint => ({ transport: "tcp", address: e.address, port: e.port });

/** Identities ordered by key: `low` is the controlling side against any of the others. */
async function ordered(...names: string[]): Promise<PeerIdentity[]> {
  const ids = await Promise.all(names.map((n) => makeIdentity(n)));
  return ids.sort((x, y) => punchRole(x.publicKey, y.publicKey) === "controlling" ? -1 : 1);
}

/**
 * A TCP port whose SYNs are dropped, like a NAT that has not been opened yet: a listener with
 * a full accept queue (backlog 0, one connection queued, never accepted).
 */
async function blackhole(): Promise<{ endpoint: Endpoint; close: () => void }> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0, tcpBacklog: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const fillers: Socket[] = [];
  for (let i = 0; i < 2; i++) {
    const s = connect({ host: "127.0.0.1", port });
    s.on("error", () => {});
    fillers.push(s);
  }
  await new Promise((resolve) => fillers[0]!.once("connect", resolve));
  return {
    endpoint: { transport: "tcp", address: "127.0.0.1", port },
    close: () => {
      for (const s of fillers) s.destroy();
      listener.close();
    },
  };
}

Deno.test("two TCP listeners punching to each other get exactly one link and chat both ways", async () => {
  // A fast backoff instead of waits: the sides retry every 5 ms until they meet.
  const transport = new TcpTransport({ backoff: () => 5 });
  const [low, high] = await ordered("xavier", "yvonne");
  const a = await transport.listen(LOCAL, { identity: low! });
  const b = await transport.listen(LOCAL, { identity: high! });
  try {
    const [ra, rb] = await Promise.all([
      a.punch!({ peerKey: high!.publicKey, candidates: [tcp(b.endpoint)], windowMs: 20_000 }),
      b.punch!({ peerKey: low!.publicKey, candidates: [tcp(a.endpoint)], windowMs: 20_000 }),
    ]);
    assert.equal(ra.role, "controlling");
    assert.equal(rb.role, "controlled");
    // Loopback answers a SYN at once: one side's listener took the other's connect.
    assert.deepEqual([ra.via, rb.via].sort(), ["connect", "listener"]);
    assert.deepEqual(ra.link.remote.identityKey, high!.publicKey);
    assert.deepEqual(rb.link.remote.identityKey, low!.publicKey);
    assert.equal(ra.link.transport, "tcp");
    // One TCP connection: each side's local port is the other's remote port.
    assert.equal(ra.link.local.port, rb.link.remote.endpoint.port);
    assert.equal(rb.link.local.port, ra.link.remote.endpoint.port);
    // Both links run from the listeners' own ports.
    assert.deepEqual(
      [ra.link.local.port, rb.link.local.port].sort(),
      [a.endpoint.port, b.endpoint.port].sort(),
    );
    await ra.link.send(text("hello from the controlling side"));
    assert.equal(read(await rb.link.receive()), "hello from the controlling side");
    await rb.link.send(text("and back"));
    assert.equal(read(await ra.link.receive()), "and back");
    await ra.link.close();
    assert.equal(await rb.link.receive(), null);
    await rb.link.close();
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("a punched TCP link carries 8 MiB both ways at once, intact and in order", async () => {
  const transport = new TcpTransport({ backoff: () => 5 });
  const [low, high] = await ordered("xavier", "yvonne");
  const a = await transport.listen(LOCAL, { identity: low! });
  const b = await transport.listen(LOCAL, { identity: high! });
  try {
    const [ra, rb] = await Promise.all([
      a.punch!({ peerKey: high!.publicKey, candidates: [tcp(b.endpoint)], windowMs: 20_000 }),
      b.punch!({ peerKey: low!.publicKey, candidates: [tcp(a.endpoint)], windowMs: 20_000 }),
    ]);
    const total = 8 * 1024 * 1024;
    const chunk = 64 * 1024;
    const pattern = (i: number) => new Uint8Array(chunk).fill(i % 251);
    const send = async (link: typeof ra.link) => {
      for (let i = 0; i * chunk < total; i++) await link.send(pattern(i));
    };
    const receive = async (link: typeof ra.link) => {
      const into = new Uint8Array(256 * 1024);
      let got = 0;
      for (let i = 0; got < total; i++) {
        const m = await link.receive({ into });
        assert.ok(m, "the link ended early");
        assert.equal(m.length, chunk);
        assert.ok(m.every((x) => x === i % 251), `message ${i} arrived altered`);
        got += m.length;
      }
      return got;
    };
    // Both directions at once, on the dialled side through the node:net socket.
    const [, , toB, toA] = await Promise.all([
      send(ra.link),
      send(rb.link),
      receive(rb.link),
      receive(ra.link),
    ]);
    assert.equal(toB, total);
    assert.equal(toA, total);
    await ra.link.close();
    await rb.link.close();
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("a controlled side's connect that reached the controlling listener first is taken over by its punch", async () => {
  const transport = new TcpTransport({ backoff: () => 5 });
  const [low, high] = await ordered("xavier", "yvonne");
  const a = await transport.listen(LOCAL, { identity: low! });
  const b = await transport.listen(LOCAL, { identity: high! });
  try {
    // The controlled side starts alone: its connect lands on a's listener, which waits for a
    // CONNECT that only a controlling side sends …
    const events = new Events();
    const late = b.punch!({
      peerKey: low!.publicKey,
      candidates: [tcp(a.endpoint)],
      windowMs: 20_000,
      onEvent: events.on,
    });
    await events.next((e) => e.type === "attempt");
    // … until a's punch starts and sends it on that connection (or the two meet anew).
    const ra = await a.punch!({
      peerKey: high!.publicKey,
      candidates: [tcp(b.endpoint)],
      windowMs: 20_000,
    });
    const rb = await late;
    assert.equal(ra.link.local.port, rb.link.remote.endpoint.port);
    await rb.link.send(text("ping"));
    assert.equal(read(await ra.link.receive()), "ping");
    await ra.link.close();
    await rb.link.close();
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("a punch to a listener with another key fails that candidate with EIDENTITY and ends at the window", async () => {
  const clock = new ManualClock();
  const transport = new TcpTransport({ clock });
  // `low` is controlling against both: it sends CONNECT and checks the answer's key.
  const [low, expected, stranger] = await ordered("xavier", "yvonne", "mallory");
  const a = await transport.listen(LOCAL, { identity: low! });
  const m = await transport.listen(LOCAL, { identity: stranger! });
  const hole = await blackhole();
  try {
    const events = new Events();
    const punching = a.punch!({
      peerKey: expected!.publicKey,
      candidates: [tcp(m.endpoint), hole.endpoint],
      windowMs: 2_000,
      onEvent: events.on,
    });
    punching.catch(() => {});
    const failed = await events.next((e) => e.type === "failed");
    assert.ok(failed.type === "failed" && failed.error instanceof PeerError);
    assert.equal((failed.error as PeerError).code, "EIDENTITY");
    assert.equal(failed.remote.port, m.endpoint.port);
    // The silent candidate is still tried until the window ends.
    clock.advance(2_000);
    await rejectsWithCode(punching, "ETIMEOUT");
    // When every candidate answered with another key, the punch ends at once with that.
    await rejectsWithCode(
      a.punch!({ peerKey: expected!.publicKey, candidates: [tcp(m.endpoint)], windowMs: 2_000 }),
      "EIDENTITY",
    );
    // The stranger got no link it could use: its listener dropped the refused handshake.
    const none = new AbortController();
    none.abort(new Error("nothing there"));
    await assert.rejects(m.accept({ signal: none.signal }), /nothing there/);
  } finally {
    hole.close();
    await a.close();
    await m.close();
  }
});

Deno.test("a controlled side that reaches a listener which does not punch sends CONNECT itself after a quiet while", async () => {
  const clock = new ManualClock();
  const transport = new TcpTransport({ clock });
  const [low, high] = await ordered("xavier", "yvonne");
  // `low` only stands by (an older version, or it refuses to punch); `high` punches to it.
  const a = await transport.listen(LOCAL, { identity: low! });
  const b = await transport.listen(LOCAL, { identity: high! });
  try {
    const punching = b.punch!({
      peerKey: low!.publicKey,
      candidates: [tcp(a.endpoint)],
      windowMs: 10_000,
    });
    punching.catch(() => {});
    // Connected, waiting for a CONNECT: the window, both handshake timeouts and the quiet wait.
    await clock.sleeping(4);
    assert.equal(clock.nextWakeIn, PUNCH_TCP_QUIET_MS);
    clock.advance(PUNCH_TCP_QUIET_MS);
    const rb = await punching;
    assert.equal(rb.role, "controlled");
    const la = await a.accept();
    assert.deepEqual(la.remote.identityKey, high!.publicKey);
    await rb.link.send(text("hi"));
    assert.equal(read(await la.receive()), "hi");
    await rb.link.close();
    await la.close();
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("a TCP punch that no candidate answers ends with ETIMEOUT at the window; the listener accepts during and after it", async () => {
  const clock = new ManualClock();
  const transport = new TcpTransport({ clock });
  const [low, high, third] = await ordered("xavier", "yvonne", "zoe");
  const a = await transport.listen(LOCAL, { identity: low! });
  const hole = await blackhole();
  try {
    const events = new Events();
    const punching = a.punch!({
      peerKey: high!.publicKey,
      candidates: [hole.endpoint],
      windowMs: 3_000,
      onEvent: events.on,
    });
    let settled = false;
    punching.then(() => settled = true, () => settled = true);
    // The connect is out (the window and the connect's own timer wait): the listener is back.
    await clock.sleeping(2);
    // Meanwhile a third peer dials the listener plainly and is accepted.
    const during = await new TcpTransport().connect(tcp(a.endpoint), {
      identity: third!,
      expectedIdentityKey: low!.publicKey,
    });
    const accepted = await a.accept();
    assert.deepEqual(accepted.remote.identityKey, third!.publicKey);
    await during.close();
    await accepted.close();
    clock.advance(2_999);
    await Promise.resolve();
    assert.equal(settled, false);
    clock.advance(1);
    await rejectsWithCode(punching, "ETIMEOUT");
    await assert.rejects(punching, /none of 1 candidate endpoints .* in 3000 ms/);
    // After the punch the listener is there as before.
    const after = await new TcpTransport().connect(tcp(a.endpoint), {
      identity: third!,
      expectedIdentityKey: low!.publicKey,
    });
    const again = await a.accept();
    await after.send(text("still here"));
    assert.equal(read(await again.receive()), "still here");
    await after.close();
    await again.close();
  } finally {
    hole.close();
    await a.close();
  }
});

Deno.test("a TCP punch is bounded: candidates, window, transport, own key, one punch per peer, a closed listener", async () => {
  const clock = new ManualClock();
  const transport = new TcpTransport({ clock });
  const [low, high] = await ordered("xavier", "yvonne");
  const a = await transport.listen(LOCAL, { identity: low! });
  const hole = await blackhole();
  try {
    const peerKey = high!.publicKey;
    const many = Array.from({ length: PUNCH_MAX_CANDIDATES + 1 }, () => hole.endpoint);
    await assert.rejects(a.punch!({ peerKey, candidates: [] }), RangeError);
    await assert.rejects(a.punch!({ peerKey, candidates: many }), RangeError);
    await assert.rejects(
      a.punch!({ peerKey, candidates: [hole.endpoint], windowMs: PUNCH_MAX_WINDOW_MS + 1 }),
      RangeError,
    );
    await assert.rejects(
      a.punch!({ peerKey, candidates: [{ ...hole.endpoint, transport: "udp" }] }),
      TypeError,
    );
    await assert.rejects(
      a.punch!({ peerKey: low!.publicKey, candidates: [hole.endpoint] }),
      RangeError,
    );
    const first = a.punch!({ peerKey, candidates: [hole.endpoint], windowMs: 1_000 });
    first.catch(() => {});
    await rejectsWithCode(a.punch!({ peerKey, candidates: [hole.endpoint] }), "EPEER");
    clock.advance(1_000);
    await rejectsWithCode(first, "ETIMEOUT");
    await a.close();
    await rejectsWithCode(a.punch!({ peerKey, candidates: [hole.endpoint] }), "EPEER");
  } finally {
    hole.close();
    await a.close();
  }
});

Deno.test("a TCP punch dials again after each step plus a random pause of up to half a step, so two sides on one schedule drift apart", async () => {
  // Each connect makes the listener step aside for a moment: two sides that dial in step
  // would refuse each other every time (src/peer/tcp_punch.ts, "Why the random pause").
  const [low, high] = await ordered("xavier", "yvonne");
  const attemptTimes = async (draw: number[]) => {
    const clock = new ManualClock(0);
    const dialled: number[] = [];
    const punch = new TcpPunch({
      ownKey: low!.publicKey,
      clock,
      backoff: (n) => [100, 200, 400][n] ?? 400,
      random: (length) => new Uint8Array(length).fill(draw.shift() ?? 0),
      dial: () => {
        dialled.push(clock.now());
        return Promise.reject(new Error("connect ECONNREFUSED")); // refused at once
      },
    }, {
      peerKey: high!.publicKey,
      candidates: [{ transport: "tcp", address: "198.51.100.7", port: 4000, kind: "host" }],
      windowMs: 2_000,
    });
    const result = punch.run();
    result.catch(() => {});
    while (dialled.length < 4) {
      await clock.sleeping(2); // the window and the pause before the next connect
      clock.advance(clock.nextWakeIn!);
    }
    punch.cancel(new Error("test over"));
    await punch.stopped();
    return dialled;
  };
  // The pause is the rest of the step plus (draw / 65,536) of half a step: draws of 0, then
  // 0x8080 (about half of half a step), then 0xffff (nearly all of it).
  assert.deepEqual(await attemptTimes([0]), [0, 100, 300, 700]);
  assert.deepEqual(await attemptTimes([0x00, 0x80, 0xff]), [0, 100, 300 + 50, 750 + 199]);
});
