/**
 * `receive({ into })` on a stream session link, with each AES-GCM implementation, over an
 * in-memory channel that lends its bodies as TCP does (each one is overwritten on the next
 * `receive()`), so a link that kept a lent body would fail here too.
 */
import assert from "node:assert/strict";
import { PeerError } from "../../src/errors.ts";
import { MAX_FRAME_BYTES } from "../../src/protocol.ts";
import type { Endpoint } from "../../src/message/types.ts";
import { type AesGcmEngine, ipsecMbAvailable, opensslAvailable } from "../../src/peer/aes_gcm.ts";
import { type Frame, FrameType } from "../../src/peer/frame.ts";
import { deriveSessionKeys, SessionCipher } from "../../src/peer/session_crypto.ts";
import { MAX_FRAGMENT_BYTES, SessionLink } from "../../src/peer/session_link.ts";
import { RECEIVE_PARK_MS } from "../../src/limits.ts";
import { ManualClock } from "../support/manual_clock.ts";
import type { FrameChannel } from "../../src/peer/types.ts";

/** One end of an in-memory stream: bodies are lent from one buffer, as TcpChannel does. */
class LendingChannel implements FrameChannel {
  peer!: LendingChannel;
  /** May inspect, alter or swallow (null) outgoing frames. */
  tap: (frame: Frame) => Frame | null = (f) => f;
  #inbox: Frame[] = [];
  #waiter: ((f: Frame | null) => void) | null = null;
  #lent = new Uint8Array(MAX_FRAME_BYTES);
  #taken = 0;
  #idleWatchers: { taken: number; resolve: () => void }[] = [];
  closed = false;

  static pair(): [LendingChannel, LendingChannel] {
    const a = new LendingChannel();
    const b = new LendingChannel();
    a.peer = b;
    b.peer = a;
    return [a, b];
  }

  /** While set, a send waits for it (a connection that does not take bytes), or fails with it. */
  gate: Promise<void> | null = null;
  /** Frames a send was called for. */
  sends = 0;

  send(frame: Frame): Promise<void> {
    this.sends++;
    if (this.gate) {
      const body = frame.body.slice(); // the bytes as they were handed over
      return this.gate.then(() => this.#send({ type: frame.type, body }));
    }
    return this.#send(frame);
  }

  #send(frame: Frame): Promise<void> {
    if (this.closed) return Promise.reject(new PeerError("EPEER", "Cannot send: closed; test"));
    const out = this.tap({ type: frame.type, body: frame.body.slice() });
    if (out) this.peer.deliver(out);
    return Promise.resolve();
  }

  /** Hands a frame to this end as if it came off the wire. */
  deliver(frame: Frame | null): void {
    if (this.closed) return;
    const waiter = this.#waiter;
    this.#waiter = null;
    if (waiter) waiter(frame && this.#lend(frame));
    else if (frame) this.#inbox.push(frame);
  }

  #lend(frame: Frame): Frame {
    this.#lent.fill(0xaa); // whatever was lent before is gone now
    this.#lent.set(frame.body);
    return { type: frame.type, body: this.#lent.subarray(0, frame.body.length) };
  }

  receive(): Promise<Frame | null> {
    const next = this.#inbox.shift();
    if (next) {
      this.#taken++;
      return Promise.resolve(this.#lend(next));
    }
    if (this.closed || this.peer.closed) return Promise.resolve(null);
    const waiting = new Promise<Frame | null>((resolve) =>
      this.#waiter = (f) => {
        if (f) this.#taken++;
        resolve(f);
      }
    );
    const ready = this.#idleWatchers.filter((w) => this.#taken >= w.taken);
    this.#idleWatchers = this.#idleWatchers.filter((w) => this.#taken < w.taken);
    for (const w of ready) w.resolve();
    return waiting;
  }

  /** Frames delivered to this end that its reader has not taken yet. */
  get unread(): number {
    return this.#inbox.length;
  }

  /** Resolves when the reader, having taken at least `taken` frames, waits for another. */
  waiting(taken: number): Promise<void> {
    // The reader may be waiting already: then the event has happened.
    if (this.#waiter && this.#taken >= taken) return Promise.resolve();
    return new Promise((resolve) => this.#idleWatchers.push({ taken, resolve }));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.#waiter?.(null);
    this.#waiter = null;
    this.peer.deliver(null);
  }
}

const A_AT: Endpoint = { transport: "tcp", address: "198.51.100.7", port: 40000 };
const B_AT: Endpoint = { transport: "tcp", address: "203.0.113.9", port: 7000 };
const F = MAX_FRAGMENT_BYTES;
const ENGINES: AesGcmEngine[] = [
  ...(ipsecMbAvailable() ? ["ipsec-mb" as const] : []),
  ...(opensslAvailable() ? ["openssl" as const] : []),
  "node",
  "webcrypto",
];

function streamLinks(
  engine: AesGcmEngine,
  options: { maxFragmentBytes?: number; clock?: ManualClock } = {},
) {
  const [a, b] = LendingChannel.pair();
  const secret = crypto.getRandomValues(new Uint8Array(32));
  const transcript = crypto.getRandomValues(new Uint8Array(32));
  const keysA = deriveSessionKeys(secret, transcript, { role: "initiator" });
  const keysB = deriveSessionKeys(secret, transcript, { role: "responder" });
  const peer = (userId: string, endpoint: Endpoint) => ({
    userId,
    identityKey: new Uint8Array(32),
    endpoint,
  });
  const common = { transport: "tcp" as const, disconnectTimeoutMs: 20, exclusiveFrames: true };
  const la = new SessionLink(a, new SessionCipher(keysA, { aesGcm: engine }), {
    ...common,
    ...(options.maxFragmentBytes ? { maxFragmentBytes: options.maxFragmentBytes } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
    local: A_AT,
    remote: peer("bob", B_AT),
  });
  // Every open of b's cipher, so a test can wait for WebCrypto's opens ahead to settle.
  const cipherB = new SessionCipher(keysB, { aesGcm: engine });
  const opens: Promise<unknown>[] = [];
  const open = cipherB.open.bind(cipherB);
  cipherB.open = (...args) => {
    const opening = open(...args);
    opens.push(opening.catch(() => {}));
    return opening;
  };
  /** Resolves once b's cipher opened every frame given so far and the link placed them. */
  const opened = async () => {
    await Promise.all(opens);
    await new Promise((resolve) => setTimeout(resolve, 0)); // a task: queued placements ran
  };
  const lb = new SessionLink(b, cipherB, {
    ...common,
    ...(options.clock ? { clock: options.clock } : {}),
    local: B_AT,
    remote: peer("alice", A_AT),
  });
  return { a, b, la, lb, opened, close: () => Promise.all([la.close(), lb.close()]) };
}

function randomBytes(length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let at = 0; at < length; at += 65536) {
    crypto.getRandomValues(out.subarray(at, Math.min(length, at + 65536)));
  }
  return out;
}

/** Equal bytes; on a mismatch says where, without printing megabytes. */
function assertBytes(got: Uint8Array | null, want: Uint8Array, what = "message"): void {
  assert.ok(got, `${what}: null`);
  assert.equal(got.length, want.length, `${what}: length`);
  const at = got.findIndex((b, i) => b !== want[i]);
  assert.equal(at, -1, `${what}: first wrong byte at ${at}`);
}

const isViewOf = (m: Uint8Array | null, into: Uint8Array) => m?.buffer === into.buffer;

function isEframe(err: unknown): boolean {
  assert.ok(err instanceof PeerError, String(err));
  assert.equal(err.code, "EFRAME", err.message);
  return true;
}

for (const engine of ENGINES) {
  const synchronous = engine !== "webcrypto";

  Deno.test(`receive({ into }) gets exactly the bytes sent at every size around the fragment limit (${engine})`, async () => {
    const { la, lb, close } = streamLinks(engine);
    try {
      const sizes = [0, 1, 100, F - 1, F, F + 1, 2 * F, 2 * F + 1, 3 * F + 7, 1 << 20, F, 5, 2 * F];
      let hint = 0; // size of the last message of several fragments
      for (const intoBytes of [F, 2 * F + 1, 1000]) {
        const into = new Uint8Array(intoBytes);
        for (const size of sizes) {
          const message = randomBytes(size);
          const receiving = lb.receive({ into }); // waiting before the message comes
          await la.send(message);
          const got = await receiving;
          assertBytes(got, message, `${size} bytes into ${intoBytes}`);
          // Opened straight into the caller's buffer whenever it fits; WebCrypto hands out
          // a one-fragment message in the array its decryption made.
          const view = size <= intoBytes && hint <= intoBytes && (synchronous || size > F);
          assert.equal(isViewOf(got, into), view, `${size} bytes into ${intoBytes}: view`);
          hint = size > F ? size : 0;
        }
      }
    } finally {
      await close();
    }
  });

  Deno.test(`a message longer than into arrives whole in a new array and the next ones still use into (${engine})`, async () => {
    const { la, lb, close } = streamLinks(engine);
    try {
      const into = new Uint8Array(1000);
      const sent = [randomBytes(500), randomBytes(3 * F + 7), randomBytes(F + 1), randomBytes(700)];
      for (const m of sent) await la.send(m);
      const got: Uint8Array[] = [];
      for (const _ of sent) got.push((await lb.receive({ into }))!.slice());
      for (const [i, m] of sent.entries()) assertBytes(got[i]!, m, `message ${i}`);
    } finally {
      await close();
    }
  });

  Deno.test(`a receive({ into }) given up halfway through a message gives its buffer back and loses nothing (${engine})`, async () => {
    const { a, b, la, lb, opened, close } = streamLinks(engine, { maxFragmentBytes: 1000 });
    try {
      let data = 0;
      let held: Frame | null = null;
      a.tap = (f) => {
        if (f.type !== FrameType.DATA || ++data !== 4) return f;
        held = f; // the last fragment waits
        return null;
      };
      const into = new Uint8Array(4096);
      const stop = new AbortController();
      const receiving = lb.receive({ into, signal: stop.signal });
      const message = randomBytes(3500); // four fragments
      await la.send(message);
      await b.waiting(3); // the first three fragments are taken; the link waits for the fourth
      await opened(); // WebCrypto opens frames ahead, on other threads
      assert.ok(
        into.subarray(0, 3000).every((byte, i) => byte === message[i]),
        "the first three fragments are in into",
      );
      stop.abort(new Error("given up"));
      await assert.rejects(receiving, /given up/);
      into.fill(0xee);
      a.peer.deliver(held);
      assertBytes(await lb.receive(), message);
      assert.ok(into.every((b) => b === 0xee), "the link never wrote into the buffer again");
    } finally {
      await close();
    }
  });

  Deno.test(`a tampered DATA frame fails the link with EFRAME and leaves no plaintext in into (${engine})`, async () => {
    const { a, la, lb, close } = streamLinks(engine, { maxFragmentBytes: 1000 });
    try {
      let data = 0;
      a.tap = (f) => {
        if (f.type !== FrameType.DATA || ++data !== 2) return f;
        f.body[100]! ^= 1; // inside the second fragment's ciphertext
        return f;
      };
      const into = new Uint8Array(4096).fill(0xee);
      // Judged from the start: the link may fail before send() resolves (an unhandled
      // rejection otherwise).
      const failed = assert.rejects(lb.receive({ into }), isEframe);
      // The sender may learn of the failure too, if the link ends before its last fragment.
      await la.send(new Uint8Array(3000).fill(0x42)).catch(() => {});
      await failed;
      assert.ok(
        into.subarray(1000, 2000).every((b) => b !== 0x42),
        "the altered fragment's plaintext is not left behind",
      );
      await assert.rejects(lb.receive({ into }), isEframe);
      await assert.rejects(lb.send(new Uint8Array(1)), (err: PeerError) => err.code === "EPEER");
    } finally {
      await close();
    }
  });
}

for (const engine of ENGINES) {
  Deno.test(`send() resolves with frames still to be written, but never more than four ahead (${engine})`, async () => {
    const { a, la, lb, close } = streamLinks(engine);
    try {
      const open = Promise.withResolvers<void>();
      a.gate = open.promise; // the connection takes nothing for now
      const sent = Array.from({ length: 8 }, (_, i) => randomBytes(20_000 + i));
      let resolved = 0;
      const sending = sent.map((m) => la.send(m).then(() => resolved++));
      await Promise.all(sending.slice(0, 4)); // four frames sealed, none written
      await new Promise((resolve) => setTimeout(resolve, 0)); // a task: any resolution ran
      assert.equal(resolved, 4, "the fifth send() waits for a frame to be written");
      assert.equal(a.sends, 1, "one write is under way");
      a.gate = null;
      open.resolve();
      await Promise.all(sending);
      for (const [i, m] of sent.entries()) assertBytes(await lb.receive(), m, `message ${i}`);
    } finally {
      await close();
    }
  });

  Deno.test(`a write that fails after send() resolved fails the link for the caller (${engine})`, async () => {
    const { a, la, close } = streamLinks(engine);
    try {
      const broken = Promise.withResolvers<void>();
      broken.promise.catch(() => {}); // the link's write sees it, maybe only once sealed
      a.gate = broken.promise;
      const receiving = la.receive(); // learns of the failure too
      await la.send(randomBytes(20_000)); // sealed; its write waits
      broken.reject(new PeerError("EPEER", "Cannot send: the connection broke; test"));
      await assert.rejects(receiving, (err: PeerError) => err.code === "EPEER");
      await assert.rejects(la.send(new Uint8Array(1)), (err: PeerError) => err.code === "EPEER");
    } finally {
      await close();
    }
  });
}

for (const engine of ENGINES.filter((e) => e !== "webcrypto")) {
  Deno.test(`a large message that arrives before receive() is called still lands in into (${engine})`, async () => {
    const clock = new ManualClock();
    const { la, lb, close } = streamLinks(engine, { clock });
    try {
      const into = new Uint8Array(F);
      for (const size of [F, 20_000, F]) {
        const message = randomBytes(size);
        await la.send(message);
        // The link holds the frame for a receive (it waits on the clock, which never moves).
        await clock.sleeping(); // the frame is held
        const got = await lb.receive({ into });
        assertBytes(got, message);
        assert.ok(isViewOf(got, into), `${size} bytes: a view of into`);
      }
    } finally {
      await close();
    }
  });

  Deno.test(`a large message nobody receives holds up a PING until RECEIVE_PARK_MS has passed, no longer (${engine})`, async () => {
    const clock = new ManualClock();
    const { a, b, la, lb, close } = streamLinks(engine, { clock });
    try {
      let ponged = false;
      const pong = new Promise<void>((resolve) =>
        b.tap = (f) => {
          if (f.type === FrameType.PONG) {
            ponged = true;
            resolve();
          }
          return f;
        }
      );
      const message = randomBytes(F);
      await la.send(message);
      await clock.sleeping(); // the frame is held
      assert.equal(clock.nextWakeIn, RECEIVE_PARK_MS);
      await a.send({ type: FrameType.PING, body: Uint8Array.of(7) });
      assert.equal(b.unread, 1, "the PING waits, unread, behind the held frame");
      clock.advance(RECEIVE_PARK_MS - 1);
      // The hold is the only way on, and it has not ended: the PING cannot have been read.
      assert.equal(clock.nextWakeIn, 1, "still within the hold");
      assert.equal(ponged, false);
      clock.advance(1);
      await pong; // the PING is answered once the hold ends
      assertBytes(await lb.receive({ into: new Uint8Array(F) }), message, "still delivered");
    } finally {
      await close();
    }
  });

  // The test sanitizers fail it if the held frame's timer outlives the link.
  Deno.test(`closing a link that holds an unread message ends cleanly (${engine})`, async () => {
    const { la, lb, close } = streamLinks(engine);
    await la.send(randomBytes(F));
    await close();
    assert.equal(await lb.receive(), null);
  });
}
