// hyperdht (UDX + secret-stream) between two processes, an anchor of the peer bench
// (scripts/benchmarks/peer_anchors.ts). `node hyperdht.mjs receive` starts a bootstrap node and
// a public server node on 127.0.0.1 (between two processes a firewalled or ephemeral server opens
// streams that carry no byte), prints {"event":"listening","address":"<bootstrap port>:<server
// key hex>"} and serves until stdin closes; `node hyperdht.mjs send <address> <mib> <runs>
// <handshakes>` prints one {"event":"result","mb_s":[…],"handshake_ms":[…]} (handshake:
// connect() until the encrypted stream opens, the DHT lookup included).
import process from "node:process";
import { once } from "node:events";
import DHT from "hyperdht";
import { MiB, receiveTransfer, report, sendArgs, sendTransfer, stdinClosed } from "./bulk.mjs";

const HOST = "127.0.0.1";

async function receive() {
  const bootstrap = new DHT({ ephemeral: false, firewalled: false, bootstrap: [], host: HOST });
  await bootstrap.fullyBootstrapped();
  const port = bootstrap.address().port;
  const node = new DHT({
    ephemeral: false,
    firewalled: false,
    bootstrap: [{ host: HOST, port }],
    host: HOST,
  });
  await node.fullyBootstrapped();
  const server = node.createServer((socket) => {
    socket.on("error", () => {});
    receiveTransfer(socket, () => socket.write(new Uint8Array(1))).catch(() => socket.destroy());
  });
  const keyPair = DHT.keyPair();
  await server.listen(keyPair);
  report({ event: "listening", address: `${port}:${keyPair.publicKey.toString("hex")}` });
  await stdinClosed();
  await server.close();
  await node.destroy();
  await bootstrap.destroy();
  process.exit(0);
}

async function open(node, key) {
  const socket = node.connect(key);
  socket.on("error", () => {});
  await once(socket, "open");
  return socket;
}

/** Destroys the stream and waits until it closed (a connect while it closes can be reset). */
async function shut(socket) {
  const closed = once(socket, "close");
  socket.destroy();
  await closed;
}

async function send() {
  const o = sendArgs();
  const [port, hex] = o.address.split(":");
  const key = Buffer.from(hex, "hex");
  const node = new DHT({ bootstrap: [{ host: HOST, port: Number(port) }], host: HOST });
  await node.fullyBootstrapped();
  const handshakes = [];
  for (let i = 0; i < o.handshakes + 3; i++) {
    const started = performance.now();
    const socket = await open(node, key);
    const ms = performance.now() - started;
    await shut(socket);
    if (i >= 3) handshakes.push(ms);
  }
  const mbS = [];
  for (let i = 0; i <= o.runs; i++) {
    const socket = await open(node, key);
    const acked = once(socket, "data");
    const write = async (chunk) => {
      if (!socket.write(chunk)) await once(socket, "drain");
    };
    const rate = await sendTransfer((i === 0 ? Math.min(32, o.mib) : o.mib) * MiB, write, acked);
    if (i > 0) mbS.push(rate); // the first run warms up
    await shut(socket);
  }
  report({ event: "result", mb_s: mbS, handshake_ms: handshakes });
  await node.destroy();
  process.exit(0);
}

await (process.argv[2] === "receive" ? receive() : send());
