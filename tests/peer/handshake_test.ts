import assert from "node:assert/strict";
import { PeerError } from "../../src/errors.ts";
import type { Endpoint } from "../../src/message/types.ts";
import { decodeConnect, decodeDisconnect, encodeConnect } from "../../src/peer/frame.ts";
import { type Frame, FrameType } from "../../src/peer/frame.ts";
import { initiateHandshake, respondHandshake } from "../../src/peer/handshake.ts";
import { SessionLink } from "../../src/peer/session_link.ts";
import type { FrameChannel, PeerIdentity } from "../../src/peer/types.ts";
import { makeIdentity } from "../conformance/peer_transport.ts";

/** One end of an in-memory frame pipe; `tap` may inspect, alter or swallow outgoing frames. */
class MemoryChannel implements FrameChannel {
  peer!: MemoryChannel;
  sent: Frame[] = [];
  tap: (frame: Frame) => Frame | null = (f) => f;
  #inbox: Frame[] = [];
  #waiter: ((f: Frame | null) => void) | null = null;
  closed = false;

  static pair(): [MemoryChannel, MemoryChannel] {
    const a = new MemoryChannel();
    const b = new MemoryChannel();
    a.peer = b;
    b.peer = a;
    return [a, b];
  }

  send(frame: Frame): Promise<void> {
    if (this.closed) return Promise.reject(new PeerError("EPEER", "Cannot send: closed; test"));
    this.sent.push(frame);
    const out = this.tap(frame);
    if (out) this.peer.#deliver(out);
    return Promise.resolve();
  }

  #deliver(frame: Frame | null): void {
    if (this.closed) return;
    const waiter = this.#waiter;
    this.#waiter = null;
    if (waiter) waiter(frame);
    else if (frame) this.#inbox.push(frame);
  }

  receive(options: { signal?: AbortSignal } = {}): Promise<Frame | null> {
    const next = this.#inbox.shift();
    if (next) return Promise.resolve(next);
    if (this.closed || this.peer.closed) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      options.signal?.addEventListener("abort", () => reject(options.signal?.reason), {
        once: true,
      });
      this.#waiter = resolve;
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.#waiter?.(null);
    this.#waiter = null;
    this.peer.#deliver(null);
  }
}

const A_AT: Endpoint = { transport: "tcp", address: "198.51.100.7", port: 40000 };
const B_AT: Endpoint = { transport: "tcp", address: "203.0.113.9", port: 7000 };
const text = (s: string) => new TextEncoder().encode(s);

function code(expected: string, pattern?: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof PeerError, String(err));
    assert.equal(err.code, expected, err.message);
    if (pattern) assert.match(err.message, pattern);
    return true;
  };
}

async function handshake(
  options: {
    alice?: PeerIdentity;
    bob?: PeerIdentity;
    expected?: Uint8Array;
    accept?: (p: { userId: string }) => boolean;
    tapA?: (f: Frame) => Frame | null;
    tapB?: (f: Frame) => Frame | null;
  } = {},
) {
  const alice = options.alice ?? await makeIdentity("alice");
  const bob = options.bob ?? await makeIdentity("bob");
  const [a, b] = MemoryChannel.pair();
  if (options.tapA) a.tap = options.tapA;
  if (options.tapB) b.tap = options.tapB;
  const results = await Promise.allSettled([
    initiateHandshake(a, {
      identity: alice,
      local: A_AT,
      remote: B_AT,
      expectedIdentityKey: options.expected ?? bob.publicKey,
      random: (n) => new Uint8Array(n).fill(0xaa),
    }).finally(() => a.close()),
    respondHandshake(b, { identity: bob, accept: options.accept }).finally(() => b.close()),
  ]);
  return { alice, bob, a, b, initiator: results[0], responder: results[1] };
}

function reason<T>(r: PromiseSettledResult<T>): unknown {
  assert.equal(r.status, "rejected", "the handshake should have failed");
  return (r as PromiseRejectedResult).reason;
}

function value<T>(r: PromiseSettledResult<T>): T {
  if (r.status === "rejected") throw r.reason;
  return r.value;
}

Deno.test("both sides finish the three-step handshake knowing each other's proven identity", async () => {
  const { alice, bob, a, b, initiator, responder } = await handshake();
  const i = value(initiator);
  const r = value(responder);
  assert.deepEqual(a.sent.map((f) => f.type), [FrameType.CONNECT, FrameType.ACK]);
  assert.deepEqual(b.sent.map((f) => f.type), [FrameType.CONNECT_ACK]);
  assert.deepEqual(i.peer, { userId: "bob", identityKey: bob.publicKey });
  assert.deepEqual(r.peer, { userId: "alice", identityKey: alice.publicKey });
  assert.deepEqual(i.transcriptHash, r.transcriptHash);
  assert.deepEqual(r.connect.source, A_AT);
  assert.deepEqual(r.connect.destination, B_AT);
  assert.deepEqual(r.connect.nonce, new Uint8Array(16).fill(0xaa), "nonce from injected random");
  assert.deepEqual((await r.cipher.open(await i.cipher.seal(text("hi")))).plaintext, text("hi"));
});

Deno.test("a peer whose identity key is not the listed one is refused with EIDENTITY", async () => {
  const { initiator, a } = await handshake({ expected: (await makeIdentity("x")).publicKey });
  code("EIDENTITY", /listed/)(reason(initiator));
  assert.deepEqual(a.sent.map((f) => f.type), [FrameType.CONNECT], "no ACK is sent");
});

Deno.test("a forged responder signature is refused with EIDENTITY", async () => {
  const { initiator } = await handshake({
    tapB: (f) => {
      const body = f.body.slice();
      body[body.length - 1]! ^= 1;
      return { ...f, body };
    },
  });
  code("EIDENTITY", /signature/)(reason(initiator));
});

Deno.test("an initiator claiming someone else's identity key cannot complete", async () => {
  const victim = await makeIdentity("victim");
  const mallory = await makeIdentity("victim");
  const { responder } = await handshake({
    alice: { ...mallory, publicKey: victim.publicKey }, // claims the key, cannot sign with it
  });
  code("EIDENTITY")(reason(responder));
});

Deno.test("an address changed on the way breaks the handshake (both addresses are signed)", async () => {
  const { initiator } = await handshake({
    tapA: (f) => {
      if (f.type !== FrameType.CONNECT) return f;
      const connect = decodeConnect(f.body);
      return { ...f, body: encodeConnect({ ...connect, destination: { ...B_AT, port: 1 } }) };
    },
  });
  code("EIDENTITY")(reason(initiator));
});

Deno.test("a refusing accept hook ends the initiator's attempt with EPEER refused", async () => {
  const seen: string[] = [];
  const { initiator, responder, b } = await handshake({
    accept: (p) => {
      seen.push(p.userId);
      return false;
    },
  });
  assert.deepEqual(seen, ["alice"]);
  assert.deepEqual(b.sent.map((f) => [f.type, decodeDisconnect(f.body)]), [[
    FrameType.DISCONNECT,
    "refused",
  ]]);
  code("EPEER", /refused/)(reason(initiator));
  code("EPEER", /refused/)(reason(responder));
});

Deno.test("a frame out of place during the handshake is rejected with EFRAME", async () => {
  const [a, b] = MemoryChannel.pair();
  const responding = respondHandshake(b, { identity: await makeIdentity("bob") });
  await a.send({ type: FrameType.DATA, body: new Uint8Array(12) });
  await assert.rejects(responding, code("EFRAME"));
});

Deno.test("a peer that hangs up during the handshake gives EPEER", async () => {
  const [a, b] = MemoryChannel.pair();
  const responding = respondHandshake(b, { identity: await makeIdentity("bob") });
  a.close();
  await assert.rejects(responding, code("EPEER"));
});

Deno.test("an initiator whose claim is refused sends no ACK, so the responder never completes", async () => {
  const [a, b] = MemoryChannel.pair();
  const stop = new AbortController();
  const responding = respondHandshake(b, {
    identity: await makeIdentity("bob"),
    signal: stop.signal,
  });
  let asked = 0;
  await assert.rejects(
    initiateHandshake(a, {
      identity: await makeIdentity("alice"),
      local: A_AT,
      remote: B_AT,
      claim: () => (asked++, false), // another pair to bob completed first
    }),
    (err: unknown) =>
      err instanceof PeerError && err.code === "EPEER" && /completed first/.test(err.message),
  );
  assert.equal(asked, 1);
  assert.deepEqual(a.sent.map((f) => f.type), [FrameType.CONNECT]); // no ACK left
  stop.abort(new Error("handshake timeout"));
  await assert.rejects(responding, /handshake timeout/);
});

Deno.test("a silent peer is given up on when the signal aborts", async () => {
  const [, b] = MemoryChannel.pair();
  const stop = new AbortController();
  const responding = respondHandshake(b, {
    identity: await makeIdentity("bob"),
    signal: stop.signal,
  });
  stop.abort(new Error("handshake timeout"));
  await assert.rejects(responding, /handshake timeout/);
});

interface LinkLimits {
  maxFragmentBytes?: number;
  maxMessageBytes?: number;
}

async function links(options: { a?: LinkLimits; b?: LinkLimits } = {}) {
  const [a, b] = MemoryChannel.pair();
  const alice = await makeIdentity("alice");
  const bob = await makeIdentity("bob");
  const [i, r] = await Promise.all([
    initiateHandshake(a, { identity: alice, local: A_AT, remote: B_AT }),
    respondHandshake(b, { identity: bob }),
  ]);
  const common = { transport: "tcp" as const, disconnectTimeoutMs: 20 };
  const la = new SessionLink(a, i.cipher, {
    ...common,
    ...options.a,
    local: A_AT,
    remote: { ...i.peer, endpoint: B_AT },
  });
  const lb = new SessionLink(b, r.cipher, {
    ...common,
    ...options.b,
    local: B_AT,
    remote: { ...r.peer, endpoint: A_AT },
  });
  return { a, b, la, lb };
}

Deno.test("a message larger than a frame is split into DATA frames and arrives whole", async () => {
  const { a, la, lb } = await links({ a: { maxFragmentBytes: 10 } });
  const message = text("a message of forty-two bytes, more or less");
  await la.send(message);
  assert.deepEqual(await lb.receive(), message);
  assert.equal(
    a.sent.filter((f) => f.type === FrameType.DATA).length,
    Math.ceil(message.length / 10),
  );
  await Promise.all([la.close(), lb.close()]);
});

Deno.test("a PING is answered with a PONG carrying the same bytes", async () => {
  const { a, b, la, lb } = await links();
  const pong = new Promise<Frame>((resolve) => {
    b.tap = (f) => {
      if (f.type === FrameType.PONG) resolve(f);
      return f;
    };
  });
  await a.send({ type: FrameType.PING, body: Uint8Array.of(1, 2, 3) });
  assert.deepEqual((await pong).body, Uint8Array.of(1, 2, 3));
  await Promise.all([la.close(), lb.close()]);
});

Deno.test("close waits only disconnectTimeoutMs for a peer that never acknowledges", async () => {
  const { a, la, lb } = await links();
  a.tap = () => null; // DISCONNECT is lost
  await la.close();
  assert.equal(a.closed, true);
  assert.equal(await lb.receive().catch((e) => e.code), "EPEER", "the other side sees the hang-up");
  await lb.close();
});

Deno.test("a peer sending a message above the limit gets the link failed with EFRAME", async () => {
  const { la, lb } = await links({ a: { maxFragmentBytes: 4 }, b: { maxMessageBytes: 8 } });
  await la.send(new Uint8Array(8));
  assert.equal((await lb.receive())?.length, 8, "a message at the limit arrives");
  await la.send(new Uint8Array(9));
  await assert.rejects(lb.receive(), code("EFRAME", /exceeds 8 bytes/));
  await assert.rejects(lb.send(text("after")), code("EPEER"), "the failed link is closed");
  await Promise.all([la.close(), lb.close()]);
});

Deno.test("an altered DATA frame fails the link: receive rejects with EFRAME", async () => {
  const { a, la, lb } = await links();
  a.tap = (f) => {
    if (f.type !== FrameType.DATA) return f;
    const body = f.body.slice();
    body[body.length - 1]! ^= 1;
    return { ...f, body };
  };
  await la.send(text("tampered"));
  await assert.rejects(lb.receive(), code("EFRAME"));
  await Promise.all([la.close(), lb.close()]);
});
