// IPv6 in the NAT lab (scripts/natlab/natlab.sh, docs/natlab.md "IPv6"): every lab link has an
// address in 2001:db8:4d50::/48, the LANs are routed without NAT66, and each router's IPv6
// firewall is `stateful` (RFC 6092: inbound only established/related) or `open`. The ruleset and
// address-class tests run anywhere; the others need a running lab and are ignored without one.
// This file changes the IPv6 firewalls and puts back stateful / stateful at the end.
import assert from "node:assert/strict";
import { classifyAddress } from "../../src/net/address_class.ts";
import { StunAddress } from "../../src/terminal/stun.ts";
import { labFor, natlab, NATLAB_SH } from "../support/natlab.ts";
import { netnsProbe } from "../support/netns_probe.ts";
import { punchPair, report } from "./punch_pair.ts";

interface Lab {
  namespaces: Record<"pub" | "srv" | "rta" | "rtb" | "a" | "b", string>;
  hosts: Record<"a" | "b", { ns: string; ip6: string; gateway6: string; router: "rta" | "rtb" }>;
  routers: Record<"rta" | "rtb", { ns: string; wan6: string; lan6: string; fw6: string }>;
  internet: { lab_net6: string };
  server: { ns: string; ips6: string[] };
  root: { link: string; ip6: string };
  coturn: { host6: string; port: number };
}

const { lab: LAB } = labFor<Lab>();
const PROBE = new URL("../../scripts/natlab/probe.ts", import.meta.url).pathname;
const LISTEN_PORT = 4000;
const PUNCH_PORT = 4001;

async function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string }> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  return { code: out.code, stdout: new TextDecoder().decode(out.stdout) };
}

/** probe.ts MODE ARGS in lab namespace `ns`: its last JSON line. */
async function probe(ns: string, args: string[]): Promise<Record<string, unknown>> {
  const p = netnsProbe(ns, PROBE, args, { killAfterMs: 20_000 });
  let last: Record<string, unknown> = {};
  try {
    for (;;) last = await p.next();
  } catch { /* the probe ended */ }
  await p.child.status;
  return last;
}

/**
 * A UDP listener on mpl-a (after `--first`, if given, opened the firewall for a server), then
 * probe.ts udp-send `sendArgs` from `from`: whether a datagram reached the listener.
 */
async function inbound(from: string, sendArgs: string[], listenArgs: string[] = []) {
  const lab = LAB!;
  const listener = netnsProbe(lab.hosts.a.ns, PROBE, [
    "udp-listen",
    "--port",
    String(LISTEN_PORT),
    "--timeout",
    "2000",
    ...listenArgs,
  ], { killAfterMs: 20_000 });
  assert.equal((await listener.next()).t, "listening");
  await probe(from, ["udp-send", "--to", `[${lab.hosts.a.ip6}]:${LISTEN_PORT}`, ...sendArgs]);
  const got = await listener.next();
  await listener.child.status;
  return got as { ok: boolean; from: string | null };
}

Deno.test("the lab's IPv6 prefix is documentation space: reserved, never global, like 198.18.0.0/15", () => {
  for (const ip of ["2001:db8:4d50::1", "2001:db8:4d50:1::10", "2001:db8:4d50::10"]) {
    assert.equal(classifyAddress(ip), "reserved", ip);
  }
  assert.equal(classifyAddress("198.18.0.1"), "reserved");
});

Deno.test("the stateful IPv6 firewall forwards inbound only for established flows; open forwards all", async () => {
  const stateful = await run("bash", [NATLAB_SH, "rules6", "stateful"]);
  assert.equal(stateful.code, 0);
  assert.match(
    stateful.stdout,
    /chain forward6_filter \{\s*type filter hook forward priority filter; policy drop;\s*iifname "lan" oifname "wan" accept\s*iifname "wan" ct state established,related accept\s*\}/,
  );
  const open = await run("bash", [NATLAB_SH, "rules6", "open"]);
  assert.match(
    open.stdout,
    /chain forward6_filter \{\s*type filter hook forward priority filter; policy accept;\s*\}/,
  );
  for (const { stdout } of [stateful, open]) {
    assert.match(
      stdout,
      /chain input6_filter \{\s*type filter hook input priority filter; policy drop;/,
    );
    assert.match(
      stdout,
      /icmpv6 type \{ nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit \} accept/,
    );
  }
  assert.equal((await run("bash", [NATLAB_SH, "rules6", "nat66"])).code, 2);
});

Deno.test({
  name: "every lab host, router and the server carry the IPv6 addresses natlab.json lists",
  ignore: !LAB,
  async fn() {
    const lab = LAB!;
    const has = async (ns: string | undefined, ip: string) => {
      const args = ["-6", "-o", "addr", "show", "to", `${ip}/128`, "scope", "global"];
      const { stdout } = await run("ip", ns ? ["-n", ns, ...args] : args);
      assert.ok(stdout.includes(ip), `${ns ?? "root"} has ${ip}`);
    };
    for (const h of ["a", "b"] as const) {
      await has(lab.hosts[h].ns, lab.hosts[h].ip6);
      const r = lab.routers[lab.hosts[h].router];
      assert.equal(r.lan6, lab.hosts[h].gateway6);
      await has(r.ns, r.lan6);
      await has(r.ns, r.wan6);
    }
    for (const ip of lab.server.ips6) await has(lab.server.ns, ip);
    await has(undefined, lab.root.ip6);
    assert.equal(lab.internet.lab_net6, "2001:db8:4d50::/48");
  },
});

Deno.test({
  name:
    "in mpl-a the terminal finds no global interface address: the lab's IPv4 and IPv6 are both reserved, so it asks STUN",
  ignore: !LAB,
  async fn() {
    const lab = LAB!;
    const module = new URL("../../src/terminal/address.ts", import.meta.url).href;
    const code = `import { InterfaceAddress } from "${module}";
const all = Deno.networkInterfaces().map((i) => i.address);
console.log(JSON.stringify({ all, found: (await new InterfaceAddress().detect()) ?? null }));`;
    const { code: exit, stdout } = await run("ip", [
      "netns",
      "exec",
      lab.hosts.a.ns,
      Deno.execPath(),
      "eval",
      "--no-prompt",
      code,
    ]);
    assert.equal(exit, 0, stdout);
    const got = JSON.parse(stdout) as { all: string[]; found: unknown };
    assert.ok(got.all.includes(lab.hosts.a.ip6), stdout);
    assert.equal(got.found, null);
  },
});

Deno.test({
  name:
    "STUN over IPv6 shows mpl-a its own address and port (no NAT66); mailpeer's StunAddress reaches coturn over IPv6",
  ignore: !LAB,
  async fn() {
    const lab = LAB!;
    const out = await probe(lab.hosts.a.ns, [
      "stun",
      "--server",
      `[${lab.coturn.host6}]:${lab.coturn.port}`,
    ]);
    assert.equal(out.mapped, `[${lab.hosts.a.ip6}]:${out.local_port}`);
    // The project's own client, from the root namespace over mpl-root: the lab's "public" IPv6
    // side is learned by STUN, as 198.18.0.0/15 is (both are `reserved`, never `global`).
    const found = await new StunAddress([`[${lab.coturn.host6}]:${lab.coturn.port}`]).query();
    assert.equal(found.address, lab.root.ip6);
  },
});

Deno.test({
  name: "the stateful IPv6 firewall drops unsolicited inbound UDP and answers from another port",
  ignore: !LAB,
  sanitizeResources: false,
  async fn() {
    const lab = LAB!;
    const srv = lab.server.ips6[0]!;
    await natlab("setfw6", "stateful", "stateful");
    const fromServer = await inbound(lab.server.ns, ["--bind", srv]);
    const fromB = await inbound(lab.hosts.b.ns, []);
    const first = ["--first", `[${srv}]:3600`];
    const contacted = await inbound(lab.server.ns, ["--bind", srv, "--port", "3600"], first);
    const otherPort = await inbound(lab.server.ns, ["--bind", srv, "--port", "3601"], first);
    report(JSON.stringify({ fromServer, fromB, contacted, otherPort }));
    assert.equal(fromServer.ok, false);
    assert.equal(fromB.ok, false);
    assert.deepEqual(contacted, { ok: true, from: `[${srv}]:3600` });
    assert.equal(otherPort.ok, false);
  },
});

Deno.test({
  name: "the open IPv6 firewall lets unsolicited inbound UDP in",
  ignore: !LAB,
  sanitizeResources: false,
  async fn() {
    const lab = LAB!;
    await natlab("setfw6", "open", "stateful");
    try {
      const got = await inbound(lab.server.ns, ["--bind", lab.server.ips6[0]!, "--port", "3602"]);
      assert.deepEqual(got, { ok: true, from: `[${lab.server.ips6[0]}]:3602` });
    } finally {
      await natlab("setfw6", "stateful", "stateful");
    }
  },
});

Deno.test({
  name: "a simultaneous UDP exchange over IPv6 opens both stateful firewalls",
  ignore: !LAB,
  sanitizeResources: false,
  async fn() {
    const lab = LAB!;
    await natlab("setfw6", "stateful", "stateful");
    const side = (me: "a" | "b", peer: "a" | "b") =>
      probe(lab.hosts[me].ns, [
        "udp-punch",
        "--name",
        me,
        "--peer",
        `[${lab.hosts[peer].ip6}]:${PUNCH_PORT}`,
        "--port",
        String(PUNCH_PORT),
      ]);
    const [a, b] = await Promise.all([side("a", "b"), side("b", "a")]);
    report(JSON.stringify({ a, b }));
    assert.equal(a.ok, true, JSON.stringify(a));
    assert.equal(b.ok, true, JSON.stringify(b));
    assert.equal(a.peer_seen, `[${lab.hosts.b.ip6}]:${PUNCH_PORT}`);
    assert.equal(b.peer_seen, `[${lab.hosts.a.ip6}]:${PUNCH_PORT}`);
  },
});

Deno.test({
  name:
    "UdpPeerListener.punch() over IPv6 links mpl-a and mpl-b through two stateful firewalls, and they chat",
  ignore: !LAB,
  sanitizeResources: false,
  async fn() {
    const lab = LAB!;
    await natlab("setfw6", "stateful", "stateful");
    const chats: unknown[] = [];
    const args = ["--family", "6", "--window", "4000", "--chat"];
    const { a, b, hello } = await punchPair({ a: args, b: args }, 30_000, async (a, b) => {
      chats.push(await a.line(), await b.line());
    });
    report(JSON.stringify({ a, b }));
    assert.deepEqual(hello.a.candidates.map((c) => [c.address, c.kind]), [[
      lab.hosts.a.ip6,
      "host",
    ]]);
    assert.ok(a.connected && b.connected, JSON.stringify({ a, b }));
    assert.equal(a.remote!.address, lab.hosts.b.ip6);
    assert.equal(b.remote!.address, lab.hosts.a.ip6);
    assert.deepEqual(chats, [{ chat: "hello from bob" }, { chat: "hello from alice" }]);
  },
});

Deno.test({
  name:
    "a TCP punch over IPv6 (simultaneous open) links mpl-a and mpl-b through two stateful firewalls, and they chat",
  ignore: !LAB,
  sanitizeResources: false,
  async fn() {
    const lab = LAB!;
    await natlab("setfw6", "stateful", "stateful");
    const chats: unknown[] = [];
    const args = ["--family", "6", "--transport", "tcp", "--window", "4000", "--chat"];
    const { a, b } = await punchPair({ a: args, b: args }, 30_000, async (a, b) => {
      chats.push(await a.line(), await b.line());
    });
    report(JSON.stringify({ a, b }));
    assert.ok(a.connected && b.connected, JSON.stringify({ a, b }));
    assert.equal(a.remote!.address, lab.hosts.b.ip6);
    assert.equal(b.remote!.address, lab.hosts.a.ip6);
    assert.deepEqual(chats, [{ chat: "hello from bob" }, { chat: "hello from alice" }]);
  },
});
