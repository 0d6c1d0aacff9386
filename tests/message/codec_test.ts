import assert from "node:assert/strict";
import fc from "fast-check";
import {
  decodeNotice,
  decodeReply,
  decodeRequest,
  encodeNotice,
  encodeReply,
  encodeRequest,
} from "../../src/message/codec.ts";
import { isIPv4, isIPv6 } from "../../src/message/field_rules.ts";
import { MAX_ENDPOINTS, MAX_HOST_CARDS } from "../../src/protocol.ts";
import type { RequestPayload } from "../../src/message/types.ts";
import {
  assertMessageError,
  noticeArb,
  replyArb,
  requestArb,
  sampleRequest as request,
} from "./helpers.ts";

/** The JSON object of `request` with `edit` applied, as bytes. */
function editedRequest(edit: (wire: Record<string, unknown>) => void): Uint8Array {
  const wire = JSON.parse(new TextDecoder().decode(encodeRequest(request)));
  edit(wire);
  return new TextEncoder().encode(JSON.stringify(wire));
}

Deno.test("a request reads back exactly as it was encoded", () => {
  fc.assert(fc.property(requestArb, (p) => {
    assert.deepEqual(decodeRequest(encodeRequest(p)), p);
  }));
});

Deno.test("a reply reads back exactly as it was encoded", () => {
  fc.assert(fc.property(replyArb, (p) => {
    assert.deepEqual(decodeReply(encodeReply(p)), p);
  }));
});

Deno.test("a notice reads back exactly as it was encoded, with or without a failed endpoint", () => {
  fc.assert(fc.property(noticeArb, (p) => {
    assert.deepEqual(decodeNotice(encodeNotice(p)), p);
  }));
});

Deno.test("the same payload always encodes to the same bytes, whatever its key order", () => {
  fc.assert(fc.property(requestArb, (p) => {
    const shuffled = Object.fromEntries(Object.entries(p).reverse()) as RequestPayload;
    assert.deepEqual(encodeRequest(shuffled), encodeRequest(p));
  }));
});

Deno.test("byte fields travel as base64url and keys in a fixed order", () => {
  const text = new TextDecoder().decode(encodeRequest(request));
  assert.equal(
    text,
    '{"network":"lan-party","userId":"alice","identityKey":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE",' +
      '"endpoints":[{"transport":"tcp","address":"203.0.113.7","port":4000}],' +
      '"sessionId":"AgICAgICAgICAgICAgICAg","createdAt":1767225600000,' +
      '"replyKey":"AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM","hostCards":[]}',
  );
});

Deno.test("fields added by a newer sender are ignored", () => {
  const bytes = editedRequest((w) => {
    w.futureField = { anything: 1 };
    (w.endpoints as Record<string, unknown>[])[0]!.priority = 5;
  });
  assert.deepEqual(decodeRequest(bytes), request);
});

Deno.test("a request whose user id contains CR or LF is refused", async () => {
  for (const userId of ["alice\r\nBcc: x@example.org", "al\nice", "alice\r", "a\u0000b"]) {
    await assertMessageError(
      () => decodeRequest(editedRequest((w) => w.userId = userId)),
      "EPAYLOAD",
      /userId contains control characters/,
    );
  }
});

Deno.test("a request with an empty or too long user id is refused", async () => {
  await assertMessageError(() => decodeRequest(editedRequest((w) => w.userId = "")), "EPAYLOAD");
  await assertMessageError(
    () => decodeRequest(editedRequest((w) => w.userId = "é".repeat(33))),
    "EPAYLOAD",
    /66 UTF-8 bytes, more than 64/,
  );
});

Deno.test("a request with a port outside 1..65535 or not a whole number is refused", async () => {
  for (const port of [0, 65536, -1, 80.5, "80", null]) {
    await assertMessageError(
      () =>
        decodeRequest(editedRequest((w) => {
          (w.endpoints as Record<string, unknown>[])[0]!.port = port;
        })),
      "EPAYLOAD",
      /endpoints\[0\]\.port/,
    );
  }
});

Deno.test("a request with more endpoints or host cards than the limits is refused", async () => {
  const endpoint = { transport: "udp", address: "::1", port: 9 };
  await assertMessageError(
    () =>
      decodeRequest(editedRequest((w) => w.endpoints = Array(MAX_ENDPOINTS + 1).fill(endpoint))),
    "EPAYLOAD",
    /endpoints has 9 entries, more than 8/,
  );
  const many = { ...request, hostCards: Array(MAX_HOST_CARDS + 1).fill("x") };
  await assertMessageError(() => encodeRequest(many), "EPAYLOAD", /^Cannot encode request/);
});

Deno.test("a request with keys or session ids of the wrong length is refused", async () => {
  const cases: [string, string][] = [
    ["identityKey", "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ"], // 31 bytes
    ["replyKey", "AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMD"], // 33 bytes
    ["sessionId", "AgICAgICAgICAgICAgIC"], // 15 bytes
    ["identityKey", "not base64url!"],
    ["sessionId", "AgICAgICAgICAgICAgICAx"], // 16 bytes, non-canonical trailing bits
  ];
  for (const [field, value] of cases) {
    await assertMessageError(
      () => decodeRequest(editedRequest((w) => w[field] = value)),
      "EPAYLOAD",
      new RegExp(field),
    );
  }
});

Deno.test("a request with a host name, a bad IP literal or another transport is refused", async () => {
  for (
    const address of ["example.org", "1.2.3.256", "01.2.3.4", "fe80::1%eth0", "[::1]", "1::2::3"]
  ) {
    await assertMessageError(
      () =>
        decodeRequest(editedRequest((w) => {
          (w.endpoints as Record<string, unknown>[])[0]!.address = address;
        })),
      "EPAYLOAD",
      /not an IPv4 or IPv6 literal/,
    );
  }
  await assertMessageError(
    () =>
      decodeRequest(editedRequest((w) => {
        (w.endpoints as Record<string, unknown>[])[0]!.transport = "sctp";
      })),
    "EPAYLOAD",
    /tcp or udp/,
  );
});

Deno.test("a request with a negative, fractional or missing timestamp is refused", async () => {
  for (const createdAt of [-1, 1.5, "1767225600000", undefined]) {
    await assertMessageError(
      () => decodeRequest(editedRequest((w) => w.createdAt = createdAt)),
      "EPAYLOAD",
      /createdAt/,
    );
  }
});

Deno.test("a request carrying a malformed host card is refused", async () => {
  await assertMessageError(
    () => decodeRequest(editedRequest((w) => w.hostCards = ["mailpeer1:host@example.org:x:y"])),
    "EPAYLOAD",
    /hostCards\[0\] is not a host card/,
  );
});

Deno.test("bytes that are not UTF-8 JSON objects are refused", async () => {
  for (const text of ["", "[]", "null", "{", '"x"']) {
    await assertMessageError(() => decodeRequest(new TextEncoder().encode(text)), "EPAYLOAD");
  }
  await assertMessageError(() => decodeReply(new Uint8Array([0x7b, 0xff, 0x7d])), "EPAYLOAD");
});

Deno.test("a notice with a reason longer than the limit is refused", async () => {
  const notice = {
    network: "n",
    userId: "bob",
    identityKey: new Uint8Array(32),
    sessionId: new Uint8Array(16),
    createdAt: 0,
    failed: [{ userId: "carol", reason: "x".repeat(257) }],
  };
  await assertMessageError(() => encodeNotice(notice), "EPAYLOAD", /reason has 257 UTF-8 bytes/);
});

Deno.test("a network id with whitespace is refused so subjects stay unambiguous", async () => {
  await assertMessageError(
    () => decodeRequest(editedRequest((w) => w.network = "lan party")),
    "EPAYLOAD",
    /network contains whitespace/,
  );
});

Deno.test("IP literals are recognised in their usual forms", () => {
  for (const ok of ["0.0.0.0", "255.255.255.255", "192.0.2.1"]) assert.ok(isIPv4(ok), ok);
  for (const bad of ["256.1.1.1", "1.2.3", "1.2.3.4.5", "a.b.c.d", "1.2.3.04", ""]) {
    assert.ok(!isIPv4(bad), bad);
  }
  for (const ok of ["::", "::1", "2001:db8::1", "1:2:3:4:5:6:7:8", "::ffff:192.0.2.1", "FE80::A"]) {
    assert.ok(isIPv6(ok), ok);
  }
  for (const bad of [":", ":::", "1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "::1.2.3", "g::1"]) {
    assert.ok(!isIPv6(bad), bad);
  }
});
