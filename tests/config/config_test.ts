import assert from "node:assert/strict";
import { parseConfig } from "../../src/config/config.ts";
import { parseDuration } from "../../src/duration.ts";
import { resolveSecret } from "../../src/config/secret.ts";
import { ConfigError } from "../../src/errors.ts";

const FULL = `
network = "lan-party"
post_office = "po"

[host]
email = "host@lan.local"
expiry = "2h"

[terminal]
user_id = "alice"
email = "alice@lan.local"
hosts = ["mailpeer1:host@lan.local:AAAA:BBBB"]
address = "127.0.0.1"
reply_timeout = "90s"
allow = ["bob@f8oDTCq4mrP3Y3mJgf1m3AGiZoZeD2BDMD8Pg2kNcdk"]
`;

function rejects(text: string, pattern: RegExp): void {
  assert.throws(() => parseConfig(text, { base: "/etc/mailpeer" }), (err: unknown) => {
    assert.ok(err instanceof ConfigError, String(err));
    assert.equal(err.code, "ECONFIG");
    assert.match(err.message, pattern);
    assert.ok(!err.message.includes("\n"), "one line");
    return true;
  });
}

Deno.test("a full configuration is read with defaults and paths relative to its file", () => {
  const c = parseConfig(FULL, { base: "/etc/mailpeer" });
  assert.equal(c.network, "lan-party");
  assert.equal(c.subjectMatch, "exact");
  assert.equal(c.host?.expiryMs, 2 * 3_600_000);
  assert.equal(c.host?.table, "/etc/mailpeer/table.json");
  assert.equal(c.host?.peersPerReply, 8);
  assert.deepEqual(c.host?.receive, { kind: "local", maildir: "/etc/mailpeer/po/host@lan.local" });
  assert.deepEqual(c.host?.send, { kind: "local", postOffice: "/etc/mailpeer/po" });
  assert.equal(c.terminal?.replyTimeoutMs, 90_000);
  assert.equal(c.terminal?.identity, "/etc/mailpeer/identity.json");
  assert.deepEqual(c.terminal?.allow, ["bob@f8oDTCq4mrP3Y3mJgf1m3AGiZoZeD2BDMD8Pg2kNcdk"]);
  assert.equal(c.terminal?.transport, "tcp");
});

Deno.test("a bad configuration names the key and what to do", () => {
  rejects(`network = "x"\nnetwrk = 1`, /^Cannot read netwrk: it is not a known setting; /);
  rejects(`post_office = "po"`, /^Cannot read network: it is missing; /);
  rejects(`network = "lan party"`, /^Cannot read network: "lan party" is not a network id; /);
  rejects(
    `network = "x"\npost_office="p"\n[host]\nemail = "h@x"\nexpiry = "soon"`,
    /^Cannot read host\.expiry: "soon" is not a duration; /,
  );
  rejects(
    `network = "x"\n[host]\nemail = "h@x"`,
    /^Cannot read host\.receive\.maildir: it is missing and no top-level post_office is set; /,
  );
  rejects(
    `network = "x"\npost_office="p"\n[host]\nemail = "h@x"\npeers_per_reply = -1`,
    /^Cannot read host\.peers_per_reply: -1 is not a whole number from 0 to 64; /,
  );
  rejects(
    `network = "x"\n[host]\nemail = "h@x"\n[host.receive]\nkind = "imap"\nhost = "m"\npassword = "hunter2"`,
    /passwords are not kept in the configuration/,
  );
  rejects(`network = "x"\n[[[`, /^Cannot read the configuration: it is not valid TOML/);
});

Deno.test("passwords come from an environment variable or a file, with a clear error when missing", async () => {
  Deno.env.set("MAILPEER_TEST_SECRET", "s3cret");
  assert.equal(await resolveSecret({ env: "MAILPEER_TEST_SECRET" }, "IMAP password"), "s3cret");
  Deno.env.delete("MAILPEER_TEST_SECRET");
  await assert.rejects(
    resolveSecret({ env: "MAILPEER_TEST_SECRET" }, "IMAP password"),
    /environment variable MAILPEER_TEST_SECRET is not set/,
  );
  const file = await Deno.makeTempFile();
  await Deno.writeTextFile(file, "from-file\n");
  assert.equal(await resolveSecret({ file }, "IMAP password"), "from-file");
  await Deno.remove(file);
  await assert.rejects(
    resolveSecret({ file }, "IMAP password"),
    /Cannot read the IMAP password from/,
  );
});

Deno.test("durations read as a person writes them", () => {
  assert.equal(parseDuration("500ms", "k"), 500);
  assert.equal(parseDuration("12h", "k"), 43_200_000);
  assert.equal(parseDuration(30, "k"), 30_000);
  assert.throws(() => parseDuration("-1s", "k"), ConfigError);
});

Deno.test("an allow- or deny-list entry that names no key is refused with the form to write", () => {
  const terminal = (list: string) =>
    `network = "x"\npost_office = "po"\n[terminal]\nuser_id = "a"\nemail = "a@x"\n` +
    `hosts = ["mailpeer1:h@x:AAAA:BBBB"]\n${list}`;
  rejects(
    terminal(`allow = ["bob"]`),
    /^Cannot read terminal\.allow: "bob" names no key; write "bob@<fingerprint>" .*mailpeer keygen/,
  );
  rejects(
    terminal(`deny = ["eve@short"]`),
    /^Cannot read terminal\.deny: "eve@short" names no key; /,
  );
  const c = parseConfig(
    terminal(`deny = ["f8oDTCq4mrP3Y3mJgf1m3AGiZoZeD2BDMD8Pg2kNcdk"]`),
    { base: "/etc/mailpeer" },
  );
  assert.deepEqual(c.terminal?.deny, ["f8oDTCq4mrP3Y3mJgf1m3AGiZoZeD2BDMD8Pg2kNcdk"]);
});

/** The warnings a configuration gave when it was read. */
function warningsOf(config: unknown): string[] {
  return (config as { warnings?: string[] }).warnings ?? [];
}

Deno.test('a mail server with tls = "none" and a password gives a warning, not an error', () => {
  const base = `network = "x"\npost_office = "po"\n[host]\nemail = "h@x.test"\n`;
  const plain = parseConfig(
    base + `[host.receive]\nkind = "imap"\nhost = "m"\ntls = "none"\npassword_env = "P"\n`,
    { base: "/etc/mailpeer" },
  );
  assert.equal(warningsOf(plain).length, 1);
  assert.match(
    warningsOf(plain)[0]!,
    /^host\.receive: tls = "none" sends the password of h@x\.test in clear text; .*starttls/,
  );
  const safe = parseConfig(
    base + `[host.receive]\nkind = "imap"\nhost = "m"\ntls = "starttls"\npassword_env = "P"\n`,
    { base: "/etc/mailpeer" },
  );
  assert.deepEqual(warningsOf(safe), []);
  const noPassword = parseConfig(
    base + `[host.send]\nkind = "smtp"\nhost = "m"\ntls = "none"\n`,
    { base: "/etc/mailpeer" },
  );
  assert.deepEqual(warningsOf(noPassword), []);
});

Deno.test("several host processes on one POP3 mailbox are refused: POP3 cannot claim a mail", () => {
  rejects(
    `network = "x"\npost_office = "p"\n[host]\nemail = "h@x"\nshared_mailbox = true\n` +
      `[host.receive]\nkind = "pop3"\nhost = "m"\nuser = "h"\npassword_env = "P"`,
    /^Cannot read host\.shared_mailbox: several processes cannot share a POP3 mailbox .*; read it over IMAP/,
  );
});

Deno.test("a host's sending accounts take caps and more accounts; a terminal's do not", () => {
  const config = parseConfig(
    `network = "x"\npost_office = "po"\n[host]\nemail = "h@x"\n` +
      `[host.send]\nmax_per_hour = 100\nmax_per_day = 500\n` +
      `[[host.send_also]]\nkind = "local"\npost_office = "po2"\nmax_per_day = 300\n`,
    { base: "/etc/mailpeer" },
  );
  assert.deepEqual(config.host?.send, {
    kind: "local",
    postOffice: "/etc/mailpeer/po",
    maxPerHour: 100,
    maxPerDay: 500,
  });
  assert.deepEqual(config.host?.sendAlso, [
    { kind: "local", postOffice: "/etc/mailpeer/po2", maxPerDay: 300 },
  ]);
  rejects(
    `network = "x"\npost_office = "po"\n[host]\nemail = "h@x"\n[host.send]\nmax_per_day = 0`,
    /^Cannot read host\.send\.max_per_day: 0 is not a whole number from 1 to 100000; /,
  );
  rejects(
    `network = "x"\npost_office = "po"\n[host]\nemail = "h@x"\nsend_also = "po2"`,
    /^Cannot read host\.send_also: it is not a list of tables; write \[\[host\.send_also\]\]/,
  );
  rejects(
    `network = "x"\npost_office = "po"\n[terminal]\nuser_id = "a"\nemail = "a@x"\n` +
      `hosts = ["mailpeer1:host@lan.local:AAAA:BBBB"]\n[terminal.send]\nmax_per_day = 10`,
    /^Cannot read terminal\.send\.max_per_day: only a host's sending accounts take caps; remove it/,
  );
});

Deno.test("token_command is a program as a list, for IMAP and SMTP, never beside a password", () => {
  const head = `network = "x"\n[host]\nemail = "h@x"\n`;
  const config = parseConfig(
    head + `[host.receive]\nkind = "imap"\nhost = "m"\ntoken_command = ["oauth2-token", "h@x"]\n` +
      `[host.send]\nkind = "smtp"\nhost = "m"\ntoken_command = ["oauth2-token", "h@x"]`,
    { base: "/etc/mailpeer" },
  );
  const receive = config.host?.receive as { tokenCommand?: string[]; password?: unknown };
  assert.deepEqual(receive.tokenCommand, ["oauth2-token", "h@x"]);
  assert.equal(receive.password, undefined);
  rejects(
    head + `[host.receive]\nkind = "imap"\nhost = "m"\ntoken_command = "oauth2-token h@x"`,
    /^Cannot read host\.receive\.token_command: it is not a command as a list; write it as a list/,
  );
  rejects(
    head + `[host.receive]\nkind = "imap"\nhost = "m"\ntoken_command = ["t"]\npassword_env = "P"`,
    /^Cannot read host\.receive\.token_command: it is set together with a password; keep one/,
  );
  rejects(
    head + `[host.receive]\nkind = "pop3"\nhost = "m"\ntoken_command = ["t"]`,
    /^Cannot read host\.receive\.token_command: it is not used with kind = "pop3"/,
  );
});
