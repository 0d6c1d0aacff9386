/**
 * The configuration `mailpeer init` writes: it loads as it was meant for each role, names the
 * password instead of holding it, and nothing a found server carries can add a key.
 */
import assert from "node:assert/strict";
import { parseConfig } from "../../src/config/config.ts";
import { renderConfig, type WrittenConfig } from "../../src/config/config_writer.ts";
import type { FoundServer } from "../../src/config/discovery.ts";
import { formatCheckedHostCard } from "../../src/message/host_card.ts";
import { generateHostKeys, hostCardOf } from "../../src/message/key_file.ts";

const IMAP: FoundServer = {
  protocol: "imap",
  hostname: "mail.example.org",
  address: "192.0.2.10",
  port: 993,
  tls: "implicit",
  username: "alice@example.org",
  source: "srv",
};
const SMTP: FoundServer = {
  protocol: "smtp",
  hostname: "smtp.example.org",
  port: 587,
  tls: "starttls",
  source: "autoconfig",
};

async function written(role: WrittenConfig["role"], extra: Partial<WrittenConfig> = {}) {
  const card = formatCheckedHostCard(hostCardOf(await generateHostKeys("host@example.org")));
  return renderConfig({
    role,
    email: "alice@example.org",
    network: "lan",
    incoming: IMAP,
    outgoing: SMTP,
    password: { file: "alice.password" },
    caFile: "/etc/ssl/test-ca.pem",
    hostKeys: "host.keys.json",
    terminal: { userId: "alice", identity: "alice.identity.json", hosts: [card] },
    ...extra,
  });
}

Deno.test("a written host, terminal and combined configuration loads with the servers found", async () => {
  for (const role of ["host", "terminal", "both"] as const) {
    const config = parseConfig(await written(role), { base: "/srv/mp", path: "/srv/mp/x.toml" });
    assert.equal(config.network, "lan");
    assert.equal(config.host !== undefined, role !== "terminal", role);
    assert.equal(config.terminal !== undefined, role !== "host", role);
    const receive = (config.host ?? config.terminal)!.receive;
    assert.equal(receive.kind, "imap");
    if (receive.kind === "imap") {
      // Resolved through our own DNS: connect to the address, check TLS against the name.
      assert.equal(receive.host, "192.0.2.10");
      assert.equal(receive.servername, "mail.example.org");
      assert.equal(receive.port, 993);
      assert.equal(receive.tls, "implicit");
      assert.deepEqual(receive.password, { file: "/srv/mp/alice.password" });
    }
    const send = (config.host ?? config.terminal)!.send;
    assert.equal(send.kind, "smtp");
    if (send.kind === "smtp") {
      assert.equal(send.host, "smtp.example.org");
      assert.equal(send.user, "alice@example.org");
      assert.equal(send.servername, undefined);
    }
  }
});

Deno.test("a written configuration names the password's variable, never a password", async () => {
  const text = await written("host", { password: { env: "MP_PASSWORD" } });
  assert.match(text, /password_env = "MP_PASSWORD"/);
  assert.doesNotMatch(text, /^password\s*=/m);
  const config = parseConfig(text);
  assert.deepEqual(config.host?.receive.kind === "imap" && config.host.receive.password, {
    env: "MP_PASSWORD",
  });
});

Deno.test("nothing in a found server's values can add a key to the written configuration", async () => {
  const hostile: FoundServer = {
    ...IMAP,
    username: 'x"\ninsecure = true\n[host]\nemail = "evil@evil.test',
  };
  const config = parseConfig(await written("host", { incoming: hostile }));
  const receive = config.host!.receive;
  assert.equal(receive.kind === "imap" && receive.user, hostile.username);
  assert.equal(receive.kind === "imap" && receive.insecure, false);
  assert.equal(config.host!.email, "alice@example.org");
});
