import assert from "node:assert/strict";
import { PeerError } from "../../../src/errors.ts";
import type { LogLevel } from "../../../src/log.ts";
import { ManualClock } from "../../support/manual_clock.ts";
import { gatherCandidates } from "../../../src/terminal/gather_candidates.ts";
import {
  SessionPortMapper,
  type SessionPortMapperOptions,
} from "../../../src/terminal/port_mapping/session_port_mapper.ts";
import type {
  MappedPort,
  PortMappingClient,
  PortMappingProtocol,
  PortMappingRequest,
} from "../../../src/terminal/port_mapping/types.ts";
import { FakeUdpGateway } from "./fake_udp_gateway.ts";

/** A router's port mapping client that grants what it is told and records every call. */
class FakeClient implements PortMappingClient {
  readonly maps: PortMappingRequest[] = [];
  readonly unmaps: PortMappingRequest[] = [];
  closed = 0;
  constructor(
    readonly protocol: PortMappingProtocol,
    readonly grant: (request: PortMappingRequest, call: number) => MappedPort | PeerError,
  ) {}
  map(request: PortMappingRequest): Promise<MappedPort> {
    this.maps.push(request);
    const out = this.grant(request, this.maps.length);
    return out instanceof PeerError ? Promise.reject(out) : Promise.resolve(out);
  }
  unmap(request: PortMappingRequest): Promise<void> {
    this.unmaps.push(request);
    return Promise.resolve();
  }
  close(): Promise<void> {
    this.closed++;
    return Promise.resolve();
  }
}

const granted = (request: PortMappingRequest): MappedPort => ({
  external: { address: "203.0.113.7", port: 40000 },
  internal: { address: "192.168.1.20", port: request.internalPort },
  lifetimeS: request.lifetimeS,
  gatewayRestarted: false,
});

/** A logger whose records a test can await. */
function recorder() {
  const records: { level: LogLevel; message: string }[] = [];
  let waiters: { match: string; resolve: () => void }[] = [];
  return {
    records,
    logger: {
      log(level: LogLevel, message: string) {
        records.push({ level, message });
        const ready = waiters.filter((w) => message.includes(w.match));
        waiters = waiters.filter((w) => !message.includes(w.match));
        for (const w of ready) w.resolve();
      },
    },
    seen(match: string): Promise<void> {
      if (records.some((r) => r.message.includes(match))) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ match, resolve }));
    },
  };
}

/** A configured gateway and URL, and discovery that must not happen. */
const noDiscovery: SessionPortMapperOptions = {
  gateway: "192.168.1.1",
  upnpUrl: "http://192.168.1.1:5000/rootDesc.xml",
  findGateway: () => Promise.reject(new Error("the gateway was configured: no discovery")),
  findUpnpUrl: () => Promise.reject(new Error("the URL was configured: no SSDP")),
};

Deno.test("the terminal's port is mapped for the session and the router's address is its candidate", async () => {
  const client = new FakeClient("pcp", granted);
  const mapper = new SessionPortMapper({ clients: [client], ...noDiscovery });
  try {
    const candidates = await gatherCandidates({
      transport: "udp",
      listenPort: 4000,
      advertise: "192.168.1.20",
      mapper,
    });
    assert.deepEqual(
      candidates.map((c) => [c.type, c.address, c.port]),
      [["host", "192.168.1.20", 4000], ["mapped", "203.0.113.7", 40000]],
    );
    assert.deepEqual(client.maps, [{
      transport: "udp",
      internalPort: 4000,
      externalPort: undefined,
      lifetimeS: 3600,
    }], "asked for the lease the terminal wants");
    assert.equal(mapper.mapping?.external.address, "203.0.113.7");
    assert.equal(client.unmaps.length, 0, "kept while the session lasts");
  } finally {
    await mapper.close();
  }
  assert.equal(client.unmaps.length, 1, "the session's end deletes the mapping");
  assert.equal(client.unmaps[0]!.internalPort, 4000);
  assert.ok(client.closed >= 1, "and closes the sockets");
  assert.equal(mapper.mapping, undefined);
  await mapper.close(); // twice is harmless
  assert.equal(client.unmaps.length, 1);
});

Deno.test("a router that maps nothing leaves the terminal with its other candidates", async () => {
  const client = new FakeClient(
    "pcp",
    () => new PeerError("EPORTMAP", "Cannot map: the gateway answered NOT_AUTHORIZED; enable PCP"),
  );
  const log = recorder();
  const mapperLog = recorder();
  const mapper = new SessionPortMapper({
    clients: [client],
    logger: mapperLog.logger,
    ...noDiscovery,
  });
  try {
    const candidates = await gatherCandidates({
      transport: "tcp",
      listenPort: 4000,
      advertise: "192.168.1.20",
      mapper,
      logger: log.logger,
    });
    assert.deepEqual(candidates.map((c) => c.type), ["host"]);
    assert.ok(log.records.some((r) => r.message.startsWith("no router mapping: ")));
    // The user asked for a mapping: the refusal is a warning, with what to do.
    assert.deepEqual(mapperLog.records.filter((r) => r.level === "warn"), [{
      level: "warn",
      message:
        "Cannot map TCP port 4000 on the router: PCP: the gateway answered NOT_AUTHORIZED; enable PCP, NAT-PMP or UPnP on the router, or forward the port by hand",
    }]);
  } finally {
    await mapper.close();
  }
  assert.equal(client.unmaps.length, 0, "nothing to delete");
});

Deno.test('"auto": the default gateway and the SSDP URL are found and asked for the mapping', async () => {
  const gw = await FakeUdpGateway.start({ externalPort: () => 41000 });
  const searched: string[] = [];
  const mapper = new SessionPortMapper({
    protocols: ["pcp", "nat-pmp", "upnp"],
    findGateway: () => Promise.resolve("127.0.0.1"),
    findUpnpUrl: (gateway) => {
      searched.push(gateway);
      return Promise.resolve(undefined); // no UPnP on this router
    },
    gatewayPort: gw.port,
    localAddress: "127.0.0.1",
  });
  try {
    const mapped = await mapper.map({ transport: "udp", internalPort: 4000, lifetimeS: 3600 });
    assert.deepEqual(mapped.external, { address: "203.0.113.7", port: 41000 });
    assert.equal(mapper.mapping?.protocol, "pcp");
    assert.deepEqual(searched, ["127.0.0.1"], "SSDP asked the gateway it found");
    assert.equal(gw.mappings.size, 1);
  } finally {
    await mapper.close();
    await gw.close();
  }
  assert.equal(gw.mappings.size, 0, "deleted on the router at the session's end");
});

Deno.test("no gateway and no UPnP URL: no mapping, and the error says what to set", async () => {
  const mapper = new SessionPortMapper({
    findGateway: () => Promise.resolve(undefined),
    findUpnpUrl: () => Promise.reject(new Error("no gateway to search at")),
  });
  await assert.rejects(
    mapper.map({ transport: "udp", internalPort: 4000, lifetimeS: 3600 }),
    (err: unknown) =>
      err instanceof PeerError && err.code === "EPORTMAP" &&
      /neither a gateway address nor a UPnP URL is known/.test(err.message),
  );
  await mapper.close();
});

Deno.test("a configured UPnP URL and protocols skip discovery", async () => {
  const found: string[] = [];
  const mapper = new SessionPortMapper({
    upnpUrl: "http://127.0.0.1:9/rootDesc.xml",
    protocols: ["upnp"],
    findGateway: () => {
      found.push("gateway");
      return Promise.resolve("127.0.0.1");
    },
    findUpnpUrl: () => {
      found.push("ssdp");
      return Promise.resolve(undefined);
    },
  });
  await mapper.prepare();
  assert.deepEqual(found, [], "UPnP only, with its URL: nothing to find");
  await mapper.close();
});

Deno.test("a lost mapping is a warning, not a crash, and the session goes on", async () => {
  const clock = new ManualClock();
  const log = recorder();
  const lost: PeerError[] = [];
  const client = new FakeClient(
    "nat-pmp",
    (request, call) =>
      call === 1
        ? { ...granted(request), lifetimeS: 10 }
        : new PeerError("ETIMEOUT", "Cannot renew: the router is gone; check the router"),
  );
  const mapper = new SessionPortMapper({
    clients: [client],
    clock,
    logger: log.logger,
    onLost: (error) => lost.push(error),
    ...noDiscovery,
  });
  try {
    await mapper.map({ transport: "udp", internalPort: 4000, lifetimeS: 3600 });
    await clock.sleeping(1);
    clock.advance(5_000); // first renewal at half the lease: fails
    await log.seen("Cannot renew");
    clock.advance(5_000); // second, at the lease's end: fails, the mapping is gone
    await log.seen("port mapping lost");
    assert.equal(lost.length, 1);
    assert.equal(lost[0]!.code, "ETIMEOUT");
    assert.deepEqual(
      log.records.filter((r) => r.message.startsWith("port mapping lost")).map((r) => r.level),
      ["warn"],
    );
    assert.equal(mapper.mapping, undefined);
  } finally {
    await mapper.close();
  }
  assert.equal(client.unmaps.length, 0, "a lost mapping is not deleted");
});

Deno.test("a mapper closed while it searches gives no mapping and leaves nothing open", async () => {
  let release!: (gateway: string | undefined) => void;
  const client = new FakeClient("pcp", granted);
  const mapper = new SessionPortMapper({
    clients: [client],
    findGateway: () => new Promise((resolve) => (release = resolve)),
    findUpnpUrl: () => Promise.resolve(undefined),
  });
  const mapping = mapper.map({ transport: "udp", internalPort: 4000, lifetimeS: 3600 });
  const closed = mapper.close();
  release("127.0.0.1");
  await assert.rejects(mapping, /closed/);
  await closed;
  assert.equal(client.maps.length, 0, "no request reached the router");
});

Deno.test("one session maps one port: a second map() is a bug, even while the first searches", async () => {
  const client = new FakeClient("pcp", granted);
  const mapper = new SessionPortMapper({ clients: [client], ...noDiscovery });
  try {
    const first = mapper.map({ transport: "udp", internalPort: 4000, lifetimeS: 3600 });
    await assert.rejects(
      mapper.map({ transport: "udp", internalPort: 4001, lifetimeS: 3600 }),
      /already called/,
    );
    await first;
    assert.deepEqual(client.maps.map((m) => m.internalPort), [4000]);
  } finally {
    await mapper.close();
  }
});
