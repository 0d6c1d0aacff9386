import assert from "node:assert/strict";
import { PeerError } from "../../src/errors.ts";
import { opensslAvailable } from "../../src/peer/aes_gcm.ts";
import { MAX_FRAGMENT_BYTES } from "../../src/peer/session_link.ts";
import { TcpTransport } from "../../src/peer/tcp_transport.ts";
import { ManualClock } from "../support/manual_clock.ts";
import {
  makeIdentity,
  peerTransportConformance,
  rejectsWithCode,
} from "../conformance/peer_transport.ts";

peerTransportConformance("TcpTransport", (options) => new TcpTransport(options));

const LOCAL = { address: "127.0.0.1", port: 0 };
const text = (s: string) => new TextEncoder().encode(s);

/** Reads a raw connection until the other side drops it. */
async function droppedByListener(conn: Deno.TcpConn): Promise<boolean> {
  const buf = new Uint8Array(1024);
  try {
    while (await conn.read(buf) !== null) { /* discard */ }
  } catch (err) {
    if (!(err instanceof Deno.errors.ConnectionReset)) throw err;
  }
  return true;
}

function randomBytes(length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let at = 0; at < length; at += 65536) {
    crypto.getRandomValues(out.subarray(at, Math.min(length, at + 65536)));
  }
  return out;
}

Deno.test("a 1 MB message arrives intact while the other side talks back", async () => {
  const tcp = new TcpTransport();
  const bob = await makeIdentity("bob");
  const listener = await tcp.listen(LOCAL, { identity: bob });
  try {
    const [a, b] = await Promise.all([
      tcp.connect(listener.endpoint, { identity: await makeIdentity("alice") }),
      listener.accept(),
    ]);
    try {
      const big = randomBytes(1024 * 1024);
      const back = randomBytes(300 * 1024);
      const [got, gotBack] = await Promise.all([
        b.receive(),
        a.receive(),
        a.send(big),
        b.send(back),
      ]);
      assert.deepEqual(got, big);
      assert.deepEqual(gotBack, back);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  } finally {
    await listener.close();
  }
});

Deno.test("messages of every size around the fragment limit arrive intact and stay intact", async () => {
  const tcp = new TcpTransport();
  const listener = await tcp.listen(LOCAL, { identity: await makeIdentity("bob") });
  try {
    const [a, b] = await Promise.all([
      tcp.connect(listener.endpoint, { identity: await makeIdentity("alice") }),
      listener.accept(),
    ]);
    try {
      const F = MAX_FRAGMENT_BYTES;
      const sizes = [0, 1, F - 1, F, F + 1, 2 * F, 1 << 20, 1 << 20, F, 3 << 20, 1 << 20, 5, 2 * F];
      const sent = sizes.map(randomBytes);
      const sending = (async () => {
        for (const m of sent) await a.send(m);
      })();
      const got: (Uint8Array | null)[] = [];
      for (const _ of sizes) got.push(await b.receive());
      await sending;
      // Compared only now: a later message must not have overwritten an earlier one.
      for (const [i, m] of got.entries()) assert.deepEqual(m, sent[i], `message ${i}`);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  } finally {
    await listener.close();
  }
});

Deno.test("receive({ into }) over TCP gets exactly each message around the fragment limit", async () => {
  const tcp = new TcpTransport();
  const listener = await tcp.listen(LOCAL, { identity: await makeIdentity("bob") });
  try {
    const [a, b] = await Promise.all([
      tcp.connect(listener.endpoint, { identity: await makeIdentity("alice") }),
      listener.accept(),
    ]);
    try {
      const F = MAX_FRAGMENT_BYTES;
      const into = new Uint8Array(F);
      const sizes = [0, 1, F - 1, F, F + 1, 2 * F, F, 1 << 20, F - 1, 5, 3 << 20, F];
      let hint = 0; // the link sizes a message after the last one of several fragments
      for (const size of sizes) {
        const m = randomBytes(size);
        const receiving = b.receive({ into }); // already waiting when the message comes
        await a.send(m);
        const got = await receiving;
        assert.ok(got, `${size} bytes`);
        assert.equal(got.length, size, `${size} bytes: length`);
        assert.equal(got.findIndex((x, j) => x !== m[j]), -1, `${size} bytes: content`);
        // OpenSSL decrypts into `into` whenever the message fits (so would the last long one)
        const view = opensslAvailable() && size <= F && hint <= F;
        assert.equal(got.buffer === into.buffer, view, `${size} bytes: a view of into`);
        hint = size > F ? size : 0;
      }
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  } finally {
    await listener.close();
  }
});

/** Relays a session through a pipe that flips one bit inside the first large DATA frame. */
async function tamperedLinkFails(into?: Uint8Array): Promise<void> {
  const tcp = new TcpTransport({ disconnectTimeoutMs: 50 });
  const listener = await tcp.listen(LOCAL, { identity: await makeIdentity("bob") });
  const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const relayed = server.accept();
    const connecting = tcp.connect(
      { transport: "tcp", address: "127.0.0.1", port: server.addr.port },
      { identity: await makeIdentity("alice") },
    );
    const front = await relayed;
    const back = await Deno.connect({ hostname: "127.0.0.1", port: listener.endpoint.port });
    let seen = 0;
    const flipAt = 100_000; // well past the handshake: inside the first large DATA frame
    const tamper = new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        if (seen <= flipAt && flipAt < seen + chunk.length) chunk[flipAt - seen]! ^= 1;
        seen += chunk.length;
        controller.enqueue(chunk);
      },
    });
    const pipes = [
      front.readable.pipeThrough(tamper).pipeTo(back.writable),
      back.readable.pipeTo(front.writable),
    ].map((p) => p.catch(() => {}));
    const [a, b] = await Promise.all([connecting, listener.accept()]);
    a.send(randomBytes(1 << 20)).catch(() => {});
    await rejectsWithCode(b.receive({ into }), "EFRAME");
    front.close();
    await Promise.all([a.close(), b.close(), ...pipes]);
  } finally {
    server.close();
    await listener.close();
  }
}

Deno.test("a byte altered on the wire inside a large DATA frame fails the link with EFRAME", async () => {
  await tamperedLinkFails();
});

Deno.test("a byte altered on the wire fails receive({ into }) with EFRAME too", async () => {
  await tamperedLinkFails(new Uint8Array(1 << 20));
});

Deno.test("connecting to a closed TCP port fails at once with EPEER connection refused", async () => {
  const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = server.addr.port;
  server.close();
  // The connect timeout runs on a clock that never moves: only the refusal itself can end it.
  const clock = new ManualClock();
  await assert.rejects(
    new TcpTransport({ clock }).connect(
      { transport: "tcp", address: "127.0.0.1", port },
      { identity: await makeIdentity("alice"), timeoutMs: 10_000 },
    ),
    (err: unknown) =>
      err instanceof PeerError && err.code === "EPEER" && /refused/.test(err.message),
  );
  assert.equal(clock.sleepers, 0, "the timeout is cancelled with the attempt");
});

Deno.test("a peer that accepts TCP but never answers the handshake times out with ETIMEOUT", async () => {
  const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const incoming = server.accept();
  try {
    await rejectsWithCode(
      new TcpTransport().connect(
        { transport: "tcp", address: "127.0.0.1", port: server.addr.port },
        { identity: await makeIdentity("alice"), timeoutMs: 50 },
      ),
      "ETIMEOUT",
    );
  } finally {
    (await incoming).close();
    server.close();
  }
});

Deno.test("garbage bytes sent to the listener are dropped and the next peer still gets in", async () => {
  const dropped: unknown[] = [];
  const tcp = new TcpTransport({ onDroppedConnection: (err) => dropped.push(err) });
  const listener = await tcp.listen(LOCAL, { identity: await makeIdentity("bob") });
  try {
    const raw = await Deno.connect({ hostname: "127.0.0.1", port: listener.endpoint.port });
    await raw.write(text("GET / HTTP/1.1\r\nHost: example\r\n\r\n"));
    assert.ok(await droppedByListener(raw));
    raw.close();
    assert.equal((dropped[0] as { code?: string }).code, "EFRAME");

    const [a, b] = await Promise.all([
      tcp.connect(listener.endpoint, { identity: await makeIdentity("alice") }),
      listener.accept(),
    ]);
    await a.send(text("ok"));
    assert.deepEqual(await b.receive(), text("ok"));
    await Promise.all([a.close(), b.close()]);
  } finally {
    await listener.close();
  }
});

Deno.test("a client that connects and stays silent is dropped after handshakeTimeoutMs", async () => {
  const tcp = new TcpTransport();
  const listener = await tcp.listen(LOCAL, {
    identity: await makeIdentity("bob"),
    handshakeTimeoutMs: 50,
  });
  try {
    const silent = await Deno.connect({ hostname: "127.0.0.1", port: listener.endpoint.port });
    assert.ok(await droppedByListener(silent));
    silent.close();
    const [a, b] = await Promise.all([
      tcp.connect(listener.endpoint, { identity: await makeIdentity("alice") }),
      listener.accept(),
    ]);
    assert.equal(b.remote.userId, "alice");
    await Promise.all([a.close(), b.close()]);
  } finally {
    await listener.close();
  }
});

Deno.test("a peer that vanishes without DISCONNECT ends receive with EPEER", async () => {
  const tcp = new TcpTransport({ disconnectTimeoutMs: 50 });
  const listener = await tcp.listen(LOCAL, { identity: await makeIdentity("bob") });
  const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    // Relay alice's bytes to the listener, then cut the connection abruptly mid-session.
    const relayed = server.accept();
    const connecting = tcp.connect(
      { transport: "tcp", address: "127.0.0.1", port: server.addr.port },
      { identity: await makeIdentity("alice") },
    );
    const front = await relayed;
    const back = await Deno.connect({ hostname: "127.0.0.1", port: listener.endpoint.port });
    const pipes = [front.readable.pipeTo(back.writable), back.readable.pipeTo(front.writable)]
      .map((p) => p.catch(() => {}));
    const [a, b] = await Promise.all([connecting, listener.accept()]);
    await a.send(text("before"));
    assert.deepEqual(await b.receive(), text("before"));
    front.close();
    await rejectsWithCode(a.receive(), "EPEER");
    await rejectsWithCode(b.receive(), "EPEER");
    await Promise.all([a.close(), b.close(), ...pipes]);
  } finally {
    server.close();
    await listener.close();
  }
});

Deno.test("listening on a port already in use fails with EPEER", async () => {
  const tcp = new TcpTransport();
  const identity = await makeIdentity("bob");
  const first = await tcp.listen(LOCAL, { identity });
  try {
    await rejectsWithCode(
      tcp.listen({ address: "127.0.0.1", port: first.endpoint.port }, { identity }),
      "EPEER",
    );
  } finally {
    await first.close();
  }
});
