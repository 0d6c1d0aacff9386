import assert from "node:assert/strict";
import v8 from "node:v8";
import vm from "node:vm";
import { PeerError } from "../../src/errors.ts";
import { type Frame, FrameType } from "../../src/peer/frame.ts";
import { KeepaliveChannel } from "../../src/peer/keepalive_channel.ts";
import type { FrameChannel } from "../../src/peer/types.ts";
import { ManualClock } from "../support/manual_clock.ts";

/** A channel whose peer says nothing unless told to; records what is sent. */
class SilentChannel implements FrameChannel {
  sent: Frame[] = [];
  closed = false;
  #next = Promise.withResolvers<Frame | null>();
  send(frame: Frame): Promise<void> {
    this.sent.push(frame);
    return Promise.resolve();
  }
  receive(): Promise<Frame | null> {
    return this.#next.promise;
  }
  deliver(frame: Frame): void {
    const d = this.#next;
    this.#next = Promise.withResolvers();
    d.resolve(frame);
  }
  close(): void {
    this.closed = true;
  }
}

const flush = () => new Promise<void>((r) => queueMicrotask(r)).then(() => Promise.resolve());

Deno.test("an idle link sends PING every keepalive interval", async () => {
  const clock = new ManualClock();
  const inner = new SilentChannel();
  const ch = new KeepaliveChannel(inner, { clock, keepaliveMs: 1000, idleTimeoutMs: 10_000 });
  for (let i = 0; i < 3; i++) {
    clock.advance(1000);
    await flush();
  }
  assert.equal(inner.sent.filter((f) => f.type === FrameType.PING).length, 3);
  ch.close();
});

Deno.test("a peer that vanished without closing ends the waiting receive with EPEER", async () => {
  const clock = new ManualClock();
  const inner = new SilentChannel();
  const ch = new KeepaliveChannel(inner, {
    clock,
    keepaliveMs: 1000,
    idleTimeoutMs: 3000,
    peer: "peer bob",
  });
  const waiting = ch.receive();
  for (let i = 0; i < 3; i++) {
    clock.advance(1000);
    await flush();
  }
  await assert.rejects(waiting, (err: unknown) => {
    assert.ok(err instanceof PeerError);
    assert.equal(err.code, "EPEER");
    assert.match(err.message, /^Cannot receive from peer bob: the peer vanished/);
    return true;
  });
  assert.equal(inner.closed, true);
  await assert.rejects(ch.receive(), /the peer vanished/, "and so does every later receive");
});

Deno.test("a peer that keeps talking is never declared gone, nor is time when nobody reads", async () => {
  const clock = new ManualClock();
  const inner = new SilentChannel();
  const ch = new KeepaliveChannel(inner, { clock, keepaliveMs: 1000, idleTimeoutMs: 3000 });
  // Nobody reads for a long while (application busy): that silence does not count.
  for (let i = 0; i < 10; i++) {
    clock.advance(1000);
    await flush();
  }
  for (let i = 0; i < 10; i++) {
    const got = ch.receive();
    clock.advance(1000);
    await flush();
    inner.deliver({ type: FrameType.PONG, body: new Uint8Array(0) });
    assert.equal((await got)?.type, FrameType.PONG);
  }
  assert.equal(inner.closed, false);
  ch.close();
});

Deno.test("a link's memory does not grow with the frames it has carried", async () => {
  v8.setFlagsFromString("--expose-gc");
  const gc = vm.runInNewContext("gc") as () => void;
  const inner = new SilentChannel();
  const ch = new KeepaliveChannel(inner, {
    clock: new ManualClock(),
    keepaliveMs: 1000,
    idleTimeoutMs: 3000,
  });
  const carry = async (frames: number) => {
    for (let i = 0; i < frames; i++) {
      const got = ch.receive();
      inner.deliver({ type: FrameType.DATA, body: new Uint8Array(8) });
      await got;
    }
  };
  await carry(1000);
  gc();
  const before = Deno.memoryUsage().heapUsed;
  await carry(50_000);
  gc();
  const grown = Deno.memoryUsage().heapUsed - before;
  // Racing each receive against one promise as old as the link kept ~450 bytes per frame: 22 MB.
  assert.ok(grown < 5_000_000, `the heap grew by ${grown} bytes over 50,000 frames`);
  ch.close();
});
