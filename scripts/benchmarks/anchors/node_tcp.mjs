// Node raw TCP between two processes: the anchors' baseline (scripts/benchmarks/peer_anchors.ts).
// `node node_tcp.mjs receive` prints {"event":"listening","address":"<port>"} and serves until
// stdin closes; `node node_tcp.mjs send <port> <mib> <runs> <handshakes>` prints one
// {"event":"result","mb_s":[…],"handshake_ms":[…]} (handshake: TCP connect).
import net from "node:net";
import { once } from "node:events";
import process from "node:process";
import { MiB, receiveTransfer, report, sendArgs, sendTransfer, stdinClosed } from "./bulk.mjs";

async function receive() {
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    receiveTransfer(socket, () => socket.write(new Uint8Array(1))).catch(() => socket.destroy());
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  report({ event: "listening", address: String(server.address().port) });
  await stdinClosed();
  server.close();
  process.exit(0);
}

async function connect(port) {
  const socket = net.connect({ host: "127.0.0.1", port, noDelay: true });
  await once(socket, "connect");
  return socket;
}

async function send() {
  const o = sendArgs();
  const handshakes = [];
  for (let i = 0; i < o.handshakes + 3; i++) {
    const started = performance.now();
    const socket = await connect(Number(o.address));
    const ms = performance.now() - started;
    socket.destroy();
    if (i >= 3) handshakes.push(ms);
  }
  const mbS = [];
  for (let i = 0; i <= o.runs; i++) {
    const socket = await connect(Number(o.address));
    const acked = once(socket, "data");
    const write = async (chunk) => {
      if (!socket.write(chunk)) await once(socket, "drain");
    };
    const rate = await sendTransfer((i === 0 ? Math.min(32, o.mib) : o.mib) * MiB, write, acked);
    if (i > 0) mbS.push(rate); // the first run warms up
    socket.destroy();
  }
  report({ event: "result", mb_s: mbS, handshake_ms: handshakes });
  process.exit(0);
}

await (process.argv[2] === "receive" ? receive() : send());
