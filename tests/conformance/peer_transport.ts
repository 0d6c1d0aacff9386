/**
 * Conformance suite of the `PeerTransport` seam: every transport (TCP, UDP) must pass it.
 *
 * Usage, from a `_test.ts` file:
 * ```ts ignore
 * peerTransportConformance("TcpTransport", (options) => new TcpTransport(options));
 * ```
 * Every case uses real sockets on 127.0.0.1 port 0 and closes what it opens.
 *
 * @module
 */
import assert from "node:assert/strict";
import { PeerError } from "../../src/errors.ts";
import { generateEd25519 } from "../../src/message/keys.ts";
import type { Endpoint } from "../../src/message/types.ts";
import type { PeerIdentity, PeerLink, PeerTransport } from "../../src/peer/types.ts";
import type { Clock } from "../../src/runtime.ts";
import { ManualClock } from "../support/manual_clock.ts";

/** A fresh identity with a new Ed25519 key pair. */
export async function makeIdentity(userId: string): Promise<PeerIdentity> {
  const keys = await generateEd25519();
  return { userId, publicKey: keys.publicKey, privateKey: keys.privateKey };
}

/** Asserts that `promise` rejects with a `PeerError` whose code is one of `codes`. */
export async function rejectsWithCode(promise: Promise<unknown>, ...codes: string[]) {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof PeerError, `expected a PeerError, got ${err}`);
    assert.ok(codes.includes(err.code), `expected ${codes.join("|")}, got ${err.code}`);
    assert.match(err.message, /^Cannot .+: .+; .+/);
    return true;
  });
}

const text = (s: string) => new TextEncoder().encode(s);
const read = (b: Uint8Array | null) => (b === null ? null : new TextDecoder().decode(b));
const LOCAL = { address: "127.0.0.1", port: 0 };

/** Registers the transport-independent cases for one transport. */
export function peerTransportConformance(
  name: string,
  makeTransport: (options?: { clock?: Clock }) => PeerTransport,
): void {
  const test = (what: string, fn: () => Promise<void>) => Deno.test(`${name}: ${what}`, fn);

  async function pair(transport: PeerTransport) {
    const alice = await makeIdentity("alice");
    const bob = await makeIdentity("bob");
    const listener = await transport.listen(LOCAL, { identity: bob });
    return { alice, bob, listener };
  }

  test("two peers connect, prove their identities and talk both ways", async () => {
    const transport = makeTransport();
    const { alice, bob, listener } = await pair(transport);
    try {
      assert.equal(listener.endpoint.transport, transport.kind);
      assert.ok(listener.endpoint.port > 0);
      const [a, b] = await Promise.all([
        transport.connect(listener.endpoint, {
          identity: alice,
          expectedIdentityKey: bob.publicKey,
        }),
        listener.accept(),
      ]);
      try {
        assert.equal(a.transport, transport.kind);
        assert.equal(a.remote.userId, "bob");
        assert.deepEqual(a.remote.identityKey, bob.publicKey);
        assert.deepEqual(a.remote.endpoint, listener.endpoint);
        assert.equal(b.remote.userId, "alice");
        assert.deepEqual(b.remote.identityKey, alice.publicKey);
        await a.send(text("hello bob"));
        assert.equal(read(await b.receive()), "hello bob");
        await b.send(text("hello alice"));
        assert.equal(read(await a.receive()), "hello alice");
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    } finally {
      await listener.close();
    }
  });

  test("a peer that disconnects ends the other side's receive with null", async () => {
    const transport = makeTransport();
    const { alice, listener } = await pair(transport);
    try {
      const [a, b] = await Promise.all([
        transport.connect(listener.endpoint, { identity: alice }),
        listener.accept(),
      ]);
      await a.send(text("last words"));
      await a.close();
      assert.equal(read(await b.receive()), "last words");
      assert.equal(await b.receive(), null);
      assert.equal(await b.receive(), null);
      await b.close();
      await a.close(); // idempotent
      await rejectsWithCode(a.send(text("too late")), "EPEER");
      await rejectsWithCode(b.send(text("too late")), "EPEER");
    } finally {
      await listener.close();
    }
  });

  test("messages arrive in order and keep their boundaries, empty and 64 KiB ones too", async () => {
    const transport = makeTransport();
    const { alice, listener } = await pair(transport);
    try {
      const [a, b] = await Promise.all([
        transport.connect(listener.endpoint, { identity: alice }),
        listener.accept(),
      ]);
      try {
        const big = new Uint8Array(64 * 1024).map((_, i) => i % 251);
        const sent = [text("one"), new Uint8Array(0), big, text("four")];
        for (const m of sent) await a.send(m);
        for (const m of sent) assert.deepEqual(await b.receive(), m);
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    } finally {
      await listener.close();
    }
  });

  test("a peer with another identity key than the listed one is refused with EIDENTITY", async () => {
    const transport = makeTransport();
    const { alice, listener } = await pair(transport);
    const impostorKey = (await makeIdentity("bob")).publicKey;
    try {
      await rejectsWithCode(
        transport.connect(listener.endpoint, { identity: alice, expectedIdentityKey: impostorKey }),
        "EIDENTITY",
      );
    } finally {
      await listener.close();
    }
  });

  test("a peer refused by the accept hook gets EPEER and the listener keeps accepting", async () => {
    const transport = makeTransport();
    const mallory = await makeIdentity("mallory");
    const alice = await makeIdentity("alice");
    const bob = await makeIdentity("bob");
    const seen: string[] = [];
    const listener = await transport.listen(LOCAL, {
      identity: bob,
      accept: (peer) => {
        seen.push(peer.userId);
        return peer.userId === "alice";
      },
    });
    try {
      const accepted = listener.accept();
      await assert.rejects(
        transport.connect(listener.endpoint, { identity: mallory }),
        (err: unknown) =>
          err instanceof PeerError && err.code === "EPEER" && /refused/.test(err.message),
      );
      const a = await transport.connect(listener.endpoint, { identity: alice });
      const b = await accepted;
      try {
        assert.equal(b.remote.userId, "alice");
        assert.deepEqual(seen, ["mallory", "alice"]);
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    } finally {
      await listener.close();
    }
  });

  test("connecting where nobody listens fails by its timeout at the latest instead of hanging", async () => {
    const clock = new ManualClock();
    const transport = makeTransport({ clock });
    const listener = await transport.listen(LOCAL, { identity: await makeIdentity("gone") });
    const endpoint: Endpoint = listener.endpoint;
    await listener.close();
    const attempt = transport.connect(endpoint, {
      identity: await makeIdentity("alice"),
      timeoutMs: 1_000,
    });
    attempt.catch(() => {}); // judged below, after the clock has moved
    await clock.sleeping(); // the attempt has set its timeout
    clock.advance(1_000);
    await rejectsWithCode(attempt, "EPEER", "ETIMEOUT");
  });

  test("two peers connecting at once are both accepted", async () => {
    const transport = makeTransport();
    const { alice, listener } = await pair(transport);
    const carol = await makeIdentity("carol");
    const links: PeerLink[] = [];
    try {
      const outgoing = Promise.all([
        transport.connect(listener.endpoint, { identity: alice }),
        transport.connect(listener.endpoint, { identity: carol }),
      ]);
      links.push(await listener.accept(), await listener.accept());
      links.push(...await outgoing);
      assert.deepEqual(links.slice(0, 2).map((l) => l.remote.userId).sort(), ["alice", "carol"]);
      for (const l of links.slice(2)) await l.send(text(`from ${l.local.port}`));
      for (const l of links.slice(0, 2)) assert.match(read(await l.receive()) ?? "", /^from \d+$/);
    } finally {
      await Promise.all(links.map((l) => l.close()));
      await listener.close();
    }
  });

  test("accept and receive can be cancelled, and closing the listener ends accept", async () => {
    const transport = makeTransport();
    const { alice, listener } = await pair(transport);
    const stop = new AbortController();
    const cancelled = listener.accept({ signal: stop.signal });
    stop.abort(new Error("stopped"));
    await assert.rejects(cancelled, /stopped/);

    const [a, b] = await Promise.all([
      transport.connect(listener.endpoint, { identity: alice }),
      listener.accept(),
    ]);
    const stopReceive = new AbortController();
    const waiting = b.receive({ signal: stopReceive.signal });
    stopReceive.abort(new Error("no more"));
    await assert.rejects(waiting, /no more/);
    await a.send(text("still works"));
    assert.equal(read(await b.receive()), "still works");
    await Promise.all([a.close(), b.close()]);

    const pending = listener.accept();
    await listener.close();
    await rejectsWithCode(pending, "EPEER");
    await rejectsWithCode(listener.accept(), "EPEER");
    await listener.close(); // idempotent
  });

  test("connect honours an already aborted signal", async () => {
    const transport = makeTransport();
    const { alice, listener } = await pair(transport);
    try {
      await assert.rejects(
        transport.connect(listener.endpoint, {
          identity: alice,
          signal: AbortSignal.abort(new Error("user gave up")),
        }),
        /user gave up/,
      );
    } finally {
      await listener.close();
    }
  });
}
