import assert from "node:assert/strict";
import { isIP } from "node:net";
import fc from "fast-check";
import { endpointProblem } from "../../src/host/address_policy.ts";
import { type AddressClass, classifyAddress } from "../../src/net/address_class.ts";

const EXAMPLES: Record<AddressClass, string[]> = {
  global: [
    "8.8.8.8",
    "1.1.1.1",
    "100.63.255.255",
    "100.128.0.0",
    "172.15.255.255",
    "172.32.0.0",
    "192.0.1.255",
    "192.169.0.1",
    "223.255.255.255",
    "2606:4700:4700::1111",
    "2a00:1450:4001:82b::200e",
    "3FFE:0:0:0:0:0:0:1",
    "2001:1::1",
    "2001:4:112::1",
    "2002:808:808::1",
    "::ffff:8.8.8.8",
    "64:ff9b::8.8.4.4",
  ],
  loopback: ["127.0.0.1", "127.255.255.254", "::1", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1"],
  private: [
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.10",
    "100.64.0.1",
    "100.127.255.255",
    "fd12:3456:789a::1",
    "fc00::1",
    "::ffff:c0a8:10a",
    "64:ff9b::10.1.2.3",
    "64:ff9b:1::1",
  ],
  "link-local": ["169.254.0.1", "169.254.255.255", "fe80::1", "FE80::1%eth0", "febf::1"],
  multicast: ["224.0.0.1", "239.255.255.250", "ff02::1", "ff0e::fb", "::ffff:224.0.0.251"],
  unspecified: ["0.0.0.0", "::", "0:0:0:0:0:0:0:0", "::ffff:0.0.0.0"],
  broadcast: ["255.255.255.255", "::ffff:255.255.255.255"],
  reserved: [
    "0.1.2.3",
    "192.0.0.8",
    "192.0.2.1",
    "198.18.0.1",
    "198.19.255.255",
    "198.51.100.7",
    "203.0.113.9",
    "240.0.0.1",
    "255.255.255.254",
    "2001:db8::1",
    "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
    "3fff::1",
    "2001::1",
    "2001:2::1",
    "2002:a00:1::",
    "100::1",
    "fec0::1",
    "::1.2.3.4",
    "1::",
    "4000::1",
  ],
};

for (const [cls, addresses] of Object.entries(EXAMPLES)) {
  Deno.test(`${cls} IPv4 and IPv6 addresses are classified as ${cls}`, () => {
    for (const address of addresses) {
      assert.equal(classifyAddress(address), cls, address);
    }
  });
}

Deno.test("an IPv4-mapped IPv6 address is judged by the IPv4 address inside", () => {
  assert.equal(classifyAddress("::ffff:10.0.0.1"), "private");
  assert.equal(classifyAddress("::FFFF:0a00:0001"), "private");
  assert.equal(classifyAddress("0:0:0:0:0:ffff:127.0.0.1"), "loopback");
  assert.equal(classifyAddress("::ffff:93.184.216.34"), "global");
  assert.equal(classifyAddress("::ffff:169.254.1.1"), "link-local");
});

Deno.test("the same IPv6 address classifies the same in every textual form", () => {
  for (
    const form of ["2001:db8::1", "2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8:0::0:1"]
  ) {
    assert.equal(classifyAddress(form), "reserved", form);
  }
  for (const form of ["fe80::", "fe80:0:0:0:0:0:0:0", "fe80::0.0.0.0"]) {
    assert.equal(classifyAddress(form), "link-local", form);
  }
});

const MALFORMED = [
  "",
  " 8.8.8.8",
  "8.8.8.8 ",
  "1.2.3",
  "1.2.3.4.5",
  "256.1.1.1",
  "01.2.3.4",
  "0x7f.0.0.1",
  "localhost",
  "[::1]",
  "::1]",
  "1::2::3",
  ":::",
  ":1::",
  "1:2:3:4:5:6:7:8:9",
  "1:2:3:4:5:6:7::8",
  "12345::",
  "g::1",
  "::ffff:1.2.3.256",
  "1:2:3:4:5:6:7:1.2.3.4",
  "1.2.3.4::",
  "::1%",
  "1.2.3.4%eth0",
  "127.0.0.1:80",
];

Deno.test("a malformed address is refused with a TypeError", () => {
  for (const text of MALFORMED) {
    assert.throws(() => classifyAddress(text), TypeError, JSON.stringify(text));
  }
});

Deno.test("every valid IPv4 or IPv6 literal gets a class", () => {
  const classes = new Set(Object.keys(EXAMPLES));
  fc.assert(
    fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), (ip) => {
      assert.ok(classes.has(classifyAddress(ip)));
    }),
    { numRuns: 2000 },
  );
});

Deno.test("an address is accepted exactly when node:net sees an IP literal", () => {
  const alphabet = fc.constantFrom(..."0123456789abcdefABCDEF:.%x ");
  fc.assert(
    fc.property(fc.string({ unit: alphabet, maxLength: 45 }), (text) => {
      let ok = true;
      try {
        classifyAddress(text);
      } catch (e) {
        assert.ok(e instanceof TypeError);
        ok = false;
      }
      assert.equal(ok, isIP(text) !== 0, text);
    }),
    { numRuns: 3000 },
  );
});

Deno.test("a near-miss of a valid address is refused exactly when node:net refuses it", () => {
  const nearMiss = fc.tuple(
    fc.oneof(fc.ipV4(), fc.ipV6()),
    fc.nat(),
    fc.constantFrom("", ":", ".", "0", "%1"),
  )
    .map(([ip, at, insert]) => {
      const i = at % (ip.length + 1);
      return ip.slice(0, i) + insert + ip.slice(i + (insert === "" ? 1 : 0));
    });
  fc.assert(
    fc.property(nearMiss, (text) => {
      const accepted = (() => {
        try {
          classifyAddress(text);
          return true;
        } catch {
          return false;
        }
      })();
      assert.equal(accepted, isIP(text) !== 0, text);
    }),
    { numRuns: 3000 },
  );
});

Deno.test("garbage never classifies and always fails with a TypeError", () => {
  fc.assert(
    fc.property(fc.string(), (text) => {
      fc.pre(isIP(text) === 0);
      assert.throws(() => classifyAddress(text), TypeError);
    }),
  );
});

const at = (address: string, port = 7000) => ({ address, port, transport: "tcp" });
const internet = { allowPrivate: false };
const lan = { allowPrivate: true };

Deno.test("an internet host accepts only global endpoints", () => {
  for (const [cls, addresses] of Object.entries(EXAMPLES)) {
    for (const address of addresses) {
      const problem = endpointProblem(at(address), internet);
      if (cls === "global") assert.equal(problem, undefined, address);
      else assert.ok(problem?.startsWith(`${address} is a`), `${address}: ${problem}`);
    }
  }
});

Deno.test("a LAN host also accepts loopback, private, IPv4 link-local and test endpoints", () => {
  const allowed = new Set(["global", "loopback", "private", "link-local", "reserved"]);
  for (const [cls, addresses] of Object.entries(EXAMPLES)) {
    for (const address of addresses) {
      const problem = endpointProblem(at(address), lan);
      const v6LinkLocal = cls === "link-local" && !/^(::ffff:)?[\d.]+$/i.test(address);
      assert.equal(
        problem === undefined,
        allowed.has(cls) && !v6LinkLocal,
        `${address}: ${problem}`,
      );
    }
  }
  assert.equal(endpointProblem(at("192.0.2.10"), lan), undefined);
  // The NAT lab's public sides, IPv4 and IPv6 (docs/natlab.md), are documentation space.
  assert.equal(endpointProblem(at("198.18.0.1"), lan), undefined);
  assert.equal(endpointProblem(at("2001:db8:4d50:1::10"), lan), undefined);
  assert.match(endpointProblem(at("2001:db8:4d50:1::10"), internet) ?? "", /reserved/);
});

Deno.test("an IPv6 link-local endpoint is refused even on a LAN host: no peer can dial it without its zone", () => {
  for (const address of ["fe80::1", "FE80::1%eth0", "febf::1", "fe80::0.0.0.0"]) {
    assert.equal(
      endpointProblem(at(address), lan),
      `${address} is a link-local IPv6 address, which no peer can dial without its zone`,
    );
  }
  // An IPv4-mapped link-local address is the IPv4 address it carries: as 169.254/16.
  assert.equal(endpointProblem(at("::ffff:169.254.1.1"), lan), undefined);
  assert.equal(endpointProblem(at("169.254.1.1"), lan), undefined);
});

Deno.test("global IPv6 endpoints are accepted; multicast, unspecified and mapped loopback never", () => {
  assert.equal(endpointProblem(at("2a00:1450:4001:82b::200e"), internet), undefined);
  assert.equal(endpointProblem(at("2606:4700:4700::1111"), internet), undefined);
  for (const address of ["ff02::1", "ff0e::fb", "::", "::ffff:224.0.0.251"]) {
    assert.ok(endpointProblem(at(address), lan), address);
  }
  assert.match(endpointProblem(at("::ffff:127.0.0.1"), internet) ?? "", /loopback/);
});

Deno.test("the refusal says which address and what kind it is", () => {
  assert.equal(endpointProblem(at("127.0.0.1"), internet), "127.0.0.1 is a loopback address");
  assert.equal(endpointProblem(at("10.1.2.3"), internet), "10.1.2.3 is a private address");
  assert.equal(endpointProblem(at("::"), lan), ":: is an unspecified address");
  assert.equal(endpointProblem(at("ff02::1"), lan), "ff02::1 is a multicast address");
  assert.equal(
    endpointProblem(at("255.255.255.255"), lan),
    "255.255.255.255 is a broadcast address",
  );
});

Deno.test("port 0 and impossible ports are never accepted", () => {
  for (const port of [0, -1, 65536, 1.5, Number.NaN]) {
    for (const options of [internet, lan]) {
      const problem = endpointProblem(at("8.8.8.8", port), options);
      assert.match(problem ?? "", /^port .* is not a port number from 1 to 65535$/);
    }
  }
  assert.equal(endpointProblem(at("8.8.8.8", 1), internet), undefined);
  assert.equal(endpointProblem(at("8.8.8.8", 65535), internet), undefined);
});

Deno.test("a malformed address is reported, not thrown", () => {
  assert.equal(
    endpointProblem(at("example.com"), lan),
    '"example.com" is not an IPv4 or IPv6 literal',
  );
});

Deno.test("the transport does not change the verdict", () => {
  fc.assert(
    fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), fc.boolean(), (address, allowPrivate) => {
      const tcp = endpointProblem({ address, port: 9, transport: "tcp" }, { allowPrivate });
      const udp = endpointProblem({ address, port: 9, transport: "udp" }, { allowPrivate });
      assert.equal(tcp, udp);
    }),
  );
});
