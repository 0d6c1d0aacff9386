/**
 * The fast paths of composeMail and parseMail (mail/rfc5322/compose_fast.ts, mail/rfc5322/parse_fast.ts) against the
 * nodemailer and mailparser paths they stand in for: whatever a fast path accepts, it must
 * turn into what the library would have made of it.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { composeMail, composeWithMailComposer } from "../../src/mail/rfc5322/compose.ts";
import { composeFast } from "../../src/mail/rfc5322/compose_fast.ts";
import { headerEnd, parseMail, parseWithMailparser } from "../../src/mail/rfc5322/parse.ts";
import type { ParsedMail } from "../../src/mail/types.ts";
import { parseFast } from "../../src/mail/rfc5322/parse_fast.ts";
import type { OutgoingMail } from "../../src/mail/types.ts";
import { concatBytes } from "../../src/message/bytes.ts";
import { bodyFor, bodyForBlocks, subjectFor } from "../../src/message/mail_text.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const DATE = new Date(Date.UTC(2026, 2, 14, 9, 26, 53));

function fast(raw: Uint8Array): ParsedMail | undefined {
  const end = headerEnd(raw);
  return end.complete ? parseFast(raw, end.headerEnd) : undefined;
}

async function settle<T>(promise: Promise<T>): Promise<{ ok: T } | { error: unknown }> {
  try {
    return { ok: await promise };
  } catch (error) {
    return { error };
  }
}

function concat(chunks: (string | Uint8Array)[]): Uint8Array {
  return concatBytes(...chunks.map((c) => typeof c === "string" ? encoder.encode(c) : c));
}

// ---- generated mails ---------------------------------------------------------------------

/** Mostly `usual`, now and then `odd`: near-simple mails exercise both paths. */
function mostly<T>(usual: fc.Arbitrary<T>, odd: fc.Arbitrary<T>): fc.Arbitrary<T> {
  return fc.oneof({ weight: 4, arbitrary: usual }, { weight: 1, arbitrary: odd });
}

const printable = fc.string({
  unit: fc.constantFrom(..." !#$%&'()*+,-./0123456789:;<=>?@ABCXYZ[\\]^_`abcxyz{|}~\"\t"),
  maxLength: 40,
});
const block = fc.uint8Array({ minLength: 1, maxLength: 400 });
const mailpeerBody = fc.tuple(block, fc.constantFrom("request", "reply", "notice", "sync"))
  .map(([b, kind]) => bodyFor("lan-party", kind as "request", b));

const plainAddress = fc.stringMatching(
  /^[a-z0-9_+-]{1,8}(?:\.[a-zA-Z0-9]{1,4})?@(?:[a-z0-9]{1,3}-)?[a-z0-9]{1,8}\.[a-zA-Z]{2,4}$/,
);
const addressValue = mostly(
  fc.oneof(
    plainAddress,
    fc.array(plainAddress, { minLength: 1, maxLength: 3 }).map((list) => list.join(", ")),
    fc.tuple(fc.stringMatching(/^[A-Za-z .']{0,12}$/), plainAddress, fc.boolean())
      .map(([name, addr, quoted]) => quoted ? `"${name}" <${addr}>` : `${name} <${addr}>`),
  ),
  fc.oneof(
    fc.constantFrom(
      "a@example.org",
      "Alice@Example.ORG",
      "Alice <alice@example.org>",
      "Name<a@b.c>",
      '"Alice B" <a.b@example.org>',
      "<bare@example.org>",
      "a@example.org, b@example.net",
      "x <a@b.c>, y <d@e.f>",
      "a@b.c (comment)",
      "undisclosed-recipients:;",
      "group: a@b.c, d@e.f;",
      "a@xn--bcher-kva.example",
      "a@b.c,",
      ",a@b.c",
      "",
      "not an address",
      '"Doe, John" <j@d.e>',
      "a@b.c d@e.f",
      "Name <a@b.c> x",
      "<>",
      "a@b@c.d",
      "a!#$%&'*+/=?^_`{|}~-@b.c",
      '"a@b.c" <x@y.z>',
      "=?utf-8?q?J=C3=B6rg?= <j@x.y>",
      "Jörg <j@x.y>",
      "a@[127.0.0.1]",
      "a@b.c;d@e.f",
      "a .b@c.d",
      "a@b .c",
      "a@b. c",
      "J. R. Doe <jrd@x.y>",
      "O'Brien <ob@x.y>",
      "a@b.c\t",
      "a@-b.c",
      "a@b..c",
    ),
    fc.stringMatching(/^[A-Za-z0-9._+'=/-]{1,8}@[A-Za-z0-9.-]{1,10}$/),
  ),
);
const subjectValue = mostly(
  fc.constantFrom("[mailpeer] lan-party request", "[mailpeer] lan reply", "hello"),
  fc.oneof(
    fc.constantFrom(
      "[mailpeer] lan-party request",
      "",
      "   ",
      "=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=",
      'a "quoted" b',
      "Grüße",
      "tab\there",
      "  padded  ",
    ),
    printable,
  ),
);
const idValue = mostly(
  fc.stringMatching(/^<[a-z0-9.]{1,20}@[a-z.]{1,10}>$/),
  fc.oneof(
    fc.constantFrom("<a@b>", "a@b", "<a@b", "a@b>", "", "  ", "<a@b> <c@d>", "=?utf-8?q?x?=", "<>"),
    printable,
  ),
);
const contentTypeValue = mostly(
  fc.constantFrom("text/plain; charset=utf-8", "text/plain"),
  fc.constantFrom(
    "text/plain",
    "text/plain; charset=utf-8",
    "TEXT/PLAIN; CHARSET=UTF-8",
    'text/plain; charset="utf-8"',
    "text/plain;charset=us-ascii",
    "text/plain; charset = utf-8",
    "text/plain ; charset=utf-8",
    "text/plain; charset=utf-8;",
    "text/plain; charset=iso-8859-1",
    "text/plain; format=flowed",
    "text/plain; charset=utf-8; format=flowed; delsp=yes",
    "text/html",
    "multipart/mixed; boundary=b",
    "text/plain; charset=utf-8 (comment)",
    "text/plain; charset=utf8",
    "text/plain; charset=ascii",
    "",
    'text/plain; charset="utf-8',
    "application/octet-stream",
    "text/plain; charset=utf-7",
  ),
);
const encodingValue = mostly(
  fc.constantFrom("7bit", "8bit", "quoted-printable"),
  fc.constantFrom(
    "7bit",
    "8bit",
    "binary",
    "quoted-printable",
    "Quoted-Printable",
    "base64",
    "",
    "x-unknown",
    "7bit (comment)",
    '"7bit"',
  ),
);
const dateValue = fc.constantFrom(
  "Thu, 26 Nov 2026 11:59:00 GMT",
  "Fri, 02 Jan 2026 03:04:05 +0000",
  "yesterday",
  "",
  "2026-01-02T03:04:05Z",
);

const FIELD_KINDS: [string, fc.Arbitrary<string>, number][] = [
  ["From", addressValue, 4],
  ["To", addressValue, 4],
  ["Cc", addressValue, 4],
  ["Reply-To", addressValue, 4],
  ["Return-Path", addressValue, 4],
  ["Delivered-To", addressValue, 4],
  ["Subject", subjectValue, 4],
  ["Message-ID", idValue, 4],
  ["In-Reply-To", idValue, 4],
  ["References", idValue, 1],
  ["Date", dateValue, 4],
  ["Content-Type", contentTypeValue, 4],
  ["Content-Transfer-Encoding", encodingValue, 4],
  ["Content-Disposition", fc.constantFrom("inline", "attachment; filename=a.txt"), 1],
  ["MIME-Version", fc.constantFrom("1.0", "", "1.0 (x)"), 4],
  ["X-Priority", fc.constantFrom("1", "3 (Normal)"), 1],
  ["List-Id", fc.constantFrom("<l.example.org>", "x", "Mailpeer  list <l.example.org>"), 1],
  ["DKIM-Signature", fc.constantFrom("v=1; a=rsa-sha256; d=x.y; b=abc", "(x) v=1"), 4],
  // Often enough twice in one mail: mailparser keeps a repeated header as a list.
  ["Received", fc.constantFrom("from a by b", "from c\tby  d", "", "x"), 16],
  ["X-Mailpeer-Network", printable, 4],
  ["Resent-From", addressValue, 4],
  ["Precedence", fc.constantFrom("bulk", ""), 4],
  ["Content-ID", idValue, 4],
];
const fieldName = fc.oneof(
  { weight: 5, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: fc.stringMatching(/^[!-9;-~]{1,10}$/) },
);
const field = fc.tuple(
  fc.oneof(...FIELD_KINDS.map(([, , weight], i) => ({ weight, arbitrary: fc.constant(i) }))),
  fieldName,
  fc.constantFrom("asis", "asis", "lower", "upper"),
  mostly(fc.constant(": "), fc.constantFrom(":", ":  ", ":\t", " : ")),
  mostly(fc.constant("none"), fc.constantFrom("crlf", "lf", "tab", "many")),
  fc.nat(),
).chain(([kind, name, casing, sep, fold, at]) => {
  const [known, value] = FIELD_KINDS[kind]!;
  const key = name ?? known;
  const cased = casing === "lower"
    ? key.toLowerCase()
    : casing === "upper"
    ? key.toUpperCase()
    : key;
  return (name === undefined ? value : printable).map((v) => {
    const spaces = [...v.matchAll(/ /g)].map((m) => m.index);
    const where = spaces.length === 0 ? undefined : spaces[at % spaces.length]!;
    const folds = { crlf: "\r\n ", lf: "\n ", tab: "\r\n\t", many: "\r\n \t ", none: " " };
    const folded = where === undefined
      ? v
      : v.slice(0, where) + folds[fold as keyof typeof folds] + v.slice(where + 1);
    return `${cased}${sep}${folded}`;
  });
});
const hostileBits = mostly(
  fc.constant<(string | Uint8Array)[]>([]),
  fc.constantFrom<(string | Uint8Array)[]>(
    [new Uint8Array([0])],
    [new Uint8Array([0xe9])],
    ["\r"],
    ["garbage line"],
    ["From mbox line"],
    [" leading fold"],
    ["\x7f"],
    ["X-A: \x01"],
  ),
);
const body = fc.oneof(
  { weight: 4, arbitrary: mailpeerBody },
  fc.string({ unit: fc.constantFrom(..."abc =-\t\r\n\n\n.:") }),
  fc.string({ unit: "grapheme", maxLength: 60 }),
  fc.array(
    fc.constantFrom(
      "=3D",
      "=C3=BC",
      "=\r\n",
      "= \r\n",
      "=\n",
      "=ZZ",
      "=4",
      "abc",
      "  \r\n",
      "\t\n",
      "=",
      " ",
      "x=",
      "\r",
      "é",
      "=e9",
      "=EF=BB=BF",
    ),
    { maxLength: 30 },
  ).map((parts) => parts.join("")),
  fc.uint8Array({ maxLength: 40 }),
  fc.constantFrom("\uFEFFbom\r\n", "nul\0x", "", "\r\n", "lone\rcr", "x".repeat(1200)),
);
const rawMail = fc.record({
  from: fc.option(addressValue, { freq: 8, nil: undefined }),
  fields: fc.array(field, { maxLength: 6 }),
  eol: fc.constantFrom("\r\n", "\n", "\r\n"),
  hostile: hostileBits,
  hostileAt: fc.nat(),
  body,
  blank: mostly(fc.constant(true), fc.constant(false)),
}).map(({ from, fields, eol, hostile, hostileAt, body, blank }) => {
  const lines: (string | Uint8Array)[][] = [
    ...(from === undefined ? [] : [[`From: ${from}`]]),
    ...fields.map((f) => [f]),
  ];
  if (hostile.length > 0) lines.splice(hostileAt % (lines.length + 1), 0, hostile);
  const chunks: (string | Uint8Array)[] = [];
  for (const line of lines) chunks.push(...line, eol);
  if (blank) chunks.push(eol, typeof body === "string" ? body.replace(/\r?\n/g, eol) : body);
  return concat(chunks);
});

// ---- parse -------------------------------------------------------------------------------

Deno.test("a mail the fast parser reads gives exactly what mailparser gives", async () => {
  let accepted = 0;
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(rawMail, async (raw) => {
      runs++;
      const mine = fast(raw);
      if (mine === undefined) return;
      accepted++;
      const theirs = await settle(parseWithMailparser(raw));
      assert.ok("ok" in theirs, `mailparser failed where the fast path did not: ${theirs}`);
      assert.deepStrictEqual(mine, theirs.ok);
    }),
    { numRuns: 1500 },
  );
  assert.ok(accepted > runs * 0.1, `only ${accepted} of ${runs} mails took the fast path`);
  assert.ok(accepted < runs * 0.9, `${accepted} of ${runs} mails took the fast path`);
});

Deno.test("every hostile fixture parses the same on the fast path as with mailparser", async () => {
  const dir = new URL("../fixtures/hostile/", import.meta.url);
  let accepted = 0;
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.name.endsWith(".eml")) continue;
    const raw = await Deno.readFile(new URL(entry.name, dir));
    const mine = fast(raw);
    const viaParseMail = await settle(parseMail(raw));
    const theirs = await settle(parseWithMailparser(raw));
    if (mine !== undefined) {
      accepted++;
      assert.ok("ok" in theirs, entry.name);
      assert.deepStrictEqual(mine, theirs.ok, entry.name);
    }
    if ("ok" in viaParseMail && "ok" in theirs) {
      assert.deepStrictEqual(viaParseMail.ok, theirs.ok, entry.name);
    } else {
      assert.ok("error" in viaParseMail && "error" in theirs, entry.name);
    }
  }
  assert.ok(accepted >= 10, `only ${accepted} fixtures took the fast path`);
});

// Header lines that each make a simple mail a little less simple: mailparser treats every one
// in its own way, and the fast path must either do the same or step aside.
const NEAR_MISSES: (string | Uint8Array)[] = [
  "References: a@b",
  "References: <a@b> <c@d>",
  "References:",
  "X-Priority: 1",
  "Priority: urgent",
  "Importance: low",
  "X-MSMail-Priority: High",
  "List-Id: Mailpeer list <l.example.org>",
  "List-Unsubscribe: <mailto:u@x.y>",
  "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=",
  "X-Note: =?utf-8?q?caf=C3=A9?=",
  "To: =?utf-8?q?J?= <j@x.y>",
  "Content-Disposition: attachment",
  "Content-Disposition: inline",
  'OTP-Token: "123456"; origin="https://x.example"',
  "DKIM-Signature: v=1; a=rsa-sha256; d=x.y; (c) b=abc",
  "Received: from a\r\n\tby  b",
  "Subject: a second subject",
  "Subject:",
  "Message-ID: no-brackets@x",
  "Message-ID:",
  "In-Reply-To: <r@x> <s@y>",
  "In-Reply-To: r@x",
  "From: second@x.y",
  "From: Second <SECOND@X.Y>",
  "To:",
  "To: undisclosed-recipients:;",
  "To: Other <OTHER@Example.ORG>, third@x.y",
  "Cc: a@b.c, d@e.f",
  "Content-Type: text/plain; charset=iso-8859-1",
  "Content-Type: text/plain; format=flowed",
  'Content-Type: TEXT/PLAIN; charset="UTF-8"',
  "Content-Type: text/plain;\r\n charset=us-ascii",
  "Content-Transfer-Encoding: base64",
  "Content-Transfer-Encoding: quoted-printable",
  "Content-Transfer-Encoding: 8BIT",
  concat(["X-Latin: caf", new Uint8Array([0xe9])]),
  concat(["X-Nul: a", new Uint8Array([0]), "b"]),
  "X-Ctl: a\x01b",
  "Date: yesterday",
  "Date:",
  "Date: Fri, 02 Jan 2026\r\n 03:04:05 +0000",
  "Sender: Someone <s@x.y>",
  "Return-Path: <>",
  "MIME-Version: 1.0 (generated)",
  "X-Empty:",
  "X-Spaces:    ",
  "x-mixed-CASE: v",
  "X-Folded: a\r\n b\r\n\tc",
  "X-Folded: a \r\n \t b",
  "Resent-From: r@x.y",
  "X-Mailpeer-Network: lan\r\nX-Mailpeer-Network: lan-2",
  "X-Mailpeer-Network:\r\nX-Mailpeer-Network: lan-2",
  "Subject:\r\nSubject: later",
  "Errors-To: a@b.c\r\nErrors-To: d@e.f",
];

Deno.test("a simple mail with one unusual header parses on the fast path as with mailparser", async () => {
  const plain = await composeMail({
    from: "terminal@lan.example",
    to: ["host@lan.example"],
    subject: subjectFor("lan-party", "request"),
    text: bodyFor("lan-party", "request", new Uint8Array(200).fill(7)),
    inReplyTo: "<x@lan.example>",
  });
  const quoted = await composeMail({
    from: "terminal@lan.example",
    to: ["host@lan.example"],
    subject: subjectFor("lan-party", "request"),
    text: "Grüße ✓\n" + bodyFor("lan-party", "request", new Uint8Array(200).fill(7)),
  });
  const lf = await Deno.readFile(
    new URL("../fixtures/hostile/replay-1-first.eml", import.meta.url),
  );
  let accepted = 0;
  for (const base of [plain.raw, quoted.raw, lf]) {
    assert.ok(fast(base) !== undefined, "the base mail takes the fast path");
    const end = headerEnd(base).headerEnd;
    const eol = base[end] === 0x0d ? "\r\n" : "\n";
    for (const extra of NEAR_MISSES) {
      const line = typeof extra === "string" ? extra.replace(/\r\n/g, eol) : extra;
      for (
        const raw of [
          concat([line, eol, base]),
          concat([base.subarray(0, end), line, eol, base.subarray(end)]),
        ]
      ) {
        const mine = fast(raw);
        if (mine === undefined) continue;
        accepted++;
        const theirs = await settle(parseWithMailparser(raw));
        const what = decoder.decode(typeof extra === "string" ? encoder.encode(extra) : extra);
        assert.ok("ok" in theirs, what);
        assert.deepStrictEqual(mine, theirs.ok, what);
      }
    }
  }
  assert.ok(accepted > 50, `only ${accepted} near misses took the fast path`);
});

Deno.test("quoted-printable bodies decode on the fast path as mailparser decodes them", async () => {
  const raw = encoder.encode(
    "From: a@b.c\r\nContent-Type: text/plain; charset=utf-8\r\n" +
      "Content-Transfer-Encoding: quoted-printable\r\n\r\n" +
      "Gr=C3=BC=C3=9Fe =E2=9C=93 soft=\r\nbreak trailing   \r\n=3D=ZZ=4\r\nend=",
  );
  const mine = fast(raw);
  assert.ok(mine !== undefined);
  assert.equal(mine.text, "Grüße ✓ softbreak trailing\n==ZZ=4\nend");
  assert.deepStrictEqual(mine, await parseWithMailparser(raw));
});

// ---- compose -----------------------------------------------------------------------------

const composeAddress = mostly(
  plainAddress,
  fc.oneof(
    fc.constantFrom(
      "alice@example.org",
      "Alice@Example.ORG",
      "a.b+c@lan.example",
      "Alice <alice@example.org>",
      '"A, B" <ab@example.org>',
      "jörg@example.org",
      "a@jõgeva.ee",
      "a@xn--jgeva-dua.ee",
      "a@[127.0.0.1]",
      "a@1.2.3.4",
      "a@localhost",
      "a'b@example.org",
      "a..b@example.org",
      "a@b",
      "a",
      "a@0x7f.1",
    ),
    fc.stringMatching(/^[A-Za-z0-9._+-]{1,10}@[A-Za-z0-9.-]{1,12}$/),
  ),
);
const composeText = fc.oneof(
  { weight: 6, arbitrary: mailpeerBody },
  fc.tuple(fc.array(block, { minLength: 1, maxLength: 3 }))
    .map(([blocks]) => bodyForBlocks("lan-party", "request", blocks)),
  fc.string({ unit: fc.constantFrom(..."abc =-.\t\n\n"), maxLength: 300 }),
  fc.string({ unit: fc.constantFrom(..."ab \r\n"), maxLength: 60 }),
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc.constantFrom(
    "",
    "x",
    "no newline",
    "\n",
    "a\x7fb",
    "a\x01b",
    "ü\n",
    "x".repeat(80),
    "y".repeat(1000),
  ),
  fc.tuple(fc.integer({ min: 60, max: 1100 }), fc.integer({ min: 1, max: 4 }))
    .map(([n, k]) => (("z".repeat(n) + "\n").repeat(k))),
);
const composeValue = mostly(
  fc.array(fc.stringMatching(/^[a-z]{1,12}$/), { maxLength: 20 }).map((w) => w.join(" ")),
  fc.oneof(
    fc.constantFrom("", "   ", "lan", 'say "hi"', "x=?y", "Grüße", "a\tb", "a".repeat(90)),
    printable,
  ),
);
const composeHeaders = fc.dictionary(
  mostly(
    fc.constantFrom("X-Mailpeer-Network", "Resent-From", "Resent-Message-ID", "Resent-Date"),
    fc.oneof(
      fc.constantFrom(
        "X-Mailpeer-Network",
        "x-mailpeer-id",
        "Resent-From",
        "resent-message-id",
        "Content-Type",
        "Subject",
        "key",
        "value",
        "MIME-Version",
        "x-spf",
        "X-MD5",
        "dkim-x",
        "List-Id",
      ),
      fc.stringMatching(/^[!-9;-~]{1,12}$/),
    ),
  ),
  composeValue,
  { maxKeys: 3 },
);
const outgoing = fc.record({
  from: composeAddress,
  to: fc.array(composeAddress, { minLength: 1, maxLength: 5 }),
  subject: fc.oneof(
    fc.constantFrom(subjectFor("lan-party", "request"), subjectFor("lan", "reply")),
    composeValue,
  ),
  text: composeText,
  messageId: fc.option(
    fc.constantFrom("<id-1@example.org>", "id-2@example.org", "", "  ", "<a@b> <c@d>"),
    { nil: undefined },
  ),
  inReplyTo: fc.option(
    fc.constantFrom("<req@example.org>", "req@example.org", "", "<x@y", 'a "b"'),
    { nil: undefined },
  ),
  date: fc.option(
    mostly(
      fc.constant(DATE),
      fc.constantFrom(new Date(0), new Date(Date.UTC(9999, 11, 31)), new Date(NaN)),
    ),
    { nil: undefined },
  ),
  headers: fc.option(
    fc.oneof(
      { weight: 8, arbitrary: composeHeaders },
      // MailComposer reads {key, value} as one header given that way.
      { weight: 1, arbitrary: fc.constant({ key: "X-Named", value: "v", "X-B": "b" }) },
    ),
    { nil: undefined },
  ),
}, { requiredKeys: ["from", "to", "subject", "text"] });

function headerSection(raw: Uint8Array): string {
  const text = decoder.decode(raw);
  return text.slice(0, text.indexOf("\r\n\r\n"));
}

Deno.test("a mail the fast composer writes is byte for byte what MailComposer writes", async () => {
  let accepted = 0;
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(outgoing, async (mail: OutgoingMail) => {
      runs++;
      const checked = await settle(composeMail(mail));
      if ("error" in checked) {
        assert.ok(checked.error instanceof TypeError);
        return;
      }
      const fields = {
        messageId: mail.messageId ?? "<generated@example.org>",
        date: mail.date ?? DATE,
      };
      const mine = composeFast(mail, fields);
      if (mine === undefined) return;
      accepted++;
      const theirs = await composeWithMailComposer(mail, fields);
      const shortLines = mail.text.split(/\r?\n/).every((line) => line.length <= 76);
      if (shortLines) {
        assert.equal(decoder.decode(mine), decoder.decode(theirs));
      } else {
        // MailComposer quoted-printable encodes a line over 76; 7bit carries up to 998.
        assert.equal(
          headerSection(mine),
          headerSection(theirs).replace(
            "Content-Transfer-Encoding: quoted-printable",
            "Content-Transfer-Encoding: 7bit",
          ),
        );
        const [a, b] = [await parseWithMailparser(mine), await parseWithMailparser(theirs)];
        a.headers.delete("content-transfer-encoding");
        b.headers.delete("content-transfer-encoding");
        assert.deepStrictEqual(a, b);
      }
      const parsed = await parseWithMailparser(mine);
      const text = mail.text.replace(/\r\n/g, "\n");
      assert.equal(parsed.text, text.endsWith("\n") ? text : text + "\n");
    }),
    { numRuns: 1000 },
  );
  assert.ok(accepted > runs * 0.1, `only ${accepted} of ${runs} mails took the fast path`);
  assert.ok(accepted < runs * 0.9, `${accepted} of ${runs} mails took the fast path`);
});

Deno.test("a mailpeer request, reply and resent mail take both fast paths and read back whole", async () => {
  const blockBytes = crypto.getRandomValues(new Uint8Array(700));
  const mails: OutgoingMail[] = [
    {
      from: "terminal@lan.example",
      to: ["host-1@lan.example", "host-2@other.example"],
      subject: subjectFor("lan-party", "request"),
      text: bodyForBlocks("lan-party", "request", [blockBytes, blockBytes]),
    },
    {
      from: "host-1@lan.example",
      to: ["terminal@lan.example"],
      subject: subjectFor("lan-party", "reply"),
      text: bodyFor("lan-party", "reply", blockBytes),
      inReplyTo: "<0123456789abcdef@lan.example>",
      headers: { "Resent-From": "host-2@other.example", "X-Mailpeer-Network": "lan-party" },
    },
  ];
  for (const mail of mails) {
    const { raw, messageId } = await composeMail(mail, { now: () => DATE.getTime() });
    assert.ok(composeFast(mail, { messageId, date: DATE }) !== undefined, "fast compose");
    const mine = fast(raw);
    assert.ok(mine !== undefined, "fast parse");
    assert.deepStrictEqual(mine, await parseWithMailparser(raw));
    assert.equal(mine.text, mail.text);
    assert.equal(mine.subject, mail.subject);
    assert.equal(mine.messageId, messageId);
    assert.equal(mine.inReplyTo, mail.inReplyTo);
    assert.equal(mine.date?.getTime(), DATE.getTime());
    assert.deepStrictEqual(mine.to, mail.to);
  }
});
