// IPv6 through the host (issue 14, docs/nat.md "IPv6"): real CLI terminals in the NAT lab, a host
// in the root namespace and the real mail stack, with both routers' IPv6 firewalls `stateful`
// (inbound only for flows the LAN side opened, so every IPv6 path here is punched) and IPv4
// behind port-restricted NATs.
// - An IPv6-only pair: each terminal listens on its own IPv6 address (a socket that cannot send
//   or receive IPv4) and asks STUN over IPv6 only, so it announces one `host` candidate, its IPv6
//   address; they meet over IPv6 and chat both ways. Their mail still travels over IPv4: the
//   mail stack listens on the lab's IPv4 addresses only (docs/mailstack.md).
// - A dual-stack pair: each listens on `::` and asks STUN over IPv4 (two servers) and IPv6, so it
//   announces its IPv4 NAT mapping and its IPv6 address; both punch IPv6 first with IPv4 one
//   stagger behind, and they meet over IPv6.
// - A dual-stack terminal and an IPv4-only one: the IPv4-only side leaves the IPv6 candidate
//   out, the dual-stack side's `::` socket punches through both NATs over IPv4, and both see
//   each other's plain IPv4 mapping (never `::ffff:…`).
// Ignored without the lab and a stack listening on its lab addresses; the file sets the IPv6
// firewalls stateful / stateful and the NATs port-restricted / port-restricted (the lab's
// defaults) and leaves them so.
import assert from "node:assert/strict";
import { Running } from "../support/cli.ts";
import { labFor, natlab } from "../support/natlab.ts";
import { makeSite } from "../support/site.ts";

interface Lab {
  hosts: Record<"a" | "b", { ns: string; ip6: string }>;
  routers: Record<"rta" | "rtb", { wan: string }>;
  coturn: { host: string; port: number; alt_host: string; alt_port: number; host6: string };
}
const { lab: LAB, missing: MISSING } = labFor<Lab>({ mail: true });

type Event = Record<string, unknown>;
const of = (events: Event[], name: string) => events.filter((e) => e.event === name);
interface Announced {
  candidates: { type: string; address: string; port: number }[];
}
const isV6 = (address: unknown) => typeof address === "string" && address.includes(":");
const ms = (from: Event | undefined, to: Event | undefined) =>
  Date.parse(String(to?.time)) - Date.parse(String(from?.time));

/**
 * Bob stands by behind router B, alice asks behind router A; both chat once. `terminal` gives
 * each one's extra `[terminal]` lines. Resolves with both processes once they ended.
 */
async function meet(terminal: (who: "a" | "b") => string[]) {
  const lab = LAB!;
  const site = await makeSite({
    receive: "imap",
    labMail: true,
    terminal: [
      `address = "auto"`,
      `transport = "udp"`,
      `reply_timeout = "60s"`,
      `punch_window = "5s"`,
      `standby_timeout = "60s"`,
    ].join("\n"),
  });
  for (const [who, file] of [["a", "alice.toml"], ["b", "bob.toml"]] as const) {
    const path = `${site.dir}/${file}`;
    const toml = await Deno.readTextFile(path);
    await Deno.writeTextFile(
      path,
      toml.replace("[terminal.receive]", `${terminal(who).join("\n")}\n[terminal.receive]`),
    );
  }
  const opts = { cwd: site.dir, env: site.env };
  const host = new Running(["host", "--config", "host.toml", "--json"], opts);
  const bob = new Running(
    ["client", "--config", "bob.toml", "--json", "-m", "hello from bob"],
    { ...opts, netns: lab.hosts.b.ns },
  );
  let alice: Running | undefined;
  // A safety net only (a hung terminal must fail the test, not hang the suite); nothing is timed.
  const guard = setTimeout(() => {
    bob.stop();
    alice?.stop();
  }, 120_000);
  try {
    await bob.waitFor((e) => e.event === "standby");
    alice = new Running(
      ["client", "--config", "alice.toml", "--json", "-m", "hello from alice"],
      { ...opts, netns: lab.hosts.a.ns },
    );
    const [aliceEnd, bobEnd] = await Promise.all([alice.status, bob.status]);
    return { alice, bob, aliceEnd, bobEnd };
  } finally {
    clearTimeout(guard);
    await alice?.stop();
    await bob.stop();
    await host.stop();
    await site.cleanup();
  }
}

/** Both connected to each other over IPv6, path `host` (no NAT66), and chatted both ways. */
function assertMetOverIPv6(alice: Running, bob: Running, codes: [number, number]) {
  const lab = LAB!;
  const said = (who: Running) => `${JSON.stringify(who.events)} ${who.stderr}`;
  assert.deepStrictEqual(codes, [0, 0], said(alice) + said(bob));
  for (
    const [who, peer, peerIp] of [[alice, "bob", lab.hosts.b.ip6], [
      bob,
      "alice",
      lab.hosts.a.ip6,
    ]] as const
  ) {
    const connected = of(who.events, "connected")[0];
    assert.ok(connected && connected.peer === peer, said(who));
    assert.equal(connected.transport, "udp");
    assert.equal(connected.path, "host", said(who));
    const remote = connected.remote as { address: string };
    assert.equal(remote.address, peerIp, said(who));
  }
  assert.ok(of(alice.events, "message").some((e) => e.text === "hello from bob"), said(alice));
  assert.ok(of(bob.events, "message").some((e) => e.text === "hello from alice"), said(bob));
}

/** One line of figures for docs/nat.md, when MAILPEER_NATLAB_REPORT is set. */
function report(label: string, alice: Running, bob: Running) {
  if (!Deno.env.get("MAILPEER_NATLAB_REPORT")) return;
  const first = alice.events[0];
  const line = {
    pair: label,
    aliceRequestSentMs: ms(first, of(alice.events, "request-sent")[0]),
    aliceReplyMs: ms(first, of(alice.events, "reply-received")[0]),
    aliceConnectedMs: ms(first, of(alice.events, "connected")[0]),
    alicePunchMs: of(alice.events, "connected")[0]?.ms,
    bobConnectedMs: ms(first, of(bob.events, "connected")[0]),
    aliceAttempts: of(alice.events, "connecting").map((e) =>
      (e.endpoint as { address: string }).address
    ),
  };
  Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(line) + "\n"));
}

async function defaults() {
  await natlab("setnat", "port-restricted", "port-restricted");
  await natlab("setfw6", "stateful", "stateful");
}

Deno.test({
  name: "an IPv6-only pair behind stateful IPv6 firewalls meets through the host over IPv6 and " +
    "chats both ways",
  ignore: MISSING !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const lab = LAB!;
    await defaults();
    const { alice, bob, aliceEnd, bobEnd } = await meet((who) => [
      `stun_servers = ["[${lab.coturn.host6}]:${lab.coturn.port}"]`,
      `listen = "${lab.hosts[who].ip6}"`,
    ]);
    report("IPv6-only", alice, bob);
    // Each announced exactly its own IPv6 address, as a host candidate: nothing IPv4.
    for (const [who, ip6] of [[alice, lab.hosts.a.ip6], [bob, lab.hosts.b.ip6]] as const) {
      const sent = of(who.events, "request-sent")[0] as unknown as Announced | undefined;
      assert.ok(sent, JSON.stringify(who.events));
      assert.deepStrictEqual(sent.candidates.map((c) => [c.type, c.address]), [["host", ip6]]);
    }
    assertMetOverIPv6(alice, bob, [aliceEnd.code, bobEnd.code]);
  },
});

Deno.test({
  name: "a dual-stack pair behind port-restricted NATs and stateful IPv6 firewalls announces " +
    "IPv4 and IPv6, punches IPv6 first and meets over IPv6",
  ignore: MISSING !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const lab = LAB!;
    await defaults();
    const c = lab.coturn;
    const { alice, bob, aliceEnd, bobEnd } = await meet(() => [
      `stun_servers = ["${c.host}:${c.port}", "${c.alt_host}:${c.alt_port}", "[${c.host6}]:${c.port}"]`,
    ]);
    report("dual-stack", alice, bob);
    for (
      const [who, wan, ip6] of [
        [alice, lab.routers.rta.wan, lab.hosts.a.ip6],
        [bob, lab.routers.rtb.wan, lab.hosts.b.ip6],
      ] as const
    ) {
      const sent = of(who.events, "request-sent")[0] as unknown as Announced | undefined;
      assert.ok(sent, JSON.stringify(who.events));
      // The NAT's IPv4 mapping (STUN over IPv4) and the IPv6 address itself (STUN over IPv6
      // saw it unchanged: no NAT66), from one `::` socket, so on one port.
      const kinds = sent.candidates.map((
        c,
      ) => [c.type, isV6(c.address) ? c.address : "v4", c.address === wan]);
      assert.deepStrictEqual(kinds.sort(), [["host", ip6, false], ["srflx", "v4", true]].sort());
    }
    // Happy Eyeballs: each side's first attempt goes to the peer's IPv6 address.
    for (const [who, peerIp] of [[alice, lab.hosts.b.ip6], [bob, lab.hosts.a.ip6]] as const) {
      const first = of(who.events, "connecting")[0]?.endpoint as { address: string } | undefined;
      assert.equal(first?.address, peerIp, JSON.stringify(who.events));
    }
    assertMetOverIPv6(alice, bob, [aliceEnd.code, bobEnd.code]);
  },
});

Deno.test({
  name: "a dual-stack terminal and an IPv4-only one behind port-restricted NATs meet over IPv4",
  ignore: MISSING !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const lab = LAB!;
    await defaults();
    const c = lab.coturn;
    const v4 = `"${c.host}:${c.port}", "${c.alt_host}:${c.alt_port}"`;
    // Bob dual-stack (`::`), alice IPv4 only (`0.0.0.0`: no IPv6 STUN server, no global IPv6).
    const { alice, bob, aliceEnd, bobEnd } = await meet((who) => [
      who === "b" ? `stun_servers = [${v4}, "[${c.host6}]:${c.port}"]` : `stun_servers = [${v4}]`,
    ]);
    report("dual-stack bob, IPv4-only alice", alice, bob);
    const said = (who: Running) => `${JSON.stringify(who.events)} ${who.stderr}`;
    assert.deepStrictEqual([aliceEnd.code, bobEnd.code], [0, 0], said(alice) + said(bob));
    const sent = of(bob.events, "request-sent")[0] as unknown as Announced | undefined;
    assert.ok(sent?.candidates.some((x) => x.address === lab.hosts.b.ip6), said(bob));
    // Alice cannot reach IPv6 from 0.0.0.0: she never tries bob's IPv6 address.
    assert.ok(of(alice.events, "connecting").every((e) => !isV6((e.endpoint as Event).address)));
    for (
      const [who, peer, wan] of [[alice, "bob", lab.routers.rtb.wan], [
        bob,
        "alice",
        lab.routers.rta.wan,
      ]] as const
    ) {
      const connected = of(who.events, "connected")[0];
      assert.ok(connected && connected.peer === peer, said(who));
      assert.equal(connected.path, "punched", said(who));
      assert.equal((connected.remote as { address: string }).address, wan, said(who));
    }
    assert.ok(of(alice.events, "message").some((e) => e.text === "hello from bob"), said(alice));
    assert.ok(of(bob.events, "message").some((e) => e.text === "hello from alice"), said(bob));
  },
});
