// The whole flow behind NATs (issues 13 and 14, docs/nat.md "Measured: real terminals in the
// lab"): for each of the 25 pairs of NAT types, a host in the root namespace reads
// host@host.test, bob's CLI terminal stands by behind router B, alice's asks behind router A, and
// both talk to the real mail stack through the lab's public side. Both learn their mapping from
// the lab's coturn over their listener socket and allocate a relay on it; the host's reply and
// introduction let them punch. Where the lab facts allow a hole (22 pairs) they connect over it
// and chat both ways; the other 3 connect through the relay (docs/relay.md) and chat, and
// release their allocations when they exit. Without a relay those end with a clear error (never
// a hang). Ignored without the lab and a stack listening on its lab addresses; this file changes
// the NAT types and puts back port-restricted / port-restricted at the end.
import assert from "node:assert/strict";
import { Running } from "../support/cli.ts";
import { labFor, natlab } from "../support/natlab.ts";
import { makeSite } from "../support/site.ts";

interface Lab {
  hosts: Record<"a" | "b", { ns: string; ip: string }>;
  routers: Record<"rta" | "rtb", { wan: string }>;
  coturn: {
    ns: string;
    host: string;
    port: number;
    alt_host: string;
    alt_port: number;
    realm: string;
    user: string;
    relay_ip: string;
  };
  state_dir: string;
}
const { lab: LAB, missing: MISSING } = labFor<Lab>({ mail: true });

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

type Event = Record<string, unknown>;
type Endpoint = { address: string; port: number };

/**
 * Resolves once coturn holds none of `relays`' ports on its relay address (`ss` in its
 * namespace, every 100 ms); fails after 20 s, far less than an allocation's 600 s lifetime.
 */
async function relayPortsClosed(lab: Lab, relays: Endpoint[]): Promise<void> {
  const ports = new Set(relays.map((r) => r.port));
  for (let polls = 0;; polls++) {
    const out = await new Deno.Command("ip", {
      args: ["netns", "exec", lab.coturn.ns, "ss", "-Huan", "src", lab.coturn.relay_ip],
      stdout: "piped",
    }).output();
    assert.equal(out.code, 0, "ss in the coturn namespace failed");
    const held = new TextDecoder().decode(out.stdout).trim().split("\n").filter(Boolean)
      .map((l) => Number(l.split(/\s+/)[3]!.split(":").at(-1)))
      .filter((port) => ports.has(port));
    if (held.length === 0) return;
    assert.ok(polls < 200, `coturn still holds the relayed ports ${held} after 20 s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Writes a line of the test's measurements to stderr. */
function report(text: string): void {
  Deno.stderr.writeSync(new TextEncoder().encode(text + "\n"));
}
const of = (events: Event[], name: string) => events.filter((e) => e.event === name);

/** What one pair runs: bob's and alice's CLI arguments after the subcommand's config. */
interface Roles {
  bob: string[];
  alice: string[];
  /** Runs in the site's directory before the clients start (e.g. writes the file to send). */
  prepare?: (dir: string) => Promise<void>;
  /** More `[terminal]` lines for alice (e.g. `port_mapping = "auto"`). */
  aliceToml?: string;
  /** More `[terminal]` lines for bob (e.g. a slow `poll_interval`). */
  bobToml?: string;
  /** The peer transport; default `udp`. */
  transport?: "udp" | "tcp";
  /** Whether both terminals have the lab's coturn in `turn_servers`; default true. */
  relay?: boolean;
  /**
   * Whether the pair connects; default: over UDP with the relay always, else the punching
   * matrix (UDP or TCP) says so.
   */
  connects?: boolean;
  /** The path kind both ends report; default `relayed` where no hole can be punched, else `punched`. */
  path?: string;
  /** Checks the outcome of a pair that connects, with the site's directory. */
  check?: (dir: string, alice: Running, bob: Running) => Promise<void>;
}

const CHAT: Roles = {
  bob: ["client", "--config", "bob.toml", "--json", "-m", "hello from bob"],
  alice: ["client", "--config", "alice.toml", "--json", "-m", "hello from alice"],
  check: (_dir, alice, bob) => {
    assert.ok(of(alice.events, "message").some((e) => e.text === "hello from bob"));
    assert.ok(of(bob.events, "message").some((e) => e.text === "hello from alice"));
    return Promise.resolve();
  },
};

/** One pair: bob stands by behind B, alice asks behind A. */
async function rendezvous(a: string, b: string, roles: Roles = CHAT): Promise<void> {
  const lab = LAB!;
  const transport = roles.transport ?? "udp";
  const relay = roles.relay ?? true;
  const holeless = (transport === "tcp" ? UNOPENABLE : UNPUNCHABLE).has(`${a}/${b}`);
  const connects = roles.connects ?? (!holeless || transport === "udp" && relay);
  const path = roles.path ?? (holeless ? "relayed" : "punched");
  const stun =
    `stun_servers = ["${lab.coturn.host}:${lab.coturn.port}", "${lab.coturn.alt_host}:${lab.coturn.alt_port}"]`;
  // The lab's coturn relays too; its password stays in the lab's state dir (natlab.sh writes it
  // there, mode 0600), never in a configuration.
  const turn =
    `turn_servers = [{ url = "turn:${lab.coturn.host}:${lab.coturn.port}", user = "${lab.coturn.user}", realm = "${lab.coturn.realm}", password_file = "${lab.state_dir}/turn.password" }]`;
  // Bob stands by long enough for alice's mail round trip and her punch window (5 s); alice,
  // whose punch can only fail where no path joins them, stands by only briefly after it.
  const site = await makeSite({
    receive: "imap",
    labMail: true,
    terminal: [
      `address = "auto"`,
      stun,
      ...(relay ? [turn] : []),
      `transport = "${transport}"`,
      `reply_timeout = "60s"`,
      `punch_window = "5s"`,
      `standby_timeout = "${connects ? 60 : 15}s"`,
    ].join("\n"),
  });
  await Deno.writeTextFile(
    `${site.dir}/alice.toml`,
    (await Deno.readTextFile(`${site.dir}/alice.toml`))
      .replace(/standby_timeout = "\d+s"/, `standby_timeout = "${connects ? 60 : 2}s"`)
      .replace("[terminal.receive]", `${roles.aliceToml ?? ""}\n[terminal.receive]`),
  );
  if (roles.bobToml) {
    await Deno.writeTextFile(
      `${site.dir}/bob.toml`,
      (await Deno.readTextFile(`${site.dir}/bob.toml`))
        .replace("[terminal.receive]", `${roles.bobToml}\n[terminal.receive]`),
    );
  }
  const opts = { cwd: site.dir, env: site.env };
  await roles.prepare?.(site.dir);
  const host = new Running(["host", "--config", "host.toml", "--json"], opts);
  // A safety net only (a hung terminal must fail the test, not hang the suite); nothing is timed.
  const guard = setTimeout(() => {
    bob.stop();
    alice?.stop();
  }, 120_000);
  const bob = new Running(roles.bob, { ...opts, netns: lab.hosts.b.ns });
  let alice: Running | undefined;
  try {
    await bob.waitFor((e) => e.event === "standby");
    alice = new Running(roles.alice, { ...opts, netns: lab.hosts.a.ns });
    const [aliceEnd, bobEnd] = await Promise.all([alice.status, bob.status]);
    const pair = `${a} × ${b}`;
    // A failure shows both ends: this one's events and stderr first, then the other's.
    const ends = { alice, bob };
    const said = (who: Running) =>
      `${pair}: ` + Object.entries(ends).sort(([, r]) => r === who ? -1 : 1)
        .map(([name, r]) => `${name}: ${JSON.stringify(r.events)} ${r.stderr}`).join("\n");
    const announcedRelays: Endpoint[] = [];
    // Both announced the mapping STUN saw from their listener socket (the LAN is not global).
    for (const [who, wan] of [[alice, lab.routers.rta.wan], [bob, lab.routers.rtb.wan]] as const) {
      const sent = of(who.events, "request-sent")[0] as {
        candidates: (Endpoint & { type: string; mapping?: string })[];
      };
      assert.ok(sent, said(who));
      // Two coturn addresses answered from the same socket: the NAT's mapping behaviour.
      const nat: string = who === alice ? a : b;
      const srflx = sent.candidates.find((c) => c.type === "srflx");
      const mapped = sent.candidates.find((c) => c.type === "mapped") as
        | { address: string }
        | undefined;
      if (mapped) {
        // The router's mapping, on its WAN address; a STUN mapping equal to it is not repeated.
        assert.equal(mapped.address, wan, said(who));
      } else {
        assert.equal(
          srflx?.mapping,
          nat === "symmetric" ? "endpoint-dependent" : "endpoint-independent",
          said(who),
        );
      }
      assert.equal(mapped !== undefined, who === alice && roles.aliceToml !== undefined);
      // With turn_servers, a relay on the lab's coturn, announced last (docs/relay.md).
      const relays = sent.candidates.filter((c) => c.type === "relay");
      if (relay && transport === "udp") {
        assert.equal(relays.length, 1, said(who));
        assert.equal(sent.candidates.at(-1)?.type, "relay", said(who));
        assert.equal(relays[0]!.address, lab.coturn.relay_ip, said(who));
      } else assert.equal(relays.length, 0, said(who));
      announcedRelays.push(...relays);
      const seen = a === "none" && who === alice || b === "none" && who === bob;
      if (!seen) {
        assert.ok(of(who.events, "address-detected").some((e) => e.address === wan), said(who));
      }
    }
    // The host introduced alice to bob; a bob that alice could reach without a hole (no NAT, a
    // full cone) may have connected before that mail came.
    const introduced = of(bob.events, "introduction").some((e) => e.peer === "alice");
    assert.ok(introduced || ["none", "full-cone"].includes(b), said(bob));
    if (connects) {
      assert.equal(aliceEnd.code, 0, said(alice));
      assert.equal(bobEnd.code, 0, said(bob));
      const connected = of(alice.events, "connected")[0];
      assert.ok(connected, said(alice));
      assert.equal(connected.peer, "bob");
      assert.equal(connected.role, "initiator");
      assert.equal(connected.transport, transport);
      assert.equal(connected.path, path, said(alice));
      const bobConnected = of(bob.events, "connected")[0];
      assert.ok(bobConnected && bobConnected.peer === "alice", said(bob));
      // Both name the same candidate: the one the handshake's initiator dialled.
      assert.equal(bobConnected.path, path, said(bob));
      const remotes = [connected, bobConnected].map((e) => (e.remote as Endpoint).address);
      // Relayed: one end sent to the other's relayed address. Otherwise the relay carried nothing.
      assert.equal(remotes.includes(lab.coturn.relay_ip), path === "relayed", said(alice));
      const at = (who: Running, event: string) =>
        Date.parse(String(of(who.events, event)[0]?.time));
      report(
        `${pair}: ${path}, alice punched in ${connected.ms} ms, bob connected ${
          at(bob, "connected") - at(alice, "connected")
        } ms after her; ${
          of(bob.events, "introduction").length === 0
            ? "before his introduction"
            : `his introduction came ${
              at(bob, "introduction") - at(alice, "reply-received")
            } ms after her reply`
        }`,
      );
      await roles.check?.(site.dir, alice, bob);
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
    // Both clients released their allocation before they exited (docs/relay.md "Release").
    // coturn closes a released allocation's relayed port at its next timer tick, about a second
    // later; one left behind would hold its port for its whole 600 s lifetime.
    if (connects && path === "relayed") await relayPortsClosed(lab, announcedRelays);
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
      name: `behind NATs ${a} × ${b}: two CLI terminals meet through the host and chat ${
        UNPUNCHABLE.has(`${a}/${b}`)
          ? "through the TURN relay, where no hole can be punched"
          : "over a punched hole, not the relay"
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

Deno.test({
  name: "behind NATs symmetric × symmetric without a TURN server, two CLI terminals end clearly " +
    "where no hole can be punched",
  ignore: MISSING !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await natlab("setnat", "symmetric", "symmetric");
    try {
      await rendezvous("symmetric", "symmetric", { ...CHAT, relay: false });
    } finally {
      await natlab("setnat", "port-restricted", "port-restricted");
    }
  },
});

Deno.test({
  name:
    "behind NATs port-restricted × port-restricted, when bob reads his introduction up to 1.5 s " +
    "after alice has her reply, the terminals still punch rather than go through the relay",
  ignore: MISSING !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // Slow mail: bob looks for mail every 1.5 s, so his punch starts late, long after alice's
    // relay attempts began (PUNCH_RELAY_DELAY_MS). The direct path must still win
    // (docs/decisions.md "Relayed pairs in the NAT lab").
    await natlab("setnat", "port-restricted", "port-restricted");
    await rendezvous("port-restricted", "port-restricted", {
      ...CHAT,
      bobToml: 'poll_interval = "1500ms"',
    });
  },
});

/** 20 MiB of random bytes, and `mailpeer send big.bin` to `mailpeer receive inbox` checking it. */
function bigFile(): Roles {
  const content = new Uint8Array(20 * 1024 * 1024);
  for (let at = 0; at < content.length; at += 65536) {
    crypto.getRandomValues(content.subarray(at, at + 65536));
  }
  const sha = async (bytes: Uint8Array<ArrayBuffer>) =>
    Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)))
      .map((x) => x.toString(16).padStart(2, "0")).join("");
  return {
    bob: ["receive", "inbox", "--config", "bob.toml", "--json"],
    alice: ["send", "big.bin", "--config", "alice.toml", "--json"],
    prepare: async (dir) => {
      await Deno.writeFile(`${dir}/big.bin`, content);
      await Deno.mkdir(`${dir}/inbox`);
    },
    check: async (dir, alice, bob) => {
      const sent = of(alice.events, "file-transferred")[0];
      const got = of(bob.events, "file-transferred")[0];
      assert.equal(sent?.size, content.length);
      assert.equal(got?.sha256, await sha(content));
      assert.equal(sent?.sha256, got?.sha256);
      assert.equal(await sha(await Deno.readFile(`${dir}/inbox/big.bin`)), got?.sha256);
      const from = Date.parse(String(of(alice.events, "connected")[0]?.time));
      report(`20 MiB from connected to received: ${Date.parse(String(got?.time)) - from} ms`);
    },
  };
}

Deno.test({
  name: "behind two port-restricted NATs dropping 5 % of datagrams, a 20 MiB file crosses from " +
    "send to receive through the host, SHA-256 equal",
  ignore: MISSING !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await natlab("setnat", "port-restricted", "port-restricted");
    await natlab("loss", "5");
    try {
      await rendezvous("port-restricted", "port-restricted", bigFile());
    } finally {
      await natlab("loss", "0");
    }
  },
});

Deno.test({
  name: "behind two symmetric NATs, a 20 MiB file crosses from send to receive through the TURN " +
    "relay, SHA-256 equal, path relayed on both ends",
  ignore: MISSING !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await natlab("setnat", "symmetric", "symmetric");
    try {
      await rendezvous("symmetric", "symmetric", bigFile());
    } finally {
      await natlab("setnat", "port-restricted", "port-restricted");
    }
  },
});

Deno.test({
  name: "behind NATs port-restricted × symmetric, with miniupnpd on router A and " +
    'port_mapping = "auto", the terminals connect through the mapping',
  ignore: MISSING !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await natlab("upnp", "start");
    await natlab("setnat", "port-restricted", "symmetric");
    try {
      await rendezvous("port-restricted", "symmetric", {
        ...CHAT,
        aliceToml: 'port_mapping = "auto"',
        connects: true,
        path: "mapped",
      });
    } finally {
      await natlab("setnat", "port-restricted", "port-restricted");
    }
  },
});

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
        await rendezvous(a, b, { ...CHAT, transport: "tcp" });
      } finally {
        await natlab("setnat", "port-restricted", "port-restricted");
      }
    },
  });
}
