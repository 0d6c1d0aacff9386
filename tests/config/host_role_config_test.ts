/**
 * `host.role` and `host.role_lease` (docs/config.md "A group with no standing host"): off by
 * default, "auto" for a member of a group, the lease bounded, and the settings a member cannot
 * work with refused in one line naming the key.
 */
import assert from "node:assert/strict";
import { hostConfig, parse, refused } from "./host_config.ts";
import { DEFAULT_ROLE_LEASE_MS } from "../../src/limits.ts";

const HOST = hostConfig("group@x.test");

Deno.test('a host is a standing host unless role = "auto"; the lease defaults from limits.ts', () => {
  const host = parse(HOST).host!;
  assert.equal(host.role, "off");
  assert.equal(host.roleLeaseMs, DEFAULT_ROLE_LEASE_MS);
  const member = parse(`${HOST}role = "auto"\nrole_lease = "2m"\n`).host!;
  assert.equal(member.role, "auto");
  assert.equal(member.roleLeaseMs, 120_000);
});

Deno.test("an unknown role, a lease outside 30 s to 1 h, or a member that cannot share its mailbox is refused", () => {
  refused(
    `${HOST}role = "first"\n`,
    /^Cannot read host\.role: "first" is not a role; write role = "auto"/,
  );
  refused(`${HOST}role = "auto"\nrole_lease = "1s"\n`, /^Cannot read host\.role_lease: /);
  refused(`${HOST}role = "auto"\nrole_lease = "2h"\n`, /^Cannot read host\.role_lease: /);
  refused(
    `${HOST}role = "auto"\n[host.receive]\nkind = "pop3"\nhost = "m.x.test"\nuser = "u"\npassword_env = "P"\n`,
    /^Cannot read host\.role: .*POP3.* kind = "imap"/,
  );
  refused(
    `${HOST}role = "auto"\nforward_to = ["w@x.test"]\n`,
    /^Cannot read host\.role: .*forward_to/,
  );
});
