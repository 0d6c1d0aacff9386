import assert from "node:assert/strict";
import {
  decodeHostKeys,
  decodeIdentityKeys,
  encodeHostKeys,
  encodeIdentityKeys,
  generateHostKeys,
  generateIdentityKeys,
  hostCardOf,
} from "../../src/message/key_file.ts";
import { formatHostCard, parseHostCard } from "../../src/message/host_card.ts";
import { assertMessageError } from "./helpers.ts";

const host = await generateHostKeys("host@example.org");
const other = await generateHostKeys("other@example.org");
const alice = await generateIdentityKeys("alice");

Deno.test("host keys written to a file read back unchanged", async () => {
  const text = encodeHostKeys(host);
  const json = JSON.parse(text);
  assert.equal(json.kind, "mailpeer-host-keys");
  assert.equal(json.version, 1);
  assert.equal(json.email, "host@example.org");
  assert.deepEqual(await decodeHostKeys(text), host);
});

Deno.test("identity keys written to a file read back unchanged", async () => {
  const text = encodeIdentityKeys(alice);
  assert.equal(JSON.parse(text).kind, "mailpeer-identity-keys");
  assert.deepEqual(await decodeIdentityKeys(text), alice);
});

Deno.test("the host card of a host's keys carries its address and public keys only", () => {
  const card = hostCardOf(host);
  assert.deepEqual(card, {
    email: "host@example.org",
    x25519: host.x25519.publicKey,
    ed25519: host.ed25519.publicKey,
  });
  assert.deepEqual(parseHostCard(formatHostCard(card)), card);
});

Deno.test("fresh keys differ every time", async () => {
  const again = await generateHostKeys("host@example.org");
  assert.notDeepEqual(again.x25519.privateKey, host.x25519.privateKey);
  assert.notDeepEqual(again.ed25519.privateKey, host.ed25519.privateKey);
});

Deno.test("a key file whose public key does not belong to its private key is refused", async () => {
  const mixed = JSON.parse(encodeHostKeys(host));
  mixed.ed25519.public = JSON.parse(encodeHostKeys(other)).ed25519.public;
  await assertMessageError(
    () => decodeHostKeys(JSON.stringify(mixed)),
    "EKEY",
    /^Cannot read host keys: the Ed25519 public key does not belong to its private key; regenerate them with `mailpeer keygen`$/,
  );
  const identity = JSON.parse(encodeIdentityKeys(alice));
  identity.ed25519.public = mixed.ed25519.public;
  await assertMessageError(
    () => decodeIdentityKeys(JSON.stringify(identity)),
    "EKEY",
    /^Cannot read identity keys: the Ed25519 public key does not belong/,
  );
});

Deno.test("malformed key files are refused with what is wrong", async () => {
  const good = JSON.parse(encodeHostKeys(host));
  const variants: [unknown, RegExp][] = [
    [{ ...good, kind: "mailpeer-identity-keys" }, /"kind" is not "mailpeer-host-keys"/],
    [{ ...good, version: 2 }, /"version" is not 1/],
    [{ ...good, email: "not an address" }, /e-mail address/],
    [{ ...good, email: undefined }, /"email" is missing/],
    [{ ...good, x25519: undefined }, /"x25519" is missing/],
    [{ ...good, x25519: { ...good.x25519, private: "AAAA" } }, /X25519 private key has 3 bytes/],
    [{ ...good, x25519: { ...good.x25519, public: "!!" } }, /X25519 public key is not base64url/],
    [[], /not a JSON object/],
  ];
  for (const [value, message] of variants) {
    await assertMessageError(() => decodeHostKeys(JSON.stringify(value)), "EKEY", message);
  }
  await assertMessageError(() => decodeHostKeys("{not json"), "EKEY", /not JSON/);
  await assertMessageError(
    () =>
      decodeIdentityKeys(
        JSON.stringify({ ...JSON.parse(encodeIdentityKeys(alice)), userId: "a\nb" }),
      ),
    "EKEY",
    /user id contains control characters/,
  );
});

Deno.test("keys cannot be made for an implausible address or user id", async () => {
  await assertMessageError(() => generateHostKeys("host"), "ECARD", /has no @/);
  await assertMessageError(() => generateIdentityKeys("al\r\nice"), "EKEY", /control characters/);
  await assertMessageError(() => generateIdentityKeys(""), "EKEY", /is empty/);
});
