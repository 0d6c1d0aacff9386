// The router mapping candidate through the real NAT lab (scripts/natlab/natlab.sh, docs/natlab.md,
// docs/port-mapping.md): a terminal on host A, behind router A running miniupnpd
// (`natlab.sh upnp start`), gathers its candidates with `terminal.port_mapping = "auto"` as the
// CLI wires it: the gateway from host A's /proc/net/route, the UPnP URL by SSDP, then PCP,
// NAT-PMP or UPnP IGD. It must get a `mapped` candidate with router A's external (WAN) address,
// the lab's "internet" server must reach the terminal through it, and closing the session's mapper
// must delete the mapping.
//
// Run (as root, with the lab up; not part of the unit tests):
//   scripts/natlab/natlab.sh up --upnp
//   scripts/deno test -A tests/natlab/mapped_candidate_test.ts
// Ignored without a running lab. When the lab runs without miniupnpd this test starts it and
// stops it again at the end.
import assert from "node:assert/strict";
import { labFor, natlab } from "../support/natlab.ts";
import { netnsProbe } from "../support/netns_probe.ts";

const REPO = new URL("../../", import.meta.url).pathname;
const PROBE = `${REPO}tests/natlab/mapped_candidate_probe.ts`;
const CONNECT_PROBE = `${REPO}tests/terminal/port_mapping/miniupnpd_probe.ts`;
const PORT = 18190;

/** The parts of natlab.json (docs/natlab.md) used here. */
interface Lab {
  hosts: { a: { ns: string; ip: string; gateway: string } };
  routers: { rta: { wan: string; lan: string } };
  server: { ns: string };
  upnp: { url: string; host: string } | null;
}

const { lab: LAB } = labFor<Lab>();

/** The gathering terminal in `netns`: its JSON lines, warning events skipped. */
function terminalProbe(netns: string) {
  const probe = netnsProbe(netns, PROBE, ["gather", String(PORT)], { killAfterMs: 60_000 });
  return {
    child: probe.child,
    async next(): Promise<Record<string, unknown>> {
      for (;;) {
        const line = await probe.next();
        if (!("event" in line)) return line; // a warning: the assertion that fails shows it
      }
    },
  };
}

/** Connects from the lab's internet to `address:port` and sends "hello" (or reports why not). */
async function connectFromInternet(
  lab: Lab,
  address: string,
  port: number,
  timeoutMs: number,
): Promise<Record<string, unknown>> {
  const probe = netnsProbe(lab.server.ns, CONNECT_PROBE, [
    "connect",
    address,
    String(port),
    String(timeoutMs),
  ], { killAfterMs: timeoutMs + 20_000 });
  const line = await probe.next();
  await probe.child.status;
  return line;
}

Deno.test({
  name:
    'natlab mapped candidate: a terminal behind router A with miniupnpd and port_mapping = "auto" gets a mapped candidate with the router\'s external address, reachable from the internet, deleted on close',
  ignore: !LAB,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const startedUpnp = !LAB!.upnp;
    if (startedUpnp) await natlab("upnp", "start");
    const lab = labFor<Lab>().lab!; // read again: upnp start changed it
    assert.ok(lab.upnp, "natlab.sh upnp start left miniupnpd running");
    try {
      let external: { address: string; port: number } | undefined;
      const terminal = terminalProbe(lab.hosts.a.ns);
      try {
        const gathered = await terminal.next();
        assert.ok(gathered.candidates, `no candidates: ${JSON.stringify(gathered)}`);
        const candidates = gathered.candidates as {
          type: string;
          address: string;
          port: number;
          transport: string;
        }[];
        const mapped = candidates.find((c) => c.type === "mapped");
        assert.ok(mapped, `no mapped candidate: ${JSON.stringify(gathered)}`);
        assert.equal(mapped.address, lab.routers.rta.wan, "router A's external address");
        assert.equal(mapped.transport, "tcp");
        const mapping = gathered.mapping as {
          protocol: string;
          internal: { address: string; port: number };
        };
        assert.deepEqual(mapping.internal, { address: lab.hosts.a.ip, port: PORT });
        external = { address: mapped.address, port: mapped.port };

        assert.deepEqual(
          await connectFromInternet(lab, mapped.address, mapped.port, 5_000),
          { sent: true },
        );
        assert.deepEqual(await terminal.next(), { connected: "hello" });
        assert.deepEqual(await terminal.next(), { closed: true });
      } finally {
        await terminal.child.status;
      }
      // Deleted: the internet cannot reach host A through that port any more.
      const again = await connectFromInternet(lab, external!.address, external!.port, 3_000);
      assert.ok("error" in again, `still mapped after close: ${JSON.stringify(again)}`);
    } finally {
      if (startedUpnp) await natlab("upnp", "stop");
    }
  },
});
