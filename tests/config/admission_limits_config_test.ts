import assert from "node:assert/strict";
import { parseConfig } from "../../src/config/config.ts";
import { ConfigError } from "../../src/errors.ts";
import { DEFAULT_NEW_ROWS_PER_HOUR, DEFAULT_REQUESTS_PER_HOUR } from "../../src/limits.ts";

const HOST = `network = "x"\npost_office = "po"\n[host]\nemail = "h@x.test"\n`;

Deno.test("the host-wide request rate and the new-row cap default from limits.ts and can be set", () => {
  const defaults = parseConfig(HOST, { base: "/etc/mailpeer" });
  assert.equal(defaults.host?.requestsPerHour, DEFAULT_REQUESTS_PER_HOUR);
  assert.equal(defaults.host?.newRowsPerHour, DEFAULT_NEW_ROWS_PER_HOUR);
  const set = parseConfig(`${HOST}requests_per_hour = 500\nnew_rows_per_hour = 40\n`, {
    base: "/etc/mailpeer",
  });
  assert.equal(set.host?.requestsPerHour, 500);
  assert.equal(set.host?.newRowsPerHour, 40);
});

Deno.test("a host-wide limit that is not a positive whole number is refused in one line", () => {
  assert.throws(
    () => parseConfig(`${HOST}new_rows_per_hour = 0\n`, { base: "/etc/mailpeer" }),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.match(err.message, /^Cannot read host\.new_rows_per_hour: /);
      assert.ok(!err.message.includes("\n"));
      return true;
    },
  );
});
