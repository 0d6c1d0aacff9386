/**
 * Linked hosts on the real mail stack (docs/decisions.md "Linked hosts"): three hosts in a chain
 * A–B–C, each with its own mailbox, no A–C link. A terminal that mails only A is listed to a
 * terminal that mails only C within one sync interval of the hosts' (injected) clock, and no
 * row loops back or travels twice.
 *
 * The hosts run in this process as `mailpeer host` runs them (HostService, IMAP IDLE, SMTP),
 * on one ManualClock: the test moves time by one sync interval at a time and awaits the hosts'
 * events, never sleeping.
 */
import assert from "node:assert/strict";
import { HostService } from "../../src/host/host_service.ts";
import { MemoryHostDirectory } from "../../src/host/pool/host_directory.ts";
import { SyncAgent } from "../../src/host/pool/sync_agent.ts";
import { parseMail } from "../../src/mail/rfc5322/parse.ts";
import { dearmor } from "../../src/message/armor.ts";
import { openReply } from "../../src/message/block.ts";
import type { HostCard } from "../../src/message/host_card.ts";
import { generateHostKeys, hostCardOf, type HostKeys } from "../../src/message/key_file.ts";
import { Recorder } from "../support/event_recorder.ts";
import { mailStackRequest } from "../support/stack_request.ts";
import { ManualClock } from "../support/manual_clock.ts";
import { NO_STACK } from "../support/mailstack.ts";
import { deleteMessages, takeMessages } from "../support/stack_mail.ts";
import { runStackHost, type StackHost, stackHostParts } from "../support/stack_host.ts";

const INTERVAL_MS = 5 * 60_000;

/** Starts one host on its own mailbox (`keys.email`), linked to `links`, on the shared clock. */
function startHost(
  name: string,
  keys: HostKeys,
  links: HostCard[],
  ctx: { network: string; clock: ManualClock; recorder: Recorder },
): StackHost {
  const parts = stackHostParts(name, keys, keys.email, ctx);
  const { host, source, sender, store, onEvent } = parts;
  const { network, clock } = ctx;
  const sync = new SyncAgent({
    keys,
    network,
    source,
    sender,
    store,
    directory: new MemoryHostDirectory({ self: hostCardOf(keys) }),
    links,
    clock,
    allowPrivateAddresses: true,
    onEvent,
  });
  const service = new HostService({ host, sync, syncIntervalMs: INTERVAL_MS, clock, onEvent });
  return runStackHost(parts, (signal) => service.run({ signal, bootstrap: false }));
}

Deno.test({
  name:
    "three hosts in a chain: a terminal that mailed only A is listed to one that mails only C within one sync interval, and no row loops or travels twice",
  ignore: NO_STACK,
  fn: async () => {
    const network = `linked-${crypto.randomUUID().slice(0, 8)}`;
    const clock = new ManualClock(Date.now());
    const recorder = new Recorder();
    const ctx = { network, clock, recorder };
    const [aKeys, bKeys, cKeys] = await Promise.all(
      ["host@host.test", "host2@host.test", "bob2@b.test"].map((e) => generateHostKeys(e)),
    );
    const [aCard, bCard, cCard] = [aKeys!, bKeys!, cKeys!].map(hostCardOf);
    const hosts: StackHost[] = [];
    const mailboxes = ["host@host.test", "host2@host.test", "bob2@b.test", "alice@a.test"];
    try {
      hosts.push(startHost("A", aKeys!, [bCard!], ctx));
      hosts.push(startHost("B", bKeys!, [aCard!, cCard!], ctx));
      hosts.push(startHost("C", cKeys!, [bCard!], ctx));
      const [a, b, c] = hosts as [StackHost, StackHost, StackHost];
      const sent = () => recorder.events.filter((e) => e.event === "sync-sent").length;
      const changedOn = (host: string) =>
        recorder.of(host, "sync-merged").reduce((n, e) => n + (e.changed as number), 0);
      const mergesOn = (host: string) => recorder.of(host, "sync-merged").length;

      // alice mails A only, and A answers (no peers yet).
      await mailStackRequest("alice@a.test", "alice", 6001, aCard!, ctx);
      await recorder.until(
        "reply of A to alice",
        (e) => e.host === "A" && e.event === "reply-sent",
      );

      // One sync interval: A pushes to B, B forwards the new row to C at once.
      clock.advance(INTERVAL_MS);
      await recorder.until(
        "alice's row merged on C",
        (e) => e.host === "C" && e.event === "sync-merged" && e.changed === 1,
      );
      // Round 1 is 4 periodic pushes (A→B, B→A, B→C, C→B) and B's forward to C.
      await recorder.until("round 1's merges", (e) => e.event === "sync-merged", 5);
      assert.deepEqual(
        recorder.events.filter((e) => e.event === "sync-forwarded").map((e) => [e.host, e.to]),
        [["B", "bob2@b.test"]],
      );

      // bob mails C only, before the clock moves again: C lists alice.
      const bob = await mailStackRequest("bob@b.test", "bob", 6002, cCard!, ctx);
      await recorder.until("reply of C to bob", (e) => e.host === "C" && e.event === "reply-sent");
      const [raw] = await takeMessages("bob@b.test", `[mailpeer] ${network} reply`, 1);
      const reply = await openReply(dearmor((await parseMail(raw!)).text), {
        replyPrivateKey: bob.replyPrivateKey,
        hostCard: cCard!,
      });
      assert.deepEqual(reply.peers.map((p) => p.userId), ["alice"]);

      // Round 2: bob's row goes C → B → A (forwarded once by B); alice's goes nowhere new.
      clock.advance(INTERVAL_MS);
      await recorder.until(
        "bob's row merged on A",
        (e) => e.host === "A" && e.event === "sync-merged" && e.changed === 1,
      );
      await recorder.until("round 2's merges", (e) => e.event === "sync-merged", 10);
      // Round 3: everything is known everywhere: pushes change nothing, nothing is forwarded.
      clock.advance(INTERVAL_MS);
      await recorder.until("round 3's merges", (e) => e.event === "sync-merged", 14);

      assert.deepEqual(
        recorder.events.filter((e) => e.event === "sync-forwarded").map((e) => [e.host, e.to]),
        [["B", "bob2@b.test"], ["B", "host@host.test"]],
        "each row forwarded once, never back to where it came from",
      );
      assert.equal(sent(), 14, "3 rounds of 4 pushes, and 2 forwards");
      assert.deepEqual([mergesOn("A"), mergesOn("B"), mergesOn("C")], [4, 6, 4]);
      assert.deepEqual([changedOn("A"), changedOn("B"), changedOn("C")], [1, 2, 1]);
      for (const h of [a, b, c]) {
        const rows = await h.store.read();
        assert.deepEqual(rows.map((r) => r.userId).sort(), ["alice", "bob"], h.name);
      }
      const aliceOnA = (await a.store.read()).find((r) => r.userId === "alice");
      assert.equal(aliceOnA?.email, "alice@a.test", "A's own row never came back over it");
      assert.equal((await c.store.read()).find((r) => r.userId === "alice")?.email, "");
    } finally {
      await Promise.allSettled(hosts.map((h) => h.stop()));
      await Promise.allSettled(
        mailboxes.map((m) => deleteMessages(m, `[mailpeer] ${network} `)),
      );
    }
  },
});
