import assert from "node:assert/strict";
import { portMapperFromConfig } from "../../src/cli/client.ts";
import type { MailpeerEvent } from "../../src/events.ts";
import { FakeUdpGateway } from "../terminal/port_mapping/fake_udp_gateway.ts";

Deno.test('port_mapping = "off" makes no mapper: the router is never asked', () => {
  assert.equal(portMapperFromConfig("off", { onEvent: () => {} }), undefined);
});

Deno.test("the configured gateway and protocols are the ones asked", async () => {
  const gw = await FakeUdpGateway.start({ pcp: false, externalPort: () => 42000 });
  const mapper = portMapperFromConfig(
    { gateway: "127.0.0.1", protocols: ["nat-pmp"] },
    {
      onEvent: () => {},
      gatewayPort: gw.port,
      localAddress: "127.0.0.1",
      findGateway: () => Promise.reject(new Error("configured: not searched")),
    },
  )!;
  try {
    const mapped = await mapper.map({ transport: "udp", internalPort: 4000, lifetimeS: 3600 });
    assert.equal(mapped.external.port, 42000);
    assert.equal(mapper.mapping?.protocol, "nat-pmp");
    assert.ok(
      gw.requests.every((r) => r.bytes[0] === 0),
      "NAT-PMP (version 0) only: no PCP (version 2) request first",
    );
  } finally {
    await mapper.close();
    await gw.close();
  }
});

Deno.test("when the mapping does not work the user gets a warning event saying what to do", async () => {
  const events: MailpeerEvent[] = [];
  const mapper = portMapperFromConfig(
    { protocols: ["pcp", "nat-pmp", "upnp"] },
    { onEvent: (e) => events.push(e), findGateway: () => Promise.resolve(undefined) },
  )!;
  await assert.rejects(mapper.map({ transport: "tcp", internalPort: 4000, lifetimeS: 3600 }));
  await mapper.close();
  assert.deepEqual(events, [{
    event: "warning",
    message:
      "Cannot map TCP port 4000 on the router: neither a gateway address nor a UPnP URL is known; set them or forward the port by hand",
  }]);
});
