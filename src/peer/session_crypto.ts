/**
 * The encrypted session that follows the handshake (docs/design.md "Peer connection"),
 * transport-independent.
 *
 * - {@link deriveSessionKeys}: HKDF-SHA256 over the X25519 shared secret, salted with the
 *   handshake transcript hash, gives one AES-256-GCM key per direction.
 * - {@link SessionCipher}: seals and opens DATA bodies `[u64 BE sequence][ciphertext]`; the
 *   GCM nonce is the sequence number, the additional data is `[version][DATA][sequence]`.
 *   Datagram control frames (PING, PONG, DISCONNECT, DISCONNECT_ACK) are sealed the same way
 *   with a sequence of their own, the nonce `[0 0 0 1][u64 BE sequence]` (DATA's starts with
 *   four zero bytes, so no nonce repeats) and their own type in the additional data. PATH_*
 *   frames likewise, with a sequence and replay window of their own and the nonce
 *   `[0 0 0 2][u64 BE sequence]` (`sealPath`).
 *   AES-GCM runs through OpenSSL when the process holds the `ffi` permission, else WebCrypto,
 *   or node:crypto when asked for (`aes_gcm.ts`); the bytes are the same either way.
 * - {@link SessionLink} (`session_link.ts`): a {@link PeerLink} over any {@link FrameChannel}.
 *
 * @module
 */
import { hkdfSync } from "node:crypto";
import { PeerError } from "../errors.ts";
import { CONTROL_REPLAY_WINDOW } from "../limits.ts";
import { PEER_FRAME_VERSION } from "../protocol.ts";
import {
  type AesGcmEngine,
  type AesGcmImplementation,
  type AesGcmKey,
  aesGcmKey,
  type OpenOptions,
  TAG_BYTES,
} from "./aes_gcm.ts";
import {
  FRAME_HEADER_BYTES,
  type FrameType,
  FrameType as Type,
  LENGTH_PREFIX_BYTES,
  MAX_FRAME_BODY_BYTES,
} from "./frame.ts";

const SEQUENCE_BYTES = 8;
const SESSION_INFO = new TextEncoder().encode("mailpeer v1 session keys");
const DATA_PREFIX_BYTES = LENGTH_PREFIX_BYTES + FRAME_HEADER_BYTES + SEQUENCE_BYTES;
const MAX_SEQUENCE = 0xffff_ffff_ffff_ffffn;

/** One raw AES-256-GCM key (32 bytes) per direction. */
export interface SessionKeys {
  send: Uint8Array;
  receive: Uint8Array;
}

/** Options of {@link SessionCipher}. */
export interface SessionCipherOptions {
  /** Bodies must come in sequence (TCP); default true. */
  ordered?: boolean;
  /** AES-GCM implementation; default `auto` (OpenSSL when the ffi permission is held). */
  aesGcm?: AesGcmImplementation;
}

/**
 * Derives the session keys from the X25519 shared secret and the transcript hash (HKDF-SHA256,
 * node:crypto, synchronous: WebCrypto's import and derive are two promises resolved from another
 * thread, 90 µs against 18). The first 32 bytes key the initiator → responder direction, the
 * next 32 the other one.
 */
export function deriveSessionKeys(
  sharedSecret: Uint8Array,
  transcriptHash: Uint8Array,
  options: { role: "initiator" | "responder" },
): SessionKeys {
  const okm = new Uint8Array(hkdfSync("sha256", sharedSecret, transcriptHash, SESSION_INFO, 64));
  const forward = okm.slice(0, 32);
  const backward = okm.slice(32, 64);
  okm.fill(0);
  return options.role === "initiator"
    ? { send: forward, receive: backward }
    : { send: backward, receive: forward };
}

/** A direction's nonce and additional data, rewritten per frame (both engines copy them). */
class FrameParameters {
  readonly nonce = new Uint8Array(12);
  readonly aad = new Uint8Array(2 + SEQUENCE_BYTES);
  #nonceView = new DataView(this.nonce.buffer);
  #aadView = new DataView(this.aad.buffer);

  /** `domain` is the nonce's fourth byte: 0 for DATA, 1 for control frames, 2 for path frames. */
  constructor(domain: 0 | 1 | 2 = 0) {
    this.aad[0] = PEER_FRAME_VERSION;
    this.aad[1] = Type.DATA;
    this.nonce[3] = domain;
  }

  /** Sets both to `sequence`: the nonce `[0 0 0 domain][u64 BE]`, the AAD `[version][type][u64 BE]`. */
  set(sequence: bigint, type: FrameType = Type.DATA): this {
    this.aad[1] = type;
    this.#nonceView.setBigUint64(4, sequence);
    this.#aadView.setBigUint64(2, sequence);
    return this;
  }
}

/** Which control sequences were opened: the highest and a window of bits below it. */
class ReplayWindow {
  #highest = -1n;
  #seen = 0n;

  /** True when `sequence` is neither opened yet nor too old to tell. */
  fresh(sequence: bigint): boolean {
    if (sequence > this.#highest) return true;
    const age = this.#highest - sequence;
    return age < BigInt(CONTROL_REPLAY_WINDOW) && (this.#seen >> age & 1n) === 0n;
  }

  /** Records `sequence` as opened (it must be fresh). */
  mark(sequence: bigint): void {
    const size = BigInt(CONTROL_REPLAY_WINDOW);
    const mask = (1n << size) - 1n;
    if (sequence > this.#highest) {
      const shift = sequence - this.#highest;
      this.#seen = shift >= size ? 1n : ((this.#seen << shift) | 1n) & mask;
      this.#highest = sequence;
    } else this.#seen |= 1n << (this.#highest - sequence);
  }
}

/** One sequence of sealed datagram frames besides DATA: its counter, nonces and replay window. */
interface ControlLane {
  next: bigint;
  send: FrameParameters;
  receive: FrameParameters;
  replay: ReplayWindow;
}

function frameError(message: string, cause?: unknown): PeerError {
  return new PeerError("EFRAME", message, cause === undefined ? undefined : { cause });
}

/**
 * Seals and opens DATA bodies. Sequence numbers start at 0 in each direction and every seal
 * takes the next one when it is called, so each nonce is used once per key. Ordered (the
 * default, TCP): a body whose sequence is not the next expected one is rejected. Unordered
 * (datagrams): gaps are allowed, but never a sequence at or below one already opened.
 * Ordered, calls to `open()` may overlap (each takes the next sequence when called, and a
 * failure leaves the stream unusable); unordered, they must not.
 */
export class SessionCipher {
  #send: AesGcmKey;
  #receive: AesGcmKey;
  #ordered: boolean;
  #nextSend = 0n;
  #nextReceive = 0n;
  #sendParameters = new FrameParameters();
  #receiveParameters = new FrameParameters();
  #control: ControlLane = {
    next: 0n,
    send: new FrameParameters(1),
    receive: new FrameParameters(1),
    replay: new ReplayWindow(),
  };
  #path: ControlLane = {
    next: 0n,
    send: new FrameParameters(2),
    receive: new FrameParameters(2),
    replay: new ReplayWindow(),
  };

  constructor(keys: SessionKeys, options: SessionCipherOptions = {}) {
    const implementation = { implementation: options.aesGcm };
    this.#send = aesGcmKey({ raw: keys.send }, implementation);
    this.#receive = aesGcmKey({ raw: keys.receive }, implementation);
    this.#ordered = options.ordered ?? true;
  }

  /** True for a stream (TCP): bodies must come in sequence. */
  get ordered(): boolean {
    return this.#ordered;
  }

  /** Which AES-GCM implementation seals and opens. */
  get implementation(): AesGcmEngine {
    return this.#send.implementation;
  }

  /**
   * True when `open()` has written the plaintext to `into` before it returns its promise
   * (OpenSSL, node:crypto); false when that happens later, on settling (WebCrypto).
   */
  get synchronous(): boolean {
    return this.#receive.implementation !== "webcrypto";
  }

  /** Encrypts a plaintext into the next DATA body. */
  async seal(plaintext: Uint8Array): Promise<Uint8Array> {
    const frame = await this.sealFrame([plaintext]);
    return frame.body;
  }

  /**
   * Encrypts the concatenation of `parts` into the next DATA frame, built in place with its
   * stream encoding (`encoded`) so a stream transport writes it without copying. The parts
   * are read before this returns: the caller may reuse them at once. `into`, when at least
   * as long as the frame, is where it is built (a reused buffer; no allocation).
   */
  sealFrame(parts: readonly Uint8Array[], options: { into?: Uint8Array } = {}): Promise<{
    type: FrameType;
    body: Uint8Array;
    encoded: Uint8Array;
  }> {
    const plaintextBytes = parts.reduce((n, p) => n + p.length, 0);
    const bodyBytes = SEQUENCE_BYTES + plaintextBytes + TAG_BYTES;
    if (bodyBytes > MAX_FRAME_BODY_BYTES) {
      return Promise.reject(
        new RangeError(`DATA body of ${bodyBytes} bytes exceeds ${MAX_FRAME_BODY_BYTES}`),
      );
    }
    if (this.#nextSend > MAX_SEQUENCE) {
      return Promise.reject(new RangeError("The session used up its sequence numbers"));
    }
    const sequence = this.#nextSend++;
    const encodedBytes = DATA_PREFIX_BYTES + plaintextBytes + TAG_BYTES;
    const encoded = options.into && options.into.length >= encodedBytes
      ? options.into.subarray(0, encodedBytes)
      : new Uint8Array(encodedBytes);
    const view = new DataView(encoded.buffer, encoded.byteOffset, encoded.byteLength);
    view.setUint32(0, FRAME_HEADER_BYTES + bodyBytes);
    encoded[LENGTH_PREFIX_BYTES] = PEER_FRAME_VERSION;
    encoded[LENGTH_PREFIX_BYTES + 1] = Type.DATA;
    view.setBigUint64(LENGTH_PREFIX_BYTES + FRAME_HEADER_BYTES, sequence);
    const frame = {
      type: Type.DATA,
      body: encoded.subarray(LENGTH_PREFIX_BYTES + FRAME_HEADER_BYTES),
      encoded,
    };
    try {
      const { nonce, aad } = this.#sendParameters.set(sequence);
      const sealing = this.#send.seal(
        nonce,
        aad,
        parts,
        encoded.subarray(DATA_PREFIX_BYTES),
      );
      return sealing ? sealing.then(() => frame) : Promise.resolve(frame);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Seals the body of a datagram control frame of `type` (PING, PONG, DISCONNECT,
   * DISCONNECT_ACK, STREAM_ACK, DATAGRAM): `[u64 BE control sequence][ciphertext]`, the next
   * control sequence taken when this is called.
   */
  sealControl(type: FrameType, plaintext: Uint8Array): Promise<Uint8Array> {
    return this.#sealLane(this.#control, type, plaintext);
  }

  /**
   * Opens a control frame body sealed by {@link SessionCipher.sealControl} for `type`; null
   * when it does not authenticate, or repeats (or is older than the replay window behind) one
   * already opened. Only an authentic body moves the window.
   */
  openControl(type: FrameType, body: Uint8Array): Promise<Uint8Array | null> {
    return this.#openLane(this.#control, type, body);
  }

  /**
   * Seals a PATH_* frame body like {@link sealControl}, but with a sequence, nonce domain (2) and
   * replay window of its own: path frames travel by other paths than the control frames, so
   * they must not fall behind the control frames' window (`link_paths.ts`).
   */
  sealPath(type: FrameType, plaintext: Uint8Array): Promise<Uint8Array> {
    return this.#sealLane(this.#path, type, plaintext);
  }

  /** Opens a body sealed by {@link sealPath}; null as {@link openControl}. */
  openPath(type: FrameType, body: Uint8Array): Promise<Uint8Array | null> {
    return this.#openLane(this.#path, type, body);
  }

  async #sealLane(lane: ControlLane, type: FrameType, plaintext: Uint8Array): Promise<Uint8Array> {
    if (lane.next > MAX_SEQUENCE) {
      throw new RangeError("The session used up its control sequence numbers");
    }
    const sequence = lane.next++;
    const body = new Uint8Array(SEQUENCE_BYTES + plaintext.length + TAG_BYTES);
    new DataView(body.buffer).setBigUint64(0, sequence);
    const { nonce, aad } = lane.send.set(sequence, type);
    await this.#send.seal(nonce, aad, [plaintext], body.subarray(SEQUENCE_BYTES));
    return body;
  }

  async #openLane(
    lane: ControlLane,
    type: FrameType,
    body: Uint8Array,
  ): Promise<Uint8Array | null> {
    if (body.length < SEQUENCE_BYTES + TAG_BYTES) return null;
    const sequence = new DataView(body.buffer, body.byteOffset, SEQUENCE_BYTES).getBigUint64(0);
    if (!lane.replay.fresh(sequence)) return null;
    let plaintext: Uint8Array | null;
    try {
      const { nonce, aad } = lane.receive.set(sequence, type);
      plaintext = await this.#receive.open(nonce, aad, body.subarray(SEQUENCE_BYTES));
    } catch {
      return null;
    }
    if (plaintext === null || !lane.replay.fresh(sequence)) return null;
    lane.replay.mark(sequence);
    return plaintext;
  }

  /**
   * Opens a DATA body whatever its sequence, moving no state: the reliable UDP stream
   * (`reliable_link.ts`) places the sequence in its own window first and deduplicates after.
   * Null when the body is truncated or does not authenticate.
   */
  async openSegment(body: Uint8Array): Promise<{ sequence: bigint; plaintext: Uint8Array } | null> {
    if (body.length < SEQUENCE_BYTES + TAG_BYTES) return null;
    const sequence = new DataView(body.buffer, body.byteOffset, SEQUENCE_BYTES).getBigUint64(0);
    try {
      const { nonce, aad } = this.#receiveParameters.set(sequence);
      const plaintext = await this.#receive.open(nonce, aad, body.subarray(SEQUENCE_BYTES));
      return plaintext === null ? null : { sequence, plaintext };
    } catch {
      return null;
    }
  }

  /**
   * Opens a DATA body; `PeerError` `EFRAME` when out of sequence, altered or forged. With
   * `inPlace` the plaintext may be written over the body (which the caller then gives up);
   * with `into` it goes into that buffer (at least the plaintext long, less `head`, where its
   * first bytes go; zeroed on failure). When, see {@link SessionCipher.synchronous}.
   */
  async open(
    body: Uint8Array,
    options: OpenOptions = {},
  ): Promise<{ sequence: bigint; plaintext: Uint8Array }> {
    if (body.length < SEQUENCE_BYTES) {
      throw frameError(
        "Cannot decode a peer frame: DATA body is truncated; the peer is not a compatible " +
          "mailpeer peer",
      );
    }
    const sequence = new DataView(body.buffer, body.byteOffset, SEQUENCE_BYTES).getBigUint64(0);
    const expected = this.#nextReceive;
    if (this.#ordered ? sequence !== expected : sequence < expected) {
      throw frameError(
        `Cannot open a DATA frame: sequence ${sequence} where ${expected} was expected; ` +
          "the frame was replayed, reordered or injected",
      );
    }
    // Ordered: the next call expects the next sequence at once, so opens may overlap (WebCrypto
    // decrypts several frames at a time). A frame that does not open gives its sequence back
    // unless a later open started meanwhile (then the stream is broken anyway).
    if (this.#ordered) this.#nextReceive = sequence + 1n;
    let plaintext: Uint8Array | null;
    let failure: unknown = null;
    try {
      const { nonce, aad } = this.#receiveParameters.set(sequence);
      plaintext = await this.#receive.open(
        nonce,
        aad,
        body.subarray(SEQUENCE_BYTES),
        options,
      );
    } catch (err) {
      plaintext = null;
      failure = frameError("Cannot open a DATA frame: the cipher failed; reconnect", err);
    }
    if (plaintext === null) {
      if (this.#ordered && this.#nextReceive === sequence + 1n) this.#nextReceive = sequence;
      throw failure ?? frameError(
        "Cannot open a DATA frame: it does not authenticate; the frame was altered or forged",
      );
    }
    if (!this.#ordered) this.#nextReceive = sequence + 1n;
    return { sequence, plaintext };
  }
}
