/** A minimal host configuration for tests of one `[host]` setting. */
import assert from "node:assert/strict";
import { parseConfig } from "../../src/config/config.ts";
import { ConfigError } from "../../src/errors.ts";

/** A valid configuration ending inside `[host]`, for the host `email`. */
export function hostConfig(email = "h@x.test"): string {
  return `network = "x"\npost_office = "po"\n[host]\nemail = "${email}"\n`;
}

/** Parses a configuration as found at /etc/mailpeer. */
export function parse(text: string) {
  return parseConfig(text, { base: "/etc/mailpeer" });
}

/** `text` is refused with one ECONFIG line matching `pattern`. */
export function refused(text: string, pattern: RegExp): void {
  assert.throws(() => parse(text), (err: unknown) => {
    assert.ok(err instanceof ConfigError, String(err));
    assert.match(err.message, pattern);
    assert.ok(!err.message.includes("\n"));
    return true;
  });
}
