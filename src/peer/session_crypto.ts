/**
 * The encrypted session that follows the handshake (DESIGN §6), transport-independent.
 *
 * - {@link deriveSessionKeys}: HKDF-SHA256 over the X25519 shared secret, salted with the
 *   handshake transcript hash, gives one AES-256-GCM key per direction.
 * - {@link SessionCipher}: seals and opens DATA bodies `[u64 BE sequence][ciphertext]`; the
 *   GCM nonce is the sequence number, the additional data is `[version][DATA][sequence]`.
 * - {@link SessionLink}: a {@link PeerLink} over any {@link FrameChannel}. A message larger than
 *   one frame travels as several DATA frames; the plaintext of each starts with a flag byte
 *   (1 = more fragments follow, 0 = last fragment).
 *
 * @module
 */
import { PeerError } from "../errors.ts";
import { DISCONNECT_TIMEOUT_MS, PROTOCOL_VERSION } from "../limits.ts";
import { concatBytes } from "../message/base64.ts";
import type { Endpoint, TransportKind } from "../message/types.ts";
import {
  decodeData,
  encodeData,
  encodeDisconnect,
  type Frame,
  FrameType,
  MAX_FRAME_BODY_BYTES,
} from "./frame.ts";
import type { FrameChannel, PeerInfo, PeerLink } from "./types.ts";

/** Largest message one `send()` may carry; a longer reassembly is a hostile peer (EFRAME). */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
const TAG_BYTES = 16;
const SEQUENCE_BYTES = 8;
/** Largest message fragment that fits one DATA frame. */
export const MAX_FRAGMENT_BYTES = MAX_FRAME_BODY_BYTES - SEQUENCE_BYTES - TAG_BYTES - 1;
const HIGH_WATER_BYTES = 4 * 1024 * 1024;
const SESSION_INFO = new TextEncoder().encode("mailpeer v1 session keys");

/** One AES-256-GCM key per direction. */
export interface SessionKeys {
  send: CryptoKey;
  receive: CryptoKey;
}

function buf(bytes: Uint8Array): ArrayBuffer {
  return bytes.slice().buffer as ArrayBuffer;
}

/**
 * Derives the session keys from the X25519 shared secret and the transcript hash. The first
 * 32 bytes key the initiator → responder direction, the next 32 the other one.
 */
export async function deriveSessionKeys(
  sharedSecret: Uint8Array,
  transcriptHash: Uint8Array,
  options: { role: "initiator" | "responder" },
): Promise<SessionKeys> {
  const ikm = await crypto.subtle.importKey("raw", buf(sharedSecret), "HKDF", false, [
    "deriveBits",
  ]);
  const okm = new Uint8Array(
    await crypto.subtle.deriveBits(
      { name: "HKDF", hash: "SHA-256", salt: buf(transcriptHash), info: buf(SESSION_INFO) },
      ikm,
      512,
    ),
  );
  const key = (raw: Uint8Array) =>
    crypto.subtle.importKey("raw", buf(raw), "AES-GCM", false, ["encrypt", "decrypt"]);
  const forward = await key(okm.subarray(0, 32));
  const backward = await key(okm.subarray(32, 64));
  return options.role === "initiator"
    ? { send: forward, receive: backward }
    : { send: backward, receive: forward };
}

function nonceOf(sequence: bigint): ArrayBuffer {
  const nonce = new Uint8Array(12);
  new DataView(nonce.buffer).setBigUint64(4, sequence);
  return nonce.buffer;
}

function aadOf(sequence: bigint): ArrayBuffer {
  const aad = new Uint8Array(2 + SEQUENCE_BYTES);
  aad[0] = PROTOCOL_VERSION;
  aad[1] = FrameType.DATA;
  new DataView(aad.buffer).setBigUint64(2, sequence);
  return aad.buffer;
}

/**
 * Seals and opens DATA bodies. Sequence numbers start at 0 in each direction. Ordered (the
 * default, TCP): a body whose sequence is not the next expected one is rejected. Unordered
 * (datagrams): gaps are allowed, but never a sequence at or below one already opened.
 * Calls to `open()` must not overlap.
 */
export class SessionCipher {
  #keys: SessionKeys;
  #ordered: boolean;
  #nextSend = 0n;
  #nextReceive = 0n;

  constructor(keys: SessionKeys, options: { ordered?: boolean } = {}) {
    this.#keys = keys;
    this.#ordered = options.ordered ?? true;
  }

  /** Encrypts a plaintext into the next DATA body. */
  async seal(plaintext: Uint8Array): Promise<Uint8Array> {
    const sequence = this.#nextSend++;
    const ciphertext = await crypto.subtle.encrypt(
      { name: "AES-GCM", iv: nonceOf(sequence), additionalData: aadOf(sequence) },
      this.#keys.send,
      buf(plaintext),
    );
    return encodeData({ sequence, ciphertext: new Uint8Array(ciphertext) });
  }

  /** True for a stream (TCP): bodies must come in sequence. */
  get ordered(): boolean {
    return this.#ordered;
  }

  /** Opens a DATA body; `PeerError` `EFRAME` when out of sequence, altered or forged. */
  async open(body: Uint8Array): Promise<{ sequence: bigint; plaintext: Uint8Array }> {
    const { sequence, ciphertext } = decodeData(body);
    const expected = this.#nextReceive;
    if (this.#ordered ? sequence !== expected : sequence < expected) {
      throw new PeerError(
        "EFRAME",
        `Cannot open a DATA frame: sequence ${sequence} where ${expected} was expected; ` +
          "the frame was replayed, reordered or injected",
      );
    }
    let plaintext: ArrayBuffer;
    try {
      plaintext = await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: nonceOf(sequence), additionalData: aadOf(sequence) },
        this.#keys.receive,
        buf(ciphertext),
      );
    } catch (err) {
      throw new PeerError(
        "EFRAME",
        "Cannot open a DATA frame: it does not authenticate; the frame was altered or forged",
        { cause: err },
      );
    }
    this.#nextReceive = sequence + 1n;
    return { sequence, plaintext: new Uint8Array(plaintext) };
  }
}

/** What a {@link SessionLink} needs besides its channel and cipher. */
export interface SessionLinkOptions {
  local: Endpoint;
  remote: PeerInfo;
  transport: TransportKind;
  /** How long `close()` waits for DISCONNECT_ACK; default `DISCONNECT_TIMEOUT_MS`. */
  disconnectTimeoutMs?: number;
  /** Largest message accepted from the peer; default {@link MAX_MESSAGE_BYTES}. */
  maxMessageBytes?: number;
  /** Largest fragment per DATA frame; default {@link MAX_FRAGMENT_BYTES} (lower it for UDP). */
  maxFragmentBytes?: number;
}

interface Waiter {
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
  #queue: Uint8Array[] = [];
  #queuedBytes = 0;
  #waiters: Waiter[] = [];
  #partial: Uint8Array[] = [];
  #partialBytes = 0;
  #nextSequence = 0n;
  #ended = false;
  #error: unknown = null;
  #closing = false;
  #closePromise: Promise<void> | null = null;
  #sendChain: Promise<void> = Promise.resolve();
  #onDisconnectAck: (() => void) | null = null;
  #resume: (() => void) | null = null;
  #pumpDone: Promise<void>;

  constructor(channel: FrameChannel, cipher: SessionCipher, options: SessionLinkOptions) {
    this.local = options.local;
    this.remote = options.remote;
    this.transport = options.transport;
    this.#channel = channel;
    this.#cipher = cipher;
    this.#disconnectTimeoutMs = options.disconnectTimeoutMs ?? DISCONNECT_TIMEOUT_MS;
    this.#maxMessageBytes = options.maxMessageBytes ?? MAX_MESSAGE_BYTES;
    this.#maxFragmentBytes = Math.min(
      options.maxFragmentBytes ?? MAX_FRAGMENT_BYTES,
      MAX_FRAGMENT_BYTES,
    );
    this.#pumpDone = this.#pump();
  }

  /** Sends one message, split into as many DATA frames as it needs. */
  send(data: Uint8Array): Promise<void> {
    if (this.#closing || this.#ended) {
      return Promise.reject(
        new PeerError(
          "EPEER",
          `Cannot send to peer ${this.remote.userId}: the link is closed; connect again`,
          { cause: this.#error ?? "link closed" },
        ),
      );
    }
    if (data.length > this.#maxMessageBytes) {
      return Promise.reject(
        new RangeError(`Message of ${data.length} bytes exceeds ${this.#maxMessageBytes}`),
      );
    }
    const copy = data.slice();
    return this.#enqueue(async () => {
      let at = 0;
      do {
        const chunk = copy.subarray(at, at + this.#maxFragmentBytes);
        at += chunk.length;
        const flag = at < copy.length ? 1 : 0;
        const body = await this.#cipher.seal(concatBytes(Uint8Array.of(flag), chunk));
        await this.#channel.send({ type: FrameType.DATA, body });
      } while (at < copy.length);
    }).catch((err) => {
      this.#fail(err);
      throw err;
    });
  }

  /** Next message; null once the peer disconnected or this side closed the link. */
  receive(options: { signal?: AbortSignal } = {}): Promise<Uint8Array | null> {
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
    if (!this.#ended) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
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
        await this.#handle(frame);
      }
    } catch (err) {
      this.#fail(err);
    }
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
    if (flag !== 0 && flag !== 1) {
      throw new PeerError(
        "EFRAME",
        `Cannot read a message from peer ${this.remote.userId}: bad fragment flag ${flag}; ` +
          "the peer is not a compatible mailpeer peer",
      );
    }
    const chunk = plaintext.subarray(1);
    this.#partialBytes += chunk.length;
    if (this.#partialBytes > this.#maxMessageBytes) {
      throw new PeerError(
        "EFRAME",
        `Cannot read a message from peer ${this.remote.userId}: it exceeds ` +
          `${this.#maxMessageBytes} bytes; the peer must send smaller messages`,
      );
    }
    this.#partial.push(chunk);
    if (flag === 1) return;
    const message = this.#partial.length === 1 ? chunk : concatBytes(...this.#partial);
    this.#partial = [];
    this.#partialBytes = 0;
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
    if (this.#ended) return;
    this.#ended = true;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) error ? w.reject(error) : w.resolve(null);
  }
}
