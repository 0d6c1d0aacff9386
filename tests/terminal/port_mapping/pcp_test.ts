import assert from "node:assert/strict";
import { PeerError } from "../../../src/errors.ts";
import type { RandomSource } from "../../../src/runtime.ts";
import { ManualClock } from "../../support/manual_clock.ts";
import {
  decodePcpMapResponse,
  encodePcpMapRequest,
  PcpClient,
  pcpSchedule,
} from "../../../src/terminal/port_mapping/pcp.ts";
import { FakeUdpGateway, sendFromElsewhere } from "./fake_udp_gateway.ts";

const TCP_8080 = { transport: "tcp" as const, internalPort: 8080, lifetimeS: 7200 };

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

/** Random bytes counting up, so each client gets its own nonce; jitter RAND is then near 0. */
function counting(): RandomSource {
  let n = 0;
  return (length) => {
    n++;
    return length === 2
      ? new Uint8Array([0x80, 0x00])
      : Uint8Array.from({ length }, (_, i) => (n + i) & 0xff);
  };
}

function client(gw: FakeUdpGateway, options: { clock?: ManualClock; random?: RandomSource } = {}) {
  return new PcpClient("127.0.0.1", {
    port: gw.port,
    localAddress: "127.0.0.1",
    clock: options.clock ?? new ManualClock(),
    random: options.random ?? counting(),
  });
}

Deno.test("PCP: the terminal maps a TCP port, renews and deletes it with the same nonce", async () => {
  const gw = await FakeUdpGateway.start({ natPmp: false, externalPort: () => 18080 });
  const c = client(gw);
  try {
    const mapped = await c.map(TCP_8080);
    assert.deepEqual(mapped, {
      external: { address: "203.0.113.7", port: 18080 },
      internal: { address: "127.0.0.1", port: 8080 },
      lifetimeS: 3600,
      gatewayRestarted: false,
    });
    const renewed = await c.map(TCP_8080);
    assert.deepEqual(renewed.external, mapped.external);
    const [first, second] = gw.requests.map((r) => r.bytes.subarray(24, 36).join(","));
    assert.equal(first, second, "the renewal carries the first nonce");
    assert.equal(
      gw.requests[1]!.bytes.subarray(42, 44).join(","),
      "70,160",
      "the renewal suggests the external port granted (18080)",
    );

    // Someone else (another nonce) can neither take it over nor delete it; the owner can.
    const other = client(gw, { random: () => new Uint8Array(12).fill(9) });
    const err = await rejection(other.map(TCP_8080));
    await other.close();
    assert.ok(err instanceof PeerError && err.code === "EPORTMAP");
    assert.match(err.message, /result 2 \(NOT_AUTHORIZED\)/);
    assert.equal(gw.mappings.size, 1);
    await c.unmap(TCP_8080);
    assert.equal(gw.mappings.size, 0);
  } finally {
    await c.close();
    await gw.close();
  }
});

Deno.test("PCP: retransmissions follow RFC 6887 §8.1.1 (3 s, then doubling), then ETIMEOUT", async () => {
  const gw = await FakeUdpGateway.start({ intercept: () => [] });
  const clock = new ManualClock();
  const c = new PcpClient("127.0.0.1", {
    port: gw.port,
    localAddress: "127.0.0.1",
    clock,
    random: counting(),
    requests: 3,
  });
  try {
    const result = rejection(c.map(TCP_8080));
    const waits: number[] = [];
    for (let n = 1; n <= 3; n++) {
      await gw.received(n);
      await clock.sleeping();
      waits.push(clock.nextWakeIn!);
      clock.advance(clock.nextWakeIn!);
    }
    assert.deepEqual(waits, [3000, 6000, 12000]);
    const err = await result;
    assert.ok(err instanceof PeerError && err.code === "ETIMEOUT");
    assert.match(err.message, /^Cannot map TCP port 8080 with PCP: .*3 requests.*; check/);
  } finally {
    await c.close();
    await gw.close();
  }
});

Deno.test("PCP schedule: RAND keeps each wait within ±10 % and MRT caps it", () => {
  const low = pcpSchedule(() => new Uint8Array([0, 0]));
  const high = pcpSchedule(() => new Uint8Array([0xff, 0xff]));
  assert.equal(low(0), 2700);
  assert.equal(high(0), 3300);
  assert.equal(low(1), 2700 * 2 - 270);
  assert.ok(high(20) <= 1_024_000 * 1.1 && high(20) >= 1_024_000 * 0.9);
});

Deno.test("PCP: a NAT-PMP-only gateway is told apart at once (UNSUPP_VERSION)", async () => {
  const gw = await FakeUdpGateway.start({ pcp: false });
  const c = client(gw);
  try {
    const err = await rejection(c.map(TCP_8080));
    assert.ok(err instanceof PeerError && err.code === "EPORTMAP");
    assert.match(err.message, /UNSUPP_VERSION: it speaks NAT-PMP only/);
    assert.equal(gw.requests.length, 1);
  } finally {
    await c.close();
    await gw.close();
  }
});

Deno.test("PCP attacker: wrong nonce, opcode, R bit, protocol, port, length or source are ignored", async () => {
  const gw: FakeUdpGateway = await FakeUdpGateway.start({
    intercept: (req, answer) => {
      const bad = (change: (b: Uint8Array) => void) => {
        const b = answer.slice();
        change(b);
        b[43] = 66; // each forgery grants another external port
        return b;
      };
      const forged = [
        bad((b) => (b[30] = b[30]! ^ 1)), // nonce
        bad((b) => (b[1] = 0x82)), // opcode PEER
        bad((b) => (b[1] = 0x01)), // a request, not a response
        bad((b) => (b[36] = 17)), // UDP answer to a TCP request
        bad((b) => (b[41] = 0x91)), // internal port 8081
        bad((b) => (b[0] = 1)), // version 1
        Uint8Array.from([...answer, 0, 0]), // not a multiple of 4
        answer.subarray(0, 56), // truncated
        Uint8Array.from({ length: 1104 }, (_, i) => answer[i] ?? 0), // over 1100 bytes
      ];
      sendFromElsewhere(answer.map((x, i) => (i === 43 ? 66 : x)), req.from)
        .then(() => forged.forEach((b) => gw.socket.send(b, req.from.port, req.from.address)))
        .then(() => gw.socket.send(answer, req.from.port, req.from.address));
      return [];
    },
  });
  const c = client(gw);
  try {
    const mapped = await c.map(TCP_8080);
    assert.equal(mapped.external.port, 8080);
  } finally {
    await c.close();
    await gw.close();
  }
});

Deno.test("PCP: a client address the gateway did not see is ADDRESS_MISMATCH, a clear error", async () => {
  const gw = await FakeUdpGateway.start({
    intercept: (_req, answer) => {
      const b = answer.slice();
      b[3] = 12;
      return [b];
    },
  });
  const c = client(gw);
  try {
    const err = await rejection(c.map(TCP_8080));
    assert.ok(err instanceof PeerError && err.code === "EPORTMAP");
    assert.match(
      err.message,
      /^Cannot map TCP port 8080 with PCP: the gateway 127\.0\.0\.1 answered result 12 \(ADDRESS_MISMATCH\); /,
    );
  } finally {
    await c.close();
    await gw.close();
  }
});

Deno.test("PCP: an epoch out of step with the clock shows the gateway lost its mappings", async () => {
  const clock = new ManualClock();
  let epoch = 5000;
  const gw = await FakeUdpGateway.start({ epoch: () => epoch });
  const c = client(gw, { clock });
  try {
    assert.equal((await c.map(TCP_8080)).gatewayRestarted, false);
    clock.advance(1_800_000);
    epoch += 1800;
    assert.equal((await c.map(TCP_8080)).gatewayRestarted, false);
    clock.advance(1_800_000);
    epoch = 40;
    assert.equal((await c.map(TCP_8080)).gatewayRestarted, true);
  } finally {
    await c.close();
    await gw.close();
  }
});

Deno.test("PCP codec: a MAP request has the RFC 6887 layout and its answer decodes", () => {
  const nonce = Uint8Array.from({ length: 12 }, (_, i) => i + 1);
  const req = encodePcpMapRequest({
    nonce,
    transport: "udp",
    clientAddress: "192.168.1.20",
    internalPort: 4000,
    externalPort: 0,
    externalAddress: "0.0.0.0",
    lifetimeS: 120,
  });
  assert.equal(req.length, 60);
  assert.deepEqual([...req.subarray(0, 8)], [2, 1, 0, 0, 0, 0, 0, 120]);
  assert.deepEqual([...req.subarray(18, 24)], [0xff, 0xff, 192, 168, 1, 20]);
  assert.equal(req[36], 17);
  const res = req.slice();
  res[1] = 0x81;
  res[43] = 7;
  res.set([198, 51, 100, 1], 56);
  new DataView(res.buffer).setUint32(8, 77);
  assert.deepEqual(decodePcpMapResponse(res, { nonce, transport: "udp", internalPort: 4000 }), {
    result: 0,
    lifetimeS: 120,
    epoch: 77,
    externalPort: 7,
    externalAddress: "198.51.100.1",
  });
});
