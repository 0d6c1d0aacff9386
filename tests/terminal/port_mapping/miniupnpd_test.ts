/**
 * Port mapping against a REAL miniupnpd (UPnP IGD, NAT-PMP and PCP) in the NAT lab
 * (`scripts/natlab/natlab.sh up --upnp`). Runs only when the lab's `natlab.json` exists
 * (`$NATLAB_DIR/natlab.json`, else `<repo>/.natlab/natlab.json`) and names a miniupnpd URL;
 * otherwise the tests are ignored. docs/port-mapping.md says what the file must hold.
 *
 * For each protocol: the LAN host maps a TCP port with that protocol only, a server on the
 * lab's "internet" connects to the external address and port, and the mapper's close deletes
 * the mapping.
 */
import assert from "node:assert/strict";
import { netnsProbe } from "../../support/netns_probe.ts";

interface Lab {
  upnpUrl: string;
  gateway: string;
  lan: string;
  internet: string;
}

/** The parts of the lab's natlab.json (scripts/natlab/natlab.sh, docs/natlab.md) used here. */
interface LabFile {
  hosts: { a: { ns: string } };
  server: { ns: string };
  upnp?: { url: string; host: string };
}

function loadLab(): Lab | undefined {
  const dir = Deno.env.get("NATLAB_DIR") ?? new URL("../../../.natlab", import.meta.url).pathname;
  let json: LabFile;
  try {
    json = JSON.parse(Deno.readTextFileSync(`${dir}/natlab.json`));
  } catch {
    return undefined;
  }
  if (!json.upnp) return undefined; // the lab runs without miniupnpd
  return {
    upnpUrl: json.upnp.url,
    gateway: json.upnp.host,
    lan: json.hosts.a.ns,
    internet: json.server.ns,
  };
}

const LAB = loadLab();
if (!LAB && Deno.env.get("MAILPEER_REQUIRE_NATLAB")) {
  throw new Error(
    "MAILPEER_REQUIRE_NATLAB is set but the NAT lab runs no miniupnpd: scripts/test starts it",
  );
}
const PROBE = new URL("./miniupnpd_probe.ts", import.meta.url).pathname;

/** Runs the probe in `netns`; yields its JSON lines as they come. */
function probe(netns: string, args: string[]) {
  return netnsProbe(netns, PROBE, args);
}

const PORTS = { upnp: 18180, "nat-pmp": 18181, pcp: 18182 } as const;

for (const protocol of ["upnp", "nat-pmp", "pcp"] as const) {
  Deno.test({
    name:
      `miniupnpd: a ${protocol} mapping lets the internet reach the LAN host, and close deletes it`,
    ignore: !LAB,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      const lab = LAB!;
      const port = PORTS[protocol];
      const lan = probe(lab.lan, ["map", protocol, lab.gateway, lab.upnpUrl, String(port)]);
      try {
        const first = await lan.next();
        assert.ok(first.mapping, `no mapping: ${JSON.stringify(first)}`);
        const mapping = first.mapping as {
          protocol: string;
          external: { address: string; port: number };
        };
        assert.equal(mapping.protocol, protocol);
        const internet = probe(lab.internet, [
          "connect",
          mapping.external.address,
          String(mapping.external.port),
        ]);
        assert.deepEqual(await internet.next(), { sent: true });
        await internet.child.status;
        assert.deepEqual(await lan.next(), { connected: "hello" });
        assert.deepEqual(await lan.next(), { closed: true });
      } finally {
        await lan.child.status;
      }
    },
  });
}
