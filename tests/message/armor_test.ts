import assert from "node:assert/strict";
import fc from "fast-check";
import { MAX_BLOCK_BYTES } from "../../src/protocol.ts";
import { armor, BEGIN_LINE, dearmor, END_LINE } from "../../src/message/armor.ts";
import { assertMessageError } from "./helpers.ts";

const block = Uint8Array.from({ length: 200 }, (_, i) => (i * 37) & 0xff);

Deno.test("an armored block reads back unchanged", () => {
  fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 2000 }), (bytes) => {
    assert.deepEqual(dearmor(armor(bytes)), bytes);
  }));
});

Deno.test("armor is a BEGIN line, base64 lines of at most 64 characters and an END line", () => {
  const lines = armor(block).split("\n");
  assert.equal(lines[0], BEGIN_LINE);
  assert.equal(lines.at(-1), END_LINE);
  const body = lines.slice(1, -1);
  assert.ok(body.every((l) => l.length <= 64 && /^[A-Za-z0-9+/=]+$/.test(l)));
  assert.ok(body.slice(0, -1).every((l) => l.length === 64));
  assert.equal(body.join(""), btoa(String.fromCharCode(...block)));
});

Deno.test("a block is found in a mail body with CRLF line ends, other text and stray spaces", () => {
  const text = "Hello,\r\n\r\nsome text\r\n  " +
    armor(block).split("\n").map((l) => `${l}  `).join("\r\n") + "\r\n\r\n-- \r\nsignature\r\n";
  assert.deepEqual(dearmor(text), block);
});

Deno.test("a block quoted with '>' in a reply is not taken as a block", async () => {
  const quoted = armor(block).split("\n").map((l) => `> ${l}`).join("\n");
  await assertMessageError(
    () => dearmor(`On Monday you wrote:\n${quoted}\n`),
    "EBLOCK",
    /no BEGIN line/,
  );
});

Deno.test("a mail without a BEGIN line is refused", async () => {
  await assertMessageError(() => dearmor("just a normal mail\n"), "EBLOCK", /no BEGIN line/);
});

Deno.test("a truncated block without END line is refused", async () => {
  const cut = armor(block).split("\n").slice(0, -1).join("\n");
  await assertMessageError(() => dearmor(cut), "EBLOCK", /no END line/);
  await assertMessageError(() => dearmor(`${END_LINE}\n${cut}`), "EBLOCK", /no END line/);
});

Deno.test("a mail with two blocks is refused", async () => {
  const two = `${armor(block)}\n\n${armor(block)}`;
  await assertMessageError(() => dearmor(two), "EBLOCK", /more than one block/);
});

Deno.test("a block whose base64 was altered is refused", async () => {
  for (const body of ["AQI*", "AQI", "AQ==AQ==", "ä"]) {
    await assertMessageError(
      () => dearmor(`${BEGIN_LINE}\n${body}\n${END_LINE}`),
      "EBLOCK",
      /bad base64/,
    );
  }
  await assertMessageError(() => dearmor(`${BEGIN_LINE}\n${END_LINE}`), "EBLOCK", /empty/);
});

Deno.test("a block larger than the limit is refused before decoding", async () => {
  await assertMessageError(
    () => dearmor(armor(new Uint8Array(MAX_BLOCK_BYTES + 1))),
    "EBLOCK",
    /too large/,
  );
  assert.equal(dearmor(armor(new Uint8Array(MAX_BLOCK_BYTES))).length, MAX_BLOCK_BYTES);
});
