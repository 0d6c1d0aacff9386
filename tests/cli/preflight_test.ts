/**
 * What a terminal can check before it mails its request: an announced address that a host
 * with the default `allow_private_addresses = false` refuses is said at once, instead of the
 * terminal waiting the whole reply_timeout for a reply that never comes.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { events, mailpeer, Running } from "../support/cli.ts";

async function terminalSite(lines: string, identityOf = "alice") {
  const dir = await Deno.makeTempDir({ prefix: "mailpeer-preflight-" });
  const host = await mailpeer([
    "keygen",
    "--host",
    "host@lan.test",
    "-o",
    "host.keys.json",
    "--json",
  ], {
    cwd: dir,
  });
  assert.equal(host.code, 0, host.stderr);
  const card = events(host.stdout)[0]?.card as string;
  const alice = await mailpeer(["keygen", "--user", identityOf, "-o", "alice.json"], {
    cwd: dir,
  });
  assert.equal(alice.code, 0, alice.stderr);
  await Deno.writeTextFile(
    join(dir, "alice.toml"),
    `network = "pf"\npost_office = "po"\n[terminal]\nuser_id = "alice"\nemail = "alice@lan.test"\n` +
      `identity = "alice.json"\nhosts = ["${card}"]\nreply_timeout = "1h"\n${lines}\n`,
  );
  return dir;
}

/** The events of a client announcing `address` up to its request. */
async function untilRequest(address: string) {
  const dir = await terminalSite(`address = "${address}"`);
  try {
    const client = new Running(["client", "--json", "--config", "alice.toml"], { cwd: dir });
    try {
      await client.waitFor((e) => e.event === "request-sent");
      return client.events;
    } finally {
      await client.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a terminal announcing only a private address is warned before it mails, naming allow_private_addresses", async () => {
  const seen = await untilRequest("192.168.1.20");
  const order = seen.map((e) => e.event);
  const warnings = seen.filter((e) => e.event === "warning");
  assert.equal(warnings.length, 1);
  assert.match(
    String(warnings[0]!.message),
    /^terminal\.address 192\.168\.1\.20 is a private address, .*allow_private_addresses = true/,
  );
  assert.ok(order.indexOf("warning") < order.indexOf("request-sent"), order.join(","));
  const global = await untilRequest("93.184.216.34");
  assert.deepEqual(global.filter((e) => e.event === "warning"), [], "a global address is fine");
});

Deno.test("client, send and receive whose identity file is another user's stop before they mail, naming both", async () => {
  const dir = await terminalSite('address = "93.184.216.34"', "bob");
  try {
    await Deno.writeTextFile(join(dir, "file.txt"), "hello");
    for (const args of [["client"], ["send", "file.txt"], ["receive", "."]]) {
      const client = new Running([...args, "--json", "--config", "alice.toml"], { cwd: dir });
      const first = await Promise.race([
        client.status.then(() => "exited"),
        client.waitFor((e) => e.event === "request-sent").then(() => "mailed", () => "exited"),
      ]);
      if (first === "mailed") await client.stop();
      assert.equal(first, "exited", `${args[0]} stopped before mailing a request`);
      assert.equal((await client.status).code, 1);
      assert.match(
        String(client.events.find((e) => e.event === "error")?.message),
        /^Cannot start a terminal: terminal\.user_id is "alice" but \S+alice\.json is the identity of "bob"; set user_id to that, or make an identity for "alice" with mailpeer keygen --user$/,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("combined with a broken terminal half stops before its host starts", async () => {
  const dir = await terminalSite('address = "93.184.216.34"', "bob");
  try {
    const config = await Deno.readTextFile(join(dir, "alice.toml"));
    const card = /hosts = \["([^"]+)"\]/.exec(config)![1]!;
    // A host with a pool writes its hosts file as soon as it starts.
    await Deno.writeTextFile(
      join(dir, "combined.toml"),
      config.replace(
        "[terminal]",
        `[host]\nemail = "host@lan.test"\npool = ["${card}"]\n[terminal]`,
      ),
    );
    const r = await mailpeer(["combined", "--config", "combined.toml"], { cwd: dir });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^mailpeer: Cannot start a terminal: terminal\.user_id is "alice" /);
    await assert.rejects(Deno.stat(join(dir, "hosts.json")), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a malformed STUN server is one line before anything is mailed, not a stack trace", async () => {
  const dir = await terminalSite('address = "auto"\nstun_servers = ["stun.example.org:99999"]');
  try {
    const r = await mailpeer(["client", "--config", "alice.toml"], { cwd: dir });
    assert.equal(r.code, 1, r.stderr);
    assert.equal(
      r.stderr,
      'mailpeer: Cannot read terminal.stun_servers[0]: "stun.example.org:99999" is not a STUN ' +
        'server; write "host:port", e.g. "stun.example.org:3478" or "[2001:db8::10]:3478"\n',
    );
    await assert.rejects(Deno.stat(join(dir, "po", "host@lan.test")), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
