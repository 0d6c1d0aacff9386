/**
 * FIG. 4 over real mail: three providers (a.test, b.test, host.test), each a real Postfix +
 * Dovecot on loopback, relaying to each other. The CLI runs as a user runs it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { events, mailpeer, Running } from "../support/cli.ts";
import { account, NO_STACK, STACK } from "../support/mailstack.ts";
import { deliverOrdinary, messagesOf } from "../support/stack_mail.ts";

type Receive = "imap" | "pop3";

/** A temporary directory with keys and one configuration per role, talking to the real stack. */
export async function makeSite(options: { receive: Receive; network?: string }) {
  const dir = await Deno.makeTempDir({ prefix: "mailpeer-e2e-" });
  const network = options.network ?? `e2e-${crypto.randomUUID().slice(0, 8)}`;
  const env: Record<string, string> = {};
  const host = await mailpeer(["keygen", "--host", "host@host.test", "-o", "host.keys.json", "--json"], { cwd: dir });
  assert.equal(host.code, 0, host.stderr);
  const card = events(host.stdout)[0]?.card as string;

  const server = (address: string, kind: "imap" | "pop3" | "smtp") => {
    const { provider, user } = account(address);
    const envName = `MP_PASS_${address.replace(/[^a-z0-9]/gi, "_").toUpperCase()}`;
    env[envName] = user.password;
    const port = kind === "imap" ? provider.ports.imap : kind === "pop3" ? provider.ports.pop3 : provider.ports.submission;
    return [
      `kind = "${kind}"`,
      `host = "${provider.ip}"`,
      `port = ${port}`,
      `tls = "starttls"`,
      `user = "${user.user}"`,
      `password_env = "${envName}"`,
      `ca_file = "${STACK!.caFile}"`,
      `servername = "${provider.hostname}"`,
    ].join("\n");
  };

  await Deno.writeTextFile(
    join(dir, "host.toml"),
    `network = "${network}"
[host]
email = "host@host.test"
poll_interval = "100ms"
[host.receive]
${server("host@host.test", options.receive)}
${options.receive === "imap" ? "idle = false" : ""}
[host.send]
${server("host@host.test", "smtp")}
`,
  );
  for (const [user, address] of [["bob", "bob@b.test"], ["alice", "alice@a.test"]] as const) {
    const r = await mailpeer(["keygen", "--user", user, "-o", `${user}.json`], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    await Deno.writeTextFile(
      join(dir, `${user}.toml`),
      `network = "${network}"
[terminal]
user_id = "${user}"
email = "${address}"
identity = "${user}.json"
hosts = ["${card}"]
address = "127.0.0.1"
reply_timeout = "60s"
standby_timeout = "60s"
[terminal.receive]
${server(address, "imap")}
[terminal.send]
${server(address, "smtp")}
`,
    );
  }
  return { dir, env, network, card, cleanup: () => Deno.remove(dir, { recursive: true }) };
}

async function fig4(receive: Receive): Promise<void> {
  const site = await makeSite({ receive });
  const ordinary = `lunch ${crypto.randomUUID()}`;
  await deliverOrdinary("host@host.test", ordinary);
  await deliverOrdinary("alice@a.test", ordinary);
  const opts = { cwd: site.dir, env: site.env };
  const host = new Running(["host", "--config", "host.toml", "--json"], opts);
  try {
    // S10-S22, then standby: b.test's terminal asks first and gets a formal empty reply.
    const bob = new Running(["client", "--config", "bob.toml", "--json", "-m", "hello from bob"], opts);
    const empty = await bob.waitFor((e) => e.event === "reply-received");
    assert.deepEqual(empty.peers, []);
    await bob.waitFor((e) => e.event === "standby");

    // a.test's terminal asks, gets bob's address and connects over TCP.
    const alice = await mailpeer(["client", "--config", "alice.toml", "--json", "-m", "hello from alice"], opts);
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
    assert.ok(bob.events.some((e) => e.event === "connected" && e.peer === "alice" && e.role === "acceptor"));
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
  name: "FIG. 4 over real mail with the host reading IMAP: b asks first and stands by, a connects to b over TCP",
  ignore: NO_STACK,
  fn: () => fig4("imap"),
});

Deno.test({
  name: "FIG. 4 over real mail with the host reading POP3: b asks first and stands by, a connects to b over TCP",
  ignore: NO_STACK,
  fn: () => fig4("pop3"),
});
