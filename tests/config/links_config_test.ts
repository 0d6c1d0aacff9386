import assert from "node:assert/strict";
import { hostConfig, parse, refused } from "./host_config.ts";
import { DEFAULT_FORWARDS_PER_HOUR, DEFAULT_MAX_HOPS, MAX_LINKS } from "../../src/limits.ts";

const HOST = hostConfig("h@x.test");

Deno.test("a host has no links by default, and max_hops and forwards_per_hour default from limits.ts", () => {
  const host = parse(HOST).host!;
  assert.deepEqual(host.links, []);
  assert.equal(host.maxHops, DEFAULT_MAX_HOPS);
  assert.equal(host.forwardsPerHour, DEFAULT_FORWARDS_PER_HOUR);
  const set = parse(`${HOST}links = ["mailpeer1:x"]\nmax_hops = 2\nforwards_per_hour = 0\n`).host!;
  assert.deepEqual(set.links, ["mailpeer1:x"]);
  assert.equal(set.maxHops, 2);
  assert.equal(set.forwardsPerHour, 0, "0: rows travel with the periodic push only");
});

Deno.test("too many links, or a hop bound outside 1 to 16, is refused in one line naming the key", () => {
  const many = Array.from({ length: MAX_LINKS + 1 }, (_, i) => `"c${i}"`).join(", ");
  refused(
    `${HOST}links = [${many}]\n`,
    /^Cannot read host\.links: it lists 17 hosts, more than 16/,
  );
  refused(`${HOST}max_hops = 0\n`, /^Cannot read host\.max_hops: /);
  refused(`${HOST}max_hops = 17\n`, /^Cannot read host\.max_hops: /);
  refused(`${HOST}forwards_per_hour = -1\n`, /^Cannot read host\.forwards_per_hour: /);
});
