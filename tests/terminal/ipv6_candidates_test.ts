/**
 * A dual-stack terminal's own candidates (issue 14, docs/nat.md "IPv6"): its global IPv6
 * interface addresses, and STUN asked once per address family from the listener's own `::`
 * socket, an IPv6 mapping that is the machine's own address being a `host` candidate.
 */
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { MAX_IPV6_HOST_CANDIDATES } from "../../src/protocol.ts";
import { candidatePriority } from "../../src/message/candidate.ts";
import { canonicalAddress } from "../../src/net/address_class.ts";
import { decodeBindingRequest, encodeBindingResponse } from "../../src/net/stun_message.ts";
import { UdpTransport } from "../../src/peer/udp_transport.ts";
import { globalIPv6Addresses } from "../../src/terminal/address.ts";
import { gatherCandidates } from "../../src/terminal/gather_candidates.ts";
import { reflectFamilies } from "../../src/terminal/reflexive.ts";
import { defaultListenAddress } from "../../src/terminal/terminal.ts";
import { makeIdentity } from "../conformance/peer_transport.ts";

const iface = (address: string, family: "IPv4" | "IPv6" = "IPv6") => ({ address, family });

Deno.test("only global IPv6 interface addresses are announced, each once, at most a few", () => {
  assert.deepStrictEqual(
    globalIPv6Addresses([
      iface("203.0.113.5", "IPv4"),
      iface("8.8.8.8", "IPv4"),
      iface("fe80::1"),
      iface("fd00::2"),
      iface("::1"),
      iface("2001:db8:4d50:1::10"),
      iface("2A01:4F8:0:0::10"),
      iface("2a01:4f8::10"),
      iface("2606:4700::1"),
      iface("2606:4700::2"),
    ]),
    ["2a01:4f8::10", "2606:4700::1"].slice(0, MAX_IPV6_HOST_CANDIDATES),
  );
  assert.deepStrictEqual(globalIPv6Addresses([iface("fd00::2"), iface("fe80::1")]), []);
  // A listener bound to one IPv6 address receives on that one only.
  const two = [iface("2a01:4f8::10"), iface("2606:4700::1")];
  assert.deepStrictEqual(globalIPv6Addresses(two, "2606:4700:0::1"), ["2606:4700::1"]);
  assert.deepStrictEqual(globalIPv6Addresses(two, "0:0:0:0:0:0:0:0"), [
    "2a01:4f8::10",
    "2606:4700::1",
  ]);
  assert.deepStrictEqual(globalIPv6Addresses(two, "2001:db8::1"), []);
});

Deno.test("IPv6 addresses are written one way, the way sockets report them", () => {
  assert.equal(canonicalAddress("2001:0DB8:0000:0000:0000:0000:0000:0010"), "2001:db8::10");
  assert.equal(canonicalAddress("2001:db8:0:1:0:0:0:1"), "2001:db8:0:1::1");
  assert.equal(canonicalAddress("::FFFF:C612:1"), "::ffff:198.18.0.1");
  assert.equal(canonicalAddress("0:0:0:0:0:0:0:0"), "::");
  assert.equal(canonicalAddress("fe80::1%eth0"), "fe80::1%eth0");
  assert.equal(canonicalAddress("not an address"), "not an address");
});

Deno.test("a dual-stack terminal announces its IPv6 addresses beside its IPv4 candidates", async () => {
  const candidates = await gatherCandidates({
    transport: "udp",
    listenPort: 7000,
    reflexive: { address: "198.18.0.1", port: 61_000, localPort: 7000, server: "s" },
    hostAddresses: ["2a01:4f8::10"],
    reflexiveV6: { address: "2A01:4F8::10", port: 7000, localPort: 7000, server: "s6" },
    localAddresses: ["2a01:4f8::10"],
  });
  // The IPv6 STUN mapping is the host address already: not repeated.
  assert.deepStrictEqual(candidates.map((c) => [c.type, c.address, c.port]), [
    ["host", "2a01:4f8::10", 7000],
    ["srflx", "198.18.0.1", 61_000],
  ]);
});

Deno.test("an IPv6 STUN mapping that is this machine's own address is a host candidate, else srflx", async () => {
  const lab = await gatherCandidates({
    transport: "udp",
    listenPort: 7000,
    reflexiveV6: {
      address: "2001:db8:4d50:1::10",
      port: 7000,
      localPort: 7000,
      server: "s",
      mapping: "endpoint-independent",
    },
    localAddresses: ["198.19.1.10", "2001:db8:4d50:1::10", "fe80::1"],
  });
  assert.deepStrictEqual(lab, [{
    transport: "udp",
    address: "2001:db8:4d50:1::10",
    port: 7000,
    type: "host",
    priority: candidatePriority("host"),
  }]);
  // NPTv6 or NAT66 in between: another address, or another port, is a mapping.
  for (const [address, port] of [["2001:db8:99::10", 7000], ["2001:db8:4d50:1::10", 7001]]) {
    const [c] = await gatherCandidates({
      transport: "udp",
      listenPort: 7000,
      reflexiveV6: {
        address: address as string,
        port: port as number,
        localPort: 7000,
        server: "s",
      },
      localAddresses: ["2001:db8:4d50:1::10"],
    });
    assert.equal(c?.type, "srflx");
  }
});

/** A STUN server on `host` that answers with the source it saw. */
async function mirror(host: "127.0.0.1" | "::1") {
  const socket = dgram.createSocket(host === "::1" ? "udp6" : "udp4");
  await new Promise<void>((resolve) => socket.bind(0, host, resolve));
  socket.on("message", (packet: Uint8Array, from: dgram.RemoteInfo) => {
    const tid = decodeBindingRequest(packet);
    if (!tid) return;
    const family = from.family === "IPv6" ? "IPv6" as const : "IPv4" as const;
    const mapped = { family, address: from.address, port: from.port };
    socket.send(encodeBindingResponse(tid, mapped), from.port, from.address);
  });
  const port = socket.address().port;
  return {
    address: host === "::1" ? `[::1]:${port}` : `127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

Deno.test("STUN from a :: listener is asked per family: one IPv4 and one IPv6 mapping of the same port", async () => {
  const v4 = await mirror("127.0.0.1");
  const v6 = await mirror("::1");
  const listener = await new UdpTransport().listen({ address: "::", port: 0 }, {
    identity: await makeIdentity("xavier"),
  });
  try {
    const both = new Set(["IPv4", "IPv6"] as const);
    const found = await reflectFamilies(listener.stunSocket(), [v4.address, v6.address], both);
    const port = listener.endpoint.port;
    assert.deepStrictEqual([found.IPv4?.address, found.IPv4?.port], ["127.0.0.1", port]);
    assert.deepStrictEqual([found.IPv6?.address, found.IPv6?.port], ["::1", port]);
    // Only IPv6 is asked where only IPv6 is reachable; no server of a reachable family: EADDRESS.
    const v6only = await reflectFamilies(
      listener.stunSocket(),
      [v4.address, v6.address],
      new Set(["IPv6"]),
    );
    assert.equal(v6only.IPv4, undefined);
    await assert.rejects(
      reflectFamilies(listener.stunSocket(), [v4.address], new Set(["IPv6"])),
      /no server of terminal.stun_servers is of an address family/,
    );
  } finally {
    await listener.close();
    await Promise.all([v4.close(), v6.close()]);
  }
});

Deno.test("a terminal listens dual-stack when it has IPv6 to announce or an IPv6 STUN server to ask", () => {
  assert.equal(defaultListenAddress("0.0.0.0"), "0.0.0.0");
  assert.equal(
    defaultListenAddress("198.18.0.1", { stunServers: ["198.18.0.10:3478"] }),
    "0.0.0.0",
  );
  assert.equal(
    defaultListenAddress("0.0.0.0", { stunServers: ["[2001:db8:4d50::10]:3478"] }),
    "::",
  );
  assert.equal(defaultListenAddress("203.0.113.5", { ipv6: true }), "::");
  assert.equal(defaultListenAddress("2001:db8::1"), "::");
});
