/**
 * An in-memory {@link PeerLink} pair for application tests: what one side sends, the other
 * receives, in order, with an optional hook that alters or drops messages on the way. Like a
 * TCP session, `receive({ into })` hands out a view of `into` when the message fits, so an
 * application that kept such a view past its next receive would see it overwritten.
 *
 * @module
 */
import { PeerError } from "../../src/errors.ts";
import type { Endpoint, TransportKind } from "../../src/message/types.ts";
import type { PeerInfo, PeerLink, ReceiveOptions } from "../../src/peer/types.ts";

/** Changes a message in flight (return null to drop it); `index` counts from 0 per side. */
export type Tamper = (message: Uint8Array, index: number) => Uint8Array | null;

/** Options of {@link fakeLinkPair}. */
export interface FakeLinkOptions {
  transport?: TransportKind;
  /** Applied to what `a` sends to `b`. */
  tamperAtoB?: Tamper;
  /** Applied to what `b` sends to `a`. */
  tamperBtoA?: Tamper;
}

class Inbox {
  #queue: Uint8Array[] = [];
  #waiters: ((m: Uint8Array | null) => void)[] = [];
  #ended = false;

  push(message: Uint8Array): void {
    const waiter = this.#waiters.shift();
    if (waiter) waiter(message);
    else this.#queue.push(message);
  }

  end(): void {
    this.#ended = true;
    for (const w of this.#waiters.splice(0)) w(null);
  }

  get ended(): boolean {
    return this.#ended;
  }

  take(signal?: AbortSignal): Promise<Uint8Array | null> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const next = this.#queue.shift();
    if (next) return Promise.resolve(next);
    if (this.#ended) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(signal?.reason);
      };
      const waiter = (m: Uint8Array | null) => {
        signal?.removeEventListener("abort", onAbort);
        resolve(m);
      };
      this.#waiters.push(waiter);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }
}

class FakeLink implements PeerLink {
  readonly local: Endpoint;
  readonly remote: PeerInfo;
  readonly transport: TransportKind;
  peer!: FakeLink;
  inbox = new Inbox();
  #sent = 0;
  #tamper: Tamper | undefined;

  constructor(
    transport: TransportKind,
    other: string,
    port: number,
    tamper?: Tamper,
  ) {
    this.transport = transport;
    this.local = { transport, address: "127.0.0.1", port };
    this.remote = {
      userId: other,
      identityKey: new Uint8Array(32),
      endpoint: { transport, address: "127.0.0.1", port: port === 1 ? 2 : 1 },
    };
    this.#tamper = tamper;
  }

  send(data: Uint8Array): Promise<void> {
    if (this.inbox.ended || this.peer.inbox.ended) {
      return Promise.reject(
        new PeerError("EPEER", "Cannot send to the fake peer: the link is closed; connect again"),
      );
    }
    const copy = data.slice();
    const out = this.#tamper ? this.#tamper(copy, this.#sent) : copy;
    this.#sent++;
    if (out) this.peer.inbox.push(out);
    return Promise.resolve();
  }

  receive(options: ReceiveOptions = {}): Promise<Uint8Array | null> {
    const taking = this.inbox.take(options.signal);
    const into = options.into;
    if (!into) return taking;
    return taking.then((message) => {
      if (!message || message.length > into.length) return message;
      into.set(message);
      return into.subarray(0, message.length);
    });
  }

  /** Injects a message as if the peer had sent it (bypasses tampering). */
  inject(message: Uint8Array): void {
    this.inbox.push(message);
  }

  close(): Promise<void> {
    this.inbox.end();
    this.peer.inbox.end();
    return Promise.resolve();
  }
}

/** A connected pair of in-memory links: `a` (alice) and `b` (bob). */
export function fakeLinkPair(options: FakeLinkOptions = {}): { a: FakeLink; b: FakeLink } {
  const transport = options.transport ?? "tcp";
  const a = new FakeLink(transport, "bob", 1, options.tamperAtoB);
  const b = new FakeLink(transport, "alice", 2, options.tamperBtoA);
  a.peer = b;
  b.peer = a;
  return { a, b };
}
