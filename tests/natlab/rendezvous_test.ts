// The whole flow behind NATs (issue 13, docs/nat.md "Measured: real terminals"): for each of the
// 25 pairs of NAT types, a host in the root namespace reads host@host.test, bob's CLI terminal
// stands by behind router B, alice's asks behind router A, and both talk to the real mail stack
// through the lab's public side. Both learn their mapping from the lab's coturn over their
// listener socket; the host's reply and introduction let them punch. Where the lab facts allow a
// hole (22 pairs) they connect and chat both ways; in the other 3 both end with a clear error
// (never a hang). Ignored without the lab and a stack listening on its lab addresses; this file
// changes the NAT types and puts back port-restricted / port-restricted at the end.
import assert from "node:assert/strict";
import { Running } from "../support/cli.ts";
import { STACK } from "../support/mailstack.ts";
import { makeSite } from "../support/site.ts";

const REPO = new URL("../../", import.meta.url).pathname;
const NATLAB = `${REPO}scripts/natlab/natlab.sh`;

interface Lab {
  hosts: Record<"a" | "b", { ns: string; ip: string }>;
  routers: Record<"rta" | "rtb", { wan: string }>;
  root: { mail: Record<string, string> };
  coturn: { host: string; port: number; alt_host: string; alt_port: number };
}

function runningLab(): Lab | undefined {
  const dir = Deno.env.get("NATLAB_DIR") ?? `${REPO}.natlab`;
  try {
    return JSON.parse(Deno.readTextFileSync(`${dir}/natlab.json`));
  } catch {
    return undefined;
  }
}
const LAB = runningLab();
const MISSING = !LAB
  ? "the NAT lab is not running"
  : !STACK
  ? "the mail stack is not running"
  : STACK.providers.some((p) => p.labIp !== LAB.root.mail[p.domain])
  ? "the mail stack does not listen on the lab addresses (start it after the lab)"
  : undefined;
if (MISSING && Deno.env.get("MAILPEER_REQUIRE_NATLAB")) {
  throw new Error(`MAILPEER_REQUIRE_NATLAB is set but ${MISSING}: scripts/test starts both`);
}

const TYPES = ["none", "full-cone", "restricted", "port-restricted", "symmetric"] as const;
/** The lab facts (docs/natlab.md): only these pairs cannot be punched. */
const UNPUNCHABLE = new Set([
  "port-restricted/symmetric",
  "symmetric/port-restricted",
  "symmetric/symmetric",
]);
/**
 * Over TCP (docs/nat.md "TCP simultaneous open"): symmetric against any filtering NAT cannot
 * open (every type but `none` filters TCP by address and port in the lab).
 */
const UNOPENABLE = new Set(
  ["full-cone", "restricted", "port-restricted", "symmetric"].flatMap((t) => [
    `${t}/symmetric`,
    `symmetric/${t}`,
  ]),
);

async function natlab(...args: string[]): Promise<void> {
  const out = await new Deno.Command("bash", { args: [NATLAB, ...args], stderr: "piped" })
    .output();
  assert.equal(out.code, 0, `natlab.sh ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
}

type Event = Record<string, unknown>;
const of = (events: Event[], name: string) => events.filter((e) => e.event === name);

/** One pair: bob stands by behind B, alice asks behind A. */
async function rendezvous(a: string, b: string, transport = "udp"): Promise<void> {
  const lab = LAB!;
  const punchable = !(transport === "tcp" ? UNOPENABLE : UNPUNCHABLE).has(`${a}/${b}`);
  const stun =
    `stun_servers = ["${lab.coturn.host}:${lab.coturn.port}", "${lab.coturn.alt_host}:${lab.coturn.alt_port}"]`;
  // Bob stands by long enough for alice's mail round trip and her punch window; alice, whose
  // punch can only fail in the unpunchable pairs, stands by only briefly after it.
  const site = await makeSite({
    receive: "imap",
    labMail: true,
    terminal: [
      `address = "auto"`,
      stun,
      `transport = "${transport}"`,
      `reply_timeout = "60s"`,
      `standby_timeout = "${punchable ? 60 : 30}s"`,
    ].join("\n"),
  });
  await Deno.writeTextFile(
    `${site.dir}/alice.toml`,
    (await Deno.readTextFile(`${site.dir}/alice.toml`)).replace(
      /standby_timeout = "\d+s"/,
      `standby_timeout = "${punchable ? 60 : 2}s"`,
    ),
  );
  const opts = { cwd: site.dir, env: site.env };
  const host = new Running(["host", "--config", "host.toml", "--json"], opts);
  // A safety net only (a hung terminal must fail the test, not hang the suite); nothing is timed.
  const guard = setTimeout(() => {
    bob.stop();
    alice?.stop();
  }, 120_000);
  const bob = new Running(
    ["client", "--config", "bob.toml", "--json", "-m", "hello from bob"],
    { ...opts, netns: lab.hosts.b.ns },
  );
  let alice: Running | undefined;
  try {
    await bob.waitFor((e) => e.event === "standby");
    alice = new Running(
      ["client", "--config", "alice.toml", "--json", "-m", "hello from alice"],
      { ...opts, netns: lab.hosts.a.ns },
    );
    const [aliceEnd, bobEnd] = await Promise.all([alice.status, bob.status]);
    const pair = `${a} × ${b}`;
    const said = (who: Running) => `${pair}: ${JSON.stringify(who.events)} ${who.stderr}`;
    // Both announced the mapping STUN saw from their listener socket (the LAN is not global).
    for (const [who, wan] of [[alice, lab.routers.rta.wan], [bob, lab.routers.rtb.wan]] as const) {
      const sent = of(who.events, "request-sent")[0] as { candidates: { type: string }[] };
      assert.ok(sent, said(who));
      assert.ok(sent.candidates.some((c) => c.type === "srflx"), said(who));
      const seen = a === "none" && who === alice || b === "none" && who === bob;
      if (!seen) {
        assert.ok(of(who.events, "address-detected").some((e) => e.address === wan), said(who));
      }
    }
    // The host introduced alice to bob; a bob that alice could reach without a hole (no NAT, a
    // full cone) may have connected before that mail came.
    const introduced = of(bob.events, "introduction").some((e) => e.peer === "alice");
    const early = of(bob.events, "connected").some((e) => e.path === undefined);
    assert.ok(introduced || early && ["none", "full-cone"].includes(b), said(bob));
    if (punchable) {
      assert.equal(aliceEnd.code, 0, said(alice));
      assert.equal(bobEnd.code, 0, said(bob));
      const connected = of(alice.events, "connected")[0];
      assert.ok(connected, said(alice));
      assert.equal(connected.peer, "bob");
      assert.equal(connected.role, "initiator");
      assert.equal(connected.transport, transport);
      assert.equal(connected.path, "punched", said(alice));
      const bobConnected = of(bob.events, "connected")[0];
      assert.ok(bobConnected && bobConnected.peer === "alice", said(bob));
      // Bob knows the path when alice's handshake came after her introduction (else it cannot
      // tell which of its candidates she dialled, and says nothing).
      assert.ok([undefined, "punched"].includes(bobConnected.path as string), said(bob));
      assert.ok(of(alice.events, "message").some((e) => e.text === "hello from bob"), said(alice));
      assert.ok(of(bob.events, "message").some((e) => e.text === "hello from alice"), said(bob));
    } else {
      // Alice's punch to bob ends with the window: a notice to the host, then standby, then a
      // clear error; bob's standby ends the same way. Never a hang.
      const failed = of(alice.events, "connect-failed")[0];
      assert.ok(failed && failed.peer === "bob" && failed.code === "ETIMEOUT", said(alice));
      assert.ok(of(alice.events, "notice-sent").length === 1, said(alice));
      assert.ok(of(alice.events, "standby").length === 1, said(alice));
      assert.equal(of(alice.events, "connected").length, 0, said(alice));
      assert.equal(of(bob.events, "connected").length, 0, said(bob));
      assert.notEqual(aliceEnd.code, 0, said(alice));
      assert.notEqual(bobEnd.code, 0, said(bob));
      for (const who of [alice, bob]) {
        const error = of(who.events, "error").at(-1);
        assert.ok(error && error.code === "ETIMEOUT", said(who));
        assert.match(String(error.message), /nobody connected during the standby time/);
      }
    }
  } finally {
    clearTimeout(guard);
    await alice?.stop();
    await bob.stop();
    await host.stop();
    await site.cleanup();
  }
}

for (const a of TYPES) {
  for (const b of TYPES) {
    Deno.test({
      name: `behind NATs ${a} × ${b}: two CLI terminals meet through the host and ${
        UNPUNCHABLE.has(`${a}/${b}`) ? "end clearly where no hole can be punched" : "chat"
      }`,
      ignore: MISSING !== undefined,
      sanitizeResources: false,
      sanitizeOps: false,
      async fn() {
        await natlab("setnat", a, b);
        try {
          await rendezvous(a, b);
        } finally {
          if (a === "symmetric" && b === "symmetric") {
            await natlab("setnat", "port-restricted", "port-restricted");
          }
        }
      },
    });
  }
}

// Over TCP the same terminals punch from their listeners' ports (docs/nat.md "TCP simultaneous
// open"): a pair that opens by simultaneous open, one that opens through the listener of the side
// without NAT, and one that cannot open.
for (
  const [a, b] of [["port-restricted", "port-restricted"], ["none", "symmetric"], [
    "port-restricted",
    "symmetric",
  ]] as const
) {
  Deno.test({
    name: `over TCP behind NATs ${a} × ${b}: two CLI terminals meet through the host and ${
      UNOPENABLE.has(`${a}/${b}`) ? "end clearly where no connection can open" : "chat"
    }`,
    ignore: MISSING !== undefined,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      await natlab("setnat", a, b);
      try {
        await rendezvous(a, b, "tcp");
      } finally {
        await natlab("setnat", "port-restricted", "port-restricted");
      }
    },
  });
}
