/**
 * The reliable stream of a UDP link (issue 13) as pure, clock-driven state machines: no I/O, no
 * crypto, no timers of their own. Every method takes `now` (ms); the link (`reliable_link.ts`)
 * feeds them authenticated datagrams and acks, sends what they say and sleeps until
 * {@link ReliableSender.deadline}.
 *
 * Segments are numbered 0, 1, 2, … (the DATA sequence of the session cipher, so the number is
 * authenticated with the segment). A segment is one datagram; windows count segments.
 *
 * - {@link ReliableSender}: keeps each sent segment until acked; the ack is cumulative (next
 *   expected segment) plus SACK ranges. Loss detection as QUIC (RFC 9002 §6.1): a segment is
 *   lost when a segment sent 3 transmissions later is acked, or when one sent later is acked
 *   and 9/8 of the RTT passed since it left. Retransmission timer per RFC 6298 (SRTT, RTTVAR,
 *   Karn: no sample from a retransmitted segment; doubled on expiry), plus the receiver's ack
 *   delay, with a floor of `STREAM_MIN_RTO_MS` instead of 1 s, restarted by any newly acked
 *   segment. Its first expiries are probes (as QUIC's PTO, RFC 9002 §6.2): the oldest unacked
 *   segment goes again, past the window if need be, and the window stays; the
 *   `STREAM_PERSISTENT_TIMEOUTS`-th in a row is persistent congestion: every unacked segment
 *   counts as lost and the window drops to 2. Congestion control NewReno as RFC 9002 §7: slow
 *   start from 10 segments, one halving per loss episode (a loss of a segment sent before the
 *   episode began does not halve again), additive increase after.
 *   New segments go out only within the receiver's advertised window (flow control). An ack
 *   that acknowledges a segment never sent is ignored whole. No authentic ack for
 *   `stallTimeoutMs` while segments are outstanding: {@link ReliableSender.deadline} reports
 *   the stall and the link ends.
 * - {@link ReliableReceiver}: takes segments within its window (`windowSegments` minus what
 *   is buffered out of order and what the application has not read), hands contiguous ones
 *   on in order, and says what to ack. Its buffer never holds more than `windowSegments`.
 *
 * @module
 */
import {
  STREAM_ACK_DELAY_MS,
  STREAM_ACK_EVERY_MAX_SEGMENTS,
  STREAM_ACK_EVERY_SEGMENTS,
  STREAM_INITIAL_RTO_MS,
  STREAM_INITIAL_WINDOW_SEGMENTS,
  STREAM_MAX_RTO_MS,
  STREAM_MIN_RTO_MS,
  STREAM_PERSISTENT_TIMEOUTS,
  STREAM_STALL_TIMEOUT_MS,
} from "../limits.ts";
import { STREAM_MAX_SACK_RANGES } from "../protocol.ts";

/** An acknowledgement: everything below `cumulative` arrived, plus `ranges` above it. */
export interface StreamAck {
  /** The next segment the receiver expects in order. */
  cumulative: number;
  /** Segments the receiver can still take beyond `cumulative`. */
  window: number;
  /** Received blocks above `cumulative`: `[start, end)`, at most `STREAM_MAX_SACK_RANGES`. */
  ranges: [number, number][];
}

/** Segments to (re)send are handed out by {@link ReliableSender.next}. */
interface Segment {
  seq: number;
  bytes: Uint8Array;
  /** Transmission order of the last send (a counter over all sends). */
  order: number;
  sentAt: number;
  transmissions: number;
  sacked: boolean;
  /** Declared lost and waiting to be sent again. */
  lost: boolean;
  /** Queued but never sent. */
  unsent: boolean;
}

/** Options of {@link ReliableSender}. */
export interface ReliableSenderOptions {
  /** No authentic ack for this long while data is outstanding ends the link; default `STREAM_STALL_TIMEOUT_MS`. */
  stallTimeoutMs?: number;
  /** Congestion window after the handshake, in segments; default `STREAM_INITIAL_WINDOW_SEGMENTS`. */
  initialWindow?: number;
}

/** What {@link ReliableSender.onAck} made of an ack. */
export type AckOutcome = "ignored" | "accepted";

const PACKET_THRESHOLD = 3;
const TIME_THRESHOLD = 9 / 8;
const MIN_WINDOW = 2;
/** Window kept after a loss: CUBIC's β (RFC 9438 §4.6), gentler than NewReno's 1/2. */
const LOSS_REDUCTION = 0.7;

/** The sending half: see the module doc. */
export class ReliableSender {
  #segments = new Map<number, Segment>();
  /** Lowest segment not cumulatively acked. */
  #una = 0;
  /** Next segment number to queue. */
  #next = 0;
  #order = 0;
  #cwnd: number;
  #ssthresh = Infinity;
  /** Segments sent after this transmission order belong to no loss episode yet. */
  #recoveryOrder = -1;
  #highestAckedOrder = -1;
  #pipe = 0;
  /** Receiver's right edge: new segments below it may go. */
  #peerEdge: number;
  #srtt: number | null = null;
  #rttvar = 0;
  #rto = STREAM_INITIAL_RTO_MS;
  #rtoAt: number | null = null;
  /** Timer expiries since the last newly acked segment. */
  #timeouts = 0;
  /** A probe may go past the congestion window. */
  #probe = false;
  #lastAckAt: number;
  #stallTimeoutMs: number;
  /** Lost segments to resend first, lowest first. */
  #retransmit: number[] = [];
  /** Next never-sent segment. */
  #nextUnsent = 0;
  /** Counters for tests and benchmarks. */
  readonly stats = { sent: 0, retransmitted: 0, probes: 0, rtoExpiries: 0, ignoredAcks: 0 };

  constructor(now: number, options: ReliableSenderOptions = {}) {
    this.#cwnd = options.initialWindow ?? STREAM_INITIAL_WINDOW_SEGMENTS;
    this.#peerEdge = this.#cwnd;
    this.#stallTimeoutMs = options.stallTimeoutMs ?? STREAM_STALL_TIMEOUT_MS;
    this.#lastAckAt = now;
  }

  /** Congestion window, in segments. */
  get cwnd(): number {
    return this.#cwnd;
  }

  /** Current retransmission timeout, in ms. */
  get rto(): number {
    return this.#rto;
  }

  /** Segments queued or sent and not yet acked. */
  get buffered(): number {
    return this.#next - this.#una;
  }

  /** True when every queued segment was acked. */
  get drained(): boolean {
    return this.#una === this.#next;
  }

  /** The number the next queued segment will carry. */
  get nextSequence(): number {
    return this.#next;
  }

  /** Queues one sealed segment; `seq` must be {@link nextSequence}. */
  queue(seq: number, bytes: Uint8Array): void {
    if (seq !== this.#next) {
      throw new RangeError(`segment ${seq} queued where ${this.#next} is next`);
    }
    this.#segments.set(seq, {
      seq,
      bytes,
      order: -1,
      sentAt: 0,
      transmissions: 0,
      sacked: false,
      lost: false,
      unsent: true,
    });
    this.#next++;
  }

  /**
   * The next segment to put on the wire now, or null when the congestion or receive window
   * is full (or nothing waits). Lost segments go first. Call once per datagram sent.
   */
  next(now: number): { seq: number; bytes: Uint8Array } | null {
    if (this.#pipe >= Math.floor(this.#cwnd) && !this.#probe) return null;
    this.#probe = false;
    let segment: Segment | undefined;
    while (this.#retransmit.length > 0 && !segment) {
      const s = this.#segments.get(this.#retransmit.shift()!);
      if (s?.lost && !s.sacked) segment = s;
    }
    if (!segment) {
      const probe = this.#una === this.#nextUnsent; // nothing outstanding: one may always go
      if (this.#nextUnsent >= this.#next) return null;
      if (this.#nextUnsent >= this.#peerEdge && !probe) return null;
      segment = this.#segments.get(this.#nextUnsent++)!;
    }
    if (segment.transmissions > 0) {
      this.stats.retransmitted++;
    }
    segment.transmissions++;
    segment.lost = false;
    segment.unsent = false;
    segment.order = this.#order++;
    segment.sentAt = now;
    this.#pipe++;
    this.stats.sent++;
    this.#rtoAt ??= now + this.#rto;
    return { seq: segment.seq, bytes: segment.bytes };
  }

  /**
   * Takes an authenticated ack. An ack that acknowledges anything never sent is `ignored`
   * and changes nothing.
   */
  onAck(ack: StreamAck, now: number): AckOutcome {
    const sentEdge = this.#nextUnsent;
    if (
      ack.cumulative > sentEdge || ack.ranges.some(([s, e]) => s >= e || e > sentEdge) ||
      !(ack.window >= 0)
    ) {
      this.stats.ignoredAcks++;
      return "ignored";
    }
    this.#lastAckAt = now;
    if (ack.cumulative >= this.#una) this.#peerEdge = ack.cumulative + ack.window;
    let newest: Segment | null = null;
    const acked = (s: Segment) => {
      if (!s.lost) this.#pipe--;
      s.lost = false;
      if (s.order > this.#highestAckedOrder) this.#highestAckedOrder = s.order;
      if (!newest || s.order > newest.order) newest = s;
      this.#grow(s);
    };
    let progressed = false;
    while (this.#una < ack.cumulative) {
      const s = this.#segments.get(this.#una)!;
      this.#segments.delete(this.#una++);
      progressed = true;
      if (!s.sacked) acked(s);
    }
    for (const [start, end] of ack.ranges) {
      for (let seq = Math.max(start, this.#una); seq < end; seq++) {
        const s = this.#segments.get(seq);
        if (!s || s.sacked) continue;
        s.sacked = true;
        acked(s);
      }
    }
    const sample = newest as Segment | null;
    if (sample && sample.transmissions === 1) this.#sampleRtt(now - sample.sentAt);
    if (sample) this.#timeouts = 0;
    if (progressed || sample) { // any newly acked segment restarts the timer (as SACK TCPs do)
      this.#rto = this.#baseRto();
      this.#rtoAt = this.drained || this.#pipe === 0 ? null : now + this.#rto;
    }
    this.#detectLosses(now);
    return "accepted";
  }

  /**
   * The time at which {@link onTimer} must run, or null when nothing waits for one. `stalled`
   * tells when the peer stopped acking: the link must end.
   */
  deadline(): number | null {
    const times: number[] = [];
    if (this.#rtoAt !== null) times.push(this.#rtoAt);
    const loss = this.#lossTime();
    if (loss !== null) times.push(loss);
    if (!this.drained && this.#una < this.#nextUnsent) {
      times.push(this.#lastAckAt + this.#stallTimeoutMs);
    }
    return times.length ? Math.min(...times) : null;
  }

  /** Runs the timers due at `now`; "stalled" when the peer stopped acking. */
  onTimer(now: number): "ok" | "stalled" {
    if (this.#una < this.#nextUnsent && this.#lastAckAt + this.#stallTimeoutMs <= now) {
      return "stalled";
    }
    this.#detectLosses(now);
    if (this.#rtoAt !== null && now >= this.#rtoAt) {
      this.#timeouts++;
      if (this.#timeouts >= STREAM_PERSISTENT_TIMEOUTS) { // persistent congestion: collapse
        this.stats.rtoExpiries++;
        this.#ssthresh = Math.max(Math.floor(this.#cwnd / 2), MIN_WINDOW);
        this.#cwnd = MIN_WINDOW;
        this.#recoveryOrder = this.#order;
        for (let seq = this.#una; seq < this.#nextUnsent; seq++) {
          const s = this.#segments.get(seq)!;
          if (!s.sacked && !s.lost) this.#markLost(s);
        }
      } else { // a probe: the oldest unacked segment goes again, past the window if need be
        this.stats.probes++;
        for (let seq = this.#una; seq < this.#nextUnsent; seq++) {
          const s = this.#segments.get(seq)!;
          if (s.sacked) continue;
          if (!s.lost) this.#markLost(s);
          this.#probe = true;
          break;
        }
      }
      this.#rto = Math.min(this.#rto * 2, STREAM_MAX_RTO_MS);
      this.#rtoAt = this.#una < this.#nextUnsent ? now + this.#rto : null;
    }
    return "ok";
  }

  #grow(s: Segment): void {
    if (s.order <= this.#recoveryOrder) return; // sent before the last loss episode began
    if (this.#cwnd < this.#ssthresh) this.#cwnd += 1;
    else this.#cwnd += 1 / this.#cwnd;
  }

  #sampleRtt(r: number): void {
    const rtt = Math.max(r, 0);
    if (this.#srtt === null) {
      this.#srtt = rtt;
      this.#rttvar = rtt / 2;
    } else {
      this.#rttvar = 0.75 * this.#rttvar + 0.25 * Math.abs(this.#srtt - rtt);
      this.#srtt = 0.875 * this.#srtt + 0.125 * rtt;
    }
    this.#rto = this.#baseRto();
  }

  #baseRto(): number {
    if (this.#srtt === null) return STREAM_INITIAL_RTO_MS;
    const rto = this.#srtt + Math.max(1, 4 * this.#rttvar) + STREAM_ACK_DELAY_MS;
    return Math.min(Math.max(rto, STREAM_MIN_RTO_MS), STREAM_MAX_RTO_MS);
  }

  #lossDelay(): number {
    return Math.max(TIME_THRESHOLD * (this.#srtt ?? STREAM_INITIAL_RTO_MS), 1);
  }

  /** Earliest time a segment sent before an acked one counts as lost by time. */
  #lossTime(): number | null {
    let earliest: number | null = null;
    for (let seq = this.#una; seq < this.#nextUnsent; seq++) {
      const s = this.#segments.get(seq)!;
      if (s.sacked || s.lost || s.order >= this.#highestAckedOrder) continue;
      const at = s.sentAt + this.#lossDelay();
      if (earliest === null || at < earliest) earliest = at;
    }
    return earliest;
  }

  #detectLosses(now: number): void {
    if (this.#highestAckedOrder < 0) return;
    const delay = this.#lossDelay();
    let episode = false;
    for (let seq = this.#una; seq < this.#nextUnsent; seq++) {
      const s = this.#segments.get(seq)!;
      if (s.sacked || s.lost || s.order >= this.#highestAckedOrder) continue;
      if (
        this.#highestAckedOrder - s.order >= PACKET_THRESHOLD || s.sentAt + delay <= now
      ) {
        if (s.order > this.#recoveryOrder) episode = true;
        this.#markLost(s);
      }
    }
    if (episode) { // one decrease per loss episode (RFC 9002 §7.3.2)
      this.#recoveryOrder = this.#order;
      this.#ssthresh = Math.max(Math.floor(this.#cwnd * LOSS_REDUCTION), MIN_WINDOW);
      this.#cwnd = this.#ssthresh;
    }
    this.#retransmit.sort((a, b) => a - b);
  }

  #markLost(s: Segment): void {
    s.lost = true;
    this.#pipe--;
    this.#retransmit.push(s.seq);
  }
}

/** Options of {@link ReliableReceiver}. */
export interface ReliableReceiverOptions {
  /** Most segments held at once (out of order plus unread); required. */
  windowSegments: number;
}

/** Where a segment number falls, before its datagram is opened. */
export type SegmentPlace = "new" | "duplicate" | "beyond";

/** The receiving half: see the module doc. */
export class ReliableReceiver {
  #next = 0;
  /** Segments taken in order, nothing held, since the last one that came out of order. */
  #sinceGap = 0;
  #held = new Map<number, Uint8Array>();
  /** Out-of-order blocks `[start, end)`, sorted. */
  #ranges: [number, number][] = [];
  #lastArrival = -1;
  #windowSegments: number;
  #unread = 0;

  constructor(options: ReliableReceiverOptions) {
    if (!(options.windowSegments >= 1)) throw new RangeError("windowSegments must be ≥ 1");
    this.#windowSegments = options.windowSegments;
  }

  /** The next segment expected in order. */
  get next(): number {
    return this.#next;
  }

  /** Segments held out of order. */
  get held(): number {
    return this.#held.size;
  }

  /** Tells the receiver how many segments' worth of data the application has not read. */
  set unread(segments: number) {
    this.#unread = Math.max(0, segments);
  }

  /** Segments this receiver can take beyond {@link next} now. */
  get window(): number {
    return Math.max(0, this.#windowSegments - this.#unread - this.#held.size);
  }

  /**
   * In-order segments to take before acking at once (the link acks fewer after
   * `STREAM_ACK_DELAY_MS`): `STREAM_ACK_EVERY_SEGMENTS` after a gap, growing as half the square
   * root of the segments taken in order since, to `STREAM_ACK_EVERY_MAX_SEGMENTS`. A sender's
   * window grows about as 2·√n over n segments without a loss, so a window still gets about four
   * acks and one lost ack does not stop the sender (docs/performance.md "UDP stream").
   */
  get ackEvery(): number {
    const n = Math.floor(Math.sqrt(this.#sinceGap) / 2);
    return Math.min(STREAM_ACK_EVERY_MAX_SEGMENTS, Math.max(STREAM_ACK_EVERY_SEGMENTS, n));
  }

  /** Where `seq` falls; nothing changes (call before the datagram is authenticated). */
  place(seq: number): SegmentPlace {
    if (seq < this.#next || this.#held.has(seq)) return "duplicate";
    if (seq >= this.#next + this.#windowSegments - this.#unread) return "beyond";
    return "new";
  }

  /**
   * Takes an authenticated segment; returns the payloads now deliverable in order (empty when
   * it filled no gap, or was a duplicate or beyond the window).
   */
  push(seq: number, payload: Uint8Array): Uint8Array[] {
    if (this.place(seq) !== "new") return [];
    this.#lastArrival = seq;
    if (seq !== this.#next) {
      if (this.#held.size === 0) this.#sinceGap = 0;
      this.#held.set(seq, payload);
      this.#addRange(seq);
      return [];
    }
    if (this.#held.size === 0) this.#sinceGap++;
    const out = [payload];
    this.#next++;
    while (this.#held.has(this.#next)) {
      out.push(this.#held.get(this.#next)!);
      this.#held.delete(this.#next++);
    }
    while (this.#ranges.length && this.#ranges[0]![1] <= this.#next) this.#ranges.shift();
    return out;
  }

  /** The ack to send now: the block of the latest arrival first, then the lowest blocks. */
  ack(): StreamAck {
    const ranges: [number, number][] = [];
    const latest = this.#ranges.find(([s, e]) => s <= this.#lastArrival && this.#lastArrival < e);
    if (latest) ranges.push([latest[0], latest[1]]);
    for (const r of this.#ranges) {
      if (ranges.length >= STREAM_MAX_SACK_RANGES) break;
      if (r !== latest) ranges.push([r[0], r[1]]);
    }
    return { cumulative: this.#next, window: this.window, ranges };
  }

  #addRange(seq: number): void {
    const rs = this.#ranges;
    let lo = 0;
    let hi = rs.length;
    while (lo < hi) { // first range starting after seq
      const mid = (lo + hi) >> 1;
      if (rs[mid]![0] <= seq) lo = mid + 1;
      else hi = mid;
    }
    const before = rs[lo - 1];
    const after = rs[lo];
    if (before && before[1] === seq) {
      before[1]++;
      if (after && after[0] === before[1]) {
        before[1] = after[1];
        rs.splice(lo, 1);
      }
    } else if (after && after[0] === seq + 1) after[0] = seq;
    else rs.splice(lo, 0, [seq, seq + 1]);
  }
}
