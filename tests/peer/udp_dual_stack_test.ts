/**
 * A UDP listener on `::` (dual-stack, issue 14, docs/nat.md "IPv6") on loopback: IPv4 peers are
 * seen, keyed and answered as plain IPv4 addresses, so punching and standby work as on
 * 0.0.0.0; a pair that reaches each other over both families, punching IPv6 first, meets
 * over IPv6; where IPv6 stays silent, IPv4 one stagger behind carries the link; and a TURN
 * relay on an IPv4 server works from the `::` socket (with a loopback coturn).
 */
import assert from "node:assert/strict";
import { candidatePriority } from "../../src/message/candidate.ts";
import type { Candidate } from "../../src/message/types.ts";
import { UdpTransport } from "../../src/peer/udp_transport.ts";
import { unmapIPv4 } from "../../src/peer/udp_listener.ts";
import { punchRole } from "../../src/peer/udp_punch.ts";
import { ManualClock } from "../support/manual_clock.ts";
import { PUNCH_STAGGER_MS } from "../../src/limits.ts";
import { punchOrder, socketFamilies } from "../../src/terminal/happy_eyeballs.ts";
import { TurnClient } from "../../src/peer/turn_client.ts";
import { makeIdentity } from "../conformance/peer_transport.ts";
import { REAL_TURN } from "../support/coturn.ts";

const text = (s: string) => new TextEncoder().encode(s);
const DUAL = { address: "::", port: 0 };

async function pair() {
  const x = await makeIdentity("xavier");
  const y = await makeIdentity("yvonne");
  return punchRole(x.publicKey, y.publicKey) === "controlling"
    ? { low: x, high: y }
    : { low: y, high: x };
}

Deno.test("an IPv4-mapped source is the IPv4 address it carries; anything else is kept", () => {
  assert.equal(unmapIPv4("::ffff:127.0.0.1"), "127.0.0.1");
  assert.equal(unmapIPv4("::FFFF:198.18.0.1"), "198.18.0.1");
  assert.equal(unmapIPv4("::1"), "::1");
  assert.equal(unmapIPv4("2001:db8::ffff:1.2.3.4"), "2001:db8::ffff:1.2.3.4");
  assert.equal(unmapIPv4("127.0.0.1"), "127.0.0.1");
});

Deno.test("a listener on :: sees an IPv4 peer as its plain IPv4 address and connects with it", async () => {
  const udp = new UdpTransport();
  const { low, high } = await pair();
  const listener = await udp.listen(DUAL, { identity: high });
  try {
    const accepted = listener.accept();
    const link = await udp.connect(
      { transport: "udp", address: "127.0.0.1", port: listener.endpoint.port },
      { identity: low, expectedIdentityKey: high.publicKey },
    );
    const peer = await accepted;
    assert.equal(peer.remote.endpoint.address, "127.0.0.1");
    await link.send(text("over IPv4"));
    assert.equal(new TextDecoder().decode((await peer.receive())!), "over IPv4");
    await link.close();
    await peer.close();
  } finally {
    await listener.close();
  }
});

Deno.test("two listeners on :: punch to each other's IPv4 candidate and get one link over IPv4", async () => {
  const clock = new ManualClock();
  const udp = new UdpTransport({ clock });
  const { low, high } = await pair();
  const a = await udp.listen(DUAL, { identity: low });
  const b = await udp.listen(DUAL, { identity: high });
  try {
    const v4 = (port: number) => [{ transport: "udp" as const, address: "127.0.0.1", port }];
    const punchA = a.punch({ peerKey: high.publicKey, candidates: v4(b.endpoint.port) });
    const punchB = b.punch({ peerKey: low.publicKey, candidates: v4(a.endpoint.port) });
    const [ra, rb] = await Promise.all([punchA, punchB]);
    assert.equal(ra.remote.address, "127.0.0.1");
    assert.equal(rb.remote.address, "127.0.0.1");
    await ra.link.send(text("hi"));
    assert.equal(new TextDecoder().decode((await rb.link.receive())!), "hi");
    await ra.link.close();
    await rb.link.close();
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

Deno.test("a dual-stack pair punching in Happy Eyeballs order meets over IPv6", async () => {
  const clock = new ManualClock();
  const udp = new UdpTransport({ clock });
  const { low, high } = await pair();
  const a = await udp.listen(DUAL, { identity: low });
  const b = await udp.listen(DUAL, { identity: high });
  const both = (port: number): Candidate[] =>
    [["127.0.0.1", "host"], ["::1", "host"]].map(([address, type]) => ({
      transport: "udp",
      address: address!,
      port,
      type: "host",
      priority: candidatePriority(type as "host"),
    }));
  const families = socketFamilies("::");
  const asPunch = (list: Candidate[]) =>
    punchOrder(list, { families }).map((c) => ({ ...c, kind: c.type }));
  try {
    const punchA = a.punch({ peerKey: high.publicKey, candidates: asPunch(both(b.endpoint.port)) });
    const punchB = b.punch({ peerKey: low.publicKey, candidates: asPunch(both(a.endpoint.port)) });
    // The IPv4 candidates start one stagger later: only IPv6 has gone out when time stands still.
    const [ra, rb] = await Promise.all([punchA, punchB]);
    assert.equal(ra.remote.address, "::1");
    assert.equal(rb.remote.address, "::1");
    assert.equal(ra.path, "host");
    await rb.link.send(text("over IPv6"));
    assert.equal(new TextDecoder().decode((await ra.link.receive())!), "over IPv6");
    await ra.link.close();
    await rb.link.close();
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

Deno.test("when the peer's IPv6 address stays silent, its IPv4 candidate one stagger later carries the link", async () => {
  const clock = new ManualClock();
  const udp = new UdpTransport({ clock });
  const { low, high } = await pair();
  const a = await udp.listen(DUAL, { identity: low });
  const b = await udp.listen(DUAL, { identity: high });
  // Where b's IPv6 address would be: a socket that reads and never answers (a dead IPv6 path).
  const silent = Deno.listenDatagram({ transport: "udp", hostname: "::1", port: 0 });
  const reading = (async () => {
    try {
      for await (const _ of silent) { /* dropped */ }
    } catch { /* closed */ }
  })();
  const host = (address: string, port: number): Candidate => ({
    transport: "udp",
    address,
    port,
    type: "host",
    priority: candidatePriority("host"),
  });
  const families = socketFamilies("::");
  const asPunch = (list: Candidate[]) =>
    punchOrder(list, { families }).map((c) => ({ ...c, kind: c.type }));
  const attempts: string[] = [];
  try {
    const silentPort = (silent.addr as Deno.NetAddr).port;
    const punchA = a.punch({
      peerKey: high.publicKey,
      candidates: asPunch([host("127.0.0.1", b.endpoint.port), host("::1", silentPort)]),
      onEvent: (e) => e.type === "attempt" && attempts.push(e.remote.address),
    });
    const punchB = b.punch({
      peerKey: low.publicKey,
      candidates: asPunch([host("127.0.0.1", a.endpoint.port)]),
    });
    assert.deepStrictEqual(attempts, ["::1"], "IPv6 goes first, alone");
    clock.advance(PUNCH_STAGGER_MS);
    const [ra, rb] = await Promise.all([punchA, punchB]);
    assert.deepStrictEqual(attempts, ["::1", "127.0.0.1"]);
    assert.equal(ra.remote.address, "127.0.0.1");
    assert.equal(rb.remote.address, "127.0.0.1");
    await ra.link.close();
    await rb.link.close();
  } finally {
    silent.close();
    await reading;
    await Promise.all([a.close(), b.close()]);
  }
});

Deno.test({
  name: "a TURN relay on an IPv4 server runs over a :: listener's socket as over 0.0.0.0",
  ignore: !REAL_TURN,
  async fn() {
    const t = REAL_TURN!;
    const listener = await new UdpTransport().listen(DUAL, {
      identity: await makeIdentity("relay-user"),
    });
    const peer = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    const turn = await TurnClient.allocate(
      { url: t.url, user: t.user, password: t.password },
      { socket: listener.stunSocket() },
    );
    try {
      // coturn saw the listener's port from 127.0.0.1: the answers came back as plain IPv4.
      assert.equal(turn.mapped.address, "127.0.0.1");
      assert.equal(turn.mapped.port, listener.endpoint.port);
      const from = peer.addr as Deno.NetAddr;
      await turn.permit({ transport: "udp", address: "127.0.0.1", port: from.port });
      const got = new Promise<Uint8Array>((resolve) => {
        const off = turn.onData((_, bytes) => {
          off();
          resolve(bytes);
        });
      });
      await peer.send(text("through the relay"), {
        transport: "udp",
        hostname: turn.relayed.address,
        port: turn.relayed.port,
      });
      assert.equal(new TextDecoder().decode(await got), "through the relay");
    } finally {
      await turn.close();
      await listener.close();
      peer.close();
    }
  },
});
