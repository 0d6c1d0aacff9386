/**
 * {@link ReliableLink}: the {@link PeerLink} of a UDP session (issue 13). `send()` and
 * `receive()` are reliable and ordered, for messages of any size up to `MAX_MESSAGE_BYTES`,
 * with flow and congestion control, over the datagrams of a {@link FrameChannel}.
 *
 * - Each message is split into DATA segments of at most `maxFragmentBytes` (a flag byte first:
 *   1 = more follow, 0 = last), each sealed by the {@link SessionCipher} when queued; the DATA
 *   sequence is the segment number, so it is authenticated with the segment, and a
 *   retransmission sends the same bytes again (no nonce is reused with other plaintext).
 * - The receiver opens every DATA datagram before it moves anything: a forged or altered one
 *   is dropped unread; a replayed one is a duplicate and only earns an ack. It acks with a
 *   STREAM_ACK, sealed by the channel like PING (own control sequence, replay window): at once
 *   for a duplicate, a gap or every `ReliableReceiver.ackEvery` in-order segments (2 after a
 *   gap, up to `STREAM_ACK_EVERY_MAX_SEGMENTS` after a long run without one), else after
 *   `STREAM_ACK_DELAY_MS`.
 * - {@link ReliableSender} and {@link ReliableReceiver} (`reliable_stream.ts`) hold the state;
 *   this class only feeds them and runs one timer on the injected {@link Clock}.
 * - `send()` resolves once its segments are queued; it waits while `STREAM_SEND_BUFFER_SEGMENTS`
 *   are queued and not acked. `close()` waits until everything sent was acked (or the link
 *   failed), then DISCONNECT / DISCONNECT_ACK as on any link.
 * - Beside the stream, a best-effort lane (`sendDatagram()` / `receiveDatagram()`): one
 *   sealed DATAGRAM frame each, never retransmitted, outside the windows; for game state.
 * - No authentic ack for `stallTimeoutMs` while segments are outstanding: the link ends with
 *   `PeerError` `ETIMEOUT`.
 *
 * @module
 */
import { PeerError } from "../errors.ts";
import {
  DISCONNECT_TIMEOUT_MS,
  STREAM_ACK_DELAY_MS,
  STREAM_MAX_QUEUED_DATAGRAMS,
  STREAM_RECEIVE_WINDOW_SEGMENTS,
  STREAM_SEND_BUFFER_SEGMENTS,
  STREAM_STALL_TIMEOUT_MS,
} from "../limits.ts";
import { STREAM_MAX_SACK_RANGES } from "../protocol.ts";
import { concatBytes } from "../message/bytes.ts";
import type { Endpoint, TransportKind } from "../message/types.ts";
import { type Clock, systemClock } from "../runtime.ts";
import {
  decodeStreamAck,
  encodeDisconnect,
  encodeStreamAck,
  FRAME_HEADER_BYTES,
  LENGTH_PREFIX_BYTES,
} from "./frame.ts";
import { FrameType } from "./frame.ts";
import { ReliableReceiver, ReliableSender } from "./reliable_stream.ts";
import { type AesGcmEngine, TAG_BYTES } from "./aes_gcm.ts";
import type { SessionCipher } from "./session_crypto.ts";
import { MAX_MESSAGE_BYTES } from "./session_link.ts";
import { checkFragment } from "./stream_assembler.ts";
import type { PathControl } from "./link_paths.ts";
import type { FrameChannel, PeerInfo, PeerLink, ReceiveOptions } from "./types.ts";

/** DATA datagrams handed to the channel before the first of them must have left. */
const SENDS_IN_FLIGHT = 8;
const MORE = Uint8Array.of(1);
const LAST = Uint8Array.of(0);
/** Bytes of each slab that DATA segments are sealed into (`#queueMessage`). */
const SEND_SLAB_BYTES = 64 * 1024;
/** A sealed segment's bytes besides its fragment: length prefix, header, sequence, tag, flag. */
const SEGMENT_OVERHEAD_BYTES = LENGTH_PREFIX_BYTES + FRAME_HEADER_BYTES + 8 + TAG_BYTES + 1;
/** The reason a replaced timer is aborted with (a plain value: no DOMException per abort). */
const TIMER_REPLACED = "replaced";

/**
 * A channel that sends an encoded DATA datagram as it is (`DatagramFrameChannel`); over any
 * other `FrameChannel` the link sends DATA frames by `send()`.
 */
interface DataDatagramChannel {
  sendData(datagram: Uint8Array): Promise<void>;
}

/** What a {@link ReliableLink} needs besides its channel and cipher. */
export interface ReliableLinkOptions {
  local: Endpoint;
  remote: PeerInfo;
  /** The link's paths, when its listener can move it (`link_paths.ts`). */
  paths?: PathControl;
  /** Largest message fragment per DATA datagram. */
  maxFragmentBytes: number;
  /** How long `close()` waits for DISCONNECT_ACK; default `DISCONNECT_TIMEOUT_MS`. */
  disconnectTimeoutMs?: number;
  /** Largest message accepted from the peer; default `MAX_MESSAGE_BYTES`. */
  maxMessageBytes?: number;
  /** Retransmission, ack delay and stall timers; default the system clock. */
  clock?: Clock;
  /** No authentic ack for this long ends the link; default `STREAM_STALL_TIMEOUT_MS`. */
  stallTimeoutMs?: number;
  /** Receive window in segments; default `STREAM_RECEIVE_WINDOW_SEGMENTS`. */
  windowSegments?: number;
  /** Segments queued before `send()` waits; default `STREAM_SEND_BUFFER_SEGMENTS`. */
  sendBufferSegments?: number;
}

interface Waiter {
  resolve(data: Uint8Array | null): void;
  reject(err: unknown): void;
}

/** A reliable, ordered link over datagrams; see the module doc. */
export class ReliableLink implements PeerLink {
  readonly local: Endpoint;
  readonly remote: PeerInfo;
  readonly transport: TransportKind = "udp";
  /** See `PeerLink.paths`: set when the listener can move this link. */
  readonly paths?: PathControl;
  #channel: FrameChannel;
  /** The channel's {@link DataDatagramChannel.sendData}, when it has one. */
  #sendData: ((datagram: Uint8Array) => Promise<void>) | null = null;
  #cipher: SessionCipher;
  #clock: Clock;
  #options: ReliableLinkOptions;
  #maxMessageBytes: number;
  #sender: ReliableSender;
  #receiver: ReliableReceiver;
  #windowSegments: number;
  #sendBuffer: number;
  #queue: Uint8Array[] = [];
  /** Segments each queued message took, in step with #queue; their sum counts as unread. */
  #queueSegments: number[] = [];
  #queuedSegments = 0;
  #waiters: Waiter[] = [];
  #datagrams: Uint8Array[] = [];
  #datagramWaiters: Waiter[] = [];
  #partial: Uint8Array[] = [];
  #partialBytes = 0;
  #sendChain: Promise<void> = Promise.resolve();
  /** Where queued segments are sealed, one after another; see `#queueMessage`. */
  #slab = new Uint8Array(0);
  #slabAt = 0;
  /** Wakes `send()` waiting for buffer space, and `close()` waiting for the drain. */
  #progress: (() => void)[] = [];
  #flushing = false;
  #flushAgain = false;
  #unacked = 0;
  #ackDue: number | null = null;
  #advertised = 0;
  #timer: { at: number; stop: AbortController } | null = null;
  #ended = false;
  #error: unknown = null;
  #closing = false;
  /** `close()` was called: no more `send()`, what was sent drains first. */
  #closeCalled = false;
  #closePromise: Promise<void> | null = null;
  #onDisconnectAck: (() => void) | null = null;
  #pumpDone: Promise<void>;

  /** The AES-GCM implementation of this link's session (`PeerLink.cipher`). */
  get cipher(): AesGcmEngine {
    return this.#cipher.implementation;
  }

  constructor(channel: FrameChannel, cipher: SessionCipher, options: ReliableLinkOptions) {
    this.local = options.local;
    this.remote = options.remote;
    if (options.paths) this.paths = options.paths;
    this.#channel = channel;
    const direct = (channel as Partial<DataDatagramChannel>).sendData;
    if (direct) this.#sendData = direct.bind(channel);
    this.#cipher = cipher;
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#maxMessageBytes = options.maxMessageBytes ?? MAX_MESSAGE_BYTES;
    this.#windowSegments = options.windowSegments ?? STREAM_RECEIVE_WINDOW_SEGMENTS;
    this.#sendBuffer = options.sendBufferSegments ?? STREAM_SEND_BUFFER_SEGMENTS;
    this.#sender = new ReliableSender(this.#clock.now(), {
      stallTimeoutMs: options.stallTimeoutMs ?? STREAM_STALL_TIMEOUT_MS,
    });
    this.#receiver = new ReliableReceiver({ windowSegments: this.#windowSegments });
    this.#advertised = this.#windowSegments;
    this.#pumpDone = this.#pump();
  }

  /** Longest datagram of the best-effort lane: a DATA fragment plus its flag byte. */
  get maxDatagramBytes(): number {
    return this.#options.maxFragmentBytes + 1;
  }

  /**
   * Sends one datagram on the best-effort lane (DATAGRAM, sealed like PING): never
   * retransmitted, outside the stream's order, windows and congestion control.
   */
  sendDatagram(data: Uint8Array): Promise<void> {
    if (this.#closing || this.#ended) return Promise.reject(this.#closedError());
    if (data.length > this.maxDatagramBytes) {
      return Promise.reject(
        new RangeError(`Datagram of ${data.length} bytes exceeds ${this.maxDatagramBytes}`),
      );
    }
    return this.#channel.send({ type: FrameType.DATAGRAM, body: data.slice() });
  }

  /** Next datagram of the best-effort lane; null once the link ended or closed. */
  receiveDatagram(options: { signal?: AbortSignal } = {}): Promise<Uint8Array | null> {
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const next = this.#datagrams.shift();
    if (next) return Promise.resolve(next);
    if (this.#ended || this.#closing) {
      return this.#error ? Promise.reject(this.#error) : Promise.resolve(null);
    }
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.#datagramWaiters = this.#datagramWaiters.filter((w) => w !== waiter);
        reject(signal?.reason);
      };
      const waiter: Waiter = {
        resolve: (data) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(data);
        },
        reject: (err) => {
          signal?.removeEventListener("abort", onAbort);
          reject(err);
        },
      };
      this.#datagramWaiters.push(waiter);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Counters of the sending half (segments sent, retransmitted, RTO expiries, ignored acks). */
  get stats(): Readonly<ReliableSender["stats"]> {
    return this.#sender.stats;
  }

  /** Queues one message on the stream; resolves once all its segments are queued. */
  send(data: Uint8Array): Promise<void> {
    if (this.#closeCalled || this.#ended) return Promise.reject(this.#closedError());
    if (data.length > this.#maxMessageBytes) {
      return Promise.reject(
        new RangeError(`Message of ${data.length} bytes exceeds ${this.#maxMessageBytes}`),
      );
    }
    const run = this.#sendChain.then(() => this.#queueMessage(data.slice()));
    this.#sendChain = run.catch(() => {});
    return run;
  }

  async #queueMessage(data: Uint8Array): Promise<void> {
    const max = this.#options.maxFragmentBytes;
    let at = 0;
    do {
      while (this.#sender.buffered >= this.#sendBuffer && !this.#ended) await this.#waitProgress();
      if (this.#ended) throw this.#closedError();
      const chunk = data.subarray(at, at + max);
      at += chunk.length;
      // Sealed into a piece of a shared slab: a buffer of its own per segment cost about as
      // much as sending it (docs/performance.md "UDP stream").
      if (this.#slab.length - this.#slabAt < max + SEGMENT_OVERHEAD_BYTES) {
        this.#slab = new Uint8Array(Math.max(SEND_SLAB_BYTES, max + SEGMENT_OVERHEAD_BYTES));
        this.#slabAt = 0;
      }
      const frame = await this.#cipher.sealFrame([at < data.length ? MORE : LAST, chunk], {
        into: this.#slab.subarray(this.#slabAt),
      });
      if (frame.encoded.buffer === this.#slab.buffer) this.#slabAt += frame.encoded.length;
      const seq = Number(
        new DataView(frame.body.buffer, frame.body.byteOffset, 8).getBigUint64(0),
      );
      // The datagram as it goes on the wire: the stream encoding less its length prefix.
      this.#sender.queue(seq, frame.encoded.subarray(LENGTH_PREFIX_BYTES));
      this.#flush();
    } while (at < data.length);
  }

  /** Next message in order; null once the peer disconnected or this side closed the link. */
  receive(options: ReceiveOptions = {}): Promise<Uint8Array | null> {
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#closing) return Promise.resolve(null);
    const next = this.#queue.shift();
    if (next) {
      this.#queuedSegments -= this.#queueSegments.shift()!;
      this.#updateUnread();
      return Promise.resolve(next);
    }
    if (this.#ended) return this.#error ? Promise.reject(this.#error) : Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(signal?.reason);
      };
      const waiter: Waiter = {
        resolve: (data) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(data);
        },
        reject: (err) => {
          signal?.removeEventListener("abort", onAbort);
          reject(err);
        },
      };
      this.#waiters.push(waiter);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Waits until all sent data was acked, then DISCONNECT / ACK (bounded). Idempotent. */
  close(): Promise<void> {
    this.#closePromise ??= this.#close();
    return this.#closePromise;
  }

  async #close(): Promise<void> {
    this.#closeCalled = true;
    await this.#sendChain;
    while (!this.#ended && !this.#sender.drained) await this.#waitProgress();
    this.#closing = true;
    this.#queue = [];
    this.#queueSegments = [];
    this.#queuedSegments = 0;
    if (!this.#ended) {
      const timer = new AbortController();
      try {
        const acked = new Promise<void>((resolve) => {
          this.#onDisconnectAck = resolve;
          this.#clock.sleep(
            this.#options.disconnectTimeoutMs ?? DISCONNECT_TIMEOUT_MS,
            timer.signal,
          )
            .then(resolve, () => {});
        });
        await this.#channel.send({ type: FrameType.DISCONNECT, body: encodeDisconnect() });
        await acked;
      } catch {
        // The peer is gone already: nothing to wait for.
      } finally {
        timer.abort();
      }
    }
    this.#end(null);
    this.#channel.close();
    await this.#pumpDone;
  }

  #waitProgress(): Promise<void> {
    return new Promise((resolve) => this.#progress.push(resolve));
  }

  #wake(): void {
    const waiting = this.#progress;
    this.#progress = [];
    for (const resolve of waiting) resolve();
  }

  /** Sends what the windows allow; one loop at a time. */
  #flush(): void {
    if (this.#flushing) {
      this.#flushAgain = true;
      return;
    }
    this.#flushing = true;
    const inFlight: Promise<void>[] = [];
    (async () => {
      try {
        do {
          this.#flushAgain = false;
          for (
            let s = this.#sender.next(this.#clock.now());
            s;
            s = this.#sender.next(this.#clock.now())
          ) {
            if (this.#ended) return;
            // The channel sends in call order; a few in flight save an event-loop turn each.
            const sending = this.#sendData ? this.#sendData(s.bytes) : this.#channel.send({
              type: FrameType.DATA,
              body: s.bytes.subarray(FRAME_HEADER_BYTES),
            });
            sending.catch(() => {}); // awaited below; this only marks it handled
            inFlight.push(sending);
            if (inFlight.length >= SENDS_IN_FLIGHT) await inFlight.shift();
          }
          await Promise.all(inFlight.splice(0));
        } while (this.#flushAgain && !this.#ended);
      } catch (err) {
        this.#fail(err);
      } finally {
        this.#flushing = false;
        this.#arm();
      }
    })();
  }

  /** Sleeps until the earliest of the sender's deadline and a delayed ack. */
  #arm(): void {
    if (this.#ended) return;
    const deadline = this.#sender.deadline();
    const ackDue = this.#ackDue;
    const at = deadline === null ? ackDue : ackDue === null ? deadline : Math.min(deadline, ackDue);
    if (this.#timer && this.#timer.at === at) return;
    this.#timer?.stop.abort(TIMER_REPLACED);
    this.#timer = null;
    if (at === null) return;
    const stop = new AbortController();
    this.#timer = { at, stop };
    this.#clock.sleep(Math.max(0, Math.ceil(at - this.#clock.now())), stop.signal).then(
      () => {
        if (this.#timer?.stop !== stop) return;
        this.#timer = null;
        this.#onTimer();
      },
      () => {},
    );
  }

  #onTimer(): void {
    if (this.#ended) return;
    const now = this.#clock.now();
    if (this.#ackDue !== null && now >= this.#ackDue) this.#sendAck();
    if (this.#sender.onTimer(now) === "stalled") {
      const silent = this.#options.stallTimeoutMs ?? STREAM_STALL_TIMEOUT_MS;
      this.#fail(
        new PeerError(
          "ETIMEOUT",
          `Cannot send to peer ${this.remote.userId}: it acknowledged nothing for ${silent} ms; ` +
            "the peer stopped answering, connect again",
        ),
      );
      return;
    }
    this.#flush();
  }

  #sendAck(): void {
    this.#ackDue = null;
    this.#unacked = 0;
    const ack = this.#receiver.ack();
    this.#advertised = ack.window;
    const body = encodeStreamAck(ack, STREAM_MAX_SACK_RANGES);
    this.#channel.send({ type: FrameType.STREAM_ACK, body }).catch((err) => this.#fail(err));
  }

  async #pump(): Promise<void> {
    try {
      while (!this.#ended) {
        const frame = await this.#channel.receive();
        if (frame === null) {
          if (this.#closing) this.#end(null);
          else {
            this.#fail(
              new PeerError(
                "EPEER",
                `Cannot receive from peer ${this.remote.userId}: the connection ended without ` +
                  "DISCONNECT; connect again or pick another peer",
              ),
            );
          }
          return;
        }
        switch (frame.type) {
          case FrameType.DATA:
            await this.#data(frame.body);
            break;
          case FrameType.STREAM_ACK:
            this.#ack(frame.body);
            break;
          case FrameType.DATAGRAM: // opened by the channel: authentic and not a replay
            this.#datagram(frame.body);
            break;
          case FrameType.DISCONNECT:
            await this.#channel.send({ type: FrameType.DISCONNECT_ACK, body: new Uint8Array(0) })
              .catch(() => {});
            this.#end(null);
            this.#channel.close();
            return;
          case FrameType.DISCONNECT_ACK:
            if (this.#closing) this.#end(null);
            break;
          default:
            // handshake frames a datagram transport may repeat: nothing to do.
        }
        this.#arm();
      }
    } catch (err) {
      this.#fail(err);
    }
  }

  #datagram(data: Uint8Array): void {
    const waiter = this.#datagramWaiters.shift();
    if (waiter) return waiter.resolve(data);
    if (this.#datagrams.length >= STREAM_MAX_QUEUED_DATAGRAMS) this.#datagrams.shift();
    this.#datagrams.push(data);
  }

  /** An authenticated STREAM_ACK (the channel opened it). */
  #ack(body: Uint8Array): void {
    const ack = decodeStreamAck(body, STREAM_MAX_SACK_RANGES);
    if (this.#sender.onAck(ack, this.#clock.now()) === "ignored") return;
    this.#wake();
    this.#flush();
  }

  async #data(body: Uint8Array): Promise<void> {
    if (body.length < 8) return;
    const opened = await this.#cipher.openSegment(body);
    if (opened === null || this.#ended) return; // forged or altered: nothing moves
    const seq = Number(opened.sequence);
    const place = this.#receiver.place(seq);
    const inOrder = this.#receiver.push(seq, opened.plaintext);
    if (!this.#closing) { for (const segment of inOrder) this.#segment(segment); }
    this.#updateUnread(false);
    // At once on a gap, a duplicate, or the end of a message (so a sender's close() drains
    // without waiting for a timer); else every `ackEvery` in-order segments, or after a delay.
    const ends = inOrder.length === 1 && inOrder[0]![0] === 0;
    const gap = place !== "new" || inOrder.length !== 1 || this.#receiver.held > 0 || ends;
    if (gap || ++this.#unacked >= this.#receiver.ackEvery) this.#sendAck();
    else this.#ackDue ??= this.#clock.now() + STREAM_ACK_DELAY_MS;
  }

  /** One in-order segment's plaintext: a flag byte and a piece of a message. */
  #segment(plaintext: Uint8Array): void {
    const flag = plaintext[0];
    this.#partialBytes += plaintext.length - 1;
    checkFragment(flag, this.#partialBytes, {
      maxBytes: this.#maxMessageBytes,
      peer: this.remote.userId,
    });
    const chunk = plaintext.subarray(1);
    this.#partial.push(chunk);
    if (flag === 1) return;
    const segments = this.#partial.length;
    const message = segments === 1 ? chunk : concatBytes(...this.#partial);
    this.#partial = [];
    this.#partialBytes = 0;
    const waiter = this.#waiters.shift();
    if (waiter) waiter.resolve(message);
    else {
      this.#queue.push(message);
      this.#queueSegments.push(segments);
      this.#queuedSegments += segments;
    }
  }

  /**
   * Counts unread messages against the receive window, by the segments they came in (so many
   * tiny messages cannot pile up unbounded); reopens a window that had closed.
   */
  #updateUnread(announce = true): void {
    this.#receiver.unread = this.#queuedSegments;
    const quarter = this.#windowSegments / 4;
    if (announce && this.#advertised < quarter && this.#receiver.window >= 2 * quarter) {
      this.#sendAck();
    }
  }

  #closedError(): PeerError {
    if (this.#error instanceof PeerError) return this.#error;
    return new PeerError(
      "EPEER",
      `Cannot send to peer ${this.remote.userId}: the link is closed; connect again`,
      { cause: this.#error ?? "link closed" },
    );
  }

  #fail(err: unknown): void {
    if (this.#ended) return;
    this.#error = err instanceof PeerError ? err : new PeerError(
      "EPEER",
      `Cannot talk to peer ${this.remote.userId}: the connection failed; connect again`,
      { cause: err },
    );
    this.#end(this.#error);
    this.#channel.close();
  }

  #end(error: unknown): void {
    this.#onDisconnectAck?.();
    if (this.#ended) return;
    this.#ended = true;
    this.#timer?.stop.abort(TIMER_REPLACED);
    this.#timer = null;
    this.#wake();
    const waiters = [...this.#waiters, ...this.#datagramWaiters];
    this.#waiters = [];
    this.#datagramWaiters = [];
    for (const w of waiters) error ? w.reject(error) : w.resolve(null);
  }
}
