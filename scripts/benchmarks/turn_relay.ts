/**
 * TURN relay benchmark (issue 14) against the loopback coturn (`scripts/coturn/coturn.sh
 * start`): how long Allocate, CreatePermission and ChannelBind take, the round trip of a
 * 1,200-byte datagram A → relay → B → relay → A over ChannelData and over Send/Data
 * indications, and `--mib` MiB over a sealed reliable stream through the relay (a peer dials
 * the relayed address with the UDP transport; the allocation's owner answers over the relay).
 *
 * Usage: scripts/bench-turn [--mib 20] [--pings 1000]
 *
 * @module
 */
import { makeIdentity } from "../../tests/conformance/peer_transport.ts";
import { REAL_TURN } from "../../tests/support/coturn.ts";
import { answerOverRelay, firstPeer } from "../../tests/support/relay_responder.ts";
import { openTurnSocket, TurnClient } from "../../src/peer/turn_client.ts";
import { UdpTransport } from "../../src/peer/udp_transport.ts";
import { num } from "./args.ts";

const turnServer = REAL_TURN;
if (!turnServer) {
  throw new Error("No TURN server: run scripts/coturn/coturn.sh start (as root) first");
}
const server = { url: turnServer.url, user: turnServer.user, password: turnServer.password };
const mib = num("--mib", 20, 1);
const pings = num("--pings", 1000, 10);

const ms = (t0: number) => performance.now() - t0;

async function pair() {
  const sa = openTurnSocket({ address: "127.0.0.1" });
  const sb = openTurnSocket({ address: "127.0.0.1" });
  let t0 = performance.now();
  const a = await TurnClient.allocate(server, { socket: sa });
  const allocateMs = ms(t0);
  const b = await TurnClient.allocate(server, { socket: sb });
  t0 = performance.now();
  await a.permit(b.relayed);
  const permitMs = ms(t0);
  await b.permit(a.relayed);
  const close = async () => {
    await Promise.all([a.close(), b.close()]);
    await Promise.all([sa.close(), sb.close()]);
  };
  return { a, b, allocateMs, permitMs, close };
}

/** Median and 99th percentile round trip, in ms. */
async function roundTrips(a: TurnClient, b: TurnClient): Promise<[number, number]> {
  b.onData((peer, bytes) => void b.send(peer, bytes));
  const payload = new Uint8Array(1_200);
  const times: number[] = [];
  for (let i = 0; i < pings; i++) {
    const back = new Promise<void>((resolve) => {
      const off = a.onData(() => {
        off();
        resolve();
      });
    });
    const t0 = performance.now();
    await a.send(b.relayed, payload);
    await back;
    times.push(ms(t0));
  }
  times.sort((x, y) => x - y);
  return [times[pings >> 1]!, times[Math.floor(pings * 0.99)]!];
}

const indications = await pair();
const [indMedian, indP99] = await roundTrips(indications.a, indications.b);
await indications.close();

const channels = await pair();
let t0 = performance.now();
await channels.a.bindChannel(channels.b.relayed);
const bindMs = ms(t0);
await channels.b.bindChannel(channels.a.relayed);
const [chMedian, chP99] = await roundTrips(channels.a, channels.b);
await channels.close();

// The stream: B dials A's relayed address; A answers over the relay.
const sock = openTurnSocket({ address: "127.0.0.1" });
const turn = await TurnClient.allocate(server, { socket: sock });
const alice = await makeIdentity("alice");
const bob = await makeIdentity("bob");
await turn.permit("127.0.0.1");
const first = firstPeer(turn);
const dialling = new UdpTransport().connect(turn.relayed, {
  identity: bob,
  expectedIdentityKey: alice.publicKey,
});
const linkA = await answerOverRelay(turn, await first, alice);
const linkB = await dialling;
const total = mib * 1024 * 1024;
const chunk = new Uint8Array(64 * 1024);
t0 = performance.now();
const received = (async () => {
  let n = 0;
  while (n < total) {
    const m = await linkA.receive();
    if (!m) break;
    n += m.length;
  }
  return n;
})();
for (let sent = 0; sent < total; sent += chunk.length) await linkB.send(chunk);
const got = await received;
const streamS = ms(t0) / 1000;
await linkB.close();
await linkA.close();
await turn.close();
await sock.close();

const f = (x: number) => x.toFixed(2);
const lines = [
  `TURN relay on ${server.url} (loopback coturn)`,
  `Allocate ${f(indications.allocateMs)} ms, CreatePermission ${f(indications.permitMs)} ms, ` +
  `ChannelBind ${f(bindMs)} ms`,
  `round trip, 1,200 bytes, ChannelData: median ${f(chMedian)} ms, p99 ${f(chP99)} ms (${pings})`,
  `round trip, 1,200 bytes, Send/Data:   median ${f(indMedian)} ms, p99 ${f(indP99)} ms (${pings})`,
  `${mib} MiB over a sealed stream through the relay: ${f(streamS)} s, ` +
  `${f(got / streamS / 1e6)} MB/s`,
];
await Deno.stdout.write(new TextEncoder().encode(lines.join("\n") + "\n"));
