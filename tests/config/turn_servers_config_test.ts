import assert from "node:assert/strict";
import { resolveSecret } from "../../src/config/secret.ts";
import { rejects, terminal } from "./terminal_config.ts";

Deno.test("no TURN server unless configured: the relay fallback stays off", () => {
  assert.deepEqual(terminal("").turnServers, []);
});

Deno.test("terminal.turn_servers reads url, user, realm and the password's env variable or file", () => {
  const t = terminal(`turn_servers = [
  { url = "turn:127.0.0.1:3578", user = "mailpeer", password_env = "MAILPEER_TURN_PASSWORD" },
  { url = "turn:relay.example.org", user = "bob", realm = "example.org", password_file = "turn.pass" },
]
`);
  assert.deepEqual(t.turnServers, [
    {
      url: "turn:127.0.0.1:3578",
      host: "127.0.0.1",
      port: 3578,
      user: "mailpeer",
      password: { env: "MAILPEER_TURN_PASSWORD" },
    },
    {
      url: "turn:relay.example.org",
      host: "relay.example.org",
      port: 3478,
      user: "bob",
      realm: "example.org",
      password: { file: "/etc/mailpeer/turn.pass" },
    },
  ]);
  // [[terminal.turn_servers]] sections read the same.
  const sections = terminal(`[[terminal.turn_servers]]
url = "turn:[::1]:3478"
user = "u"
password_env = "P"
`);
  assert.equal(sections.turnServers[0]!.host, "::1");
});

Deno.test("a TURN password resolves from its environment variable, as mail passwords do", async () => {
  const t = terminal(
    `turn_servers = [{ url = "turn:127.0.0.1", user = "u", password_env = "MAILPEER_TEST_TURN_PW" }]\n`,
  );
  Deno.env.set("MAILPEER_TEST_TURN_PW", "s3cret");
  try {
    assert.equal(await resolveSecret(t.turnServers[0]!.password, "TURN password"), "s3cret");
  } finally {
    Deno.env.delete("MAILPEER_TEST_TURN_PW");
  }
});

Deno.test("bad terminal.turn_servers entries are refused in one line naming the fix", () => {
  rejects(
    `turn_servers = [{ url = "turn:h", user = "u", password = "x" }]\n`,
    /passwords are not kept in the configuration; use terminal\.turn_servers\[0\]\.password_env/,
  );
  rejects(
    `turn_servers = [{ url = "turn:h", user = "u" }]\n`,
    /turn_servers\[0\]\.password_env: a TURN server needs a password; set password_env/,
  );
  rejects(
    `turn_servers = [{ url = "turns:h", user = "u", password_env = "P" }]\n`,
    /turn_servers\[0\]\.url: .*TLS\) is not supported/,
  );
  rejects(
    `turn_servers = [{ url = "turn:h:0", user = "u", password_env = "P" }]\n`,
    /turn_servers\[0\]\.url: /,
  );
  rejects(
    `turn_servers = [{ url = "turn:h", password_env = "P" }]\n`,
    /turn_servers\[0\]\.user/,
  );
  rejects(
    `turn_servers = [{ url = "turn:h", user = "u", password_env = "P", secret = 1 }]\n`,
    /turn_servers\[0\]\.secret: it is not a known setting/,
  );
  rejects(`turn_servers = "turn:h"\n`, /turn_servers: it is not a list of tables/);
  const five = Array.from(
    { length: 5 },
    () => `{ url = "turn:h", user = "u", password_env = "P" }`,
  );
  rejects(`turn_servers = [${five.join(", ")}]\n`, /5 servers are listed; list at most 4/);
});
