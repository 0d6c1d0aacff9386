/**
 * {@link StreamAssembler}: how a session on a stream (TCP) puts the messages it receives
 * together. Each DATA body, lent by the channel from its read buffer, is opened straight into
 * the buffer of the message it belongs to, its flag byte (1 = more fragments follow, 0 = last
 * fragment) apart:
 *
 * - the `into` buffer of the first waiting `receive({ into })`, when the first fragment fits
 *   and so would the last multi-fragment message: the message is a view of it, nothing is
 *   allocated;
 * - else a new array, sized for a run of equal messages, which is the message itself.
 *
 * A message that outgrows its buffer moves to a larger one (a copy), so it is never cut. A
 * caller's buffer is written only while its `receive()` waits: OpenSSL and node:crypto write
 * before `open()` returns, and WebCrypto's plaintext (a new array, which is the whole message
 * when it has one fragment) is placed once it settled; a caller who gives up gets its buffer
 * back at once ({@link StreamAssembler.release}). WebCrypto opens up to {@link OPENS_AHEAD} frames
 * at a time on the runtime's threads while the channel reads on, and places them in order.
 *
 * @module
 */
import { PeerError } from "../errors.ts";
import { TAG_BYTES } from "./aes_gcm.ts";
import type { SessionCipher } from "./session_crypto.ts";

const SEQUENCE_BYTES = 8;
/** WebCrypto: DATA frames opened at once (each on a thread of the runtime's pool). */
const OPENS_AHEAD = 4;

/** A waiting `receive()` as the assembler sees it: the buffer it offers, if any. */
export interface Receiver {
  into: Uint8Array | undefined;
}

/** Options of {@link StreamAssembler}. */
export interface StreamAssemblerOptions {
  /** Largest fragment the peer sends (a full one means that more may follow). */
  maxFragmentBytes: number;
  /** Largest message accepted; a longer one is `PeerError` `EFRAME`. */
  maxMessageBytes: number;
  /** Names the peer in errors. */
  peer: string;
  /** The first waiting `receive()`, if any. */
  waiting(): Receiver | undefined;
  /** Hands out a whole message (a view of the first waiting receiver's `into`, or its own). */
  deliver(message: Uint8Array): void;
  /** Told when a frame opened ahead (WebCrypto) fails after `push()` returned. */
  fail?(err: unknown): void;
}

/** Throws `EFRAME` unless `flag` is 0 or 1 and the message so far is within `maxBytes`. */
export function checkFragment(
  flag: number | undefined,
  messageBytes: number,
  limits: { maxBytes: number; peer: string },
): void {
  if (flag !== 0 && flag !== 1) {
    throw new PeerError(
      "EFRAME",
      `Cannot read a message from peer ${limits.peer}: bad fragment flag ${flag}; ` +
        "the peer is not a compatible mailpeer peer",
    );
  }
  if (messageBytes > limits.maxBytes) {
    throw new PeerError(
      "EFRAME",
      `Cannot read a message from peer ${limits.peer}: it exceeds ` +
        `${limits.maxBytes} bytes; the peer must send smaller messages`,
    );
  }
}

/** Opens a stream's DATA bodies, in order, into the messages they belong to. */
export class StreamAssembler {
  #cipher: SessionCipher;
  #options: StreamAssemblerOptions;
  #limits: { maxBytes: number; peer: string };
  /** Where the message being opened goes (its data only), or null between messages. */
  #message: Uint8Array | null = null;
  /** When `#message` is a waiting caller's `into`: that caller. */
  #bound: Receiver | null = null;
  #bytes = 0;
  /** Bytes a synchronous open() has written past `#bytes` but not yet counted. */
  #pending = 0;
  #fragments = 0;
  /** Size of the last multi-fragment message, to open the next one into. */
  #hint = 0;
  #flag = new Uint8Array(1);
  #stopped = false;
  /** WebCrypto: the last open placed (in order), and the opens still running. */
  #opened: Promise<void> = Promise.resolve();
  #ahead: Promise<void>[] = [];

  constructor(cipher: SessionCipher, options: StreamAssemblerOptions) {
    this.#cipher = cipher;
    this.#options = options;
    this.#limits = { maxBytes: options.maxMessageBytes, peer: options.peer };
  }

  /** True between messages (no fragment of the next one is in yet). */
  get idle(): boolean {
    return this.#message === null;
  }

  /** True when `receiver`'s `into` holds the message being put together. */
  holds(receiver: Receiver): boolean {
    return this.#bound === receiver;
  }

  /**
   * Opens one DATA body (valid only until this resolves) into its message; delivers the
   * message when this was its last fragment. `PeerError` `EFRAME` when the body is altered,
   * forged, out of sequence, or breaks the fragment rules. With WebCrypto it may resolve
   * before the body is open (see `#openAhead`): a later failure goes to `fail`.
   */
  async push(body: Uint8Array): Promise<void> {
    const chunk = body.length - SEQUENCE_BYTES - TAG_BYTES - 1; // the data after the flag
    if (chunk < 0) { // no room for a flag: let the cipher say what is wrong
      const { plaintext } = await this.#cipher.open(body);
      return checkFragment(plaintext[0], 0, this.#limits);
    }
    if (!this.#cipher.synchronous) return this.#openAhead(body);
    const at = this.#bytes;
    const into = this.#room(at + chunk).subarray(at);
    this.#pending = chunk;
    try {
      await this.#cipher.open(body, { into, head: this.#flag });
    } finally {
      this.#pending = 0;
    }
    const flag = this.#flag[0];
    if (this.#stopped) return;
    checkFragment(flag, at + chunk, this.#limits);
    this.#bytes = at + chunk;
    this.#fragments++;
    if (flag === 0) this.#finish();
  }

  /**
   * WebCrypto: starts opening `body` (which copies it) and returns while up to
   * {@link OPENS_AHEAD} opens run, so the channel reads the next frames meanwhile; each
   * plaintext is placed in order once it and those before it are open.
   */
  async #openAhead(body: Uint8Array): Promise<void> {
    const opening = this.#cipher.open(body);
    const placed = this.#opened.then(() => opening).then(({ plaintext }) => {
      if (!this.#stopped) this.#place(plaintext);
    });
    placed.catch((err) => {
      this.#stopped = true; // nothing after a broken frame is placed
      this.#options.fail?.(err);
    });
    this.#opened = placed.catch(() => {});
    this.#ahead.push(placed);
    if (this.#ahead.length >= OPENS_AHEAD) await this.#ahead.shift();
  }

  /** Places a fragment's whole plaintext (flag byte first) into its message. */
  #place(plaintext: Uint8Array): void {
    const at = this.#bytes;
    const chunk = plaintext.length - 1;
    const flag = plaintext[0];
    checkFragment(flag, at + chunk, this.#limits);
    const data = plaintext.subarray(1);
    if (at === 0 && flag === 0) { // a whole message: the new plaintext is all it needs
      this.#hint = 0;
      return this.#options.deliver(data);
    }
    this.#room(at + chunk).set(data, at);
    this.#bytes = at + chunk;
    this.#fragments++;
    if (flag === 0) this.#finish();
  }

  /** The caller whose `into` holds the message gave up: the message moves to a new buffer. */
  release(): void {
    const written = this.#bytes + this.#pending;
    const moved = new Uint8Array(Math.max(written + this.#options.maxFragmentBytes, this.#hint));
    moved.set(this.#message!.subarray(0, written));
    this.#message = moved;
    this.#bound = null;
  }

  /**
   * Resolves once every body pushed so far is placed (or failed): WebCrypto's opens ahead. The
   * link awaits it before it ends on DISCONNECT, so the messages sent before it are delivered.
   */
  settled(): Promise<void> {
    return this.#opened;
  }

  /** The link ended: drops the message so far and never writes a caller's buffer again. */
  stop(): void {
    this.#stopped = true;
    this.#message = null;
    this.#bound = null;
  }

  /**
   * The buffer the current message goes in, with room for `need` bytes: the one it is in
   * already; at its start, the first waiting caller's `into` when the message will likely fit
   * (its first fragment does, and so would the last multi-fragment message); else a new one,
   * sized for a run of equal messages, or grown (from a caller's `into` too) by copying.
   */
  #room(need: number): Uint8Array {
    const message = this.#message;
    if (message && need <= message.length) return message;
    let size = need;
    if (!message) {
      const receiver = this.#options.waiting();
      const into = receiver?.into;
      if (into && need <= into.length && this.#hint <= into.length) {
        this.#bound = receiver!;
        return this.#message = into;
      }
      if (need === this.#options.maxFragmentBytes) size = Math.max(need, this.#hint);
    } else size = Math.max(need, Math.min(2 * message.length, this.#options.maxMessageBytes));
    const grown = new Uint8Array(size);
    if (message) grown.set(message.subarray(0, this.#bytes));
    this.#bound = null;
    return this.#message = grown;
  }

  /** The last fragment is in: hands the message out. */
  #finish(): void {
    const message = this.#message!;
    const bytes = this.#bytes;
    const bound = this.#bound !== null;
    this.#hint = this.#fragments > 1 ? bytes : 0;
    this.#message = null;
    this.#bound = null;
    this.#fragments = 0;
    this.#bytes = 0;
    // A caller's buffer is handed back as a view (its caller is the first waiter); a buffer
    // of the assembler's own that is longer than the message (sized by the hint) is cut.
    this.#options.deliver(
      bound || message.length === bytes ? message.subarray(0, bytes) : message.slice(0, bytes),
    );
  }
}
