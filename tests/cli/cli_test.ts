/**
 * The command line as a user runs it: real subprocesses of main.ts.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { events, mailpeer } from "../support/cli.ts";

Deno.test("demo --json connects two terminals over TCP and reports every FIG. 4 step", async () => {
  const r = await mailpeer(["demo", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const evs = events(r.stdout);
  const connected = evs.filter((e) => e.event === "connected");
  assert.equal(connected.length, 2, r.stdout);
  for (const c of connected) assert.equal(c.transport, "tcp");
  const kinds = new Set(evs.map((e) => e.event));
  for (
    const k of [
      "request-sent",
      "reply-received",
      "connecting",
      "standby",
      "disconnected",
      "reply-sent",
    ]
  ) {
    assert.ok(kinds.has(k), `missing ${k}`);
  }
  const first = evs.find((e) => e.event === "reply-received" && e.actor === "terminal-2");
  assert.deepEqual(first?.peers, [], "terminal 2 got a formal empty reply");
  const messages = evs.filter((e) => e.event === "message").map((e) => e.text);
  assert.deepEqual(messages.sort(), ["hello back from player2", "hello from player1"]);
  assert.ok(evs.every((e) => typeof e.event === "string" && typeof e.time === "string"));
});

Deno.test("keygen, host --once, client and table work together from configuration files", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mailpeer-cli-" });
  try {
    const host = await mailpeer([
      "keygen",
      "--host",
      "host@lan.test",
      "-o",
      "host.keys.json",
      "--json",
    ], { cwd: dir });
    assert.equal(host.code, 0, host.stderr);
    const card = events(host.stdout)[0]?.card as string;
    assert.match(card, /^mailpeer1:host@lan\.test:/);
    assert.equal((await Deno.stat(join(dir, "host.keys.json"))).mode! & 0o777, 0o600);
    const again = await mailpeer(["keygen", "--host", "host@lan.test", "-o", "host.keys.json"], {
      cwd: dir,
    });
    assert.equal(again.code, 1);
    assert.match(
      again.stderr,
      /^mailpeer: Cannot write host.keys.json: the file exists; pass --force/,
    );
    const bob = await mailpeer(["keygen", "--user", "bob", "-o", "bob.json"], { cwd: dir });
    assert.equal(bob.code, 0, bob.stderr);
    assert.equal((await Deno.stat(join(dir, "bob.json"))).mode! & 0o777, 0o600);
    // What to put in a peer's terminal.allow: bob@ and the 43-character key fingerprint.
    const bobRef = bob.stdout.trim().split("\n").at(-1)!;
    assert.match(bobRef, /^bob@[A-Za-z0-9_-]{43}$/);
    const shown = await mailpeer(["keygen", "--fingerprint", "bob.json"], { cwd: dir });
    assert.equal(shown.stdout.trim(), bobRef);

    await Deno.writeTextFile(
      join(dir, "mailpeer.toml"),
      `
network = "clitest"
post_office = "po"
[host]
email = "host@lan.test"
allow_private_addresses = true
[terminal]
user_id = "bob"
email = "bob@lan.test"
identity = "bob.json"
hosts = ["${card}"]
address = "127.0.0.1"
reply_timeout = "20s"
standby_timeout = "1s"
poll_interval = "100ms"
`,
    );
    // Nobody hosts yet: the host runs once (as cron would) while the client waits.
    const client = mailpeer(["client", "--json", "-m", "hi"], { cwd: dir });
    let answered = 0;
    for (let i = 0; i < 200 && answered === 0; i++) {
      const once = await mailpeer(["host", "--once", "--json"], { cwd: dir });
      assert.equal(once.code, 0, once.stderr);
      answered = events(once.stdout).filter((e) => e.event === "reply-sent").length;
    }
    assert.equal(answered, 1);
    const c = await client;
    // No peer in the table: standby, then the standby time runs out.
    assert.equal(c.code, 1);
    const evs = events(c.stdout);
    assert.ok(evs.some((e) => e.event === "standby"));
    assert.equal(evs.at(-1)?.event, "error");
    assert.equal(evs.at(-1)?.code, "ETIMEOUT");

    const table = await mailpeer(["table", "--json"], { cwd: dir });
    assert.equal(table.code, 0, table.stderr);
    const rows = events(table.stdout);
    assert.equal(rows.length, 1);
    assert.equal(rows[0]?.userId, "bob");
    assert.equal(rows[0]?.peer, bobRef, "the table shows what allow-lists take");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("usage errors exit 2 with help; a bad configuration exits 1 with one line", async () => {
  const usage = await mailpeer(["host", "--no-such-flag"]);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /unknown option '--no-such-flag'/);
  assert.match(usage.stderr, /Usage: mailpeer host/);

  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "bad.toml"), `network = "x"\nnetwrk = 2\n`);
    const bad = await mailpeer(["host", "--config", "bad.toml"], { cwd: dir });
    assert.equal(bad.code, 1);
    assert.equal(
      bad.stderr,
      `mailpeer: Cannot read netwrk in ${
        join(dir, "bad.toml")
      }: it is not a known setting; did you mean network? (see docs/config.md)\n`,
    );
    const missing = await mailpeer(["host", "--json", "--config", "nope.toml"], { cwd: dir });
    assert.equal(missing.code, 1);
    assert.equal(events(missing.stdout)[0]?.code, "ECONFIG");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
