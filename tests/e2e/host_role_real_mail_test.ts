/**
 * The first terminal to receive a request becomes the host (docs/decisions.md "First receiver
 * becomes host"), on the real mail stack: three members of a group share one mailbox
 * (host@host.test) and the network host key, and no host is configured. Each member's host part
 * runs in this process as `combined` runs it with `host.role = "auto"` (RoleService, IMAP IDLE,
 * SMTP) on one ManualClock; the terminal parts of bob and alice run as `mailpeer client`.
 *
 * The member that claims bob's request takes the role and answers; the others defer to it and
 * merge the table its role mail carries; its replies name it (docs/protocol.md "Reply
 * extensions"). alice (the third terminal) gets bob from the holder and connects to him over
 * loopback. Then the holder stops, the test moves the clock past its lease, and the next request
 * is answered by another member in epoch 2 with bob and alice listed, its reply naming it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { RoleService } from "../../src/host/role/role_service.ts";
import { parseMail } from "../../src/mail/rfc5322/parse.ts";
import { dearmor } from "../../src/message/armor.ts";
import { openReply } from "../../src/message/block.ts";
import { decodeHostKeys, hostCardOf, type HostKeys } from "../../src/message/key_file.ts";
import { events, mailpeer, Running } from "../support/cli.ts";
import { Recorder } from "../support/event_recorder.ts";
import { mailStackRequest } from "../support/stack_request.ts";
import { ManualClock } from "../support/manual_clock.ts";
import { NO_STACK } from "../support/mailstack.ts";
import { deleteMessages, takeMessages } from "../support/stack_mail.ts";
import { makeSite } from "../support/site.ts";
import { runStackHost, type StackHost, stackHostParts } from "../support/stack_host.ts";
import { REPLY_READS_ROLE } from "../../src/protocol.ts";

const LEASE_MS = 60_000;
const SHARED = "host@host.test";

/** Starts one member's host part on the shared mailbox, as `combined` with host.role = "auto". */
function startMember(
  name: string,
  keys: HostKeys,
  ctx: { network: string; clock: ManualClock; recorder: Recorder },
): StackHost {
  const parts = stackHostParts(name, keys, SHARED, ctx);
  const { host, sender, store, onEvent } = parts;
  const role = new RoleService({
    host,
    sender,
    store,
    keys,
    member: name,
    policy: { capacity: 100, expiryMs: 12 * 3600_000 },
    allowPrivateAddresses: true,
    leaseMs: LEASE_MS,
    clock: ctx.clock,
    onEvent,
  });
  return runStackHost(parts, (signal) => role.run({ signal }));
}

Deno.test({
  name:
    "three members, no host: the first to claim a request takes the host role, the third terminal connects through it, and when it stops the role passes on with the table",
  ignore: NO_STACK,
  fn: async () => {
    const site = await makeSite({ receive: "imap" });
    const { network } = site;
    const opts = { cwd: site.dir, env: site.env };
    const keys = await decodeHostKeys(await Deno.readTextFile(join(site.dir, "host.keys.json")));
    const clock = new ManualClock(Date.now());
    const recorder = new Recorder();
    const ctx = { network, clock, recorder };
    const members = ["bob", "alice", "carol"].map((name) => startMember(name, keys, ctx));
    const stopped = new Set<string>();
    try {
      // bob's terminal asks first and stands by: the member that claimed it holds the role.
      const bob = new Running(["client", "--config", "bob.toml", "--json", "-m", "hi"], opts);
      await bob.waitFor((e) => e.event === "standby");
      const taken = recorder.events.filter((e) => e.event === "role-taken");
      assert.equal(taken.length, 1, "one member took the role");
      const holder = taken[0]!.host;
      assert.equal((taken[0] as Record<string, unknown>).epoch, 1);
      assert.deepEqual(
        recorder.events.filter((e) => e.event === "reply-sent").map((e) => e.host),
        [holder],
        "the holder answered bob",
      );
      // bob's reply says so: later terminals mail the holder's card, the shared mailbox
      const bobReply = await bob.waitFor((e) => e.event === "reply-received");
      assert.deepEqual(
        { ...bobReply.role as Record<string, unknown>, until: undefined },
        { holder, epoch: 1, until: undefined, address: SHARED },
        "the first reply names the member that took the role",
      );

      // alice, the third terminal, gets bob from the holder and connects to him.
      const alice = await mailpeer(
        ["client", "--config", "alice.toml", "--json", "-m", "hey"],
        opts,
      );
      assert.equal(alice.code, 0, alice.stderr);
      assert.equal(events(alice.stdout).find((e) => e.event === "connected")?.peer, "bob");
      const aliceRole = events(alice.stdout).find((e) => e.event === "reply-received")?.role;
      assert.equal((aliceRole as Record<string, unknown>)?.holder, holder);
      assert.equal((await bob.status).code, 0, bob.stderr);
      assert.deepEqual(
        recorder.events.filter((e) => e.event === "reply-sent").map((e) => e.host),
        [holder, holder],
        "the holder answered alice too; the others left her request to it",
      );
      const others = members.filter((m) => m.name !== holder);
      for (const m of others) {
        await recorder.until(
          `${m.name} deferring to ${holder}`,
          (e) => e.host === m.name && e.event === "role-deferred" && e.holder === holder,
        );
        // The holder's role mail after alice's reply carries both rows; each member merges it.
        await recorder.until(
          `${m.name} merging the holder's table of two rows`,
          (e) => e.host === m.name && e.event === "role-merged" && e.rows === 2,
        );
        assert.deepEqual((await m.store.read()).map((r) => r.userId).sort(), ["alice", "bob"]);
      }

      // The holder stops; once its lease has run out, the next request passes the role on.
      await members.find((m) => m.name === holder)!.stop();
      stopped.add(holder);
      // (each of its role mails ends a millisecond after the last while this clock stands
      // still: a second past the lease is past all of them)
      clock.advance(LEASE_MS + 1_000);
      const card = hostCardOf(keys);
      const dave = await mailStackRequest("alice2@a.test", "dave", 6009, card, {
        network,
        clock,
        reads: [REPLY_READS_ROLE],
      });
      await recorder.until(
        "the role taken in epoch 2",
        (e) => e.event === "role-taken" && e.epoch === 2,
      );
      const next = recorder.events.find((e) => e.event === "role-taken" && e.epoch === 2)!.host;
      assert.notEqual(next, holder);
      await recorder.until(
        "the new holder's reply",
        (e) => e.host === next && e.event === "reply-sent",
      );
      const [raw] = await takeMessages("alice2@a.test", `[mailpeer] ${network} reply`, 1);
      const reply = await openReply(dearmor((await parseMail(raw!)).text), {
        replyPrivateKey: dave.replyPrivateKey,
        hostCard: card,
      });
      assert.deepEqual(
        reply.peers.map((p) => p.userId).sort(),
        ["alice", "bob"],
        "the new holder lists the rows the first holder had",
      );
      assert.deepEqual(
        { holder: reply.role?.holder, epoch: reply.role?.epoch, address: reply.role?.address },
        { holder: next, epoch: 2, address: SHARED },
        "the new holder's reply names it, in epoch 2",
      );
      assert.ok(reply.role!.until > clock.now(), "its lease runs");
      assert.equal(
        recorder.events.filter((e) => e.event === "role-taken").length,
        2,
        "no member took the role but these two",
      );
    } finally {
      await Promise.allSettled(members.filter((m) => !stopped.has(m.name)).map((m) => m.stop()));
      await Promise.allSettled(
        [SHARED, "bob@b.test", "alice@a.test", "alice2@a.test"].map((m) =>
          deleteMessages(m, `[mailpeer] ${network} `)
        ),
      );
      await site.cleanup();
    }
  },
});
