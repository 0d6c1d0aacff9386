/**
 * A terminal and a listed peer on different transports (docs/decisions.md "Peers on another
 * transport"): the peer is skipped with a reason, never reported, and the host keeps it healthy.
 * Real sockets on 127.0.0.1, a real host, mail in memory.
 */
import assert from "node:assert/strict";
import type { MailpeerEvent } from "../../src/events.ts";
import { Host } from "../../src/host/host.ts";
import { HostService } from "../../src/host/host_service.ts";
import { MemoryStore } from "../../src/host/store/memory_store.ts";
import { generateHostKeys, generateIdentityKeys, hostCardOf } from "../../src/message/key_file.ts";
import { subjectFor } from "../../src/message/mail_text.ts";
import { TcpTransport } from "../../src/peer/tcp_transport.ts";
import type { PeerTransport } from "../../src/peer/types.ts";
import { UdpTransport } from "../../src/peer/udp_transport.ts";
import { Terminal } from "../../src/terminal/terminal.ts";
import { MemoryPostOffice } from "../support/memory_mail.ts";

const NETWORK = "mixed";

/** A host answering from a mailbox in memory, and terminals that stop once they stand by. */
async function mixedWorld() {
  const po = new MemoryPostOffice();
  const hostKeys = await generateHostKeys("host@mixed.test");
  const store = new MemoryStore();
  const stop = new AbortController();
  const host = new Host({
    keys: hostKeys,
    network: NETWORK,
    source: po.mailbox(hostKeys.email),
    sender: po.sender(),
    store,
    allowPrivateAddresses: true,
  });
  const running = new HostService({ host }).run({ signal: stop.signal });
  const stopping: AbortController[] = [stop];

  /** Runs a terminal until it stands by (then stops it); returns what it told. */
  const standBy = async (userId: string, transport: PeerTransport): Promise<MailpeerEvent[]> => {
    const events: MailpeerEvent[] = [];
    const done = new AbortController();
    stopping.push(done);
    const standing = Promise.withResolvers<void>();
    const email = `${userId}@mixed.test`;
    const run = new Terminal({
      identity: await generateIdentityKeys(userId),
      email,
      network: NETWORK,
      hosts: [hostCardOf(hostKeys)],
      sender: po.sender(),
      source: po.mailbox(email),
      transport,
      advertise: "127.0.0.1",
      onEvent: (e) => {
        events.push(e);
        if (e.event === "standby") standing.resolve();
      },
    }).rendezvous({ signal: done.signal });
    run.catch(() => {}); // stopped on purpose below
    await Promise.race([standing.promise, run]);
    done.abort();
    await run.catch(() => {});
    return events;
  };
  const close = async () => {
    for (const c of stopping) c.abort();
    await running;
  };
  return { po, store, standBy, close };
}

Deno.test("a UDP terminal given a peer that listens on TCP only says why it skips it, mails no notice, and the peer stays unflagged", async () => {
  const w = await mixedWorld();
  try {
    await w.standBy("bob", new TcpTransport());
    const alice = await w.standBy("alice", new UdpTransport());

    const reply = alice.find((e) => e.event === "reply-received");
    assert.ok(reply?.event === "reply-received", JSON.stringify(alice));
    assert.deepEqual(reply.peers.map((p) => p.userId), ["bob"]);
    const skipped = alice.find((e) => e.event === "peer-skipped");
    assert.ok(skipped?.event === "peer-skipped", JSON.stringify(alice));
    assert.equal(skipped.peer, "bob");
    assert.deepEqual(skipped.transports, ["tcp"]);
    assert.match(skipped.reason, /TCP only and this terminal uses UDP/);
    assert.ok(
      !alice.some((e) => ["connecting", "connect-failed", "notice-sent"].includes(e.event)),
      "bob was never tried, so never reported",
    );
    // Nothing reached the host that could flag bob: no notice mail at all, bob's row healthy.
    const notices = w.po.sent.filter((s) => s.mail.subject === subjectFor(NETWORK, "notice"));
    assert.equal(notices.length, 0);
    assert.equal((await w.store.read()).find((r) => r.userId === "bob")?.failures, 0);
  } finally {
    await w.close();
  }
});

Deno.test("a TCP terminal given a peer that listens on UDP only skips it the same way", async () => {
  const w = await mixedWorld();
  try {
    await w.standBy("bob", new UdpTransport());
    const alice = await w.standBy("alice", new TcpTransport());

    const skipped = alice.find((e) => e.event === "peer-skipped");
    assert.ok(skipped?.event === "peer-skipped", JSON.stringify(alice));
    assert.equal(skipped.peer, "bob");
    assert.deepEqual(skipped.transports, ["udp"]);
    assert.ok(!alice.some((e) => e.event === "notice-sent"));
    assert.equal((await w.store.read()).find((r) => r.userId === "bob")?.failures, 0);
  } finally {
    await w.close();
  }
});
