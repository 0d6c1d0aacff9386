import assert from "node:assert/strict";
import fc from "fast-check";
import { toBase64Url } from "../../src/message/base64.ts";
import { emailProblem, formatHostCard, parseHostCard } from "../../src/message/host_card.ts";
import { assertMessageError, bytes } from "./helpers.ts";

const x = new Uint8Array(32).fill(7);
const ed = new Uint8Array(32).fill(8);

Deno.test("a host card reads back unchanged", () => {
  fc.assert(fc.property(fc.emailAddress(), bytes(32), bytes(32), (email, x25519, ed25519) => {
    const card = { email, x25519, ed25519 };
    assert.deepEqual(parseHostCard(formatHostCard(card)), card);
  }));
});

Deno.test("a host card is one line: prefix, address and both keys", () => {
  const text = formatHostCard({ email: "host@example.org", x25519: x, ed25519: ed });
  assert.equal(text, `mailpeer1:host@example.org:${toBase64Url(x)}:${toBase64Url(ed)}`);
  assert.ok(!/\s/.test(text));
});

Deno.test("an address with ':' in its local part is refused, not split into another card", () => {
  const card = { email: "team:games@example.org", x25519: x, ed25519: ed };
  assert.throws(() => formatHostCard(card), /local part holds ":"/);
  const text = `mailpeer1:team:games@example.org:${toBase64Url(x)}:${toBase64Url(ed)}`;
  assert.throws(() => parseHostCard(text), /local part holds ":"/);
});

Deno.test("a card pasted with surrounding whitespace or a newline is accepted", () => {
  const text = formatHostCard({ email: "host@example.org", x25519: x, ed25519: ed });
  assert.equal(parseHostCard(`  ${text}\r\n`).email, "host@example.org");
});

Deno.test("malformed host cards are refused with what is wrong", async () => {
  const k = toBase64Url(x);
  const cases: [string, RegExp][] = [
    [`host@example.org:${k}:${k}`, /does not start with "mailpeer1:"/],
    [`mailpeer1:host@example.org:${k}`, /lacks the two keys/],
    [`mailpeer1:host@example.org`, /lacks the two keys/],
    [`mailpeer1:hostexample.org:${k}:${k}`, /has no @/],
    [`mailpeer1:host @example.org:${k}:${k}`, /spaces/],
    [`mailpeer1:@example.org:${k}:${k}`, /nothing comes before the @/],
    [`mailpeer1:host@exa_mple.org:${k}:${k}`, /not a domain name/],
    [`mailpeer1:host@example.org:${toBase64Url(x.subarray(1))}:${k}`, /X25519 key has 31 bytes/],
    [`mailpeer1:host@example.org:${k}:${k}AAAA`, /Ed25519 key has 35 bytes/],
    [`mailpeer1:host@example.org:${k}:${k.replace("B", "+")}`, /Ed25519 key is not base64url/],
  ];
  for (const [text, message] of cases) {
    const err = await assertMessageError(() => parseHostCard(text), "ECARD", message);
    assert.match(err.message, /^Cannot read host card: .*; copy the whole card again/);
  }
});

Deno.test("formatting a card with a bad address or key is a programming error", () => {
  assert.throws(() => formatHostCard({ email: "nobody", x25519: x, ed25519: ed }), TypeError);
  assert.throws(
    () => formatHostCard({ email: "a@b.c", x25519: x.subarray(1), ed25519: ed }),
    TypeError,
  );
});

Deno.test("plausible addresses are told apart from implausible ones", () => {
  for (const ok of ["a@b", "host@example.org", "x@[192.0.2.1]", "müller@bücher.example"]) {
    assert.equal(emailProblem(ok), undefined, ok);
  }
  for (const bad of ["", "a@", "@b", "a@b..c", "a@-b.c", "a\n@b.c", "a@b.c\u2028"]) {
    assert.notEqual(emailProblem(bad), undefined, JSON.stringify(bad));
  }
});

Deno.test("an address whose local part would split into several recipients is implausible", () => {
  for (
    const bad of [
      "a,b@evil.test",
      "a;b@e.t",
      "<a>@e.t",
      "a<b@e.t",
      "a>b@e.t",
      "a(b)@e.t",
      "a[b]@e.t",
      "a:b@e.t",
      '"a"@e.t',
    ]
  ) {
    assert.match(emailProblem(bad) ?? "", /local part/, JSON.stringify(bad));
  }
  assert.match(emailProblem("a b@e.t") ?? "", /spaces/);
  for (const ok of ["a.b+tag@e.t", "o'brien@e.t", "a_b-c=d@e.t"]) {
    assert.equal(emailProblem(ok), undefined, ok);
  }
});
