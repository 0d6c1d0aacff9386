import assert from "node:assert/strict";
import {
  STREAM_ACK_DELAY_MS,
  STREAM_ACK_EVERY_MAX_SEGMENTS,
  STREAM_ACK_EVERY_SEGMENTS,
  STREAM_INITIAL_RTO_MS,
  STREAM_INITIAL_WINDOW_SEGMENTS,
  STREAM_MAX_RTO_MS,
  STREAM_MIN_RTO_MS,
} from "../../src/limits.ts";
import { STREAM_MAX_SACK_RANGES } from "../../src/protocol.ts";
import {
  ReliableReceiver,
  ReliableSender,
  type StreamAck,
} from "../../src/peer/reliable_stream.ts";
import { decodeStreamAck, encodeStreamAck } from "../../src/peer/frame.ts";

const seg = (n: number) => Uint8Array.of(n & 0xff);

/** A tiny seeded PRNG (xorshift32), so the loss pattern is the same every run. */
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

/** Queues `n` segments and sends what the window lets go at `now`; returns their numbers. */
function sendAll(sender: ReliableSender, now: number): number[] {
  const out: number[] = [];
  for (let s = sender.next(now); s; s = sender.next(now)) out.push(s.seq);
  return out;
}

function queue(sender: ReliableSender, n: number): void {
  for (let i = 0; i < n; i++) sender.queue(sender.nextSequence, seg(sender.nextSequence));
}

/**
 * Runs a sender and a receiver over a simulated path with a one-way delay and seeded loss in
 * both directions, on simulated time; returns what the receiver delivered, in order.
 */
function simulate(
  options: {
    segments: number;
    loss: number;
    seed: number;
    delayMs: number;
    jitterMs?: number;
    duplicate?: number;
    /**
     * When the receiver acks: "each" segment (default); as the link does ("link": at once on a
     * gap or duplicate, every `ackEvery` in-order segments, else after `STREAM_ACK_DELAY_MS`);
     * or a fixed count in place of `ackEvery`.
     */
    acks?: "each" | "link" | number;
    windowSegments?: number;
  },
) {
  const random = xorshift32(options.seed);
  let now = 0;
  const sender = new ReliableSender(now);
  const receiver = new ReliableReceiver({ windowSegments: options.windowSegments ?? 64 });
  const acks = options.acks ?? "each";
  let unacked = 0;
  let ackDue = Infinity;
  let acksSent = 0;
  const sendAck = () => {
    acksSent++;
    put({ ack: receiver.ack() });
    unacked = 0;
    ackDue = Infinity;
  };
  queue(sender, options.segments);
  const delivered: number[] = [];
  // In flight: [arrival time, kind, payload]
  let wire: { at: number; data?: number; ack?: StreamAck }[] = [];
  const put = (item: { data?: number; ack?: StreamAck }) => {
    if (random() < options.loss) return;
    const copies = random() < (options.duplicate ?? 0) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const jitter = Math.floor(random() * (options.jitterMs ?? 0));
      wire.push({ at: now + options.delayMs + jitter, ...item });
    }
  };
  for (let steps = 0; delivered.length < options.segments; steps++) {
    assert.ok(steps < 1_000_000, "the simulation ends");
    for (const seq of sendAll(sender, now)) put({ data: seq });
    const due = wire.filter((w) => w.at <= now);
    wire = wire.filter((w) => w.at > now);
    for (const w of due) {
      if (w.data !== undefined) {
        const place = receiver.place(w.data);
        const inOrder = receiver.push(w.data, seg(w.data));
        for (const p of inOrder) delivered.push(p[0]!);
        const every = acks === "link" ? receiver.ackEvery : acks === "each" ? 1 : acks;
        const gap = place !== "new" || inOrder.length !== 1 || receiver.held > 0;
        if (gap || ++unacked >= every) sendAck();
        else ackDue = Math.min(ackDue, now + STREAM_ACK_DELAY_MS);
      } else if (w.ack) sender.onAck(w.ack, now);
    }
    if (ackDue <= now) sendAck();
    if (due.length > 0) continue;
    const next = Math.min(
      ...wire.map((w) => w.at),
      sender.deadline() ?? Infinity,
      ackDue,
    );
    assert.ok(Number.isFinite(next), "something is always pending until all arrived");
    now = Math.max(now, next);
    assert.equal(sender.onTimer(now), "ok");
  }
  return { delivered, sender, now, acksSent };
}

Deno.test("every segment arrives once and in order with 10 % of datagrams and acks lost", () => {
  const { delivered, sender } = simulate({ segments: 3000, loss: 0.1, seed: 42, delayMs: 10 });
  assert.deepEqual(delivered, Array.from({ length: 3000 }, (_, i) => i & 0xff));
  assert.ok(sender.stats.retransmitted > 100, "lost segments were sent again");
});

Deno.test("every segment arrives once and in order when datagrams are reordered and duplicated", () => {
  const { delivered } = simulate({
    segments: 3000,
    loss: 0.05,
    seed: 7,
    delayMs: 10,
    jitterMs: 15,
    duplicate: 0.05,
  });
  assert.deepEqual(delivered, Array.from({ length: 3000 }, (_, i) => i & 0xff));
});

Deno.test("without loss nothing is sent twice and the window opens in slow start", () => {
  const { sender } = simulate({ segments: 2000, loss: 0, seed: 1, delayMs: 10 });
  assert.equal(sender.stats.retransmitted, 0);
  assert.equal(sender.stats.sent, 2000);
  assert.ok(sender.cwnd > 100, `cwnd ${sender.cwnd} grew`);
});

Deno.test("a segment with three acked after it is sent again at once, and the window shrinks once", () => {
  const sender = new ReliableSender(0);
  queue(sender, 10);
  assert.deepEqual(sendAll(sender, 0), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  // segment 0 lost; 1..4 arrive
  assert.equal(sender.onAck({ cumulative: 0, window: 64, ranges: [[1, 5]] }, 10), "accepted");
  // slow start took the 4 acks first; then β = 0.7 (RFC 9438)
  const halved = Math.floor((STREAM_INITIAL_WINDOW_SEGMENTS + 4) * 0.7);
  assert.equal(sender.cwnd, halved);
  const again = sender.next(10);
  assert.equal(again?.seq, 0);
  // 5..9 acked too: losses of the same episode do not halve again
  sender.onAck({ cumulative: 0, window: 64, ranges: [[1, 10]] }, 11);
  assert.equal(sender.cwnd, halved, "segments sent before the episode do not grow it either");
  sender.onAck({ cumulative: 10, window: 64, ranges: [] }, 20);
  assert.ok(sender.drained);
});

Deno.test("the RTO follows RFC 6298 from RTT samples: first expiries probe, the third collapses the window", () => {
  const sender = new ReliableSender(0);
  assert.equal(sender.rto, STREAM_INITIAL_RTO_MS);
  queue(sender, 1);
  sendAll(sender, 0);
  sender.onAck({ cumulative: 1, window: 64, ranges: [] }, 200); // R = 200: SRTT 200, RTTVAR 100
  const rto = 200 + 4 * 100 + STREAM_ACK_DELAY_MS;
  assert.equal(sender.rto, rto);
  queue(sender, 30);
  assert.equal(sendAll(sender, 1000).length, 11, "the window grew by the one acked segment");
  assert.equal(sender.deadline(), 1000 + rto);
  let now = 1000 + rto;
  assert.equal(sender.onTimer(now), "ok");
  assert.equal(sender.rto, 2 * rto);
  assert.equal(sender.next(now)?.seq, 1, "a probe: the oldest unacked segment goes again");
  assert.equal(sender.cwnd, 11, "a probe keeps the window");
  assert.equal(sender.next(now), null);
  now += 2 * rto;
  sender.onTimer(now);
  sendAll(sender, now);
  now += 4 * rto > STREAM_MAX_RTO_MS ? STREAM_MAX_RTO_MS : 4 * rto;
  sender.onTimer(now);
  assert.equal(sender.cwnd, 2, "the third expiry in a row is persistent congestion");
  assert.equal(sender.stats.rtoExpiries, 1);
  for (let i = 0; i < 5; i++) sender.onTimer(now += STREAM_MAX_RTO_MS);
  assert.equal(sender.rto, STREAM_MAX_RTO_MS, "doubling stops at the ceiling");
  // Karn: the ack of a retransmitted segment gives no sample, but the timer starts afresh
  sender.onAck({ cumulative: 2, window: 64, ranges: [] }, now + 1);
  assert.equal(sender.rto, rto);
  assert.ok(STREAM_MIN_RTO_MS <= rto);
});

Deno.test("an ack for data never sent is ignored and changes nothing", () => {
  const sender = new ReliableSender(0);
  queue(sender, 20);
  sendAll(sender, 0); // 10 go (the initial window)
  const before = { cwnd: sender.cwnd, buffered: sender.buffered, deadline: sender.deadline() };
  for (
    const ack of [
      { cumulative: 11, window: 64, ranges: [] },
      { cumulative: 0, window: 64, ranges: [[5, 12]] },
      { cumulative: 2 ** 40, window: 64, ranges: [] },
      { cumulative: 0, window: 64, ranges: [[3, 3]] },
    ] as StreamAck[]
  ) {
    assert.equal(sender.onAck(ack, 5), "ignored");
  }
  assert.deepEqual(
    { cwnd: sender.cwnd, buffered: sender.buffered, deadline: sender.deadline() },
    before,
  );
  assert.equal(sender.stats.ignoredAcks, 4);
  assert.equal(sender.next(5), null, "nothing was freed");
});

Deno.test("a sender stays within the receiver's advertised window", () => {
  const sender = new ReliableSender(0);
  queue(sender, 100);
  sendAll(sender, 0);
  sender.onAck({ cumulative: 10, window: 3, ranges: [] }, 10);
  assert.deepEqual(sendAll(sender, 10), [10, 11, 12]);
  sender.onAck({ cumulative: 13, window: 0, ranges: [] }, 20);
  assert.deepEqual(sendAll(sender, 20), [13], "one probe while nothing is outstanding");
  assert.deepEqual(sendAll(sender, 21), []);
});

Deno.test("a peer that stops acking is reported stalled after the stall timeout, not before", () => {
  const sender = new ReliableSender(0, { stallTimeoutMs: 5_000 });
  queue(sender, 1);
  sendAll(sender, 0);
  let now = 0;
  while (true) {
    now = sender.deadline()!;
    if (sender.onTimer(now) === "stalled") break;
    sendAll(sender, now);
  }
  assert.equal(now, 5_000);
  const idle = new ReliableSender(0, { stallTimeoutMs: 5_000 });
  assert.equal(idle.deadline(), null, "nothing outstanding: no timer, never stalled");
});

Deno.test("a receiver holds at most its window, whatever a peer sends", () => {
  const receiver = new ReliableReceiver({ windowSegments: 8 });
  for (let seq = 1; seq < 1000; seq++) receiver.push(seq, seg(seq));
  assert.equal(receiver.held, 7);
  assert.equal(receiver.place(8), "beyond");
  assert.equal(receiver.place(3), "duplicate");
  assert.equal(receiver.ack().window, 1);
  assert.equal(receiver.push(0, seg(0)).length, 8, "the gap filled: 0..7 in order");
  receiver.unread = 8;
  assert.equal(receiver.ack().window, 0);
  assert.equal(receiver.place(8), "beyond", "unread data closes the window");
  assert.deepEqual(receiver.push(8, seg(8)), []);
  receiver.unread = 0;
  assert.equal(receiver.place(8), "new");
});

Deno.test("SACK ranges name the latest block first and never exceed the limit", () => {
  const receiver = new ReliableReceiver({ windowSegments: 1024 });
  for (let seq = 2; seq < 100; seq += 2) receiver.push(seq, seg(seq));
  receiver.push(51, seg(51));
  const ack = receiver.ack();
  assert.equal(ack.cumulative, 0);
  assert.deepEqual(ack.ranges[0], [50, 53]);
  assert.equal(ack.ranges.length, STREAM_MAX_SACK_RANGES);
  assert.deepEqual(decodeStreamAck(encodeStreamAck(ack, STREAM_MAX_SACK_RANGES), 16), ack);
});

Deno.test("a receiver acks every 2 segments after a gap, and less often the longer it goes without one", () => {
  const receiver = new ReliableReceiver({ windowSegments: 1024 });
  assert.equal(receiver.ackEvery, STREAM_ACK_EVERY_SEGMENTS, "at the start");
  let seq = 0;
  const take = (n: number) => {
    for (let i = 0; i < n; i++, seq++) receiver.push(seq, seg(seq));
  };
  take(64);
  assert.equal(receiver.ackEvery, 4, "√64 / 2");
  take(1024 - 64);
  assert.equal(receiver.ackEvery, 16, "√1024 / 2");
  take(1_000_000);
  assert.equal(receiver.ackEvery, STREAM_ACK_EVERY_MAX_SEGMENTS, "never more than the limit");
  receiver.push(seq + 1, seg(seq + 1)); // seq itself is missing: a gap
  assert.equal(receiver.ackEvery, STREAM_ACK_EVERY_SEGMENTS, "a gap starts over");
  take(1); // fills it
  take(200);
  assert.equal(receiver.ackEvery, 7, "counted again from the gap: √201 / 2");
});

Deno.test("acking as the link does costs a lossy stream no time against acks every 2, and saves most acks without loss", () => {
  const run = (acks: "link" | number, loss: number) =>
    simulate({ segments: 20_000, loss, seed: 7, delayMs: 1, acks, windowSegments: 1024 });
  const link = run("link", 0.05);
  const two = run(2, 0.05);
  const eight = run(8, 0.05);
  assert.deepEqual(link.delivered, Array.from({ length: 20_000 }, (_, i) => i & 0xff));
  assert.ok(link.now <= two.now * 1.05, `${link.now} ms (link) against ${two.now} ms (every 2)`);
  // A fixed 8 is what goes wrong: a window of ~6 segments gets one ack, and losing it stalls
  // the sender until its retransmission timer fires.
  assert.ok(eight.now > two.now * 1.5, `${eight.now} ms (every 8) against ${two.now} ms`);
  assert.ok(eight.sender.stats.probes > 10 * two.sender.stats.probes);
  const quiet = run("link", 0);
  assert.ok(quiet.acksSent * 5 < run(2, 0).acksSent, `${quiet.acksSent} acks without loss`);
});
