/**
 * Descriptions of hostile mails, as plain data so that fast-check prints counterexamples
 * well, and their arbitraries: one per family of docs/hostile-mail.md ("Fuzz families").
 * fuzz_make.ts turns a description into raw mail.
 *
 * @module
 */
import fc from "fast-check";
import { MAX_HOST_CARDS } from "../../src/protocol.ts";
import { type Bytes, NOW, POOL_SIZE, SUBJECTS } from "./fuzz_host.ts";

export type Kind = "request" | "notice";
export type Mutation =
  | { op: "flip"; at: number; bit: number }
  | { op: "truncate"; at: number }
  | { op: "extend"; bytes: Bytes }
  | { op: "insert"; at: number; bytes: Bytes }
  | { op: "remove"; at: number; length: number }
  | { op: "set"; at: number; value: number };
export type ArmorEdit =
  | { op: "char"; at: number; ch: string }
  | { op: "dropLine"; line: number }
  | { op: "dupLine"; line: number }
  | { op: "splitLine"; line: number; at: number }
  | { op: "joinLines"; line: number }
  | { op: "indent"; line: number; ws: string }
  | { op: "quote"; line: number }
  | { op: "insertLine"; line: number; text: string }
  | { op: "lineEnds"; to: "\r\n" | "\r" | "\n\n" }
  | { op: "addBlock"; first: boolean; bytes: Bytes; copies: number };
export type HeaderEdit =
  | { op: "date"; value: string }
  | { op: "dropHeader"; name: "From" | "Date" | "Message-ID" | "Content-Type" | "To" }
  | { op: "from"; value: string }
  | { op: "subjectFirst"; value: string }
  | { op: "subjectAfter"; value: string }
  | { op: "rawBytes"; header: number; at: number; bytes: Bytes }
  | { op: "messageId"; bytes: Bytes }
  | { op: "fold"; header: number; at: number }
  | { op: "junkLine"; bytes: Bytes }
  | { op: "contentType"; value: string }
  | { op: "longHeader"; length: number };
export type PayloadEdit =
  | { op: "set"; field: string; value: unknown }
  | { op: "drop"; field: string }
  | { op: "userId"; value: string }
  | { op: "endpoints"; value: unknown[] }
  | { op: "text"; text: string }
  | { op: "bytes"; bytes: Bytes }
  | { op: "createdAt"; value: number };

export type Hostile =
  | { f: "bytes"; prefix: Kind | "none"; bytes: Bytes }
  | { f: "body"; kind: Kind; body: string }
  | { f: "armored"; kind: Kind; header: [number, number] | null; bytes: Bytes }
  | { f: "mutated"; kind: Kind; src: "request" | "notice"; pool: number; mutations: Mutation[] }
  | { f: "wrongKind"; kind: Kind; block: "reply" | "request" | "notice" | "otherHost" }
  | { f: "armor"; pool: number; edits: ArmorEdit[] }
  | { f: "headers"; pool: number; edits: HeaderEdit[] }
  | { f: "payload"; pool: number; edits: PayloadEdit[] };

const kindArb = fc.constantFrom<Kind>("request", "notice");
const pos = fc.nat({ max: 5000 });
const smallBytes = fc.uint8Array({ minLength: 1, maxLength: 40 });
const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

export const bytesArb: fc.Arbitrary<Hostile> = fc.record({
  f: fc.constant("bytes" as const),
  prefix: fc.constantFrom<Kind | "none">("request", "notice", "none"),
  bytes: fc.uint8Array({ maxLength: 1500 }),
});

const armorishLine = fc.oneof(
  fc.constant("-----BEGIN MAILPEER BLOCK-----"),
  fc.constant("-----END MAILPEER BLOCK-----"),
  fc.string({ unit: fc.constantFrom(...B64.split("")), minLength: 1, maxLength: 80 }),
  fc.string({ unit: "binary", maxLength: 60 }),
  fc.constant("="),
);
export const bodyArb: fc.Arbitrary<Hostile> = fc.record({
  f: fc.constant("body" as const),
  kind: kindArb,
  body: fc.oneof(
    fc.string({ unit: "binary", maxLength: 2000 }),
    fc.array(armorishLine, { maxLength: 30 }).map((lines) => lines.join("\n")),
  ),
});

export const armoredArb: fc.Arbitrary<Hostile> = fc.record({
  f: fc.constant("armored" as const),
  kind: kindArb,
  header: fc.option(
    fc.tuple(fc.constantFrom(0, 1, 2, 255), fc.constantFrom(0, 1, 2, 3, 4, 5, 255)),
    { nil: null },
  ),
  bytes: fc.uint8Array({ maxLength: 1200 }),
});

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant("flip" as const), at: pos, bit: fc.nat({ max: 7 }) }),
  fc.record({ op: fc.constant("truncate" as const), at: pos }),
  fc.record({ op: fc.constant("extend" as const), bytes: smallBytes }),
  fc.record({ op: fc.constant("insert" as const), at: pos, bytes: smallBytes }),
  fc.record({
    op: fc.constant("remove" as const),
    at: pos,
    length: fc.integer({ min: 1, max: 64 }),
  }),
  fc.record({ op: fc.constant("set" as const), at: pos, value: fc.nat({ max: 255 }) }),
);
export const mutatedArb: fc.Arbitrary<Hostile> = fc.record({
  f: fc.constant("mutated" as const),
  kind: kindArb,
  src: fc.constantFrom<"request" | "notice">("request", "request", "notice"),
  pool: fc.nat({ max: POOL_SIZE - 1 }),
  mutations: fc.array(mutationArb, { minLength: 1, maxLength: 4 }),
});
export const wrongKindArb: fc.Arbitrary<Hostile> = fc.oneof(
  fc.record({
    f: fc.constant("wrongKind" as const),
    kind: fc.constant<Kind>("request"),
    block: fc.constantFrom("reply" as const, "notice" as const, "otherHost" as const),
  }),
  fc.record({
    f: fc.constant("wrongKind" as const),
    kind: fc.constant<Kind>("notice"),
    block: fc.constantFrom("reply" as const, "request" as const, "notice" as const),
  }),
);

const armorEditArb: fc.Arbitrary<ArmorEdit> = fc.oneof(
  fc.record({
    op: fc.constant("char" as const),
    at: pos,
    ch: fc.constantFrom("A", "/", "+", "=", "-", "_", " ", "\t", ".", "!", "é", "\u0000", "\n"),
  }),
  fc.record({ op: fc.constant("dropLine" as const), line: fc.nat({ max: 20 }) }),
  fc.record({ op: fc.constant("dupLine" as const), line: fc.nat({ max: 20 }) }),
  fc.record({ op: fc.constant("splitLine" as const), line: fc.nat({ max: 20 }), at: pos }),
  fc.record({ op: fc.constant("joinLines" as const), line: fc.nat({ max: 20 }) }),
  fc.record({
    op: fc.constant("indent" as const),
    line: fc.nat({ max: 20 }),
    ws: fc.constantFrom(" ", "\t", "  \t"),
  }),
  fc.record({ op: fc.constant("quote" as const), line: fc.nat({ max: 20 }) }),
  fc.record({
    op: fc.constant("insertLine" as const),
    line: fc.nat({ max: 20 }),
    text: fc.oneof(
      fc.constant(""),
      fc.constant("-----BEGIN MAILPEER BLOCK-----"),
      fc.constant("-----END MAILPEER BLOCK-----"),
      fc.string({ unit: fc.constantFrom(...B64.split("")), maxLength: 8 }),
    ),
  }),
  fc.record({ op: fc.constant("lineEnds" as const), to: fc.constantFrom("\r\n", "\r", "\n\n") }),
  fc.record({
    op: fc.constant("addBlock" as const),
    first: fc.boolean(),
    bytes: fc.uint8Array({ maxLength: 300 }),
    copies: fc.integer({ min: 1, max: MAX_HOST_CARDS + 1 }),
  }),
);
export const armorArb: fc.Arbitrary<Hostile> = fc.record({
  f: fc.constant("armor" as const),
  pool: fc.nat({ max: POOL_SIZE - 1 }),
  edits: fc.array(armorEditArb, { minLength: 1, maxLength: 3 }),
});

const garbageText = fc.oneof(
  fc.string({ unit: "binary", maxLength: 80 }),
  fc.string({ unit: "grapheme-ascii", maxLength: 80 }),
  fc.constantFrom(
    "",
    "yesterday",
    "Thu, 31 Feb 2026 25:61:61 +9999",
    "Mon, 01 Jan 1900 00:00:00 GMT",
    "Fri, 26 Nov 2100 12:00:00 GMT",
    new Date(NOW - 13 * 3600_000).toUTCString(),
    new Date(NOW + 3600_000).toUTCString(),
    "0",
    "-1",
    "NaN",
    "=?utf-8?b?AAAA?=",
  ),
);
const garbageFrom = fc.oneof(
  fc.string({ unit: "binary", maxLength: 60 }),
  fc.constantFrom(
    "<>",
    "@",
    "<a@>",
    "a@b@c",
    "<../../x@evil.test>",
    '"a b"@evil.test',
    "undisclosed-recipients:;",
    "=?utf-8?q?evil=0D=0ABcc=3A_x@y?= <e@evil.test>",
    "a@evil.test, b@evil.test",
    "(comment) <c@evil.test>",
    '"\\""@evil.test',
    "x@[127.0.0.1]",
    "Ω@evil.test",
  ),
);
const headerEditArb: fc.Arbitrary<HeaderEdit> = fc.oneof(
  fc.record({ op: fc.constant("date" as const), value: garbageText }),
  fc.record({
    op: fc.constant("dropHeader" as const),
    name: fc.constantFrom(
      "From" as const,
      "Date" as const,
      "Message-ID" as const,
      "Content-Type" as const,
      "To" as const,
    ),
  }),
  fc.record({ op: fc.constant("from" as const), value: garbageFrom }),
  fc.record({
    op: fc.constant("subjectFirst" as const),
    value: fc.oneof(garbageText, fc.constant(SUBJECTS.request)),
  }),
  fc.record({
    op: fc.constant("subjectAfter" as const),
    value: fc.oneof(garbageText, fc.constant(SUBJECTS.notice)),
  }),
  fc.record({
    op: fc.constant("rawBytes" as const),
    header: fc.nat({ max: 8 }),
    at: pos,
    bytes: fc.uint8Array({ minLength: 1, maxLength: 12 }).map((b) => b.map((x) => x | 0x80)),
  }),
  fc.record({ op: fc.constant("messageId" as const), bytes: fc.uint8Array({ maxLength: 40 }) }),
  fc.record({ op: fc.constant("fold" as const), header: fc.nat({ max: 8 }), at: pos }),
  fc.record({ op: fc.constant("junkLine" as const), bytes: fc.uint8Array({ maxLength: 60 }) }),
  fc.record({
    op: fc.constant("contentType" as const),
    value: fc.oneof(
      garbageText,
      fc.constantFrom(
        "text/html",
        "multipart/mixed",
        "multipart/mixed; boundary=",
        "text/plain; charset=x-unknown",
        "text/plain; charset=utf-16",
        "application/octet-stream",
      ),
    ),
  }),
  fc.record({
    op: fc.constant("longHeader" as const),
    length: fc.integer({ min: 1000, max: 20000 }),
  }),
);
export const headersArb: fc.Arbitrary<Hostile> = fc.record({
  f: fc.constant("headers" as const),
  pool: fc.nat({ max: POOL_SIZE - 1 }),
  edits: fc.array(headerEditArb, { minLength: 1, maxLength: 4 }),
});

const FIELDS = [
  "network",
  "userId",
  "identityKey",
  "endpoints",
  "sessionId",
  "createdAt",
  "hostCards",
];
const payloadEditArb: fc.Arbitrary<PayloadEdit> = fc.oneof(
  fc.record({
    op: fc.constant("set" as const),
    field: fc.constantFrom(...FIELDS, "__proto__", "constructor", "extra"),
    value: fc.jsonValue({ maxDepth: 3 }),
  }),
  fc.record({ op: fc.constant("drop" as const), field: fc.constantFrom(...FIELDS) }),
  fc.record({
    op: fc.constant("userId" as const),
    value: fc.oneof(
      fc.string({ unit: "binary", maxLength: 70 }),
      fc.constantFrom("evil\r\nBcc: x@y", "a\u2028b", "\u0000", "", "x".repeat(65), "\ud800"),
    ),
  }),
  fc.record({
    op: fc.constant("endpoints" as const),
    value: fc.array(
      fc.record({
        transport: fc.oneof(fc.constantFrom("tcp", "udp"), fc.string({ maxLength: 4 })),
        address: fc.oneof(
          fc.ipV4(),
          fc.ipV6(),
          fc.constantFrom("224.0.0.1", "0.0.0.0", "255.255.255.255", "::", "ff02::1", "01.2.3.4"),
          fc.string({ maxLength: 20 }),
        ),
        port: fc.oneof(fc.integer({ min: -5, max: 70000 }), fc.double()),
      }),
      { maxLength: 10 },
    ),
  }),
  fc.record({
    op: fc.constant("text" as const),
    text: fc.string({ unit: "binary", maxLength: 300 }),
  }),
  fc.record({ op: fc.constant("bytes" as const), bytes: fc.uint8Array({ maxLength: 300 }) }),
  fc.record({
    op: fc.constant("createdAt" as const),
    value: fc.oneof(
      fc.integer({ min: 0, max: NOW * 2 }),
      fc.constantFrom(-1, 1.5, Number.MAX_SAFE_INTEGER + 2, NOW + 86_400_000, NOW - 86_400_000),
    ),
  }),
);
export const payloadArb: fc.Arbitrary<Hostile> = fc.record({
  f: fc.constant("payload" as const),
  pool: fc.nat({ max: POOL_SIZE - 1 }),
  edits: fc.array(payloadEditArb, { minLength: 1, maxLength: 3 }),
});
