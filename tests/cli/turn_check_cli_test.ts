/**
 * `mailpeer turn-check` as a user runs it, against the loopback coturn (skipped without one).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { REAL_TURN } from "../support/coturn.ts";
import { events, mailpeer } from "../support/cli.ts";

function config(dir: string, servers: string): string {
  const path = join(dir, "mailpeer.toml");
  Deno.writeTextFileSync(
    path,
    `network = "x"
post_office = "po"
[terminal]
user_id = "alice"
email = "alice@lan.local"
hosts = ["mailpeer1:host@lan.local:AAAA:BBBB"]
${servers}
`,
  );
  return path;
}

Deno.test({
  name: "turn-check allocates a relay with the configured password file, prints it and releases it",
  ignore: !REAL_TURN,
  async fn() {
    const dir = Deno.makeTempDirSync();
    try {
      const t = REAL_TURN!;
      const dir2 = Deno.makeTempDirSync({ dir });
      Deno.writeTextFileSync(join(dir2, "turn.pass"), t.password + "\n");
      const path = config(
        dir,
        `turn_servers = [{ url = "${t.url}", user = "${t.user}", password_file = "${
          join(dir2, "turn.pass")
        }" }]`,
      );
      const text = await mailpeer(["turn-check", "-c", path]);
      assert.equal(text.code, 0, text.stderr);
      assert.match(
        text.stdout,
        new RegExp(
          `^${t.url}: relayed 127\\.0\\.0\\.1:\\d+, mapped 127\\.0\\.0\\.1:\\d+, lifetime \\d+ s, \\d+ ms; released\\n$`,
        ),
      );
      const json = await mailpeer(["turn-check", "-c", path, "--json"]);
      assert.equal(json.code, 0, json.stderr);
      const [e] = events(json.stdout);
      assert.equal(e!.event, "turn-allocated");
      const relayed = e!.relayed as { address: string; port: number };
      assert.ok(relayed.port >= t.relayPorts[0] && relayed.port <= t.relayPorts[1]);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "turn-check with a wrong password exits 1 with the one line naming the credentials",
  ignore: !REAL_TURN,
  async fn() {
    const dir = Deno.makeTempDirSync();
    try {
      const t = REAL_TURN!;
      const path = config(
        dir,
        `turn_servers = [{ url = "${t.url}", user = "${t.user}", password_env = "MP_TEST_TURN" }]`,
      );
      const r = await mailpeer(["turn-check", "-c", path], { env: { MP_TEST_TURN: "wrong" } });
      assert.equal(r.code, 1);
      assert.equal(
        r.stderr,
        `mailpeer: Cannot allocate a TURN relay on ${t.host}:${t.port}: the server refused the ` +
          "credentials (401 Unauthorized); check terminal.turn_servers' user and password\n",
      );
      const unset = await mailpeer(["turn-check", "-c", path]);
      assert.equal(unset.code, 1);
      assert.match(unset.stderr, /environment variable MP_TEST_TURN is not set; export it/);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test("turn-check without terminal.turn_servers says what to add", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const r = await mailpeer(["turn-check", "-c", config(dir, "")]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /terminal\.turn_servers lists none; add one \(see docs\/config\.md\)/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
