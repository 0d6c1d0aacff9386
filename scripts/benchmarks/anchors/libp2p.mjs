// js-libp2p (TCP + Noise + yamux) between two processes, an anchor of the peer bench
// (scripts/benchmarks/peer_anchors.ts). `node libp2p.mjs receive` prints
// {"event":"listening","address":"<multiaddr>"} and serves until stdin closes;
// `node libp2p.mjs send <multiaddr> <mib> <runs> <handshakes>` prints one
// {"event":"result","mb_s":[…],"handshake_ms":[…]} (handshake: dial() until the connection is
// encrypted and multiplexed).
import process from "node:process";
import { MiB, receiveTransfer, report, sendArgs, sendTransfer, stdinClosed } from "./bulk.mjs";

// libp2p 3 expects Node ≥ 22; on Node 20 this is all it misses.
Promise.withResolvers ??= function () {
  let resolve, reject;
  const promise = new Promise((a, b) => {
    resolve = a;
    reject = b;
  });
  return { promise, resolve, reject };
};
const { createLibp2p } = await import("libp2p");
const { tcp } = await import("@libp2p/tcp");
const { noise } = await import("@chainsafe/libp2p-noise");
const { yamux } = await import("@chainsafe/libp2p-yamux");
const { multiaddr } = await import("@multiformats/multiaddr");

const PROTOCOL = "/mailpeer-bench/1.0.0";

function node(listen) {
  return createLibp2p({
    addresses: { listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    // by default libp2p resets more than 5 inbound dials per second from one host
    connectionManager: { inboundConnectionThreshold: 1_000_000, maxConnections: 1_000 },
  });
}

async function receive() {
  const server = await node(["/ip4/127.0.0.1/tcp/0"]);
  await server.handle(PROTOCOL, async (stream) => {
    try {
      await receiveTransfer(stream, () => {
        stream.send(new Uint8Array(1));
      });
    } catch {
      stream.abort(new Error("transfer failed"));
    }
  });
  report({ event: "listening", address: server.getMultiaddrs()[0].toString() });
  await stdinClosed();
  await server.stop();
  process.exit(0);
}

async function send() {
  const o = sendArgs();
  const client = await node([]);
  const target = multiaddr(o.address);
  const handshakes = [];
  for (let i = 0; i < o.handshakes + 3; i++) {
    const started = performance.now();
    const conn = await client.dial(target);
    const ms = performance.now() - started;
    await conn.close();
    if (i >= 3) handshakes.push(ms);
  }
  const mbS = [];
  for (let i = 0; i <= o.runs; i++) {
    const conn = await client.dial(target);
    const stream = await conn.newStream(PROTOCOL);
    const acked = (async () => {
      for await (const _ of stream) return;
    })();
    const write = async (chunk) => {
      if (!stream.send(chunk)) await stream.onDrain();
    };
    const rate = await sendTransfer((i === 0 ? Math.min(32, o.mib) : o.mib) * MiB, write, acked);
    if (i > 0) mbS.push(rate); // the first run warms up
    await conn.close();
  }
  report({ event: "result", mb_s: mbS, handshake_ms: handshakes });
  await client.stop();
  process.exit(0);
}

await (process.argv[2] === "receive" ? receive() : send());
