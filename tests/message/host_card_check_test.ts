/**
 * The host card people copy ends with a check, so a card with one character changed or lost
 * is refused when the configuration is read, instead of the terminal sealing its request to a
 * key nobody holds (or mailing another address) and waiting the whole reply_timeout.
 */
import assert from "node:assert/strict";
import { MessageError } from "../../src/errors.ts";
import { formatCheckedHostCard, parseHostCard } from "../../src/message/host_card.ts";

const card = {
  email: "host@example.org",
  x25519: new Uint8Array(32).map((_, i) => i * 7),
  ed25519: new Uint8Array(32).map((_, i) => 255 - i * 3),
};
const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.@:";

Deno.test("a copied host card with any one character changed, added or lost is refused", () => {
  const checked = formatCheckedHostCard(card);
  assert.deepEqual(parseHostCard(checked), card, "the checked card reads back");
  let tried = 0;
  for (let i = 0; i < checked.length; i++) {
    const variants = [checked.slice(0, i) + checked.slice(i + 1)];
    for (const c of ALPHABET) {
      if (c !== checked[i]) variants.push(checked.slice(0, i) + c + checked.slice(i + 1));
      variants.push(checked.slice(0, i) + c + checked.slice(i)); // added
    }
    for (const typo of variants) {
      tried++;
      assert.throws(() => parseHostCard(typo), (err: unknown) => {
        assert.ok(err instanceof MessageError && err.code === "ECARD", `${typo}: ${err}`);
        assert.ok(!err.message.includes("\n"));
        return true;
      }, typo);
    }
  }
  assert.ok(tried > 5000);
});

Deno.test("a changed key is named as a card that changed on the way", () => {
  const checked = formatCheckedHostCard(card);
  const at = checked.indexOf(":", "mailpeer1:".length) + 5;
  const typo = checked.slice(0, at) + (checked[at] === "Q" ? "R" : "Q") + checked.slice(at + 1);
  assert.throws(
    () => parseHostCard(typo),
    /^MessageError: Cannot read host card: its check does not match the rest of the card, so a character was changed or lost on the way; copy the whole card again from the host/,
  );
});
