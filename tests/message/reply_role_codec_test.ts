/**
 * The `reads` list of a request and the `role` of a reply (docs/protocol.md "Reply
 * extensions"): they round-trip, a payload without them encodes to the bytes it always did, and
 * hostile values are refused in one line naming the field.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeReply, decodeRequest, encodeReply, encodeRequest } from "../../src/message/codec.ts";
import { MAX_REPLY_READS, MAX_ROLE_EPOCH, REPLY_READS_ROLE } from "../../src/protocol.ts";
import type { ReplyPayload } from "../../src/message/types.ts";
import {
  assertMessageError,
  replyArb,
  requestArb,
  sampleRequest as request,
  timeArb,
  userIdArb,
} from "./helpers.ts";

const reply: ReplyPayload = {
  network: "lan-party",
  sessionId: new Uint8Array(16).fill(2),
  hostId: new Uint8Array(32).fill(4),
  createdAt: 1_767_225_600_000,
  peers: [],
};
const role = { holder: "bob", epoch: 2, until: 1_767_226_200_000, address: "host@host.test" };

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** The wire JSON of `reply` with a role, `edit` applied to its `role`, as bytes. */
function editedRole(edit: (role: Record<string, unknown>) => unknown): Uint8Array {
  const wire = JSON.parse(text(encodeReply({ ...reply, role })));
  const replaced = edit(wire.role);
  if (replaced !== undefined) wire.role = replaced;
  return new TextEncoder().encode(JSON.stringify(wire));
}

function editedReads(reads: unknown): Uint8Array {
  const wire = JSON.parse(text(encodeRequest(request)));
  wire.reads = reads;
  return new TextEncoder().encode(JSON.stringify(wire));
}

const roleArb = fc.record({
  holder: userIdArb,
  epoch: fc.integer({ min: 1, max: MAX_ROLE_EPOCH }),
  until: timeArb,
  address: fc.emailAddress(),
}, { noNullPrototype: true });

Deno.test("a reply with a role and a request that reads extensions read back as encoded", () => {
  fc.assert(fc.property(replyArb, roleArb, (p, role) => {
    const withRole = { ...p, role };
    assert.deepEqual(decodeReply(encodeReply(withRole)), withRole);
  }));
  const readsArb = fc.uniqueArray(fc.stringMatching(/^[a-z][a-z0-9-]{0,31}$/), {
    maxLength: MAX_REPLY_READS,
  });
  fc.assert(fc.property(requestArb, readsArb, (p, reads) => {
    const reading = { ...p, reads };
    assert.deepEqual(decodeRequest(encodeRequest(reading)), reading);
  }));
});

Deno.test("without the extensions, requests and replies are the bytes earlier versions sent", () => {
  assert.equal(
    text(encodeReply(reply)),
    '{"network":"lan-party","sessionId":"AgICAgICAgICAgICAgICAg",' +
      '"hostId":"BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ","createdAt":1767225600000,"peers":[]}',
  );
  assert.ok(!text(encodeRequest(request)).includes("reads"));
  // the new fields go last, after every field an earlier reader checks
  assert.match(
    text(encodeReply({ ...reply, role })),
    /"peers":\[\],"role":\{"holder":"bob","epoch":2,"until":1767226200000,"address":"host@host.test"\}\}$/,
  );
  assert.match(
    text(encodeRequest({ ...request, reads: [REPLY_READS_ROLE] })),
    /"reads":\["role"\]\}$/,
  );
});

Deno.test("a reply's role with a hostile value is refused, naming the field", async () => {
  const cases: [(r: Record<string, unknown>) => unknown, RegExp][] = [
    [(r) => void (r.holder = "b".repeat(65)), /role\.holder has 65 UTF-8 bytes, more than 64/],
    [(r) => void (r.holder = "bob\r\nBcc: x@example.org"), /role\.holder/],
    [(r) => void (r.holder = 5), /role\.holder is not a string/],
    [(r) => void delete r.holder, /role\.holder is missing/],
    [(r) => void (r.epoch = 0), /role\.epoch is not a whole number from 1 to 2147483647/],
    [(r) => void (r.epoch = 2 ** 31), /role\.epoch is not a whole number from 1/],
    [(r) => void (r.epoch = 1.5), /role\.epoch/],
    [(r) => void (r.epoch = "1"), /role\.epoch/],
    [(r) => void (r.until = -1), /role\.until is not a non-negative whole number/],
    [(r) => void (r.until = 2 ** 60), /role\.until/],
    [(r) => void (r.address = "not an address"), /role\.address/],
    [
      (r) => void (r.address = `${"a".repeat(250)}@h.test`),
      /role\.address is not an e-mail address: it is longer than 254/,
    ],
    [(r) => void (r.address = ["host@host.test"]), /role\.address is not a string/],
    [(r) => void (r.card = "mailpeer1:evil@x.test:AA:AA"), /role\.card is not a field of role/],
    [() => "bob", /role is not an object/],
    [() => [role], /role is not an object/],
    [() => null, /role is not an object/],
  ];
  for (const [edit, message] of cases) {
    const err = await assertMessageError(() => decodeReply(editedRole(edit)), "EPAYLOAD", message);
    assert.ok(!err.message.includes("\n"), "one line");
  }
});

Deno.test("a request's reads list with a hostile value is refused, naming the entry", async () => {
  const cases: [unknown, RegExp][] = [
    ["role", /reads is not a list/],
    [[5], /reads\[0\] is not an extension name/],
    [["Role"], /reads\[0\] is not an extension name/],
    [["role", "x".repeat(33)], /reads\[1\] is not an extension name .* at most 32 bytes/],
    [["role", "role"], /reads\[1\] repeats role/],
    [
      Array.from({ length: MAX_REPLY_READS + 1 }, (_, i) => `x${i}`),
      /reads has 9 entries, more than 8/,
    ],
  ];
  for (const [reads, message] of cases) {
    await assertMessageError(() => decodeRequest(editedReads(reads)), "EPAYLOAD", message);
  }
  // names this mailpeer does not know are kept: a newer terminal may read more than we send
  assert.deepEqual(decodeRequest(editedReads(["role", "future-thing"])).reads, [
    "role",
    "future-thing",
  ]);
});

Deno.test("encoding refuses a role it could not read back", async () => {
  await assertMessageError(
    () => encodeReply({ ...reply, role: { ...role, epoch: 0 } }),
    "EPAYLOAD",
    /Cannot encode reply: role\.epoch/,
  );
});
