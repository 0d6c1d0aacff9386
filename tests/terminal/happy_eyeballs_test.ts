/**
 * The order a dual-stack terminal punches a peer's candidates in (issue 14, docs/nat.md "IPv6"):
 * IPv6 first, IPv4 one stagger behind, interleaved; only what the socket can reach; addresses in
 * the form the socket reports sources in.
 */
import assert from "node:assert/strict";
import { candidatePriority } from "../../src/message/candidate.ts";
import type { Candidate, CandidateType } from "../../src/message/types.ts";
import { addressFamily, punchOrder, socketFamilies } from "../../src/terminal/happy_eyeballs.ts";

const c = (address: string, type: CandidateType = "host", port = 7000): Candidate => ({
  transport: "udp",
  address,
  port,
  type,
  priority: candidatePriority(type),
});
const order = (list: Candidate[], listen = "::") =>
  punchOrder(list, { families: socketFamilies(listen) }).map((x) => `${x.type} ${x.address}`);

Deno.test("a dual-stack peer is punched IPv6 first, then IPv4, alternating, relays last", () => {
  const peer = [
    c("198.18.0.2", "srflx"),
    c("203.0.113.9", "relay"),
    c("192.0.2.10", "host"),
    c("2001:db8:4d50:2::10", "host"),
    c("2001:db8:4d50:2::11", "srflx"),
  ];
  assert.deepStrictEqual(order(peer), [
    "host 2001:db8:4d50:2::10",
    "host 192.0.2.10",
    "srflx 2001:db8:4d50:2::11",
    "srflx 198.18.0.2",
    "relay 203.0.113.9",
  ]);
});

Deno.test("IPv6 leads even when the peer's best IPv4 candidate has the higher priority", () => {
  assert.deepStrictEqual(order([c("192.0.2.10", "host"), c("2001:db8::1", "srflx")]), [
    "srflx 2001:db8::1",
    "host 192.0.2.10",
  ]);
});

Deno.test("the family left over after the other runs out follows in priority order", () => {
  const peer = [c("2001:db8::1"), c("198.18.0.2", "srflx"), c("192.0.2.1", "mapped")];
  assert.deepStrictEqual(order(peer), [
    "host 2001:db8::1",
    "mapped 192.0.2.1",
    "srflx 198.18.0.2",
  ]);
});

Deno.test("a socket on 0.0.0.0 punches only IPv4, one on an IPv6 address only IPv6", () => {
  const peer = [c("2001:db8::1"), c("198.18.0.2", "srflx")];
  assert.deepStrictEqual(order(peer, "0.0.0.0"), ["srflx 198.18.0.2"]);
  assert.deepStrictEqual(order(peer, "2001:db8:4d50:1::10"), ["host 2001:db8::1"]);
  assert.deepStrictEqual(order(peer, "0:0:0:0:0:0:0:0"), ["host 2001:db8::1", "srflx 198.18.0.2"]);
});

Deno.test("an IPv4-mapped candidate is punched as the IPv4 address it is, and IPv6 in one textual form", () => {
  const peer = [c("2001:0DB8:0:0::1"), c("::ffff:198.18.0.2", "srflx"), c("198.18.0.2", "srflx")];
  // The mapped and the plain IPv4 address are one candidate.
  assert.deepStrictEqual(order(peer), ["host 2001:db8::1", "srflx 198.18.0.2"]);
  assert.deepStrictEqual(order([c("::ffff:198.18.0.2")], "0.0.0.0"), ["host 198.18.0.2"]);
});

Deno.test("address families: mapped addresses are IPv4, sockets on :: reach both", () => {
  assert.equal(addressFamily("::ffff:10.0.0.1"), "IPv4");
  assert.equal(addressFamily("::FFFF:a00:1"), "IPv4");
  assert.equal(addressFamily("64:ff9b::10.0.0.1"), "IPv6");
  assert.equal(addressFamily("10.0.0.1"), "IPv4");
  assert.deepStrictEqual([...socketFamilies("::")].sort(), ["IPv4", "IPv6"]);
  assert.deepStrictEqual([...socketFamilies("::1")], ["IPv6"]);
  assert.deepStrictEqual([...socketFamilies("127.0.0.1")], ["IPv4"]);
});
