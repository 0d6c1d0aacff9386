/**
 * The terminal's address detection judges interface addresses by the same classification as
 * the host's address policy: what the host refuses to hand out, the terminal never announces
 * as its global address (and asks STUN instead).
 */
import assert from "node:assert/strict";
import { endpointProblem } from "../../src/host/address_policy.ts";
import { detectAddress, InterfaceAddress } from "../../src/terminal/address.ts";

function nic(address: string): Deno.NetworkInterfaceInfo {
  const v6 = address.includes(":");
  return {
    family: v6 ? "IPv6" : "IPv4",
    name: "eth0",
    address,
    netmask: v6 ? "ffff:ffff:ffff:ffff::" : "255.255.255.0",
    scopeid: v6 ? 0 : null,
    cidr: `${address}/${v6 ? 64 : 24}`,
    mac: "00:00:00:00:00:00",
  };
}

const SPECIAL = [
  "198.18.0.1", // benchmarking (RFC 2544), what some NAT labs use
  "198.19.255.254",
  "192.0.2.7", // documentation
  "198.51.100.20",
  "203.0.113.9",
  "192.0.0.8",
  "240.0.0.1",
  "100.64.0.1",
  "2001:db8::1",
  "3fff::1",
  "2001:2::1",
];

Deno.test("an interface on a benchmarking or documentation address is not taken as global: STUN is asked", async () => {
  for (const address of SPECIAL) {
    const found = await new InterfaceAddress(() => [nic(address)]).detect();
    assert.equal(found, undefined, address);
  }
  const stunAsked: string[] = [];
  const found = await detectAddress([
    new InterfaceAddress(() => [nic("198.18.0.1"), nic("192.0.2.7")]),
    {
      detect: () => {
        stunAsked.push("yes");
        return Promise.resolve({ address: "93.184.216.34", source: "stun" });
      },
    },
  ]);
  assert.deepStrictEqual([found.address, found.source, stunAsked.length], [
    "93.184.216.34",
    "stun",
    1,
  ]);
});

Deno.test("the terminal announces an interface address exactly when the host would hand it out", async () => {
  const addresses = [...SPECIAL, "8.8.8.8", "2606:4700:4700::1111", "10.0.0.1", "127.0.0.1"];
  for (const address of addresses) {
    const found = await new InterfaceAddress(() => [nic(address)]).detect();
    const hostAccepts =
      endpointProblem({ address, port: 7000, transport: "tcp" }, { allowPrivate: false }) ===
        undefined;
    assert.equal(found !== undefined, hostAccepts, address);
  }
});
