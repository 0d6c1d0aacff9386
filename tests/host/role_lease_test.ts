/**
 * The host role lease from the attacker's side (docs/decisions.md "First receiver becomes
 * host"): only the network host key makes one, every field is bounded, and every member settles
 * on the same holder.
 */
import assert from "node:assert/strict";
import { MessageError } from "../../src/errors.ts";
import {
  currentHolder,
  nextEpoch,
  openLease,
  type RoleLease,
  signLease,
} from "../../src/host/role/role_lease.ts";
import { MAX_CLOCK_SKEW_MS, MAX_ROLE_LEASE_MS } from "../../src/limits.ts";
import { MAX_ROLE_EPOCH } from "../../src/protocol.ts";
import { fromBase64Url, toBase64Url } from "../../src/message/base64.ts";
import { generateHostKeys } from "../../src/message/key_file.ts";
import { sign } from "../../src/message/keys.ts";

const NOW = Date.UTC(2026, 11, 4, 23);
const keys = await generateHostKeys("group@lan.test");
const lease: RoleLease = {
  network: "lan",
  epoch: 1,
  holder: "bob",
  taken: NOW,
  since: NOW,
  until: NOW + 60_000,
};
const open = (line: string) => openLease(line, { keys, network: "lan", now: NOW });

/** A lease line with any JSON, signed by the network key as a member would. */
async function signedJson(json: Record<string, unknown>): Promise<string> {
  const text = JSON.stringify(json);
  const sig = await sign(
    keys.ed25519.privateKey,
    new TextEncoder().encode("mailpeer-role-lease\0" + text),
  );
  return `${toBase64Url(new TextEncoder().encode(text))}.${toBase64Url(sig)}`;
}

async function refused(line: Promise<string> | string, code: string, words: RegExp) {
  await assert.rejects(open(await line), (err) => {
    assert.ok(err instanceof MessageError);
    assert.equal(err.code, code);
    assert.match(err.message, words);
    return true;
  });
}

Deno.test("a lease signed by the network key opens to what was signed", async () => {
  assert.deepEqual(await open(await signLease(lease, keys)), lease);
});

Deno.test("a lease signed by another key (not a member of this group) is refused", async () => {
  const stranger = await generateHostKeys("group@lan.test");
  await refused(signLease(lease, stranger), "ESIGNATURE", /network host key did not sign/);
});

Deno.test("a lease altered after signing (another holder, a longer term) is refused", async () => {
  const [body, sig] = (await signLease(lease, keys)).split(".");
  const json = JSON.parse(new TextDecoder().decode(fromBase64Url(body!)));
  for (const change of [{ holder: "mallory" }, { until: NOW + MAX_ROLE_LEASE_MS }]) {
    const forged = toBase64Url(new TextEncoder().encode(JSON.stringify({ ...json, ...change })));
    await refused(`${forged}.${sig}`, "ESIGNATURE", /did not sign/);
  }
});

Deno.test("a signed lease that breaks a bound is refused, naming the field", async () => {
  const base = { ...lease } as Record<string, unknown>;
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ epoch: MAX_ROLE_EPOCH + 1 }, /epoch/],
    [{ epoch: 0 }, /epoch/],
    [{ epoch: 1.5 }, /epoch/],
    [{ until: NOW + MAX_ROLE_LEASE_MS + 1 }, /until/],
    [{ until: NOW }, /until/],
    [{ taken: NOW + MAX_CLOCK_SKEW_MS + 1, since: NOW + MAX_CLOCK_SKEW_MS + 1 }, /taken/],
    [{ since: NOW - 1 }, /since/],
    [{ network: "other" }, /another network/],
    [{ holder: "" }, /holder/],
    [{ holder: 7 }, /holder/],
  ];
  for (const [change, words] of cases) {
    await refused(signedJson({ ...base, ...change }), "EPAYLOAD", words);
  }
});

Deno.test("a lease line that is no lease or over the size bound is refused", async () => {
  await refused("no-dot-here", "EPAYLOAD", /<lease>\.<signature>/);
  await refused("!!.!!", "EPAYLOAD", /base64url/);
  await refused(signedJson({ ...lease, holder: "x".repeat(600) }), "EPAYLOAD", /over 512 bytes/);
});

Deno.test("every member settles on the same holder: highest epoch, then first taker, then name", () => {
  const l = (epoch: number, holder: string, taken: number, until = NOW + 1000): RoleLease => ({
    network: "lan",
    epoch,
    holder,
    taken,
    since: taken,
    until,
  });
  const a = l(1, "carol", NOW - 10);
  const b = l(1, "alice", NOW - 5);
  const c = l(1, "bob", NOW - 10);
  for (const order of [[a, b, c], [c, b, a], [b, a, c]]) {
    assert.equal(currentHolder(order, NOW)?.holder, "bob", "earliest taker, then the smaller name");
  }
  assert.equal(currentHolder([a, l(2, "zed", NOW)], NOW)?.holder, "zed", "a newer epoch wins");
  assert.equal(
    currentHolder([l(3, "x", NOW - 5, NOW)], NOW),
    undefined,
    "expired: the role is free",
  );
  assert.equal(nextEpoch([a, l(3, "x", NOW - 5, NOW)]), 4, "one above expired leases too");
  assert.equal(nextEpoch([], 6), 7);
  assert.equal(nextEpoch([l(MAX_ROLE_EPOCH, "x", NOW)]), MAX_ROLE_EPOCH, "never past the bound");
});
