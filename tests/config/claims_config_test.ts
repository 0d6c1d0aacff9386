/**
 * `host.claims` (docs/decisions.md "Claims in the shared store"): where processes sharing the
 * host's mailbox keep their claims, `store` (in the Redis table, when the table is there) unless
 * `mailbox` is asked for; anything else is
 * refused in one line naming the key and the words it takes.
 */
import assert from "node:assert/strict";
import { parseConfig } from "../../src/config/config.ts";
import { ConfigError } from "../../src/errors.ts";

const HOST =
  `network = "x"\npost_office = "po"\n[host]\nemail = "h@x.test"\nshared_mailbox = true\n`;
const parse = (text: string) => parseConfig(text, { base: "/etc/mailpeer" });

Deno.test('claims are kept in the store unless claims = "mailbox"', () => {
  assert.equal(parse(HOST).host!.claims, "store");
  assert.equal(parse(`${HOST}claims = "mailbox"\n`).host!.claims, "mailbox");
  assert.equal(parse(`${HOST}claims = "store"\n`).host!.claims, "store");
});

Deno.test("any other claims value is refused in one line naming host.claims", () => {
  for (const value of ['"redis"', '"Store"', '""', "true", "1", '["store"]']) {
    assert.throws(() => parse(`${HOST}claims = ${value}\n`), (err: unknown) => {
      assert.ok(err instanceof ConfigError && err.code === "ECONFIG", String(err));
      assert.match(err.message, /^Cannot read host\.claims: .*\bstore, mailbox; /);
      assert.ok(!err.message.includes("\n"), err.message);
      return true;
    }, value);
  }
});
