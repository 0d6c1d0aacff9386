/**
 * `mailpeer send FILE` / `mailpeer receive DIR` as users run them, through a host on a local
 * post office: the receiver stands by, the sender finds it and the file arrives checked.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { autoAesGcmEngine } from "../../src/peer/aes_gcm.ts";
import { events, mailpeer, Running } from "../support/cli.ts";

async function site(dir: string, transport: "tcp" | "udp"): Promise<void> {
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
  await Deno.writeTextFile(
    join(dir, "host.toml"),
    `network = "files"\npost_office = "po"\n[host]\nemail = "host@lan.test"\nallow_private_addresses = true\n`,
  );
  for (const user of ["alice", "bob"]) {
    assert.equal(
      (await mailpeer(["keygen", "--user", user, "-o", `${user}.json`], { cwd: dir })).code,
      0,
    );
    await Deno.writeTextFile(
      join(dir, `${user}.toml`),
      `network = "files"
post_office = "po"
[terminal]
user_id = "${user}"
email = "${user}@lan.test"
identity = "${user}.json"
hosts = ["${card}"]
address = "127.0.0.1"
transport = "${transport}"
reply_timeout = "30s"
standby_timeout = "30s"
`,
    );
  }
}

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let at = 0; at < n; at += 65536) {
    crypto.getRandomValues(out.subarray(at, Math.min(n, at + 65536)));
  }
  return out;
}

for (const transport of ["tcp", "udp"] as const) {
  Deno.test(`send FILE reaches a peer standing by with receive DIR over ${transport.toUpperCase()}, size and hash checked`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "mailpeer-files-" });
    try {
      await site(dir, transport);
      const content = randomBytes(3_000_000);
      await Deno.writeFile(join(dir, "save.bin"), content);
      await Deno.mkdir(join(dir, "inbox"));
      const host = new Running(["host", "--config", "host.toml", "--json"], { cwd: dir });
      try {
        const bob = new Running(["receive", "inbox", "--config", "bob.toml", "--json"], {
          cwd: dir,
        });
        await bob.waitFor((e) => e.event === "standby");
        const alice = await mailpeer(["send", "save.bin", "--config", "alice.toml", "--json"], {
          cwd: dir,
        });
        assert.equal(alice.code, 0, alice.stderr + alice.stdout);
        const sent = events(alice.stdout).find((e) => e.event === "file-transferred");
        assert.equal(sent?.size, content.length);
        // Fast by default: the CLI's session seals with what this test process (which holds the
        // ffi permission) would pick, libIPSec_MB or OpenSSL wherever they are.
        const connected = events(alice.stdout).find((e) => e.event === "connected");
        assert.equal(connected?.cipher, autoAesGcmEngine());
        assert.equal((await bob.status).code, 0, bob.stderr);
        const got = bob.events.find((e) => e.event === "file-transferred");
        assert.equal(got?.sha256, sent?.sha256);
        assert.deepEqual(await Deno.readFile(join(dir, "inbox", "save.bin")), content);
      } finally {
        await host.stop();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("send - sends what is piped in, under --name, to a peer standing by", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mailpeer-files-" });
  try {
    await site(dir, "tcp");
    const content = randomBytes(2_500_000);
    await Deno.mkdir(join(dir, "inbox"));
    const host = new Running(["host", "--config", "host.toml", "--json"], { cwd: dir });
    try {
      const bob = new Running(["receive", "inbox", "--config", "bob.toml", "--json"], {
        cwd: dir,
      });
      await bob.waitFor((e) => e.event === "standby");
      const alice = await mailpeer(
        ["send", "-", "--name", "maps.tar", "--config", "alice.toml", "--json"],
        { cwd: dir, stdin: content },
      );
      assert.equal(alice.code, 0, alice.stderr + alice.stdout);
      const sent = events(alice.stdout).find((e) => e.event === "file-transferred");
      assert.deepEqual([sent?.name, sent?.size], ["maps.tar", content.length]);
      // A stream has no total: progress events count the bytes so far only.
      const progress = events(alice.stdout).filter((e) => e.event === "transfer-progress");
      assert.ok(progress.length > 0, alice.stdout);
      assert.ok(progress.every((e) => e.total === undefined), JSON.stringify(progress));
      assert.equal((await bob.status).code, 0, bob.stderr);
      const got = bob.events.find((e) => e.event === "file-transferred");
      assert.equal(got?.sha256, sent?.sha256);
      assert.deepEqual(await Deno.readFile(join(dir, "inbox", "maps.tar")), content);
    } finally {
      await host.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
