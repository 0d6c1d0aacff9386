/**
 * Mail addresses and the user id are checked when the configuration is read: a typo there
 * (a comma for a dot, two addresses in one) would otherwise send requests from or to nowhere.
 */
import assert from "node:assert/strict";
import { parseConfig } from "../../src/config/config.ts";
import { ConfigError } from "../../src/errors.ts";

const HOST = `network = "n"\npost_office = "po"\n[host]\n`;
const TERMINAL = `network = "n"\npost_office = "po"\n[terminal]\nhosts = ["c"]\n`;

function refused(text: string, pattern: RegExp): void {
  assert.throws(() => parseConfig(text, { base: "/etc/mailpeer" }), (err: unknown) => {
    assert.ok(err instanceof ConfigError && err.code === "ECONFIG", String(err));
    assert.match(err.message, pattern);
    assert.ok(!err.message.includes("\n"), "one line");
    return true;
  });
}

Deno.test("a host or terminal e-mail address that is no single address is refused, naming it", () => {
  refused(
    `${HOST}email = "host@lan,local"`,
    /^Cannot read host\.email: "host@lan,local" is not an e-mail address \(.*\); fix it$/,
  );
  refused(
    `${HOST}email = "host@lan.local"\nforward_to = ["w1@lan.local", "w2 lan.local"]`,
    /^Cannot read host\.forward_to\[1\]: "w2 lan\.local" is not an e-mail address /,
  );
  refused(
    `${TERMINAL}user_id = "alice"\nemail = "alice@a.test, eve@e.test"`,
    /^Cannot read terminal\.email: "alice@a\.test, eve@e\.test" is not an e-mail address \(.*several recipients\)/,
  );
  refused(
    `${TERMINAL}user_id = "ali\\nce"\nemail = "alice@a.test"`,
    /^Cannot read terminal\.user_id: the user id contains control characters/,
  );
});

Deno.test("a Redis store URL that is no redis:// URL is refused when read", () => {
  refused(
    `${HOST}email = "host@lan.local"\n[host.store]\nkind = "redis"\nurl = "127.0.0.1:6379"`,
    /^Cannot read host\.store\.url: "127\.0\.0\.1:6379" is not a redis:\/\/ or rediss:\/\/ URL; write e\.g\. "redis:\/\/127\.0\.0\.1:6379"$/,
  );
});
