import assert from "node:assert/strict";
import { PeerError } from "../../../src/errors.ts";
import { ManualClock } from "../../support/manual_clock.ts";
import {
  decodeNatPmpMapResponse,
  encodeNatPmpMapRequest,
  NatPmpClient,
  natPmpSchedule,
} from "../../../src/terminal/port_mapping/nat_pmp.ts";
import { FakeUdpGateway, sendFromElsewhere } from "./fake_udp_gateway.ts";

const UDP_4000 = { transport: "udp" as const, internalPort: 4000, lifetimeS: 7200 };

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

function client(gateway: FakeUdpGateway, clock = new ManualClock()) {
  return new NatPmpClient("127.0.0.1", { port: gateway.port, clock, localAddress: "127.0.0.1" });
}

/** A 16-byte mapping answer. */
function mapAnswer(op: number, internal: number, external: number, lifetime: number, epoch = 1) {
  const out = new Uint8Array(16);
  const v = new DataView(out.buffer);
  out[1] = 128 + op;
  v.setUint32(4, epoch);
  v.setUint16(8, internal);
  v.setUint16(10, external);
  v.setUint32(12, lifetime);
  return out;
}

Deno.test("NAT-PMP: the terminal gets a UDP mapping with the router's external address", async () => {
  const gw = await FakeUdpGateway.start({ pcp: false, externalPort: () => 40000 });
  const c = client(gw);
  try {
    const mapped = await c.map(UDP_4000);
    assert.deepEqual(mapped, {
      external: { address: "203.0.113.7", port: 40000 },
      internal: { address: "127.0.0.1", port: 4000 },
      lifetimeS: 3600,
      gatewayRestarted: false,
    });
    assert.deepEqual(gw.mappings.get("udp/4000")?.external, 40000);
    await c.unmap(UDP_4000);
    assert.equal(gw.mappings.size, 0, "lifetime 0 deletes the mapping");
    const last = gw.requests.at(-1)!.bytes;
    assert.deepEqual([...last], [0, 1, 0, 0, 0x0f, 0xa0, 0, 0, 0, 0, 0, 0]);
  } finally {
    await c.close();
    await gw.close();
  }
});

Deno.test("NAT-PMP: requests are retransmitted at 250 ms doubling, then the terminal gives up", async () => {
  const gw = await FakeUdpGateway.start({ intercept: () => [] });
  const clock = new ManualClock();
  const c = new NatPmpClient("127.0.0.1", {
    port: gw.port,
    clock,
    localAddress: "127.0.0.1",
    requests: 4,
  });
  try {
    const result = rejection(c.map(UDP_4000));
    const waits: number[] = [];
    for (let n = 1; n <= 4; n++) {
      await gw.received(n);
      await clock.sleeping();
      waits.push(clock.nextWakeIn!);
      clock.advance(clock.nextWakeIn!);
    }
    assert.deepEqual(waits, [250, 500, 1000, 2000]);
    const err = await result;
    assert.ok(err instanceof PeerError);
    assert.equal(err.code, "ETIMEOUT");
    assert.match(err.message, /^Cannot map UDP port 4000 with NAT-PMP: .*4 requests.*; check/);
    assert.equal(gw.requests.length, 4);
  } finally {
    await c.close();
    await gw.close();
  }
});

Deno.test("NAT-PMP: the default schedule is RFC 6886's 250 ms doubling", () => {
  assert.deepEqual([0, 1, 2, 8].map(natPmpSchedule), [250, 500, 1000, 64_000]);
});

Deno.test("NAT-PMP: a dropped answer is made up by the retransmission", async () => {
  let drop = true;
  const gw = await FakeUdpGateway.start({
    intercept: (_req, answer) => (drop && answer[1] !== 128 ? ((drop = false), []) : [answer]),
  });
  const clock = new ManualClock();
  const c = client(gw, clock);
  try {
    const mapped = c.map(UDP_4000);
    await gw.received(1);
    await clock.sleeping();
    clock.advance(250);
    assert.equal((await mapped).external.port, 4000);
  } finally {
    await c.close();
    await gw.close();
  }
});

Deno.test("NAT-PMP attacker: an answer from another address or port is ignored", async () => {
  const gw: FakeUdpGateway = await FakeUdpGateway.start({
    intercept: (req, answer) => {
      if (answer[1] === 128) return [answer];
      // A forged grant from another port of the LAN arrives first, then the gateway's.
      const forged = mapAnswer(1, 4000, 6666, 99999);
      sendFromElsewhere(forged, req.from)
        .then(() => sendFromElsewhere(forged, req.from, "127.0.0.1"))
        .then(() => gw.socket.send(answer, req.from.port, req.from.address));
      return [];
    },
  });
  const c = client(gw);
  try {
    const mapped = await c.map(UDP_4000);
    assert.equal(mapped.external.port, 4000);
    assert.equal(mapped.lifetimeS, 3600);
  } finally {
    await c.close();
    await gw.close();
  }
});

Deno.test("NAT-PMP attacker: wrong version, opcode, internal port, length or size are ignored", async () => {
  const gw = await FakeUdpGateway.start({
    intercept: (_req, answer) => {
      if (answer[1] === 128) return [answer];
      const wrongVersion = answer.slice();
      wrongVersion[0] = 2;
      const oversized = new Uint8Array(1200);
      oversized.set(mapAnswer(1, 4000, 6666, 60));
      return [
        wrongVersion,
        mapAnswer(2, 4000, 6666, 60), // a TCP answer to a UDP request
        mapAnswer(1, 4001, 6666, 60), // another internal port
        mapAnswer(1, 4000, 6666, 60).subarray(0, 12), // truncated
        mapAnswer(1, 4000, 6666, 60).subarray(0, 1), // garbage
        oversized,
        answer,
      ];
    },
  });
  const c = client(gw);
  try {
    assert.equal((await c.map(UDP_4000)).external.port, 4000);
  } finally {
    await c.close();
    await gw.close();
  }
});

Deno.test("NAT-PMP: a refusal is a PeerError EPORTMAP that names the result", async () => {
  const gw = await FakeUdpGateway.start({
    intercept: (_req, answer) => {
      if (answer[1] === 128) return [answer];
      const refused = answer.slice();
      refused[3] = 2;
      return [refused];
    },
  });
  const c = client(gw);
  try {
    const err = await rejection(c.map(UDP_4000));
    assert.ok(err instanceof PeerError);
    assert.equal(err.code, "EPORTMAP");
    assert.match(
      err.message,
      /^Cannot map UDP port 4000 with NAT-PMP: the gateway 127\.0\.0\.1 answered result 2 \(not authorized or refused\); .+/,
    );
  } finally {
    await c.close();
    await gw.close();
  }
});

Deno.test("NAT-PMP: a grant of port 0 or lifetime 0 is refused, not believed", async () => {
  const gw = await FakeUdpGateway.start({
    intercept: (_req, answer) => (answer[1] === 128 ? [answer] : [mapAnswer(1, 4000, 0, 60)]),
  });
  const c = client(gw);
  try {
    const err = await rejection(c.map(UDP_4000));
    assert.ok(err instanceof PeerError && err.code === "EPORTMAP");
  } finally {
    await c.close();
    await gw.close();
  }
});

Deno.test("NAT-PMP: an epoch that went back shows a gateway restart", async () => {
  const clock = new ManualClock();
  let epoch = 1000;
  const gw = await FakeUdpGateway.start({ epoch: () => epoch });
  const c = client(gw, clock);
  try {
    assert.equal((await c.map(UDP_4000)).gatewayRestarted, false);
    clock.advance(1800_000);
    epoch = 1000 + 1800;
    assert.equal((await c.map(UDP_4000)).gatewayRestarted, false, "epoch moved with the clock");
    clock.advance(1800_000);
    epoch = 30; // rebooted 30 s ago
    assert.equal((await c.map(UDP_4000)).gatewayRestarted, true);
  } finally {
    await c.close();
    await gw.close();
  }
});

Deno.test("NAT-PMP: an aborted request rejects with the signal's reason", async () => {
  const gw = await FakeUdpGateway.start({ intercept: () => [] });
  const c = client(gw);
  try {
    const abort = new AbortController();
    const result = rejection(c.map(UDP_4000, { signal: abort.signal }));
    await gw.received(1);
    abort.abort(new Error("stop"));
    assert.equal(((await result) as Error).message, "stop");
  } finally {
    await c.close();
    await gw.close();
  }
});

Deno.test("NAT-PMP codec: a mapping request decodes as the gateway reads it", () => {
  const bytes = encodeNatPmpMapRequest("tcp", {
    internalPort: 8080,
    externalPort: 18080,
    lifetimeS: 3600,
  });
  assert.deepEqual([...bytes], [0, 2, 0, 0, 0x1f, 0x90, 0x46, 0xa0, 0, 0, 0x0e, 0x10]);
  assert.deepEqual(decodeNatPmpMapResponse(mapAnswer(2, 8080, 18080, 3600, 7), "tcp", 8080), {
    result: 0,
    epoch: 7,
    internalPort: 8080,
    externalPort: 18080,
    lifetimeS: 3600,
  });
});
