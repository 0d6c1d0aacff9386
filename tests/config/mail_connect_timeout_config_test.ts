/**
 * `connect_timeout` of a mail server section (issue 15): how long a person waits to hear that
 * nothing answers at the configured address, and the section's name the mail clients put in
 * their messages.
 */
import assert from "node:assert/strict";
import { parseConfig } from "../../src/config/config.ts";
import { ConfigError } from "../../src/errors.ts";

const BASE = `network = "x"\npost_office = "po"\n[host]\nemail = "h@x.test"\n`;

function host(receive: string, send = `kind = "local"`) {
  const config = parseConfig(
    `${BASE}[host.receive]\n${receive}\n[host.send]\n${send}\n`,
    { base: "/etc/mailpeer" },
  );
  return config.host!;
}

Deno.test("a mail server waits 10 s for an answer unless connect_timeout says otherwise", () => {
  const imap = host(`kind = "imap"\nhost = "m"`).receive;
  assert.equal(imap.kind, "imap");
  if (imap.kind !== "imap") return;
  assert.equal(imap.connectTimeoutMs, 10_000);
  assert.equal(imap.section, "host.receive");
  const set = host(
    `kind = "pop3"\nhost = "m"\nconnect_timeout = "3s"`,
    `kind = "smtp"\nhost = "m"\nconnect_timeout = "45s"`,
  );
  assert.ok(set.receive.kind === "pop3" && set.send.kind === "smtp");
  if (set.receive.kind !== "pop3" || set.send.kind !== "smtp") return;
  assert.equal(set.receive.connectTimeoutMs, 3_000);
  assert.equal(set.send.connectTimeoutMs, 45_000);
  assert.equal(set.send.section, "host.send");
});

Deno.test("a connect_timeout out of range is refused in one line naming the key", () => {
  for (const value of [`"100ms"`, `"10m"`]) {
    assert.throws(() => host(`kind = "imap"\nhost = "m"\nconnect_timeout = ${value}`), (err) => {
      assert.ok(err instanceof ConfigError);
      assert.match(
        err.message,
        /^Cannot read host\.receive\.connect_timeout: .* is not from 1s to 300s; /,
      );
      assert.ok(!err.message.includes("\n"));
      return true;
    });
  }
});
