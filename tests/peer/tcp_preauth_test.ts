/**
 * Issue 12, from the attacker's side: raw TCP connections that never finish a handshake must
 * hold only a bounded, small amount of a listener's memory, and not keep real peers out for
 * longer than they stay.
 */
import assert from "node:assert/strict";
import { PeerError } from "../../src/errors.ts";
import { MAX_FRAME_BYTES, PEER_FRAME_VERSION } from "../../src/protocol.ts";
import type { Endpoint } from "../../src/message/types.ts";
import { TcpTransport } from "../../src/peer/tcp_transport.ts";
import { ManualClock } from "../support/manual_clock.ts";
import { makeIdentity } from "../conformance/peer_transport.ts";

const LOCAL = { address: "127.0.0.1", port: 0 };
const text = (s: string) => new TextEncoder().encode(s);

/** The start of a frame: its length prefix and version byte, the rest never comes. */
function frameHeader(length: number): Uint8Array {
  const header = new Uint8Array(5);
  new DataView(header.buffer).setUint32(0, length);
  header[4] = PEER_FRAME_VERSION;
  return header;
}

/** Reads a raw connection until the listener drops it. */
async function droppedByListener(conn: Deno.TcpConn): Promise<true> {
  const buf = new Uint8Array(1024);
  try {
    while (await conn.read(buf) !== null) { /* discard */ }
  } catch (err) {
    if (!(err instanceof Deno.errors.ConnectionReset)) throw err;
  }
  return true;
}

/** Every connection a listener dropped, by the remote port, as events. */
class Drops {
  #waiting = new Map<number, (err: unknown) => void>();
  #seen = new Map<number, unknown>();
  readonly all: { port: number; err: unknown }[] = [];

  report = (err: unknown, remote: Endpoint): void => {
    this.all.push({ port: remote.port, err });
    this.#seen.set(remote.port, err);
    this.#waiting.get(remote.port)?.(err);
  };

  /** Resolves with the error the listener dropped the connection from `port` with. */
  of(port: number): Promise<unknown> {
    if (this.#seen.has(port)) return Promise.resolve(this.#seen.get(port));
    return new Promise((resolve) => this.#waiting.set(port, resolve));
  }
}

const portOf = (conn: Deno.TcpConn) => (conn.localAddr as Deno.NetAddr).port;

Deno.test("a connection announcing a 256 KiB handshake frame is dropped at once with EFRAME", async () => {
  const drops = new Drops();
  const tcp = new TcpTransport({ onDroppedConnection: drops.report });
  const listener = await tcp.listen(LOCAL, { identity: await makeIdentity("bob") });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.endpoint.port });
  try {
    await conn.write(frameHeader(MAX_FRAME_BYTES));
    const err = await drops.of(portOf(conn));
    assert.ok(err instanceof PeerError, `expected a PeerError, got ${err}`);
    assert.equal(err.code, "EFRAME", `dropped with ${err.code}: ${err.message}`);
    assert.ok(await droppedByListener(conn));
  } finally {
    conn.close();
    await listener.close();
  }
});

Deno.test("past its cap of unfinished handshakes a TCP listener closes new connections at once, and a real peer gets in once the attackers go", async () => {
  const drops = new Drops();
  const cap = 8;
  const tcp = new TcpTransport({
    clock: new ManualClock(), // the attackers' handshakes never time out
    maxPendingHandshakes: cap,
    onDroppedConnection: drops.report,
  });
  const listener = await tcp.listen(LOCAL, { identity: await makeIdentity("bob") });
  const connect = () => Deno.connect({ hostname: "127.0.0.1", port: listener.endpoint.port });
  const attackers: Deno.TcpConn[] = [];
  try {
    for (let i = 0; i < cap; i++) {
      const conn = await connect();
      attackers.push(conn);
      await conn.write(frameHeader(1000).subarray(0, 3)); // a handshake that never ends
    }
    const extra = await connect();
    attackers.push(extra);
    const err = await Promise.race([
      drops.of(portOf(extra)),
      Promise.race(attackers.slice(0, cap).map((c) => drops.of(portOf(c)))).then((e) =>
        new Error(`an attacker was dropped first, the extra connection was kept: ${e}`)
      ),
    ]);
    assert.ok(err instanceof PeerError, `${err}`);
    assert.equal(err.code, "EPEER");
    assert.match(err.message, /handshakes/);
    assert.ok(await droppedByListener(extra), "the extra connection is closed");

    for (const conn of attackers.slice(0, cap)) conn.close();
    await Promise.all(attackers.slice(0, cap).map((c) => drops.of(portOf(c))));
    const [a, b] = await Promise.all([
      tcp.connect(listener.endpoint, { identity: await makeIdentity("alice") }),
      listener.accept(),
    ]);
    await a.send(text("in"));
    assert.deepEqual(await b.receive(), text("in"));
    await Promise.all([a.close(), b.close()]);
  } finally {
    for (const conn of attackers) {
      try {
        conn.close();
      } catch {
        // closed already
      }
    }
    await listener.close();
  }
});
