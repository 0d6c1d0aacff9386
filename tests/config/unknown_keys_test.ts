/**
 * A misspelt key anywhere in the configuration stops the command with one line naming the
 * file, the key's path and the key that was probably meant, instead of being ignored (and its
 * default silently used).
 */
import assert from "node:assert/strict";
import { parseConfig } from "../../src/config/config.ts";
import { ConfigError } from "../../src/errors.ts";

const FILE = "/etc/mailpeer/mailpeer.toml";

const BASE = `
network = "lan-party"
post_office = "po"

[host]
email = "host@lan.local"

[terminal]
user_id = "alice"
email = "alice@lan.local"
hosts = ["mailpeer1:host@lan.local:AAAA:BBBB"]
`;

/** BASE with `line` added at the end of `section` (a header line, or "" for the top). */
function withLine(section: string, line: string): string {
  if (section === "") return `${line}\n${BASE}`;
  return BASE.includes(`${section}\n`)
    ? BASE.replace(`${section}\n`, `${section}\n${line}\n`)
    : `${BASE}\n${section}\n${line}\n`;
}

function refused(text: string): string {
  try {
    parseConfig(text, { base: "/etc/mailpeer", path: FILE });
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    assert.equal(err.code, "ECONFIG");
    assert.ok(!err.message.includes("\n"), "one line");
    return err.message;
  }
  assert.fail(`accepted:\n${text}`);
}

Deno.test("a typo in any section is refused with the file, the key path and the nearest key", () => {
  const cases: [section: string, line: string, path: string, meant: string][] = [
    ["", "netwrk = 1", "netwrk", "network"],
    ["[host]", 'poll_intervall = "5s"', "host.poll_intervall", "poll_interval"],
    [
      "[host]",
      "alow_private_addresses = true",
      "host.alow_private_addresses",
      "allow_private_addresses",
    ],
    ["[host.receive]", 'kind = "imap"\nhost = "m"\nidel = false', "host.receive.idel", "idle"],
    [
      "[host.send]",
      'kind = "smtp"\nhost = "m"\npassword_evn = "P"',
      "host.send.password_evn",
      "password_env",
    ],
    ["[host.store]", 'kind = "redis"\nurl = "redis://r"\nkeys = "t"', "host.store.keys", "key"],
    ["[terminal]", 'reply_timout = "1m"', "terminal.reply_timout", "reply_timeout"],
    ["[terminal.receive]", 'maildri = "m"', "terminal.receive.maildri", "maildir"],
    ["[terminal.send]", 'post_ofice = "p"', "terminal.send.post_ofice", "post_office"],
    [
      "[terminal.port_mapping]",
      'gatway = "192.168.1.1"',
      "terminal.port_mapping.gatway",
      "gateway",
    ],
    [
      "[[terminal.turn_servers]]",
      'url = "turn:t:3478"\nuser = "u"\npassword_env = "P"\nrelam = "r"',
      "terminal.turn_servers[0].relam",
      "realm",
    ],
  ];
  for (const [section, line, path, meant] of cases) {
    const message = refused(withLine(section, line));
    assert.match(
      message,
      new RegExp(
        `^Cannot read ${
          path.replaceAll(/[.[\]]/g, "\\$&")
        } in ${FILE}: it is not a known setting; did you mean ${meant}\\? `,
      ),
      message,
    );
  }
});

Deno.test("a key of another kind or of the other role is named as such", () => {
  assert.match(
    refused(withLine("[host.receive]", "idle = true")),
    /^Cannot read host\.receive\.idle in \S+: it is not used with kind = "local"; /,
  );
  assert.match(
    refused(withLine("[host.store]", 'url = "redis://r"')),
    /^Cannot read host\.store\.url in \S+: it is not used with kind = "file"; /,
  );
  assert.match(
    refused(withLine("[terminal]", "allow_private_addresses = true")),
    /^Cannot read terminal\.allow_private_addresses in \S+: it is a \[host\] setting; move it to the \[host\] section$/,
  );
  assert.match(
    refused(withLine("[host]", 'stun_servers = ["s:3478"]')),
    /^Cannot read host\.stun_servers in \S+: it is a \[terminal\] setting; /,
  );
});

Deno.test("a top-level key written below a section header is told to move up", () => {
  assert.match(
    refused(withLine("[terminal]", 'post_office = "po"')),
    /^Cannot read terminal\.post_office in \S+: it is a top-level setting, and TOML puts every line below a \[section\] header into it; move it above the first \[section\]$/,
  );
});

Deno.test("a typo of a key of another kind or role names that key and where it belongs", () => {
  assert.match(
    refused(withLine("[host.receive]", "idel = true")),
    /^Cannot read host\.receive\.idel in \S+: it is not a known setting; did you mean idle\? idle is not used with kind = "local"; /,
  );
  assert.match(
    refused(withLine("[terminal]", "alow_private_addresses = true")),
    /^Cannot read terminal\.alow_private_addresses in \S+: it is not a known setting; did you mean allow_private_addresses\? allow_private_addresses is a \[host\] setting; move it to the \[host\] section$/,
  );
});

Deno.test("a typo is reported before the missing key it hides", () => {
  assert.match(
    refused(BASE.replace('email = "host@lan.local"', 'emial = "host@lan.local"')),
    /^Cannot read host\.emial in \S+: it is not a known setting; did you mean email\? /,
  );
});

Deno.test("every key of the full example in docs/config.md is accepted, commented ones too", async () => {
  const doc = await Deno.readTextFile(new URL("../../docs/config.md", import.meta.url));
  const blocks = [...doc.matchAll(/```toml\n([\s\S]*?)```/g)].map((m) => m[1]!);
  // Uncomment the example lines (`# key = value`), keeping the prose comments out.
  const uncomment = (text: string) =>
    text.split("\n").map((l) => l.replace(/^# ([a-z_]+ = .*)$/, "$1")).join("\n");
  const full = uncomment(blocks[0]!)
    // Two port_mapping alternatives and the single-line turn_servers example: keep one each.
    .replace(/^port_mapping = "off".*$/m, "")
    .replace(/^port_mapping = \{ upnp_url.*$/m, "")
    .replace(/^turn_servers = \[\] .*$/m, "")
    .replace(/^turn_servers = \[\{ url = "turn:turn.example.org:3478", user = "alice",$/m, "")
    .replace(/^#? *password_env = "MAILPEER_TURN_PASSWORD" \}\].*$/m, "")
    // The store's url and key are for kind = "redis".
    .replace(/^kind = "file" /m, 'kind = "redis" ');
  const config = parseConfig(full, { base: "/etc/mailpeer", path: FILE });
  assert.equal(config.host?.email, "host@lan.local");
  assert.equal(config.terminal?.listen, "0.0.0.0");
  const imap = uncomment(blocks[1]!);
  const server = parseConfig(
    `network = "n"\n[host]\nemail = "h@x"\nkeys = "k"\n${imap}\n[host.send]\nkind = "local"\npost_office = "p"`,
    {
      base: "/etc/mailpeer",
    },
  );
  assert.equal(server.host?.receive.kind, "imap");
});

Deno.test("terminal.address and terminal.listen must be IP literals (or address = auto)", () => {
  assert.match(
    refused(withLine("[terminal]", 'address = "myhost.lan"')),
    /^Cannot read terminal\.address in \S+: "myhost\.lan" is not an IP address; write an IP literal .*"auto"/,
  );
  assert.match(
    refused(withLine("[terminal]", 'listen = "eth0"')),
    /^Cannot read terminal\.listen in \S+: "eth0" is not an IP address; /,
  );
});

Deno.test("a hostile key cannot break the one line or drive the terminal", () => {
  const message = refused(withLine("[host]", `"a\\nb\\u001b[31m${"x".repeat(100_000)}" = 1`));
  assert.ok(!/[\u0000-\u001f]/.test(message), message.slice(0, 200));
  assert.ok(message.length < 400, `short: ${message.length}`);
  assert.match(message, /^Cannot read host\."a\\nb\\u001b\[31mxxx/);
});
