// A relayed session moves to a direct path mid-transfer (issue 14, docs/nat.md "Moving a session
// to a direct path"): behind two symmetric NATs no hole can be punched, so alice's and bob's CLI
// terminals meet through the lab's TURN relay. While alice's file crosses, the lab switches
// router B to another NAT type, keeping only the flows to the relay. Each terminal's next round
// re-learns its mapping, tells the peer over the session, and probes: both move to the direct
// path, and the file (a stream the test keeps flowing until the moves are done) arrives whole. Ignored without the lab and a stack on its lab addresses;
// this file puts back port-restricted / port-restricted at the end.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Running } from "../support/cli.ts";
import { labFor, natlab } from "../support/natlab.ts";
import { makeSite } from "../support/site.ts";

interface Lab {
  hosts: Record<"a" | "b", { ns: string; ip: string }>;
  routers: Record<"rta" | "rtb", { wan: string }>;
  coturn: {
    host: string;
    port: number;
    alt_host: string;
    alt_port: number;
    user: string;
    password: string;
  };
}
const { lab: LAB, missing: MISSING } = labFor<Lab>({ mail: true });

type Event = Record<string, unknown>;
const of = (events: Event[], name: string) => events.filter((e) => e.event === name);

const MiB = 1024 * 1024;

/**
 * Symmetric × symmetric, relayed; router B switches to `to` once both ends are connected. With
 * `thenBack`, router B turns symmetric again once both moved: the direct path dies, and both
 * ends fall back to the relay.
 *
 * Alice sends a stream (`send -`) the test writes as fast as she takes it: it keeps flowing
 * until both ends have made every move, then 16 MiB more cross the path they moved to, and only
 * then does the stream end. So the moves happen mid-transfer by construction, however fast the
 * machine moves bytes.
 */
async function upgrade(to: string, thenBack = false): Promise<void> {
  const lab = LAB!;
  const { coturn } = lab;
  const site = await makeSite({
    receive: "imap",
    labMail: true,
    terminal: [
      `address = "auto"`,
      `transport = "udp"`,
      `stun_servers = ["${coturn.host}:${coturn.port}", "${coturn.alt_host}:${coturn.alt_port}"]`,
      `turn_servers = [{ url = "turn:${coturn.host}:${coturn.port}", user = "${coturn.user}", ` +
      `password_env = "MP_TURN_PASSWORD" }]`,
      `reply_timeout = "60s"`,
      `punch_window = "5s"`,
      `standby_timeout = "60s"`,
      `upgrade_interval = "1s"`,
    ].join("\n"),
  });
  const env = { ...site.env, MP_TURN_PASSWORD: coturn.password, MAILPEER_LOG: "debug" };
  const opts = { cwd: site.dir, env };
  await Deno.mkdir(`${site.dir}/inbox`);
  const host = new Running(["host", "--config", "host.toml", "--json"], opts);
  // A safety net only (a hung terminal must fail the test, not hang the suite); nothing is timed.
  const guard = setTimeout(() => {
    bob.stop();
    alice?.stop();
  }, 120_000);
  const bob = new Running(["receive", "inbox", "--config", "bob.toml", "--json"], {
    ...opts,
    netns: lab.hosts.b.ns,
  });
  let alice: Running | undefined;
  try {
    await bob.waitFor((e) => e.event === "standby");
    const sender = new Running(
      ["send", "-", "--name", "big.bin", "--config", "alice.toml", "--json"],
      { ...opts, netns: lab.hosts.a.ns, stdin: "piped" },
    );
    alice = sender;
    // The stream: random 1 MiB blocks, each written once alice took the one before.
    const hash = createHash("sha256");
    let written = 0;
    let stopAt = Infinity;
    const pumping = (async () => {
      while (written < stopAt) {
        const block = new Uint8Array(MiB);
        for (let at = 0; at < MiB; at += 65536) {
          crypto.getRandomValues(block.subarray(at, at + 65536));
        }
        hash.update(block);
        await sender.write(block);
        written += MiB;
      }
      await sender.endInput();
    })();
    pumping.catch(() => {}); // awaited below; a dead sender fails the awaits before that

    // On failure, both ends' events and logs: the other end is where the cause often is.
    const said = (who: Running) =>
      [who, ...[sender, bob].filter((x) => x !== who)]
        .map((x) =>
          `${JSON.stringify(x.events.filter((e) => e.event !== "transfer-progress"))} ${x.stderr}`
        )
        .join("\n---\n");
    const both = (pred: (e: Event) => boolean) =>
      Promise.all([sender.waitFor(pred), bob.waitFor(pred)]).catch((err) => {
        throw new Error(`${err.message}\nalice: ${said(sender)}\nbob: ${said(bob)}`);
      });
    const connected = await both((e) => e.event === "connected");
    assert.deepEqual(connected.map((e) => e.path), ["relayed", "relayed"], said(sender));
    // The NAT of router B changes under the running session.
    await natlab("switch", "rtb", to);
    await both((e) => e.event === "path-changed" && e.path === "punched");
    if (thenBack) {
      await natlab("switch", "rtb", "symmetric");
      await both((e) => e.event === "path-changed" && e.path === "relayed");
    }
    const movedAt = written;
    stopAt = written + 16 * MiB;
    await pumping;
    const [aliceEnd, bobEnd] = await Promise.all([sender.status, bob.status]);
    assert.equal(aliceEnd.code, 0, said(sender));
    assert.equal(bobEnd.code, 0, said(bob));
    for (const who of [sender, bob] as const) {
      const moved = of(who.events, "path-changed");
      assert.equal(moved.length, thenBack ? 2 : 1, said(who));
      if (thenBack) {
        assert.equal(moved[1]!.from, "punched", said(who));
        assert.equal(moved[1]!.path, "relayed", said(who));
      }
      assert.equal(moved[0]!.from, "relayed");
      assert.equal(moved[0]!.path, "punched", said(who));
      // The peer's side of the new path is its router's WAN address, not the relay.
      const wan: string = who === sender ? lab.routers.rtb.wan : lab.routers.rta.wan;
      assert.equal((moved[0]!.remote as { address: string }).address, wan, said(who));
    }
    // Not a byte was lost: what crossed before, during and after the moves arrived in order.
    const sent = of(sender.events, "file-transferred")[0];
    const got = of(bob.events, "file-transferred")[0];
    assert.ok(movedAt > 0 && written === movedAt + 16 * MiB, `${movedAt} then ${written} bytes`);
    assert.equal(sent?.size, written);
    const sha256 = hash.digest("hex");
    assert.equal(got?.sha256, sha256);
    const stored = createHash("sha256").update(await Deno.readFile(`${site.dir}/inbox/big.bin`));
    assert.equal(stored.digest("hex"), sha256);
  } finally {
    clearTimeout(guard);
    await alice?.stop();
    await bob.stop();
    await host.stop();
    await site.cleanup();
  }
}

for (
  const [to, how] of [
    ["restricted", "address-restricted"],
    ["port-restricted", "port-restricted (the birthday spray)"],
  ] as const
) {
  Deno.test({
    name: "behind two symmetric NATs a relayed transfer moves to a direct path when router B " +
      `becomes ${how} mid-transfer, and the file arrives whole`,
    ignore: MISSING !== undefined,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      await natlab("setnat", "symmetric", "symmetric");
      try {
        await upgrade(to);
      } finally {
        await natlab("setnat", "port-restricted", "port-restricted");
      }
    },
  });
}

Deno.test({
  name:
    "behind two symmetric NATs a transfer that moved to a direct path falls back to the relay " +
    "when router B turns symmetric again, and the file arrives whole",
  ignore: MISSING !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await natlab("setnat", "symmetric", "symmetric");
    try {
      await upgrade("restricted", true);
    } finally {
      await natlab("setnat", "port-restricted", "port-restricted");
    }
  },
});
