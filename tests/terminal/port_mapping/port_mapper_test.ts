import assert from "node:assert/strict";
import { PeerError } from "../../../src/errors.ts";
import { PORT_MAPPING_MIN_RENEW_MS } from "../../../src/limits.ts";
import type { LogLevel } from "../../../src/log.ts";
import type { RandomSource } from "../../../src/runtime.ts";
import { ManualClock } from "../../support/manual_clock.ts";
import {
  PortMapper,
  type PortMapperOptions,
  type PortMapping,
} from "../../../src/terminal/port_mapping/port_mapper.ts";
import { FakeUdpGateway, type FakeUdpGatewayOptions } from "./fake_udp_gateway.ts";
import { FakeUpnpGateway } from "./fake_upnp_gateway.ts";

const UDP_4000 = { transport: "udp" as const, internalPort: 4000 };

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

/** A logger whose records a test can await (the mapper's renewals are events). */
function recorder() {
  const records: { level: string; message: string }[] = [];
  let waiters: { n: number; match: string; resolve: () => void }[] = [];
  const count = (match: string) => records.filter((r) => r.message.includes(match)).length;
  return {
    records,
    logger: {
      log(level: LogLevel, message: string) {
        records.push({ level, message });
        const ready = waiters.filter((w) => count(w.match) >= w.n);
        waiters = waiters.filter((w) => count(w.match) < w.n);
        for (const w of ready) w.resolve();
      },
    },
    /** Resolves once `n` records contain `match`. */
    seen(match: string, n: number): Promise<void> {
      if (count(match) >= n) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ n, match, resolve }));
    },
  };
}

let nonceCounter = 0;
const random: RandomSource = (n) =>
  n === 2 ? new Uint8Array([0x80, 0]) : new Uint8Array(n).fill(++nonceCounter & 0xff);

async function setup(udp: FakeUdpGatewayOptions | undefined, extra: PortMapperOptions = {}) {
  const gw = udp ? await FakeUdpGateway.start(udp) : undefined;
  const clock = new ManualClock();
  const changes: PortMapping[] = [];
  const lost: PeerError[] = [];
  const log = recorder();
  const mapper = new PortMapper({
    gateway: "127.0.0.1",
    gatewayPort: gw?.port ?? 9,
    localAddress: "127.0.0.1",
    clock,
    random,
    onChange: (m) => changes.push(m),
    onLost: (e) => lost.push(e),
    logger: log.logger,
    ...extra,
  });
  return { gw, clock, mapper, changes, lost, log };
}

Deno.test("mapper: PCP is preferred when the gateway speaks it", async () => {
  const { gw, mapper } = await setup({ externalPort: () => 40000 });
  try {
    const mapping = await mapper.map(UDP_4000);
    assert.deepEqual(mapping, {
      protocol: "pcp",
      transport: "udp",
      external: { address: "203.0.113.7", port: 40000 },
      internal: { address: "127.0.0.1", port: 4000 },
      lifetimeMs: 3_600_000,
    });
    assert.deepEqual(mapper.mapping, mapping);
  } finally {
    await mapper.close();
    await gw!.close();
  }
  assert.equal(gw!.mappings.size, 0, "close deleted the mapping");
  assert.equal(mapper.mapping, undefined);
});

Deno.test("mapper: a NAT-PMP-only gateway is used at once after PCP's UNSUPP_VERSION", async () => {
  const { gw, mapper, clock } = await setup({ pcp: false });
  try {
    const mapping = await mapper.map(UDP_4000);
    assert.equal(mapping.protocol, "nat-pmp");
    assert.equal(clock.now(), new ManualClock().now(), "no time passed");
  } finally {
    await mapper.close();
    await gw!.close();
  }
  assert.equal(gw!.mappings.size, 0);
});

Deno.test("mapper: silent PCP and NAT-PMP each get the protocol timeout, then UPnP maps", async () => {
  const upnp = new FakeUpnpGateway({ reservePort: 50000 });
  const { gw, mapper, clock } = await setup({ intercept: () => [] }, {
    upnpUrl: upnp.rootUrl,
    protocolTimeoutMs: 4000,
  });
  try {
    const result = mapper.map(UDP_4000);
    await gw!.received(1); // PCP
    await clock.sleeping(2); // its retransmission and the protocol timeout
    clock.advance(4000);
    await gw!.received(2);
    assert.equal(gw!.requests[1]!.bytes[0], 0, "then NAT-PMP");
    await clock.sleeping(2);
    clock.advance(4000);
    const mapping = await result;
    assert.equal(mapping.protocol, "upnp");
    assert.deepEqual(mapping.external, { address: "203.0.113.9", port: 50000 });
    assert.equal(gw!.requests.filter((r) => r.bytes[0] === 2).length, 1, "PCP IRT is 3 s: one");
  } finally {
    await mapper.close();
    await gw!.close();
    await upnp.close();
  }
  assert.equal(upnp.mappings.size, 0, "close deleted the UPnP mapping");
});

Deno.test("mapper: when every protocol refuses, one error gives each reason", async () => {
  const upnp = new FakeUpnpGateway();
  const { gw, mapper } = await setup({
    intercept: (_req, answer) => {
      const b = answer.slice();
      if (b[0] === 2) b[3] = 2; // PCP NOT_AUTHORIZED
      else if (b[1] !== 128) b[3] = 2; // NAT-PMP refused
      return [b];
    },
  }, { upnpUrl: upnp.rootUrl });
  try {
    const err = await rejection(mapper.map({ transport: "tcp", internalPort: 80 }));
    assert.ok(err instanceof PeerError);
    assert.equal(err.code, "EPORTMAP");
    assert.equal(
      err.message,
      `Cannot map TCP port 80 on the router: PCP: the gateway 127.0.0.1 answered result 2 (NOT_AUTHORIZED), NAT-PMP: the gateway 127.0.0.1 answered result 2 (not authorized or refused), UPnP IGD: the gateway 127.0.0.1:${upnp.port} answered UPnP error 606 Action not authorized; enable PCP, NAT-PMP or UPnP on the router, or forward the port by hand`,
    );
    assert.ok(err.cause instanceof AggregateError);
  } finally {
    await mapper.close();
    await gw!.close();
    await upnp.close();
  }
});

Deno.test("mapper: without a gateway or UPnP URL it says what to configure", async () => {
  const mapper = new PortMapper({});
  const err = await rejection(mapper.map(UDP_4000));
  assert.ok(err instanceof PeerError && err.code === "EPORTMAP");
  assert.match(err.message, /neither a gateway address nor a UPnP URL is known; set them/);
});

Deno.test("mapper: the lease is renewed at half its lifetime on the injected clock", async () => {
  let external = 40000;
  let epoch = 100;
  const { gw, mapper, clock, changes, log } = await setup({
    maxLifetimeS: 120,
    externalPort: () => external,
    epoch: () => epoch,
  });
  try {
    await mapper.map(UDP_4000);
    await clock.sleeping();
    assert.equal(clock.nextWakeIn, 60_000);
    epoch += 60;
    clock.advance(60_000);
    await log.seen("port mapping renewed", 1);
    await clock.sleeping();
    assert.equal(clock.nextWakeIn, 60_000, "renewed: the next one is due in 60 s again");
    assert.equal(changes.length, 0, "same mapping: no change reported");
    const nonces = gw!.requests.map((r) => r.bytes.subarray(24, 36).join());
    assert.equal(nonces[0], nonces[1]);

    // The router restarts and loses the mapping; the renewal gets another port.
    gw!.mappings.clear();
    external = 40001;
    epoch = 3;
    clock.advance(60_000);
    await log.seen("port mapping renewed", 2);
    assert.equal(changes.length, 1);
    assert.equal(changes[0]!.external.port, 40001);
    assert.equal(mapper.mapping?.external.port, 40001);
  } finally {
    await mapper.close();
    await gw!.close();
  }
});

Deno.test("mapper: renewals that fail until the lease ends report the mapping lost", async () => {
  let silent = false;
  const { gw, mapper, clock, lost, log } = await setup({
    maxLifetimeS: 60,
    intercept: (_req, answer) => (silent ? [] : [answer]),
  }, { protocolTimeoutMs: 1000 });
  try {
    await mapper.map(UDP_4000);
    silent = true;
    // Renew at 30 s, then at half the remaining time, never closer than the floor.
    const wakes: number[] = [];
    for (let n = 1; !lost.length; n++) {
      await clock.sleeping();
      wakes.push(clock.nextWakeIn!);
      clock.advance(clock.nextWakeIn!);
      await gw!.received(n + 1);
      await clock.sleeping(2); // the protocol timeout and PCP's retransmission
      clock.advance(1000);
      await log.seen("Cannot renew", n);
    }
    assert.deepEqual(wakes, [30_000, 14_500, 6_750, 5_000]);
    assert.equal(mapper.mapping, undefined);
    assert.equal(lost[0]!.code, "ETIMEOUT");
    assert.match(
      lost[0]!.message,
      /^Cannot renew the port mapping with PCP: .+; check the router$/,
    );
  } finally {
    await mapper.close();
    await gw!.close();
  }
});

Deno.test("mapper: a tiny lifetime cannot make it renew in a loop", async () => {
  const { gw, mapper, clock } = await setup({ maxLifetimeS: 1 });
  try {
    await mapper.map(UDP_4000);
    await clock.sleeping();
    assert.equal(clock.nextWakeIn, PORT_MAPPING_MIN_RENEW_MS);
  } finally {
    await mapper.close();
    await gw!.close();
  }
});

Deno.test("mapper: aborting its signal deletes the mapping and stops renewing", async () => {
  const abort = new AbortController();
  const { gw, mapper, clock } = await setup({}, { signal: abort.signal });
  try {
    await mapper.map(UDP_4000);
    assert.equal(gw!.mappings.size, 1);
    abort.abort();
    await mapper.close();
    assert.equal(gw!.mappings.size, 0);
    assert.equal(clock.sleepers, 0);
  } finally {
    await gw!.close();
  }
});

Deno.test("mapper: aborting map() rejects with the reason and leaves nothing behind", async () => {
  const { gw, mapper, clock } = await setup({ intercept: () => [] });
  try {
    const abort = new AbortController();
    const result = rejection(mapper.map(UDP_4000, { signal: abort.signal }));
    await gw!.received(1);
    abort.abort(new Error("bye"));
    assert.equal(((await result) as Error).message, "bye");
    await mapper.close();
    assert.equal(clock.sleepers, 0);
  } finally {
    await gw!.close();
  }
});

Deno.test("mapper: a permanent UPnP lease is not renewed but still deleted on close", async () => {
  const upnp = new FakeUpnpGateway({ onlyPermanent: true });
  const clock = new ManualClock();
  const mapper = new PortMapper({ upnpUrl: upnp.rootUrl, clock });
  try {
    const mapping = await mapper.map({ transport: "tcp", internalPort: 8080 });
    assert.equal(mapping.protocol, "upnp");
    assert.equal(mapping.lifetimeMs, 0);
    assert.equal(clock.sleepers, 0, "no renewal is scheduled");
    await mapper.close();
    assert.equal(upnp.mappings.size, 0);
  } finally {
    await upnp.close();
  }
});
