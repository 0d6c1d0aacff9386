/** A minimal terminal configuration for tests of one `[terminal]` setting. */
import assert from "node:assert/strict";
import { parseConfig } from "../../src/config/config.ts";
import { ConfigError } from "../../src/errors.ts";

/** A valid configuration ending inside `[terminal]`. */
export const TERMINAL = `network = "x"
post_office = "po"
[terminal]
user_id = "alice"
email = "alice@lan.local"
hosts = ["mailpeer1:host@lan.local:AAAA:BBBB"]
`;

/** The terminal section of TERMINAL + `extra`. */
export function terminal(extra: string) {
  return parseConfig(TERMINAL + extra, { base: "/etc/mailpeer" }).terminal!;
}

/** TERMINAL + `extra` is refused with one ECONFIG line matching `pattern`. */
export function rejects(extra: string, pattern: RegExp): void {
  assert.throws(() => parseConfig(TERMINAL + extra, { base: "/etc/mailpeer" }), (err: unknown) => {
    assert.ok(err instanceof ConfigError, String(err));
    assert.equal(err.code, "ECONFIG");
    assert.match(err.message, pattern);
    assert.ok(!err.message.includes("\n"), "one line");
    return true;
  });
}
