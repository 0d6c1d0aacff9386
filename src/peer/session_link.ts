/**
 * {@link SessionLink}: an established {@link PeerLink} over any {@link FrameChannel}, with a
 * {@link SessionCipher} for DATA. A message larger than one frame travels as several DATA
 * frames; the plaintext of each starts with a flag byte (1 = more fragments follow, 0 = last
 * fragment).
 *
 * Each fragment is sealed straight into the frame it travels in (taking the next sequence
 * number then), and frames are written in call order. On a datagram channel that happens when
 * `send()` is called, and its promise resolves once the frames are written. On a stream (TCP,
 * `exclusiveFrames`) `send()` is pipelined: up to four frames are between sealing and written,
 * in reused buffers; `send()` resolves once its last fragment is sealed (with WebCrypto: being
 * sealed, on another thread, so several frames are sealed at a time), and the write failing
 * later fails the link (the next call rejects). Either way the caller may reuse its buffer
 * once `send()` resolved.
 *
 * On a stream (TCP, `exclusiveFrames`) a {@link StreamAssembler} opens each received DATA
 * body, lent by the channel from its read buffer, straight into place: into the buffer of a
 * waiting `receive({ into })`, else into a new array that is the message. So that a receive
 * loop gets the first, a DATA frame of at least 16 KiB that starts a message while no
 * `receive()` waits is held, unread, for up to {@link RECEIVE_PARK_MS} (a loop calls again well within
 * that); after that the link reads on and queues the message in its own array. Not with
 * WebCrypto, which decrypts on other threads: there the link reads ahead and opens up to four
 * frames at a time, so decryption overlaps the caller's work and itself.
 *
 * @module
 */
import { PeerError } from "../errors.ts";
import { DISCONNECT_TIMEOUT_MS, RECEIVE_PARK_MS } from "../limits.ts";
import { type Clock, systemClock, TIMER_CANCELLED } from "../runtime.ts";
import { concatBytes } from "../message/bytes.ts";
import type { Endpoint, TransportKind } from "../message/types.ts";
import { TAG_BYTES } from "./aes_gcm.ts";
import { encodeDisconnect } from "./frame.ts";
import {
  type Frame,
  FRAME_HEADER_BYTES,
  FrameType,
  LENGTH_PREFIX_BYTES,
  MAX_FRAME_BODY_BYTES,
} from "./frame.ts";
import type { AesGcmEngine } from "./aes_gcm.ts";
import type { SessionCipher } from "./session_crypto.ts";
import { checkFragment, StreamAssembler } from "./stream_assembler.ts";
import type { FrameChannel, PeerInfo, PeerLink, ReceiveOptions } from "./types.ts";

/** Largest message one `send()` may carry; a longer reassembly is a hostile peer (EFRAME). */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
/** Largest message fragment that fits one DATA frame: sequence, flag byte and tag go first. */
export const MAX_FRAGMENT_BYTES = MAX_FRAME_BODY_BYTES - 8 - 1 - TAG_BYTES;
/** Fragments at least this long are sealed into reused buffers (`exclusiveFrames`). */
const POOLED_FRAGMENT_BYTES = 16 * 1024;
/** DATA frames of a stream between sealing and written (`exclusiveFrames`); as many buffers. */
const FRAMES_IN_FLIGHT = 4;
const POOL_BUFFER_BYTES = LENGTH_PREFIX_BYTES + FRAME_HEADER_BYTES + MAX_FRAME_BODY_BYTES;
const HIGH_WATER_BYTES = 4 * 1024 * 1024;
const MORE = Uint8Array.of(1);
const LAST = Uint8Array.of(0);

/** What a {@link SessionLink} needs besides its channel and cipher. */
export interface SessionLinkOptions {
  local: Endpoint;
  remote: PeerInfo;
  transport: TransportKind;
  /** How long `close()` waits for DISCONNECT_ACK; default `DISCONNECT_TIMEOUT_MS`. */
  disconnectTimeoutMs?: number;
  /** Largest message accepted from the peer; default {@link MAX_MESSAGE_BYTES}. */
  maxMessageBytes?: number;
  /**
   * The channel is done with a sent frame's bytes once `send()` resolved, and a received
   * frame's body may be the channel's, valid only until the next `receive()` (TCP): sent
   * frames are built in reused buffers, and each received DATA body is opened straight into
   * the message it belongs to before the next frame is read. Default false.
   */
  exclusiveFrames?: boolean;
  /** Largest fragment per DATA frame; default {@link MAX_FRAGMENT_BYTES} (lower it for UDP). */
  maxFragmentBytes?: number;
  /** Times the hold of an unreceived DATA frame ({@link RECEIVE_PARK_MS}); default the system clock. */
  clock?: Clock;
}

interface Waiter {
  /** The caller's buffer (`receive({ into })`), or undefined. */
  into: Uint8Array | undefined;
  resolve(data: Uint8Array | null): void;
  reject(err: unknown): void;
}

/**
 * An established link over a frame channel: encrypts DATA, answers PING and DISCONNECT, and
 * reassembles fragmented messages. A background pump reads frames while the link is open and
 * pauses when more than 4 MiB wait unread.
 */
export class SessionLink implements PeerLink {
  readonly local: Endpoint;
  readonly remote: PeerInfo;
  readonly transport: TransportKind;
  #channel: FrameChannel;
  #cipher: SessionCipher;
  #disconnectTimeoutMs: number;
  #maxMessageBytes: number;
  #maxFragmentBytes: number;
  #exclusiveFrames: boolean;
  #queue: Uint8Array[] = [];
  #queuedBytes = 0;
  #waiters: Waiter[] = [];
  #partial: Uint8Array[] = [];
  #partialBytes = 0;
  /** `exclusiveFrames` on an ordered cipher (TCP): opens DATA into place. */
  #assembler: StreamAssembler | null = null;
  /** Set while a DATA frame is held for a `receive()`: lets it be opened now. */
  #unpark: (() => void) | null = null;
  #clock: Clock;
  #nextSequence = 0n;
  #ended = false;
  #error: unknown = null;
  #closing = false;
  #closePromise: Promise<void> | null = null;
  #sendChain: Promise<void> = Promise.resolve();
  /** `exclusiveFrames`: the `send()`s whose fragments are not all sealing yet, in order. */
  #sealChain: Promise<void> = Promise.resolve();
  #pool: Uint8Array[] = [];
  #inFlight = 0;
  #placeWaiters: (() => void)[] = [];
  #onDisconnectAck: (() => void) | null = null;
  #resume: (() => void) | null = null;
  #pumpDone: Promise<void>;

  /** The AES-GCM implementation of this link's session (`PeerLink.cipher`). */
  get cipher(): AesGcmEngine {
    return this.#cipher.implementation;
  }

  constructor(channel: FrameChannel, cipher: SessionCipher, options: SessionLinkOptions) {
    this.local = options.local;
    this.remote = options.remote;
    this.transport = options.transport;
    this.#channel = channel;
    this.#cipher = cipher;
    this.#disconnectTimeoutMs = options.disconnectTimeoutMs ?? DISCONNECT_TIMEOUT_MS;
    this.#clock = options.clock ?? systemClock;
    this.#maxMessageBytes = options.maxMessageBytes ?? MAX_MESSAGE_BYTES;
    this.#exclusiveFrames = options.exclusiveFrames ?? false;
    this.#maxFragmentBytes = Math.min(
      options.maxFragmentBytes ?? MAX_FRAGMENT_BYTES,
      MAX_FRAGMENT_BYTES,
    );
    if (this.#exclusiveFrames && cipher.ordered) {
      this.#assembler = new StreamAssembler(cipher, {
        maxFragmentBytes: this.#maxFragmentBytes,
        maxMessageBytes: this.#maxMessageBytes,
        peer: this.remote.userId,
        waiting: () => this.#waiters[0],
        deliver: (message) => this.#deliver(message),
        fail: (err) => this.#fail(err),
      });
    }
    this.#pumpDone = this.#pump();
  }

  /** Sends one message, split into as many DATA frames as it needs. */
  send(data: Uint8Array): Promise<void> {
    if (this.#closing || this.#ended) return Promise.reject(this.#closedError());
    if (data.length > this.#maxMessageBytes) {
      return Promise.reject(
        new RangeError(`Message of ${data.length} bytes exceeds ${this.#maxMessageBytes}`),
      );
    }
    if (this.#exclusiveFrames) return this.#sendPipelined(data);
    const frames: Promise<Frame>[] = [];
    let at = 0;
    do {
      const chunk = data.subarray(at, at + this.#maxFragmentBytes);
      at += chunk.length;
      const sealing = this.#cipher.sealFrame([at < data.length ? MORE : LAST, chunk]);
      sealing.catch(() => {}); // reported by the task below
      frames.push(sealing);
    } while (at < data.length);
    return this.#enqueue(async () => {
      for (const sealing of frames) await this.#channel.send(await sealing);
    }).catch((err) => {
      this.#fail(err);
      throw err;
    });
  }

  /**
   * `send()` on a stream (see the module doc): each fragment waits for one of
   * {@link FRAMES_IN_FLIGHT} places, is sealed into a reused buffer and queued to be written
   * after the frames before it. The promise resolves once every fragment is sealed (or, with
   * WebCrypto, being sealed on another thread), so that several frames are sealed at a time.
   * A failed write fails the link: later calls reject.
   */
  #sendPipelined(data: Uint8Array): Promise<void> {
    const run = this.#sealChain.then(async () => {
      let at = 0;
      do {
        const chunk = data.subarray(at, at + this.#maxFragmentBytes);
        at += chunk.length;
        await this.#place();
        const into = chunk.length >= POOLED_FRAGMENT_BYTES
          ? this.#pool.pop() ?? new Uint8Array(POOL_BUFFER_BYTES)
          : undefined;
        const sealing = this.#cipher.sealFrame([at < data.length ? MORE : LAST, chunk], { into });
        sealing.catch(() => {}); // reported by the write below
        this.#enqueue(async () => {
          try {
            await this.#channel.send(await sealing);
          } finally {
            this.#leave(into);
          }
        }).catch((err) => this.#fail(err));
      } while (at < data.length);
    });
    this.#sealChain = run.catch(() => {});
    return run.catch((err) => {
      this.#fail(err);
      throw err;
    });
  }

  /** Waits for one of the {@link FRAMES_IN_FLIGHT} places; rejects once the link ended. */
  async #place(): Promise<void> {
    while (this.#inFlight >= FRAMES_IN_FLIGHT && !this.#ended) {
      await new Promise<void>((resolve) => this.#placeWaiters.push(resolve));
    }
    if (this.#ended) throw this.#closedError();
    this.#inFlight++;
  }

  /** A frame was written (or failed): its place and buffer are free again. */
  #leave(into: Uint8Array | undefined): void {
    this.#inFlight--;
    if (into && this.#pool.length < FRAMES_IN_FLIGHT) this.#pool.push(into);
    this.#placeWaiters.shift()?.();
  }

  #closedError(): PeerError {
    return new PeerError(
      "EPEER",
      `Cannot send to peer ${this.remote.userId}: the link is closed; connect again`,
      { cause: this.#error ?? "link closed" },
    );
  }

  /**
   * Next message; null once the peer disconnected or this side closed the link. With `into`,
   * a view of it when the message was opened there (see {@link ReceiveOptions}).
   */
  receive(options: ReceiveOptions = {}): Promise<Uint8Array | null> {
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#closing) return Promise.resolve(null);
    const next = this.#queue.shift();
    if (next) {
      this.#queuedBytes -= next.length;
      if (this.#queuedBytes <= HIGH_WATER_BYTES) this.#resume?.();
      return Promise.resolve(next);
    }
    if (this.#ended) {
      return this.#error ? Promise.reject(this.#error) : Promise.resolve(null);
    }
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        if (this.#assembler?.holds(waiter)) this.#assembler.release();
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(signal?.reason);
      };
      const waiter: Waiter = {
        into: options.into?.length ? options.into : undefined,
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
      this.#unpark?.();
    });
  }

  /** Sends DISCONNECT, waits for its ACK (bounded), releases the channel. Idempotent. */
  close(): Promise<void> {
    this.#closePromise ??= this.#close();
    return this.#closePromise;
  }

  async #close(): Promise<void> {
    this.#closing = true;
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#resume?.();
    this.#unpark?.();
    if (!this.#ended) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        await this.#sealChain; // the messages sent before close() go first
        const acked = new Promise<void>((resolve) => {
          this.#onDisconnectAck = resolve;
          timer = setTimeout(resolve, this.#disconnectTimeoutMs);
        });
        await this.#enqueue(() =>
          this.#channel.send({ type: FrameType.DISCONNECT, body: encodeDisconnect() })
        );
        await acked;
      } catch {
        // The peer is gone already: nothing to wait for.
      } finally {
        clearTimeout(timer);
      }
    }
    this.#end(null);
    this.#channel.close();
    await this.#pumpDone;
  }

  #enqueue(task: () => Promise<void>): Promise<void> {
    const run = this.#sendChain.then(task);
    this.#sendChain = run.catch(() => {});
    return run;
  }

  async #pump(): Promise<void> {
    try {
      while (!this.#ended) {
        if (this.#queuedBytes > HIGH_WATER_BYTES && !this.#closing) {
          await new Promise<void>((resolve) => this.#resume = resolve);
          this.#resume = null;
          continue;
        }
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
        if (this.#holds(frame)) await this.#park();
        await this.#handle(frame);
      }
    } catch (err) {
      this.#fail(err);
    }
  }

  /** Whether to hold this frame for a `receive()` to open it into (see the module doc). */
  #holds(frame: Frame): boolean {
    return frame.type === FrameType.DATA && frame.body.length >= POOLED_FRAGMENT_BYTES &&
      this.#waiters.length === 0 && !this.#closing && this.#cipher.synchronous &&
      (this.#assembler?.idle ?? false);
  }

  /** Resolves when a `receive()` comes, the link ends, or after {@link RECEIVE_PARK_MS}. */
  #park(): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>();
    const timer = new AbortController();
    this.#clock.sleep(RECEIVE_PARK_MS, timer.signal).then(() => this.#unpark?.(), () => {});
    this.#unpark = () => {
      timer.abort(TIMER_CANCELLED);
      this.#unpark = null;
      resolve();
    };
    return promise;
  }

  async #handle(frame: Frame): Promise<void> {
    switch (frame.type) {
      case FrameType.DATA:
        if (!this.#closing) await this.#data(frame.body);
        return;
      case FrameType.PING:
        await this.#enqueue(() => this.#channel.send({ type: FrameType.PONG, body: frame.body }));
        return;
      case FrameType.DISCONNECT:
        await this.#assembler?.settled(); // what came before DISCONNECT is delivered first
        await this.#enqueue(() =>
          this.#channel.send({ type: FrameType.DISCONNECT_ACK, body: new Uint8Array(0) })
        ).catch(() => {});
        this.#end(null);
        this.#channel.close();
        return;
      case FrameType.DISCONNECT_ACK:
        if (this.#closing) this.#end(null);
        return;
      default:
        // PONG, and handshake frames a datagram transport may repeat: nothing to do.
        return;
    }
  }

  async #data(body: Uint8Array): Promise<void> {
    if (this.#assembler) return await this.#assembler.push(body);
    let opened: { sequence: bigint; plaintext: Uint8Array };
    try {
      opened = await this.#cipher.open(body);
    } catch (err) {
      // Datagrams: a forged, replayed or late datagram is dropped; spoofing one must not be
      // enough to end the link. On a stream it can only mean tampering: the link fails.
      if (!this.#cipher.ordered && err instanceof PeerError && err.code === "EFRAME") return;
      throw err;
    }
    const { sequence, plaintext } = opened;
    if (sequence !== this.#nextSequence) { // a gap (datagrams only): drop the broken message
      this.#partial = [];
      this.#partialBytes = 0;
    }
    this.#nextSequence = sequence + 1n;
    const flag = plaintext[0];
    this.#checkFragment(flag, plaintext.length - 1);
    const chunk = plaintext.subarray(1);
    this.#partial.push(chunk);
    if (flag === 1) return;
    const message = this.#partial.length === 1 ? chunk : concatBytes(...this.#partial);
    this.#partial = [];
    this.#partialBytes = 0;
    this.#deliver(message);
  }

  /** Counts a datagram fragment's bytes and checks them and its flag. */
  #checkFragment(flag: number | undefined, chunkBytes: number): void {
    this.#partialBytes += chunkBytes;
    checkFragment(flag, this.#partialBytes, {
      maxBytes: this.#maxMessageBytes,
      peer: this.remote.userId,
    });
  }

  #deliver(message: Uint8Array): void {
    const waiter = this.#waiters.shift();
    if (waiter) waiter.resolve(message);
    else {
      this.#queue.push(message);
      this.#queuedBytes += message.length;
    }
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
    this.#resume?.();
    this.#unpark?.();
    if (this.#ended) return;
    this.#ended = true;
    for (const wake of this.#placeWaiters.splice(0)) wake();
    this.#assembler?.stop(); // a caller's buffer is never written once its receive() settled
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) error ? w.reject(error) : w.resolve(null);
  }
}
