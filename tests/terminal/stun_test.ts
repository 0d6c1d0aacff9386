import assert from "node:assert/strict";
import dgram from "node:dgram";
import { createHmac } from "node:crypto";
import fc from "fast-check";
import { PeerError } from "../../src/errors.ts";
import type { Clock } from "../../src/runtime.ts";
import { detectAddress, ExplicitAddress, InterfaceAddress } from "../../src/terminal/address.ts";
import {
  decodeBindingRequest,
  decodeBindingResponse,
  encodeBindingRequest,
  encodeBindingResponse,
  isStunMessage,
  type StunMappedAddress,
} from "../../src/net/stun_message.ts";
import { parseStunServer, StunAddress } from "../../src/terminal/stun.ts";
import { REAL_STUN, stunFixture as fixture } from "../support/coturn.ts";

// ---------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------

/** The error `promise` rejects with. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

const RFC5769_TID = fixture("rfc5769_response_ipv4.hex").slice(8, 20);

type Reply = (request: Uint8Array, tid: Uint8Array, from: dgram.RemoteInfo) => Uint8Array[];

/**
 * A fake STUN server on 127.0.0.1: `reply` says what to send back for each request (nothing
 * = dropped). `requests` holds every transaction id received; `received(n)` resolves once n
 * requests arrived.
 */
async function fakeServer(reply: Reply) {
  const socket = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  const requests: Uint8Array[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  socket.on("message", (packet: Uint8Array, from: dgram.RemoteInfo) => {
    const tid = decodeBindingRequest(packet);
    if (!tid) return;
    requests.push(tid);
    for (const w of waiters.filter((w) => requests.length >= w.n)) w.resolve();
    for (const answer of reply(packet, tid, from)) socket.send(answer, from.port, from.address);
  });
  return {
    address: `127.0.0.1:${socket.address().port}`,
    requests,
    received: (n: number) =>
      new Promise<void>((resolve) =>
        requests.length >= n ? resolve() : waiters.push({ n, resolve })
      ),
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

const mappedTo = (address: string, port: number): StunMappedAddress => ({
  family: address.includes(":") ? "IPv6" : "IPv4",
  address,
  port,
});

/** A clock whose timers fire only when the test says so; `waits` records each wait asked. */
class StepClock implements Clock {
  waits: number[] = [];
  #pending: (() => void)[] = [];
  #onWait: (() => void)[] = [];
  now = () => 0;
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    this.waits.push(ms);
    for (const f of this.#onWait.splice(0)) f();
    return new Promise((resolve, reject) => {
      this.#pending.push(resolve);
      signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
    });
  }
  /** Resolves once `n` waits have been asked for. */
  waited(n: number): Promise<void> {
    return new Promise((resolve) => {
      const check = () => (this.waits.length >= n ? resolve() : this.#onWait.push(check));
      check();
    });
  }
  /** Ends every pending wait. */
  fire(): void {
    for (const f of this.#pending.splice(0)) f();
  }
}

// ---------------------------------------------------------------------------------------
// codec
// ---------------------------------------------------------------------------------------

Deno.test("the RFC 5769 test vectors are the RFC's (FINGERPRINT and MESSAGE-INTEGRITY check)", () => {
  for (
    const name of ["rfc5769_request.hex", "rfc5769_response_ipv4.hex", "rfc5769_response_ipv6.hex"]
  ) {
    const packet = fixture(name);
    const mi = packet.length - 8 - 24;
    const signed = packet.slice(0, mi);
    new DataView(signed.buffer).setUint16(2, mi + 24 - 20);
    const mac = createHmac("sha1", "VOkJxbRl1RmTxUk/WvJxBt").update(signed).digest();
    assert.deepStrictEqual(new Uint8Array(mac), packet.slice(mi + 4, mi + 24), name);
  }
});

Deno.test("an RFC 5769 IPv4 Binding response yields 192.0.2.1 port 32853", () => {
  const response = decodeBindingResponse(fixture("rfc5769_response_ipv4.hex"), {
    transactionId: RFC5769_TID,
  });
  assert.deepStrictEqual(response?.ok, true);
  assert.deepStrictEqual(response?.mapped, mappedTo("192.0.2.1", 32853));
});

Deno.test("an RFC 5769 IPv6 Binding response yields 2001:db8:1234:5678:11:2233:4455:6677 port 32853", () => {
  const response = decodeBindingResponse(fixture("rfc5769_response_ipv6.hex"));
  assert.deepStrictEqual(response?.transactionId, RFC5769_TID);
  assert.deepStrictEqual(response?.mapped, mappedTo("2001:db8:1234:5678:11:2233:4455:6677", 32853));
});

Deno.test("the RFC 5769 sample request is recognised as a Binding request with its transaction id", () => {
  assert.deepStrictEqual(decodeBindingRequest(fixture("rfc5769_request.hex")), RFC5769_TID);
  assert.deepStrictEqual(decodeBindingResponse(fixture("rfc5769_request.hex")), undefined);
});

Deno.test("a Binding request is 20 bytes: type, length 0, magic cookie, transaction id", () => {
  const request = encodeBindingRequest(RFC5769_TID);
  assert.deepStrictEqual(
    request.slice(0, 8),
    Uint8Array.from([0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42]),
  );
  assert.deepStrictEqual(request.slice(8), RFC5769_TID);
  assert.deepStrictEqual(
    decodeBindingRequest(encodeBindingRequest(RFC5769_TID, { fingerprint: true })),
    RFC5769_TID,
  );
});

Deno.test("any mapped address survives an encode/decode round trip (XOR and legacy, IPv4 and IPv6)", () => {
  const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((p) => p.join("."));
  const ipv6 = fc.ipV6().map((a) => new URL(`http://[${a}]/`).hostname.slice(1, -1));
  fc.assert(fc.property(
    fc.oneof(ipv4, ipv6),
    fc.nat(0xffff),
    fc.uint8Array({ minLength: 12, maxLength: 12 }),
    fc.boolean(),
    fc.boolean(),
    (address, port, tid, fingerprint, legacy) => {
      const mapped = mappedTo(address, port);
      const packet = encodeBindingResponse(tid, mapped, { fingerprint, legacy });
      assert.deepStrictEqual(decodeBindingResponse(packet, { transactionId: tid }), {
        transactionId: tid,
        ok: true,
        mapped,
      });
    },
  ));
});

Deno.test("IPv6 addresses come out in RFC 5952 text form", () => {
  const tid = new Uint8Array(12);
  const cases: [string, string][] = [
    ["0:0:0:0:0:0:0:1", "::1"],
    ["2001:DB8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
    ["::", "::"],
    ["fe80::", "fe80::"],
  ];
  for (const [given, expected] of cases) {
    const packet = encodeBindingResponse(tid, mappedTo(given, 1));
    assert.deepStrictEqual(decodeBindingResponse(packet)?.mapped?.address, expected, given);
  }
});

Deno.test("malformed packets and responses to other transactions are ignored, never thrown", () => {
  const good = fixture("rfc5769_response_ipv4.hex");
  const broken = (edit: (p: Uint8Array) => void) => {
    const copy = good.slice();
    edit(copy);
    return copy;
  };
  const bad = [
    new Uint8Array(0),
    good.slice(0, 19),
    good.slice(0, good.length - 4), // truncated FINGERPRINT
    broken((p) => (p[4] = 0)), // magic cookie
    broken((p) => (p[0] = 0x81)), // top bits set
    broken((p) => (p[3] = 0x40)), // length disagrees
    broken((p) => (p[p.length - 1]! ^= 1)), // FINGERPRINT
    broken((p) => (p[45]! ^= 1)), // a flipped address bit: FINGERPRINT no longer matches
    encodeBindingRequest(RFC5769_TID),
  ];
  for (const packet of bad) assert.deepStrictEqual(decodeBindingResponse(packet), undefined);
  assert.deepStrictEqual(
    decodeBindingResponse(good, { transactionId: new Uint8Array(12) }),
    undefined,
  );
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
    decodeBindingResponse(bytes);
    decodeBindingRequest(bytes);
  }));
});

Deno.test("server addresses are host:port, [ipv6]:port or stun: URIs, port 3478 by default", () => {
  assert.deepStrictEqual(parseStunServer("127.0.0.1:3478"), { host: "127.0.0.1", port: 3478 });
  assert.deepStrictEqual(parseStunServer("stun.example.org"), {
    host: "stun.example.org",
    port: 3478,
  });
  assert.deepStrictEqual(parseStunServer("stun:stun.example.org:19302"), {
    host: "stun.example.org",
    port: 19302,
  });
  assert.deepStrictEqual(parseStunServer("[::1]:5349"), { host: "::1", port: 5349 });
  assert.deepStrictEqual(parseStunServer("::1"), { host: "::1", port: 3478 });
  assert.deepStrictEqual(parseStunServer("2001:db8:0:0:0:0:0:9"), {
    host: "2001:db8:0:0:0:0:0:9",
    port: 3478,
  });
  for (const bad of ["", "a:b:c:", "host:", "host:0", "host:70000", "[::1", "a b"]) {
    assert.throws(() => parseStunServer(bad), TypeError, bad);
  }
});

// ---------------------------------------------------------------------------------------
// client against fake servers
// ---------------------------------------------------------------------------------------

Deno.test("a lost Binding request is retransmitted after the RTO with the same transaction id", async () => {
  const server = await fakeServer((_, tid) =>
    server.requests.length === 1 ? [] : [encodeBindingResponse(tid, mappedTo("203.0.113.9", 40000))]
  );
  const clock = new StepClock();
  try {
    const found = new StunAddress([server.address], { clock });
    const detection = found.detect();
    await server.received(1);
    await clock.waited(1);
    assert.deepStrictEqual(clock.waits, [500]);
    clock.fire();
    const result = await detection;
    assert.deepStrictEqual(result?.address, "203.0.113.9");
    assert.deepStrictEqual(result?.port, 40000);
    assert.deepStrictEqual(result?.source, "stun");
    assert.deepStrictEqual(server.requests.length, 2);
    assert.deepStrictEqual(server.requests[0], server.requests[1]);
  } finally {
    await server.close();
  }
});

Deno.test("garbage and answers to other transactions do not disturb the real answer", async () => {
  const server = await fakeServer((_, tid) => [
    Uint8Array.from([1, 2, 3]),
    encodeBindingResponse(new Uint8Array(12), mappedTo("198.51.100.66", 1)),
    encodeBindingResponse(tid, mappedTo("198.51.100.7", 4242), { legacy: true }),
  ]);
  try {
    const result = await new StunAddress([server.address], { clock: new StepClock() }).detect();
    assert.deepStrictEqual(result?.address, "198.51.100.7");
    assert.deepStrictEqual(result?.port, 4242);
  } finally {
    await server.close();
  }
});

Deno.test("a silent server gives no address after the configured requests, doubling the wait", async () => {
  const server = await fakeServer(() => []);
  const clock = new StepClock();
  try {
    const stun = new StunAddress([server.address], { clock, requests: 3 });
    const query = stun.query();
    for (let n = 1; n <= 3; n++) {
      await clock.waited(n);
      clock.fire();
    }
    const err = await rejection(query);
    assert.ok(err instanceof PeerError);
    assert.deepStrictEqual(err.code, "ETIMEOUT");
    assert.ok(err.message.startsWith("Cannot learn the address peers see from STUN: "));
    assert.ok(err.message.includes("did not answer 3 Binding requests"));
    assert.deepStrictEqual(clock.waits, [500, 1000, 2000]);
    const quiet = new StunAddress([server.address], { backoff: () => 0, requests: 2 });
    assert.deepStrictEqual(await quiet.detect(), undefined);
  } finally {
    await server.close();
  }
});

Deno.test("a server's error response ends the attempt with EADDRESS and its reason", async () => {
  const server = await fakeServer((_, tid) => {
    const packet = fixture("error_response_400.hex");
    packet.set(tid, 8);
    return [packet];
  });
  try {
    const err = await rejection(
      new StunAddress([server.address], { clock: new StepClock() }).query(),
    );
    assert.ok(err instanceof PeerError);
    assert.deepStrictEqual(err.code, "EADDRESS");
    assert.ok(err.message.includes("answered error 400 Bad Request"), err.message);
  } finally {
    await server.close();
  }
});

Deno.test("an aborted detection stops at once with the signal's reason", async () => {
  const server = await fakeServer(() => []);
  try {
    const controller = new AbortController();
    const detection = new StunAddress([server.address], { clock: new StepClock() })
      .detect({ signal: controller.signal });
    await server.received(1);
    controller.abort(new Error("user quit"));
    assert.equal(((await rejection(detection)) as Error).message, "user quit");
  } finally {
    await server.close();
  }
});

Deno.test("the first server to answer wins when one of several is silent", async () => {
  const silent = await fakeServer(() => []);
  const server = await fakeServer((_, tid) => [
    encodeBindingResponse(tid, mappedTo("192.0.2.44", 5000)),
  ]);
  try {
    const stun = new StunAddress([silent.address, server.address], { clock: new StepClock() });
    const result = await stun.detect();
    assert.deepStrictEqual(result?.server, server.address);
    assert.deepStrictEqual(result?.address, "192.0.2.44");
  } finally {
    await silent.close();
    await server.close();
  }
});

Deno.test("the explicit address beats an interface address, which beats STUN", async () => {
  const server = await fakeServer((_, tid) => [
    encodeBindingResponse(tid, mappedTo("203.0.113.50", 6000)),
  ]);
  const iface = (address: string): Deno.NetworkInterfaceInfo => ({
    family: "IPv4",
    name: "eth0",
    address,
    netmask: "255.255.255.0",
    scopeid: null,
    cidr: `${address}/24`,
    mac: "00:00:00:00:00:00",
  });
  const globalNic = new InterfaceAddress(() => [iface("192.168.1.5"), iface("93.184.216.34")]);
  const privateNic = new InterfaceAddress(() => [iface("192.168.1.5")]);
  const stun = new StunAddress([server.address], { clock: new StepClock() });
  try {
    const explicit = await detectAddress([new ExplicitAddress("192.0.2.1"), globalNic, stun]);
    assert.deepStrictEqual(explicit, { address: "192.0.2.1", source: "explicit" });
    assert.deepStrictEqual((await detectAddress([globalNic, stun])).source, "interface");
    assert.deepStrictEqual(server.requests.length, 0);
    const behindNat = await detectAddress([privateNic, stun]);
    assert.deepStrictEqual([behindNat.address, behindNat.source], ["203.0.113.50", "stun"]);
  } finally {
    await server.close();
  }
});

Deno.test("a socket shared with peer traffic learns its own port; peer datagrams stay with the owner", async () => {
  // A STUN server answers with the source it saw.
  const server = await fakeServer((_, tid, from) => [
    encodeBindingResponse(tid, mappedTo(from.address, from.port)),
  ]);
  const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const localPort = (conn.addr as Deno.NetAddr).port;
  const listeners = new Set<(bytes: Uint8Array) => void>();
  const peerTraffic: string[] = [];
  const owner = (async () => {
    for await (const [bytes] of conn) {
      if (isStunMessage(bytes)) { for (const l of listeners) l(bytes); }
      else peerTraffic.push(new TextDecoder().decode(bytes));
    }
  })().catch(() => {});
  const peer = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    await peer.send(new TextEncoder().encode("hello peer"), conn.addr);
    const socket = {
      localPort,
      send: async (bytes: Uint8Array, hostname: string, port: number) => {
        await conn.send(bytes, { transport: "udp", hostname, port });
      },
      subscribe: (l: (bytes: Uint8Array) => void) => (listeners.add(l), () => listeners.delete(l)),
    };
    const result = await new StunAddress([server.address], { socket }).query();
    assert.deepStrictEqual([result.address, result.port, result.localPort], [
      "127.0.0.1",
      localPort,
      localPort,
    ]);
    assert.deepStrictEqual(peerTraffic, ["hello peer"]);
    assert.equal(listeners.size, 0);
  } finally {
    peer.close();
    conn.close();
    await owner;
    await server.close();
  }
});

// ---------------------------------------------------------------------------------------
// against the real coturn (scripts/coturn/coturn.sh start, or MAILPEER_STUN=host:port)
// ---------------------------------------------------------------------------------------

Deno.test({
  name: "coturn reports 127.0.0.1 and the very port of the terminal's own socket",
  ignore: !REAL_STUN,
  fn: async () => {
    const result = await new StunAddress([REAL_STUN!], { localAddress: "127.0.0.1" }).query();
    assert.deepStrictEqual(result?.address, "127.0.0.1");
    assert.deepStrictEqual(result?.source, "stun");
    assert.deepStrictEqual(result?.port, result?.localPort);
    assert.ok(result!.port > 0);
  },
});
