/**
 * The reliable-handshake {@link FrameChannel} of the UDP transport: one remote peer, one frame
 * per datagram, and the retransmission that makes the handshake and DISCONNECT survive loss.
 *
 * - CONNECT is re-sent with the backoff until CONNECT_ACK (or a refusal DISCONNECT) arrives.
 * - CONNECT_ACK is re-sent with the backoff until ACK arrives, and at once (same bytes) for
 *   every duplicate of the CONNECT it answers; no second handshake starts.
 * - ACK is the last handshake frame: the initiator re-sends it (same bytes) for every
 *   duplicate CONNECT_ACK, which the responder keeps sending until it has the ACK.
 * - After the handshake, DISCONNECT is sealed with the session cipher (plaintext
 *   `[2][reason]`, a marker no DATA fragment uses) and re-sent until DISCONNECT_ACK arrives; one
 *   that does not open is dropped, so a spoofed datagram cannot end a link cleanly.
 * - DATA is best-effort: a lost datagram is lost (and with it the message it belonged to).
 *   The channel passes DATA on as it comes; the session cipher drops a duplicate, a late one
 *   or a forgery, and only a DATA body that authenticates moves its replay watermark, so a
 *   forged datagram with a huge sequence number changes nothing.
 * - PING every `keepaliveMs`; nothing heard for `idleTimeoutMs` → `receive()` rejects with
 *   `PeerError` `EPEER` "the peer vanished".
 *
 * Every timer runs on the injected {@link Clock}, so tests drive them with a `ManualClock`.
 *
 * @module
 */
import { PeerError } from "../errors.ts";
import type { Endpoint } from "../message/types.ts";
import type { Backoff, Clock } from "../runtime.ts";
import { encodeDatagram, type Frame, FrameType } from "./frame.ts";
import type { SessionCipher } from "./session_crypto.ts";
import type { FrameChannel } from "./types.ts";

/** First plaintext byte of a sealed DISCONNECT (DATA fragments use 0 and 1). */
const SEALED_DISCONNECT_MARKER = 2;
/** Frames a channel holds for a reader that is behind; more DATA is dropped. */
const MAX_QUEUED_FRAMES = 1024;
/** DATA that overtook the ACK, held until the ACK arrives. */
const MAX_EARLY_DATA = 64;

/** What a {@link DatagramFrameChannel} needs. */
export interface DatagramChannelOptions {
  /** Which side of the handshake this channel runs. */
  role: "initiator" | "responder";
  /** The peer, for messages. */
  remote: Endpoint;
  /** Sends one datagram to the peer (the transport applies its loss hook). */
  sendDatagram: (bytes: Uint8Array) => Promise<void>;
  clock: Clock;
  /** Delay before retransmission number n of a handshake frame or DISCONNECT. */
  backoff: Backoff;
  /** Interval of PING once established. */
  keepaliveMs: number;
  /** Silence after which the peer is declared gone. */
  idleTimeoutMs: number;
  /** Called once when the channel is closed (the transport releases or remembers it). */
  onClose?: (channel: DatagramFrameChannel) => void;
}

/** What a closed channel leaves behind, so a listener can answer late duplicates. */
export interface ChannelRecord {
  /** The CONNECT datagram this responder answered. */
  connect?: Uint8Array;
  /** The refusal DISCONNECT datagram it answered CONNECT with, if it refused. */
  refusal?: Uint8Array;
  /** The last authentic DISCONNECT datagram the peer sent. */
  disconnect?: Uint8Array;
}

interface Retransmission {
  bytes: Uint8Array;
  /** Frame types that answer it. */
  answeredBy: readonly FrameType[];
  stop: AbortController;
}

interface Received {
  frame: Frame;
  bytes: Uint8Array;
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array): boolean {
  return a !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);
}

/** A {@link FrameChannel} to one peer over datagrams; see the module doc for the rules. */
export class DatagramFrameChannel implements FrameChannel {
  readonly remote: Endpoint;
  #options: DatagramChannelOptions;
  #queue: Received[] = [];
  #early: Received[] = [];
  #waiter: ((value: Received | null) => void) | null = null;
  #waiterFail: ((err: unknown) => void) | null = null;
  #retransmission: Retransmission | null = null;
  #stop = new AbortController();
  #sendChain: Promise<void> = Promise.resolve();
  #cipher: SessionCipher | null = null;
  #record: ChannelRecord = {};
  #connectAckIn: Uint8Array | undefined;
  #connectAckOut: Uint8Array | undefined;
  #ackOut: Uint8Array | undefined;
  #ackIn = false;
  #lastHeard: number;
  #failure: unknown = null;
  #closed = false;

  constructor(options: DatagramChannelOptions) {
    this.#options = options;
    this.remote = options.remote;
    this.#lastHeard = options.clock.now();
  }

  /** What a listener keeps after close to answer duplicates; see {@link ChannelRecord}. */
  get record(): ChannelRecord {
    return this.#record;
  }

  /** Called by the transport once the handshake succeeded: seals DISCONNECT, starts PING. */
  establish(cipher: SessionCipher): void {
    this.#cipher = cipher;
    this.#lastHeard = this.#options.clock.now();
    if (!this.#closed) this.#keepalive().catch(() => {});
  }

  /** Hands the channel one datagram from its peer (already decoded by the transport). */
  deliver(frame: Frame, bytes: Uint8Array): void {
    if (this.#closed || this.#failure) return;
    this.#lastHeard = this.#options.clock.now();
    const retx = this.#retransmission;
    if (retx?.answeredBy.includes(frame.type)) this.#stopRetransmitting();
    const received = { frame, bytes };
    if (this.#options.role === "initiator") this.#deliverToInitiator(received);
    else this.#deliverToResponder(received);
  }

  #deliverToInitiator(r: Received): void {
    const { type } = r.frame;
    if (this.#connectAckIn === undefined) { // waiting for the answer to CONNECT
      if (type === FrameType.CONNECT_ACK) this.#connectAckIn = r.bytes;
      if (type === FrameType.CONNECT_ACK || type === FrameType.DISCONNECT) this.#push(r);
      return;
    }
    if (type === FrameType.CONNECT_ACK) { // the responder has not got our ACK yet
      if (this.#ackOut && sameBytes(this.#connectAckIn, r.bytes)) this.#raw(this.#ackOut);
      return;
    }
    if (type === FrameType.CONNECT || type === FrameType.ACK) return;
    this.#push(r);
  }

  #deliverToResponder(r: Received): void {
    const { type } = r.frame;
    if (this.#record.connect === undefined) {
      if (type === FrameType.CONNECT) {
        this.#record.connect = r.bytes;
        this.#push(r);
      }
      return;
    }
    if (type === FrameType.CONNECT) { // our CONNECT_ACK (or refusal) was lost: same answer
      const answer = this.#connectAckOut ?? this.#record.refusal;
      if (answer && sameBytes(this.#record.connect, r.bytes)) this.#raw(answer);
      return;
    }
    if (type === FrameType.CONNECT_ACK) return;
    if (!this.#ackIn) {
      if (type === FrameType.ACK) {
        this.#ackIn = true;
        this.#push(r);
        const early = this.#early;
        this.#early = [];
        for (const e of early) this.#push(e);
      } else if (type === FrameType.DATA && this.#early.length < MAX_EARLY_DATA) {
        this.#early.push(r);
      }
      return;
    }
    if (type === FrameType.ACK) return; // a duplicate: harmless
    this.#push(r);
  }

  #push(r: Received): void {
    // Reader far behind: the datagram is lost. No sequence check here: the session cipher
    // checks it once the body authenticates (a forgery must not move any watermark).
    if (r.frame.type === FrameType.DATA && this.#queue.length >= MAX_QUEUED_FRAMES) return;
    const waiter = this.#waiter;
    if (waiter) {
      this.#clearWaiter();
      waiter(r);
    } else this.#queue.push(r);
  }

  #clearWaiter(): void {
    this.#waiter = null;
    this.#waiterFail = null;
  }

  /** Sends one frame; handshake frames and DISCONNECT are retransmitted as the module says. */
  send(frame: Frame): Promise<void> {
    const run = this.#sendChain.then(() => this.#send(frame));
    this.#sendChain = run.catch(() => {});
    return run;
  }

  async #send(frame: Frame): Promise<void> {
    if (this.#closed) {
      throw new PeerError(
        "EPEER",
        `Cannot send to peer at ${this.#where()}: the channel is closed; connect again`,
      );
    }
    switch (frame.type) {
      case FrameType.CONNECT:
        return this.#reliably(encodeDatagram(frame), [FrameType.CONNECT_ACK, FrameType.DISCONNECT]);
      case FrameType.CONNECT_ACK:
        this.#connectAckOut = encodeDatagram(frame);
        return this.#reliably(this.#connectAckOut, [FrameType.ACK]);
      case FrameType.ACK:
        this.#ackOut = encodeDatagram(frame);
        return this.#options.sendDatagram(this.#ackOut);
      case FrameType.DISCONNECT: {
        if (!this.#cipher) { // a refusal during the handshake: re-sent per duplicate CONNECT
          this.#record.refusal = encodeDatagram(frame);
          return this.#options.sendDatagram(this.#record.refusal);
        }
        const plaintext = new Uint8Array(1 + frame.body.length);
        plaintext[0] = SEALED_DISCONNECT_MARKER;
        plaintext.set(frame.body, 1);
        const body = await this.#cipher.seal(plaintext);
        return this.#reliably(
          encodeDatagram({ type: FrameType.DISCONNECT, body }),
          [FrameType.DISCONNECT_ACK],
        );
      }
      default:
        return this.#options.sendDatagram(encodeDatagram(frame));
    }
  }

  /** Sends now, then again after each backoff delay until answered or closed. */
  async #reliably(bytes: Uint8Array, answeredBy: readonly FrameType[]): Promise<void> {
    this.#stopRetransmitting();
    const retx: Retransmission = { bytes, answeredBy, stop: new AbortController() };
    this.#retransmission = retx;
    await this.#options.sendDatagram(bytes);
    this.#retransmit(retx).catch(() => {});
  }

  async #retransmit(retx: Retransmission): Promise<void> {
    const signal = AbortSignal.any([retx.stop.signal, this.#stop.signal]);
    for (let attempt = 0; !signal.aborted; attempt++) {
      await this.#options.clock.sleep(this.#options.backoff(attempt), signal);
      if (signal.aborted || this.#retransmission !== retx) return;
      await this.#options.sendDatagram(retx.bytes).catch(() => {});
    }
  }

  #stopRetransmitting(): void {
    this.#retransmission?.stop.abort();
    this.#retransmission = null;
  }

  #raw(bytes: Uint8Array): void {
    this.#options.sendDatagram(bytes).catch(() => {});
  }

  /** Next frame from the peer; null once closed. A sealed DISCONNECT comes back opened. */
  async receive(options: { signal?: AbortSignal } = {}): Promise<Frame | null> {
    while (true) {
      const r = await this.#next(options.signal);
      if (r === null) return null;
      if (r.frame.type !== FrameType.DISCONNECT || !this.#cipher) return r.frame;
      const reason = await this.#openDisconnect(r.frame.body);
      if (reason === null) continue; // not from the peer: dropped
      this.#record.disconnect = r.bytes;
      return { type: FrameType.DISCONNECT, body: reason };
    }
  }

  async #openDisconnect(body: Uint8Array): Promise<Uint8Array | null> {
    try {
      const { plaintext } = await this.#cipher!.open(body);
      return plaintext[0] === SEALED_DISCONNECT_MARKER ? plaintext.subarray(1) : null;
    } catch {
      return null;
    }
  }

  #next(signal: AbortSignal | undefined): Promise<Received | null> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const next = this.#queue.shift();
    if (next) return Promise.resolve(next);
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#closed) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.#clearWaiter();
        reject(signal?.reason);
      };
      this.#waiter = (value) => {
        signal?.removeEventListener("abort", onAbort);
        resolve(value);
      };
      this.#waiterFail = (err) => {
        signal?.removeEventListener("abort", onAbort);
        reject(err);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  async #keepalive(): Promise<void> {
    const { clock, keepaliveMs, idleTimeoutMs } = this.#options;
    const signal = this.#stop.signal;
    const ping = encodeDatagram({ type: FrameType.PING, body: new Uint8Array(0) });
    const tick = () => clock.sleep(keepaliveMs, signal).then(() => true, () => false);
    let next = tick();
    while (await next) {
      if (this.#closed || this.#failure) return;
      const silent = clock.now() - this.#lastHeard;
      if (silent >= idleTimeoutMs) {
        this.#fail(
          new PeerError(
            "EPEER",
            `Cannot receive from peer at ${this.#where()}: the peer vanished (nothing heard for ` +
              `${silent} ms); connect again or pick another peer`,
          ),
        );
        return;
      }
      next = tick(); // armed before the PING leaves, so a test clock sees it at once
      this.#raw(ping);
    }
  }

  #fail(err: unknown): void {
    if (this.#closed || this.#failure) return;
    this.#failure = err;
    this.#stopRetransmitting();
    this.#stop.abort();
    const fail = this.#waiterFail;
    this.#clearWaiter();
    fail?.(err);
  }

  /** Stops every timer; a pending `receive()` resolves to null. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopRetransmitting();
    this.#stop.abort();
    this.#queue = [];
    this.#early = [];
    const waiter = this.#waiter;
    this.#clearWaiter();
    waiter?.(null);
    this.#options.onClose?.(this);
  }

  #where(): string {
    return `${this.remote.address}:${this.remote.port}`;
  }
}
