/**
 * One suite every PortMappingClient passes (PCP, NAT-PMP, UPnP IGD), each against its fake
 * gateway: map, renew to the same external port, delete, delete again, close.
 */
import assert from "node:assert/strict";
import { ManualClock } from "../../support/manual_clock.ts";
import { NatPmpClient } from "../../../src/terminal/port_mapping/nat_pmp.ts";
import { PcpClient } from "../../../src/terminal/port_mapping/pcp.ts";
import type { PortMappingClient } from "../../../src/terminal/port_mapping/types.ts";
import { UpnpIgdClient } from "../../../src/terminal/port_mapping/upnp_igd.ts";
import { FakeUdpGateway } from "./fake_udp_gateway.ts";
import { FakeUpnpGateway } from "./fake_upnp_gateway.ts";

interface Setup {
  client: PortMappingClient;
  /** How many mappings the fake gateway holds. */
  held(): number;
  close(): Promise<void>;
}

const CASES: Record<string, () => Promise<Setup>> = {
  pcp: async () => {
    const gw = await FakeUdpGateway.start({ natPmp: false });
    const client = new PcpClient("127.0.0.1", {
      port: gw.port,
      localAddress: "127.0.0.1",
      clock: new ManualClock(),
    });
    return { client, held: () => gw.mappings.size, close: () => gw.close() };
  },
  "nat-pmp": async () => {
    const gw = await FakeUdpGateway.start({ pcp: false });
    const client = new NatPmpClient("127.0.0.1", {
      port: gw.port,
      localAddress: "127.0.0.1",
      clock: new ManualClock(),
    });
    return { client, held: () => gw.mappings.size, close: () => gw.close() };
  },
  upnp: () => {
    const gw = new FakeUpnpGateway();
    const client = new UpnpIgdClient(gw.rootUrl, { clock: new ManualClock() });
    return Promise.resolve({ client, held: () => gw.mappings.size, close: () => gw.close() });
  },
};

for (const [name, make] of Object.entries(CASES)) {
  Deno.test(`${name} client: maps, renews to the same port, deletes, deletes again, closes`, async () => {
    const { client, held, close } = await make();
    const request = { transport: "tcp" as const, internalPort: 5555, lifetimeS: 600 };
    try {
      assert.equal(client.protocol, name);
      const first = await client.map(request);
      assert.equal(first.internal.port, 5555);
      assert.equal(first.internal.address, "127.0.0.1");
      assert.ok(first.external.port > 0);
      assert.match(first.external.address, /^\d+\.\d+\.\d+\.\d+$/);
      assert.ok(first.lifetimeS > 0 && first.lifetimeS <= 600);
      assert.equal(held(), 1);
      const again = await client.map(request);
      assert.deepEqual(again.external, first.external);
      assert.equal(held(), 1);
      await client.unmap(request);
      assert.equal(held(), 0);
      await client.unmap(request);
    } finally {
      await client.close();
      await close();
    }
  });
}
