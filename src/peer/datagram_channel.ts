/**
 * The reliable-handshake {@link FrameChannel} of the UDP transport: one remote peer, one frame
 * per datagram, and the retransmission that makes the handshake and DISCONNECT survive loss.
 *
 * - CONNECT is re-sent with the backoff until CONNECT_ACK (or a refusal DISCONNECT) arrives.
 *   A COOKIE from the listener makes the initiator send CONNECT again with that cookie
 *   appended (at most `MAX_COOKIE_ROUNDS` times per attempt, never twice the same cookie);
 *   the handshake sees the CONNECT body alone. The peer's own CONNECT reaching an initiator
 *   (a punch's probe: the peer's NAT is open now) sends the pending CONNECT again at once,
 *   at most once per first backoff step (docs/nat.md "Who initiates").
 * - CONNECT_ACK is re-sent with the backoff until ACK arrives, and at once (same bytes) for
 *   every duplicate of the CONNECT it answers; no second handshake starts.
 * - ACK is the last handshake frame: the initiator re-sends it (same bytes) for every
 *   duplicate CONNECT_ACK, which the responder keeps sending until it has the ACK.
 * - After the handshake, PING, PONG, DISCONNECT and DISCONNECT_ACK are sealed under the session
 *   keys (`SessionCipher.sealControl`: their own sequence and replay window, their type in the
 *   additional data) and opened here before they count: one that does not open, or repeats one
 *   already opened, is dropped. So a spoofed datagram cannot end a link, stop a DISCONNECT's
 *   retransmission or keep a link to a vanished peer alive. DISCONNECT is re-sent until an
 *   authentic DISCONNECT_ACK arrives; a repeat of the DISCONNECT already opened gets the same
 *   DISCONNECT_ACK again.
 * - DATA and STREAM_ACK (sealed like the control frames) are passed on as they come; the
 *   reliable stream above (`reliable_link.ts`) authenticates each before it moves any state
 *   and retransmits lost DATA. DATAGRAM (sealed too) is the link's best-effort lane. A reader
 *   far behind loses DATA, STREAM_ACK and DATAGRAM, never more.
 * - PING every `keepaliveMs`, answered here with PONG (the session never sees either);
 *   no authentic control frame heard for `idleTimeoutMs` → `receive()` rejects with
 *   `PeerError` `EPEER` "the peer vanished". DATA does not count: it is authenticated above
 *   this channel, and a peer that is there answers PING whatever its application does.
 *
 * Every timer runs on the injected {@link Clock}, so tests drive them with a `ManualClock`.
 *
 * @module
 */
import { TIMER_CANCELLED } from "../runtime.ts";
import { PeerError } from "../errors.ts";
import { MAX_COOKIE_ROUNDS, MAX_HELD_CONTROL_FRAMES } from "../limits.ts";
import type { Endpoint } from "../message/types.ts";
import type { Backoff, Clock } from "../runtime.ts";
import { decodeCookie, encodeConnectWithCookie } from "./frame.ts";
import { encodeDatagram, type Frame, FrameType } from "./frame.ts";
import type { SessionCipher } from "./session_crypto.ts";
import type { FrameChannel } from "./types.ts";
import { isPathFrame, type LinkPath, type PathFrameType } from "./link_paths.ts";
import { FRAME_HEADER_BYTES, PATH_ID_BYTES } from "./frame.ts";

/** Frames sealed under the session keys once the handshake is done. */
const CONTROL_TYPES: ReadonlySet<FrameType> = new Set([
  FrameType.PING,
  FrameType.PONG,
  FrameType.DISCONNECT,
  FrameType.DISCONNECT_ACK,
  FrameType.STREAM_ACK,
  FrameType.DATAGRAM,
]);
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
  /**
   * Sends one datagram to the peer (the transport applies its loss hook): by the link's active
   * path, or by `path` (a PATH_* frame probing another one, `link_paths.ts`).
   */
  sendDatagram: (bytes: Uint8Array, path?: LinkPath) => Promise<void>;
  /** Called with each authentic PATH_* plaintext and the path it came by; default: dropped. */
  onPathFrame?: (type: PathFrameType, plaintext: Uint8Array, via: LinkPath) => void;
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
  /** The sealed DISCONNECT_ACK datagram that answered it. */
  disconnectAck?: Uint8Array;
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
  #heldControl: Received[] = [];
  /** The CONNECT body this initiator sent, and the cookies it followed. */
  #connectBody: Uint8Array | undefined;
  #cookie: Uint8Array | undefined;
  #cookieRounds = 0;
  /** When a probe last made this initiator send its pending CONNECT early. */
  #triggeredAt = -Infinity;
  #controlChain: Promise<void> = Promise.resolve();
  #lastHeard: number;
  #pathId: Uint8Array | undefined;
  #failure: unknown = null;
  #closed = false;

  constructor(options: DatagramChannelOptions) {
    this.#options = options;
    this.remote = options.remote;
    this.#lastHeard = options.clock.now();
  }

  /** When the last authentic control or path frame came from the peer (by the injected clock). */
  get lastHeard(): number {
    return this.#lastHeard;
  }

  /** What a listener keeps after close to answer duplicates; see {@link ChannelRecord}. */
  get record(): ChannelRecord {
    return this.#record;
  }

  /**
   * Called by the transport once the handshake succeeded: seals DISCONNECT, starts PING.
   * `pathId`: the link's path id (`link_paths.ts`), for the PATH_* frames it sends.
   */
  establish(cipher: SessionCipher, pathId?: Uint8Array): void {
    this.#cipher = cipher;
    this.#pathId = pathId;
    this.#lastHeard = this.#options.clock.now();
    if (this.#closed) return;
    this.#keepalive().catch(() => {});
    const held = this.#heldControl;
    this.#heldControl = [];
    for (const r of held) this.#control(r);
  }

  /**
   * Hands the channel one datagram from its peer (already decoded by the transport); `via`: the
   * path it came by, which a PATH_* frame needs (without it, one is dropped).
   */
  deliver(frame: Frame, bytes: Uint8Array, via?: LinkPath): void {
    if (this.#closed || this.#failure) return;
    if (isPathFrame(frame.type)) {
      if (!via || !this.#cipher || !this.#handshakeDone()) return;
      const run = this.#controlChain.then(() =>
        this.#openPath(frame.type as PathFrameType, frame.body, via)
      );
      this.#controlChain = run.catch(() => {});
      return;
    }
    if (CONTROL_TYPES.has(frame.type) && this.#handshakeDone()) {
      if (this.#cipher) this.#control({ frame, bytes });
      else if (this.#heldControl.length < MAX_HELD_CONTROL_FRAMES) {
        this.#heldControl.push({ frame, bytes });
      }
      return;
    }
    if (frame.type === FrameType.COOKIE) return this.#followCookie(frame);
    const retx = this.#retransmission;
    if (retx?.answeredBy.includes(frame.type)) this.#stopRetransmitting();
    const received = { frame, bytes };
    if (this.#options.role === "initiator") this.#deliverToInitiator(received);
    else this.#deliverToResponder(received);
  }

  /** An initiator still waiting for CONNECT_ACK sends CONNECT again, with the cookie. */
  #followCookie(frame: Frame): void {
    const body = this.#connectBody;
    if (this.#options.role !== "initiator" || !body || this.#connectAckIn !== undefined) return;
    let cookie: Uint8Array;
    try {
      cookie = decodeCookie(frame.body);
    } catch {
      return; // not a cookie: dropped
    }
    if (sameBytes(this.#cookie, cookie) || this.#cookieRounds >= MAX_COOKIE_ROUNDS) return;
    this.#cookie = cookie;
    this.#cookieRounds++;
    const connect = encodeDatagram({
      type: FrameType.CONNECT,
      body: encodeConnectWithCookie(body, cookie),
    });
    this.#reliably(connect, [FrameType.CONNECT_ACK, FrameType.DISCONNECT]).catch(() => {});
  }

  /** True once this side has sent (initiator) or received (responder) the ACK. */
  #handshakeDone(): boolean {
    return this.#options.role === "initiator" ? this.#ackOut !== undefined : this.#ackIn;
  }

  /** Opens a sealed control frame, one at a time, and acts on it only if it is authentic. */
  #control(r: Received): void {
    const { type } = r.frame;
    if (type === FrameType.DISCONNECT && sameBytes(this.#record.disconnect, r.bytes)) {
      if (this.#record.disconnectAck) this.#raw(this.#record.disconnectAck); // ours was lost
      return;
    }
    const run = this.#controlChain.then(() => this.#openControl(r));
    this.#controlChain = run.catch(() => {});
  }

  async #openControl(r: Received): Promise<void> {
    const { type } = r.frame;
    const plaintext = await this.#cipher!.openControl(type, r.frame.body);
    if (plaintext === null || this.#closed || this.#failure) return; // forged or replayed
    this.#lastHeard = this.#options.clock.now();
    switch (type) {
      case FrameType.PING:
        return this.send({ type: FrameType.PONG, body: plaintext }).catch(() => {});
      case FrameType.PONG:
        return;
      case FrameType.DISCONNECT:
        if (this.#record.disconnect !== undefined) return; // a second one: the first counts
        this.#record.disconnect = r.bytes;
        break;
      case FrameType.DISCONNECT_ACK:
        if (this.#retransmission?.answeredBy.includes(type)) this.#stopRetransmitting();
        break;
    }
    this.#push({ frame: { type, body: plaintext }, bytes: r.bytes });
  }

  /** Opens a PATH_* body (`[path id][sealed]`) and hands it on if authentic. */
  async #openPath(type: PathFrameType, body: Uint8Array, via: LinkPath): Promise<void> {
    if (body.length <= PATH_ID_BYTES) return;
    const plaintext = await this.#cipher!.openPath(type, body.subarray(PATH_ID_BYTES));
    if (plaintext === null || this.#closed || this.#failure) return; // forged or replayed
    this.#lastHeard = this.#options.clock.now();
    this.#options.onPathFrame?.(type, plaintext, via);
  }

  /**
   * Sends a PATH_* frame by `path`: `[path id][plaintext sealed on the path lane]`. `EPEER`
   * before the handshake is done or without a path id.
   */
  async sendPath(type: PathFrameType, plaintext: Uint8Array, path: LinkPath): Promise<void> {
    const id = this.#pathId;
    if (!this.#cipher || !id || this.#closed) {
      throw new PeerError(
        "EPEER",
        `Cannot probe a path to peer at ${this.#where()}: the link is not up; wait for it`,
      );
    }
    const sealed = await this.#cipher.sealPath(type, plaintext);
    const body = new Uint8Array(id.length + sealed.length);
    body.set(id);
    body.set(sealed, id.length);
    await this.#options.sendDatagram(encodeDatagram({ type, body }), path);
  }

  #deliverToInitiator(r: Received): void {
    const { type } = r.frame;
    if (this.#connectAckIn === undefined) { // waiting for the answer to CONNECT
      if (type === FrameType.CONNECT) return this.#resendEarly(); // the peer's probe
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

  /**
   * The peer probes us (docs/nat.md, ICE's triggered check): what it sends now passes its NAT's
   * way back, so the pending CONNECT goes again now rather than at its next backoff step, which
   * can be a second away. At most once per first backoff step, so that forged probes cannot
   * make this side send faster than its own retransmission does.
   */
  #resendEarly(): void {
    const retx = this.#retransmission;
    const now = this.#options.clock.now();
    if (!retx || now - this.#triggeredAt < this.#options.backoff(0)) return;
    this.#triggeredAt = now;
    this.#raw(retx.bytes);
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
        // Copies: a received DATA datagram is a piece of a slab shared with the ones after it
        // (`UdpSocket.run`), which this could hold for as long as the handshake waits.
        const bytes = r.bytes.slice();
        this.#early.push({ frame: { type, body: bytes.subarray(FRAME_HEADER_BYTES) }, bytes });
      }
      return;
    }
    if (type === FrameType.ACK) return; // a duplicate: harmless
    this.#push(r);
  }

  #push(r: Received): void {
    // Reader far behind: the datagram is lost. No sequence check here: the session cipher
    // checks it once the body authenticates (a forgery must not move any watermark).
    const droppable = r.frame.type === FrameType.DATA || r.frame.type === FrameType.STREAM_ACK ||
      r.frame.type === FrameType.DATAGRAM;
    if (droppable && this.#queue.length >= MAX_QUEUED_FRAMES) return;
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

  /**
   * Sends a DATA datagram already encoded (`[version][type][body]`, as `SessionCipher.sealFrame`
   * builds it past its length prefix) as it is, outside the call order of {@link send}: the
   * reliable stream orders DATA itself, and skipping the copy and the chain is most of the
   * sending cost per datagram besides the socket (docs/performance.md "UDP stream").
   */
  sendData(datagram: Uint8Array): Promise<void> {
    if (this.#closed) {
      return Promise.reject(
        new PeerError(
          "EPEER",
          `Cannot send to peer at ${this.#where()}: the channel is closed; connect again`,
        ),
      );
    }
    return this.#options.sendDatagram(datagram);
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
        this.#connectBody = frame.body.slice();
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
        return this.#reliably(await this.#sealed(frame), [FrameType.DISCONNECT_ACK]);
      }
      case FrameType.DISCONNECT_ACK: {
        const bytes = await this.#sealed(frame);
        this.#record.disconnectAck = bytes;
        return this.#options.sendDatagram(bytes);
      }
      case FrameType.PING:
      case FrameType.PONG:
      case FrameType.STREAM_ACK:
      case FrameType.DATAGRAM:
        return this.#options.sendDatagram(await this.#sealed(frame));
      default:
        return this.#options.sendDatagram(encodeDatagram(frame));
    }
  }

  /** A control frame sealed under the session keys (see the module doc). */
  async #sealed(frame: Frame): Promise<Uint8Array> {
    if (!this.#cipher) {
      throw new PeerError(
        "EPEER",
        `Cannot send frame type ${frame.type} to peer at ${this.#where()}: the handshake is ` +
          "not done; wait for it",
      );
    }
    const body = await this.#cipher.sealControl(frame.type, frame.body);
    return encodeDatagram({ type: frame.type, body });
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
    this.#retransmission?.stop.abort(TIMER_CANCELLED);
    this.#retransmission = null;
  }

  #raw(bytes: Uint8Array): void {
    this.#options.sendDatagram(bytes).catch(() => {});
  }

  /** Next frame from the peer; null once closed. Sealed control frames come back opened. */
  async receive(options: { signal?: AbortSignal } = {}): Promise<Frame | null> {
    const r = await this.#next(options.signal);
    return r === null ? null : r.frame;
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
    const ping: Frame = { type: FrameType.PING, body: new Uint8Array(0) };
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
      this.send(ping).catch(() => {});
    }
  }

  #fail(err: unknown): void {
    if (this.#closed || this.#failure) return;
    this.#failure = err;
    this.#stopRetransmitting();
    this.#stop.abort(TIMER_CANCELLED);
    const fail = this.#waiterFail;
    this.#clearWaiter();
    fail?.(err);
  }

  /** Stops every timer; a pending `receive()` resolves to null. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopRetransmitting();
    this.#stop.abort(TIMER_CANCELLED);
    this.#queue = [];
    this.#early = [];
    this.#heldControl = [];
    const waiter = this.#waiter;
    this.#clearWaiter();
    waiter?.(null);
    this.#options.onClose?.(this);
  }

  #where(): string {
    return `${this.remote.address}:${this.remote.port}`;
  }
}
