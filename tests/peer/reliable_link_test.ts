/**
 * {@link ReliableLink} over an in-memory datagram pipe: flow control as the application sees it.
 */
import assert from "node:assert/strict";
import type { Endpoint } from "../../src/message/types.ts";
import type { Frame } from "../../src/peer/frame.ts";
import { ReliableLink } from "../../src/peer/reliable_link.ts";
import { deriveSessionKeys, SessionCipher } from "../../src/peer/session_crypto.ts";
import type { FrameChannel } from "../../src/peer/types.ts";

/** One end of an in-memory datagram pipe: frames arrive in order, none lost. */
class MemoryChannel implements FrameChannel {
  peer!: MemoryChannel;
  #queue: (Frame | null)[] = [];
  #waiter: ((f: Frame | null) => void) | null = null;
  #closed = false;

  static pair(): [MemoryChannel, MemoryChannel] {
    const a = new MemoryChannel();
    const b = new MemoryChannel();
    a.peer = b;
    b.peer = a;
    return [a, b];
  }

  deliver(frame: Frame | null): void {
    if (this.#closed) return;
    const w = this.#waiter;
    this.#waiter = null;
    if (w) w(frame);
    else this.#queue.push(frame);
  }

  send(frame: Frame): Promise<void> {
    this.peer.deliver({ type: frame.type, body: frame.body.slice() });
    return Promise.resolve();
  }

  receive(): Promise<Frame | null> {
    if (this.#queue.length) return Promise.resolve(this.#queue.shift()!);
    if (this.#closed) return Promise.resolve(null);
    return new Promise((resolve) => this.#waiter = resolve);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#waiter?.(null);
    this.peer.deliver(null);
  }
}

/** Datagram round trips on the best-effort lane: frames sent before them were handled. */
async function settle(a: ReliableLink, b: ReliableLink, rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    await b.sendDatagram(Uint8Array.of(i));
    await a.receiveDatagram();
    await a.sendDatagram(Uint8Array.of(i));
    await b.receiveDatagram();
  }
}

const A_AT: Endpoint = { transport: "udp", address: "198.51.100.7", port: 40000 };
const B_AT: Endpoint = { transport: "udp", address: "203.0.113.9", port: 7000 };

function links(options: { windowSegments: number; sendBufferSegments: number }) {
  const [a, b] = MemoryChannel.pair();
  const secret = crypto.getRandomValues(new Uint8Array(32));
  const transcript = crypto.getRandomValues(new Uint8Array(32));
  const cipher = (role: "initiator" | "responder") =>
    new SessionCipher(deriveSessionKeys(secret, transcript, { role }), { ordered: false });
  const peer = (userId: string, endpoint: Endpoint) => ({
    userId,
    identityKey: new Uint8Array(32),
    endpoint,
  });
  const common = { ...options, maxFragmentBytes: 1000, disconnectTimeoutMs: 20 };
  const alice = new ReliableLink(a, cipher("initiator"), {
    ...common,
    local: A_AT,
    remote: peer("bob", B_AT),
  });
  const bob = new ReliableLink(b, cipher("responder"), {
    ...common,
    local: B_AT,
    remote: peer("alice", A_AT),
  });
  return { alice, bob };
}

Deno.test("a receiver that does not read holds up the sender's send() within its window, and all arrives in order once it reads", async () => {
  const { alice, bob } = links({ windowSegments: 8, sendBufferSegments: 8 });
  const messages = Array.from({ length: 200 }, (_, i) => Uint8Array.of(i));
  let resolved = 0;
  let reached16!: () => void;
  const sixteen = new Promise<void>((r) => reached16 = r);
  const sends = messages.map((m) =>
    alice.send(m).then(() => {
      if (++resolved === 16) reached16();
    })
  );
  await sixteen; // 8 in Bob's window (unread) + 8 in Alice's send buffer
  await settle(alice, bob);
  assert.equal(resolved, 16, "send() waits while the peer does not read");
  for (const m of messages) assert.deepEqual(await bob.receive(), m);
  await Promise.all(sends);
  assert.equal(resolved, 200);
  await Promise.all([alice.close(), bob.close()]);
});

Deno.test("many tiny unread messages close the receive window like large ones", async () => {
  const { alice, bob } = links({ windowSegments: 4, sendBufferSegments: 4 });
  let resolved = 0;
  let reached!: () => void;
  const eight = new Promise<void>((r) => reached = r);
  const sends = Array.from({ length: 50 }, (_, i) =>
    alice.send(Uint8Array.of(i)).then(() => {
      if (++resolved === 8) reached();
    }));
  await eight;
  await settle(alice, bob);
  assert.equal(resolved, 8, "4 unread one-byte messages fill a 4-segment window");
  for (let i = 0; i < 50; i++) assert.deepEqual(await bob.receive(), Uint8Array.of(i));
  await Promise.all(sends);
  await Promise.all([alice.close(), bob.close()]);
});
