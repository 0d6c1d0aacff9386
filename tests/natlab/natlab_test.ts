// The NAT lab (scripts/natlab/natlab.sh, docs/natlab.md). The ruleset tests run anywhere bash
// does; the others need a running lab (`sudo scripts/natlab/natlab.sh up`) and are ignored
// without one. They only read the lab: they never change its NAT types.
import assert from "node:assert/strict";
import net from "node:net";
import { StunAddress } from "../../src/terminal/stun.ts";
import { labFor, NATLAB_SH } from "../support/natlab.ts";

interface Lab {
  hosts: Record<"a" | "b", { ns: string; ip: string; router: "rta" | "rtb" }>;
  routers: Record<"rta" | "rtb", { ns: string; wan: string; nat: string }>;
  root: { link: string; ip: string; mail: Record<string, string> };
  coturn: { host: string; alt_host: string; port: number; alt_port: number; user: string };
}

const { lab: LAB } = labFor<Lab>();

async function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string }> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  return { code: out.code, stdout: new TextDecoder().decode(out.stdout) };
}

/** Runs a TypeScript snippet with this Deno inside lab namespace `ns`; its stdout, parsed. */
async function inNamespace(ns: string, code: string): Promise<unknown> {
  const { code: exit, stdout } = await run("ip", [
    "netns",
    "exec",
    ns,
    Deno.execPath(),
    "eval",
    "--no-prompt",
    code,
  ]);
  assert.equal(exit, 0, `snippet failed in ${ns}: ${stdout}`);
  return JSON.parse(stdout);
}

const TYPES = ["none", "full-cone", "restricted", "port-restricted", "symmetric"];

Deno.test("every router ruleset drops unsolicited traffic to the router itself", async () => {
  for (const type of TYPES) {
    const { code, stdout } = await run("bash", [NATLAB_SH, "rules", type]);
    assert.equal(code, 0, type);
    assert.match(
      stdout,
      /chain input_filter \{\s*type filter hook input priority filter; policy drop;/,
    );
  }
});

Deno.test("only NAT type none forwards unsolicited inbound traffic", async () => {
  for (const type of TYPES) {
    const { stdout } = await run("bash", [NATLAB_SH, "rules", type]);
    const forward =
      /chain forward_filter \{\s*type filter hook forward priority filter; policy (\w+);/
        .exec(stdout)?.[1];
    assert.equal(forward, type === "none" ? "accept" : "drop", type);
    assert.equal(stdout.includes("masquerade"), type !== "none", type);
  }
});

Deno.test("symmetric NAT picks a random port, full-cone and restricted learn a mapping", async () => {
  const rules = async (type: string) => (await run("bash", [NATLAB_SH, "rules", type])).stdout;
  assert.match(await rules("symmetric"), /masquerade fully-random/);
  assert.match(await rules("full-cone"), /dnat ip to udp dport map @fc/);
  assert.doesNotMatch(await rules("full-cone"), /@contacted/);
  assert.match(await rules("restricted"), /ip saddr \. udp dport @contacted dnat/);
  assert.doesNotMatch(await rules("port-restricted"), /@fc/);
});

Deno.test("an unknown NAT type is a usage error with a one-line message", async () => {
  const out = await new Deno.Command("bash", {
    args: [NATLAB_SH, "rules", "cone"],
    stderr: "piped",
  })
    .output();
  assert.equal(out.code, 2);
  assert.match(
    new TextDecoder().decode(out.stderr),
    /^natlab: error: Cannot print rules for 'cone'/,
  );
});

Deno.test({
  name: "a terminal behind router A learns the router's WAN address from the lab's coturn",
  ignore: !LAB,
  async fn() {
    const lab = LAB!;
    const router = lab.routers.rta;
    const stun = new URL("../../src/terminal/stun.ts", import.meta.url).href;
    const found = await inNamespace(
      lab.hosts.a.ns,
      `import { StunAddress } from ${JSON.stringify(stun)};
       const found = await new StunAddress([${
        JSON.stringify(`${lab.coturn.host}:${lab.coturn.port}`)
      }]).detect();
       Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(found)));`,
    ) as { address: string; port: number; localPort: number };
    assert.equal(found.address, router.nat === "none" ? lab.hosts.a.ip : router.wan);
    // Linux keeps the source port unless the NAT is symmetric (fully-random).
    if (router.nat !== "symmetric") assert.equal(found.port, found.localPort);
  },
});

Deno.test({
  name: "the root namespace reaches the lab's coturn through its lab link",
  ignore: !LAB,
  async fn() {
    const lab = LAB!;
    const found = await new StunAddress([`${lab.coturn.host}:${lab.coturn.port}`], {
      localAddress: lab.root.ip,
    }).detect();
    assert.equal(found?.address, lab.root.ip);
  },
});

Deno.test({
  name: "a server on a root-namespace mail address is reached from behind router A's NAT",
  ignore: !LAB,
  async fn() {
    const lab = LAB!;
    const address = lab.root.mail["host.test"]!;
    const seen: string[] = [];
    const server = net.createServer((socket) => {
      seen.push(socket.remoteAddress ?? "?");
      socket.end(`220 lab test server, you are ${socket.remoteAddress}\r\n`);
    });
    await new Promise<void>((resolve) => server.listen(0, address, resolve));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const greeting = await inNamespace(
        lab.hosts.a.ns,
        `const conn = await Deno.connect({ hostname: ${JSON.stringify(address)}, port: ${port} });
         const buf = new Uint8Array(200);
         const n = await conn.read(buf);
         conn.close();
         Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(new TextDecoder().decode(buf.subarray(0, n ?? 0)))));`,
      ) as string;
      const router = lab.routers.rta;
      const expected = router.nat === "none" ? lab.hosts.a.ip : router.wan;
      assert.match(greeting, /^220 lab test server/);
      assert.deepEqual(seen, [expected]);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  },
});
