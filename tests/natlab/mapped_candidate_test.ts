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

const REPO = new URL("../../", import.meta.url).pathname;
const NATLAB = `${REPO}scripts/natlab/natlab.sh`;
const PROBE = `${REPO}tests/natlab/mapped_candidate_probe.ts`;
const PORT = 18190;

/** The parts of natlab.json (docs/natlab.md) used here. */
interface Lab {
  hosts: { a: { ns: string; ip: string; gateway: string } };
  routers: { rta: { wan: string; lan: string } };
  server: { ns: string };
  upnp: { url: string; host: string } | null;
}

function labFile(): string {
  return `${Deno.env.get("NATLAB_DIR") ?? `${REPO}.natlab`}/natlab.json`;
}

/** natlab.json of a running lab, if this user may read it. */
function runningLab(): Lab | undefined {
  try {
    return JSON.parse(Deno.readTextFileSync(labFile()));
  } catch {
    return undefined;
  }
}
const LAB = runningLab();
if (!LAB && Deno.env.get("MAILPEER_REQUIRE_NATLAB")) {
  throw new Error(
    "MAILPEER_REQUIRE_NATLAB is set but the NAT lab is not running: scripts/test starts it",
  );
}

async function natlab(...args: string[]): Promise<void> {
  const out = await new Deno.Command("bash", { args: [NATLAB, ...args], stderr: "piped" })
    .output();
  assert.equal(out.code, 0, `natlab.sh ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
}

/** Runs the probe in `netns`; yields its JSON lines as they come. */
function probe(netns: string, args: string[], killAfterMs: number) {
  const child = new Deno.Command("ip", {
    args: ["netns", "exec", netns, Deno.execPath(), "run", "-A", "--quiet", PROBE, ...args],
    cwd: REPO,
    stdout: "piped",
    stderr: "inherit",
    signal: AbortSignal.timeout(killAfterMs), // a safety net only: the probe ends by itself
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).values();
  let buffer = "";
  return {
    child,
    async next(): Promise<Record<string, unknown>> {
      for (;;) {
        const nl = buffer.indexOf("\n");
        if (nl >= 0) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          const value = JSON.parse(line) as Record<string, unknown>;
          if ("event" in value) continue; // a warning event: shown by the assertion that fails
          return value;
        }
        const { value, done } = await lines.next();
        if (done) throw new Error(`the probe in ${netns} ended early`);
        buffer += value;
      }
    },
  };
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
    const lab = runningLab()!;
    assert.ok(lab.upnp, "natlab.sh upnp start left miniupnpd running");
    try {
      let external: { address: string; port: number } | undefined;
      const terminal = probe(lab.hosts.a.ns, ["gather", String(PORT)], 60_000);
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

        const internet = probe(
          lab.server.ns,
          ["connect", mapped.address, String(mapped.port)],
          30_000,
        );
        assert.deepEqual(await internet.next(), { sent: true });
        await internet.child.status;
        assert.deepEqual(await terminal.next(), { connected: "hello" });
        assert.deepEqual(await terminal.next(), { closed: true });
      } finally {
        await terminal.child.status;
      }
      // Deleted: the internet cannot reach host A through that port any more.
      const after = probe(
        lab.server.ns,
        ["connect", external!.address, String(external!.port), "3000"],
        30_000,
      );
      const again = await after.next();
      await after.child.status;
      assert.ok("error" in again, `still mapped after close: ${JSON.stringify(again)}`);
    } finally {
      if (startedUpnp) await natlab("upnp", "stop");
    }
  },
});
