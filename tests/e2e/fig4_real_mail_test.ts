/**
 * FIG. 4 over real mail: three providers (a.test, b.test, host.test), each a real Postfix +
 * Dovecot on loopback, relaying to each other. The CLI runs as a user runs it.
 */
import assert from "node:assert/strict";
import { events, mailpeer, Running } from "../support/cli.ts";
import { NO_STACK } from "../support/mailstack.ts";
import { makeSite, type Receive } from "../support/site.ts";
import { deliverOrdinary, messagesOf } from "../support/stack_mail.ts";

async function fig4(receive: Receive): Promise<void> {
  const site = await makeSite({ receive });
  const ordinary = `lunch ${crypto.randomUUID()}`;
  await deliverOrdinary("host@host.test", ordinary);
  await deliverOrdinary("alice@a.test", ordinary);
  const opts = { cwd: site.dir, env: site.env };
  const host = new Running(["host", "--config", "host.toml", "--json"], opts);
  try {
    // S10-S22, then standby: b.test's terminal asks first and gets a formal empty reply.
    const bob = new Running(
      ["client", "--config", "bob.toml", "--json", "-m", "hello from bob"],
      opts,
    );
    const empty = await bob.waitFor((e) => e.event === "reply-received");
    assert.deepEqual(empty.peers, []);
    await bob.waitFor((e) => e.event === "standby");

    // a.test's terminal asks, gets bob's address and connects over TCP.
    const alice = await mailpeer([
      "client",
      "--config",
      "alice.toml",
      "--json",
      "-m",
      "hello from alice",
    ], opts);
    assert.equal(alice.code, 0, alice.stderr);
    const evs = events(alice.stdout);
    const reply = evs.find((e) => e.event === "reply-received");
    assert.deepEqual((reply?.peers as { userId: string }[]).map((p) => p.userId), ["bob"]);
    const connected = evs.find((e) => e.event === "connected");
    assert.equal(connected?.transport, "tcp");
    assert.equal(connected?.peer, "bob");
    assert.ok(evs.some((e) => e.event === "message" && e.text === "hello from bob"), alice.stdout);

    const bobStatus = await bob.status;
    assert.equal(bobStatus.code, 0, bob.stderr);
    assert.ok(
      bob.events.some((e) =>
        e.event === "connected" && e.peer === "alice" && e.role === "acceptor"
      ),
    );
    assert.ok(bob.events.some((e) => e.event === "message" && e.text === "hello from alice"));

    // Two requests answered, each once.
    assert.equal(host.events.filter((e) => e.event === "reply-sent").length, 2);
  } finally {
    await host.stop();
  }
  // The ordinary mails are still there, unread.
  for (const address of ["host@host.test", "alice@a.test"]) {
    const found = await messagesOf(address, ordinary);
    assert.equal(found.length, 1, `${address} keeps its ordinary mail`);
    assert.equal(found[0]?.seen, false, `${address}'s ordinary mail is still unread`);
  }
  // The host's mailbox holds no request of this network any more.
  assert.deepEqual(await messagesOf("host@host.test", `[mailpeer] ${site.network} request`), []);
  await site.cleanup();
}

Deno.test({
  name:
    "FIG. 4 over real mail with the host reading IMAP: b asks first and stands by, a connects to b over TCP",
  ignore: NO_STACK,
  fn: () => fig4("imap"),
});

Deno.test({
  name:
    "FIG. 4 over real mail with the host reading POP3: b asks first and stands by, a connects to b over TCP",
  ignore: NO_STACK,
  fn: () => fig4("pop3"),
});
