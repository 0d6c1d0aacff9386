/**
 * A terminal and the `role` a reply names (docs/decisions.md "The reply names the holder"): it
 * follows the named address for its later requests only when that is a host card it is
 * configured with and signed the reply; any other address is ignored.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { MailpeerEvent } from "../../src/events.ts";
import { Host } from "../../src/host/host.ts";
import { MemoryStore } from "../../src/host/store/memory_store.ts";
import { MaildirPostOffice } from "../../src/mail/maildir/post_office.ts";
import { MaildirSender } from "../../src/mail/maildir/sender.ts";
import { MaildirSource } from "../../src/mail/maildir/source.ts";
import { generateHostKeys, generateIdentityKeys, hostCardOf } from "../../src/message/key_file.ts";
import type { ReplyRole } from "../../src/message/types.ts";
import { TcpTransport } from "../../src/peer/tcp_transport.ts";
import { roleHostOf } from "../../src/terminal/role_host.ts";
import { Terminal } from "../../src/terminal/terminal.ts";

const NETWORK = "flow";

Deno.test("a role's address is followed only when it is a configured host card with the reply's key", async () => {
  const a = hostCardOf(await generateHostKeys("host@a.test"));
  const b = hostCardOf(await generateHostKeys("host@b.test"));
  const role = (address: string): ReplyRole => ({ holder: "anna", epoch: 1, until: 1, address });
  assert.equal(roleHostOf({ role: role("host@a.test"), hostId: a.ed25519 }, [a, b]), a);
  assert.equal(roleHostOf({ role: role("Host@A.test"), hostId: a.ed25519 }, [b, a]), a);
  assert.equal(roleHostOf({ hostId: a.ed25519 }, [a, b]), undefined, "no role");
  assert.equal(
    roleHostOf({ role: role("elsewhere@evil.test"), hostId: a.ed25519 }, [a, b]),
    undefined,
    "an address that is no configured card",
  );
  assert.equal(
    roleHostOf({ role: role("host@b.test"), hostId: a.ed25519 }, [a, b]),
    undefined,
    "a configured address, but another host signed the reply",
  );
});

Deno.test("a terminal asks for the role, shows it, and mails only the holder's card next while replies name it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mailpeer-role-" });
  const po = new MaildirPostOffice(join(dir, "po"));
  const keysA = await generateHostKeys("host@a.test");
  const keysB = await generateHostKeys("host@b.test");
  const hostSource = new MaildirSource(await po.ensureMailbox(keysA.email));
  const termSource = new MaildirSource(await po.ensureMailbox("alice@flow.test"), {
    pollIntervalMs: 20,
  });
  const host = new Host({
    keys: keysA,
    network: NETWORK,
    source: hostSource,
    sender: new MaildirSender(po),
    store: new MemoryStore(),
    allowPrivateAddresses: true,
  });
  const events: MailpeerEvent[] = [];
  let onNext: ((e: MailpeerEvent) => void) | undefined;
  const terminal = new Terminal({
    identity: await generateIdentityKeys("alice"),
    email: "alice@flow.test",
    network: NETWORK,
    hosts: [hostCardOf(keysA), hostCardOf(keysB)],
    sender: new MaildirSender(po),
    source: termSource,
    transport: new TcpTransport(),
    advertise: "127.0.0.1",
    replyTimeoutMs: 20_000, // bounds a failure only
    onEvent: (e) => {
      events.push(e);
      onNext?.(e);
    },
  });
  /**
   * One rendezvous, answered by host A with `role`; stopped once the reply is in (there is no
   * peer to connect to). Resolves with where the request went and the reply event.
   */
  const round = async (role: ReplyRole) => {
    const stop = new AbortController();
    const sent = new Promise<MailpeerEvent>((resolve) => {
      onNext = (e) => {
        if (e.event === "request-sent") resolve(e);
        if (e.event === "reply-received") stop.abort();
      };
    });
    const run = terminal.rendezvous({ signal: stop.signal }).then(
      () => "connected",
      () => "stopped",
    );
    const request = await sent;
    await host.processPending({ role });
    assert.equal(await run, "stopped");
    const reply = events.findLast((e) => e.event === "reply-received");
    return { to: request.event === "request-sent" ? request.to : [], reply };
  };
  try {
    const until = Date.UTC(2026, 11, 5, 12);
    const first = await round({ holder: "anna", epoch: 1, until, address: "host@a.test" });
    assert.deepEqual(first.to, ["host@a.test", "host@b.test"]);
    assert.deepEqual(
      first.reply?.event === "reply-received" ? first.reply.role : undefined,
      { holder: "anna", epoch: 1, until, address: "host@a.test" },
      "the terminal read the role (so its request said it reads it)",
    );
    // the reply named A's own card: the next request goes there alone; this reply names an
    // address the terminal does not know, which it ignores
    const second = await round({ holder: "ben", epoch: 2, until, address: "mallory@evil.test" });
    assert.deepEqual(second.to, ["host@a.test"]);
    const third = await round({ holder: "ben", epoch: 2, until, address: "host@a.test" });
    assert.deepEqual(third.to, ["host@a.test", "host@b.test"], "back to every configured host");
  } finally {
    onNext = undefined;
    await Promise.all([hostSource.close(), termSource.close()]);
    await Deno.remove(dir, { recursive: true });
  }
});
