/**
 * Typed candidates on the wire (payload version 2, issue 13): round trips, the version 1
 * fallback, and what an attacker's hand-written payload gets (always `EPAYLOAD`, never a
 * crash, never a candidate the endpoints do not show).
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  CANDIDATES_PAYLOAD_VERSION,
  MAX_CANDIDATE_PRIORITY,
  MAX_CANDIDATES,
} from "../../src/protocol.ts";
import {
  byPriority,
  candidatePriority,
  candidatesOf,
  endpointsOf,
} from "../../src/message/candidate.ts";
import { decodeReply, decodeRequest, encodeReply, encodeRequest } from "../../src/message/codec.ts";
import type { Candidate } from "../../src/message/types.ts";
import {
  assertMessageError,
  candidateRequest,
  endpointArb,
  replyArb,
  requestArb,
} from "./helpers.ts";

const candidateArb: fc.Arbitrary<Candidate> = fc.tuple(
  endpointArb,
  fc.constantFrom("host" as const, "srflx" as const, "mapped" as const),
  fc.integer({ min: 1, max: MAX_CANDIDATE_PRIORITY }),
  fc.constantFrom(undefined, "endpoint-independent" as const, "endpoint-dependent" as const),
).map(([e, type, priority, mapping]) => ({
  ...e,
  type,
  priority,
  ...(type === "srflx" && mapping ? { mapping } : {}),
}));

const candidatesArb = fc.uniqueArray(candidateArb, {
  maxLength: MAX_CANDIDATES,
  selector: (c) => `${c.transport} ${c.address} ${c.port}`,
});

const utf8 = new TextEncoder();
const json = (bytes: Uint8Array) => JSON.parse(new TextDecoder().decode(bytes));
const bytesOf = (value: unknown) => utf8.encode(JSON.stringify(value));

/** A valid version 2 request on the wire, as a plain object an attacker can edit. */
function wireRequest(candidates: Candidate[]): Record<string, unknown> {
  return json(encodeRequest(candidateRequest(candidates)));
}

const SRFLX: Candidate = {
  transport: "udp",
  address: "203.0.113.5",
  port: 61000,
  type: "srflx",
  priority: candidatePriority("srflx"),
  mapping: "endpoint-independent",
};
const HOST: Candidate = {
  transport: "udp",
  address: "192.168.1.20",
  port: 7000,
  type: "host",
  priority: candidatePriority("host"),
};

Deno.test("a request with candidates reads back exactly as it was encoded, as version 2", () => {
  fc.assert(fc.property(requestArb, candidatesArb, (request, candidates) => {
    const payload = { ...request, endpoints: endpointsOf(candidates), candidates };
    const bytes = encodeRequest(payload);
    assert.equal(json(bytes).version, CANDIDATES_PAYLOAD_VERSION);
    assert.deepStrictEqual(decodeRequest(bytes), payload);
  }));
});

Deno.test("a reply lists its peers' candidates, and a peer without any keeps its endpoints", () => {
  fc.assert(fc.property(replyArb, candidatesArb, (reply, candidates) => {
    const peers = reply.peers.map((p, i) =>
      i % 2 === 0 ? { ...p, endpoints: endpointsOf(candidates), candidates } : p
    );
    const payload = { ...reply, peers };
    assert.deepStrictEqual(decodeReply(encodeReply(payload)), payload);
  }));
});

Deno.test("a version 1 request has no candidates: its endpoints count as host candidates, in order", () => {
  const wire = wireRequest([HOST, SRFLX]);
  delete wire.version;
  delete wire.candidates;
  const request = decodeRequest(bytesOf(wire));
  assert.equal(request.candidates, undefined);
  const read = candidatesOf(request);
  assert.deepStrictEqual(read.map((c) => [c.type, c.address]), [
    ["host", "192.168.1.20"],
    ["host", "203.0.113.5"],
  ]);
  assert.ok(read[0]!.priority > read[1]!.priority);
});

Deno.test("candidates are tried by priority: host, then a router mapping, then STUN's", () => {
  const mapped: Candidate = {
    ...HOST,
    address: "198.51.100.1",
    type: "mapped",
    priority: candidatePriority("mapped"),
  };
  const best = byPriority([SRFLX, mapped, HOST]).map((c) => c.type);
  assert.deepStrictEqual(best, ["host", "mapped", "srflx"]);
  assert.throws(() => candidatePriority("host", 65536), RangeError);
});

Deno.test("a hostile request's candidates are refused with EPAYLOAD naming the field", async () => {
  const cases: [string, (w: Record<string, unknown>) => void, RegExp][] = [
    ["unknown version", (w) => (w.version = 3), /version 3 is not one/],
    ["version as text", (w) => (w.version = "2"), /version "2" is not one/],
    ["version 1 spelled out", (w) => (w.version = 1), /version 1 is not one/],
    ["candidates without version 2", (w) => delete w.version, /candidates needs payload version 2/],
    ["version 2 without candidates", (w) => delete w.candidates, /candidates is missing/],
    ["candidates not a list", (w) => (w.candidates = {}), /candidates is not a list/],
    [
      "endpoints that show old readers another address",
      (w) => ((w.endpoints as { address: string }[])[0]!.address = "8.8.8.8"),
      /endpoints are not the candidates' addresses/,
    ],
    [
      "endpoints in another order",
      (w) => (w.endpoints as unknown[]).reverse(),
      /endpoints are not the candidates' addresses/,
    ],
    [
      "too many candidates",
      (w) => {
        const many = Array.from(
          { length: MAX_CANDIDATES + 1 },
          (_, i) => ({ ...HOST, port: 1000 + i }),
        );
        w.candidates = many;
        w.endpoints = endpointsOf(many);
      },
      /has 9 entries, more than 8/,
    ],
    [
      "a repeated candidate",
      (w) => {
        w.candidates = [HOST, { ...HOST, type: "mapped" }];
        w.endpoints = endpointsOf([HOST, HOST]);
      },
      /candidates\[1\] repeats 192.168.1.20 port 7000/,
    ],
    [
      "an unknown type",
      (w) => (cand(w, 0).type = "prflx"),
      /candidates\[0\]\.type is not host, srflx or mapped/,
    ],
    [
      "a relay candidate among the others, where an earlier reader would choke on it",
      (w) => (cand(w, 0).type = "relay"),
      /candidates\[0\]\.type is relay, which belongs in relayCandidates/,
    ],
    ["priority 0", (w) => (cand(w, 0).priority = 0), /priority is not a whole number from 1/],
    ["priority 2^31", (w) => (cand(w, 0).priority = 2 ** 31), /priority is not a whole number/],
    ["priority 1.5", (w) => (cand(w, 0).priority = 1.5), /priority is not a whole number/],
    ["priority as text", (w) => (cand(w, 0).priority = "9"), /priority is not a whole number/],
    ["no priority", (w) => delete cand(w, 0).priority, /candidates\[0\]\.priority is missing/],
    [
      "a mapping on a host candidate",
      (w) => (cand(w, 0).mapping = "endpoint-independent"),
      /mapping is given for a host candidate/,
    ],
    [
      "an unknown mapping",
      (w) => (cand(w, 1).mapping = "full-cone"),
      /mapping is not endpoint-independent/,
    ],
    [
      "a candidate address that is a name",
      (w) => (cand(w, 1).address = "evil.example"),
      /address is not an IPv4 or IPv6 literal/,
    ],
    ["port 0", (w) => (cand(w, 1).port = 0), /port is not a port number/],
  ];
  for (const [what, spoil, message] of cases) {
    const wire = wireRequest([HOST, SRFLX]);
    spoil(wire);
    const err = await assertMessageError(() => decodeRequest(bytesOf(wire)), "EPAYLOAD", message);
    assert.match(err.message, /^Cannot read request: /, what);
  }
});

function cand(w: Record<string, unknown>, i: number): Record<string, unknown> {
  return (w.candidates as Record<string, unknown>[])[i]!;
}

Deno.test("a reply peer with candidates but no version 2 is refused, so an old host cannot mix formats", async () => {
  const bytes = encodeReply({
    network: "net",
    sessionId: new Uint8Array(16),
    hostId: new Uint8Array(32),
    createdAt: 1,
    peers: [{
      userId: "bob",
      identityKey: new Uint8Array(32),
      endpoints: endpointsOf([SRFLX]),
      candidates: [SRFLX],
      lastSeen: 1,
      failures: 0,
    }],
  });
  const wire = json(bytes);
  assert.equal(wire.version, CANDIDATES_PAYLOAD_VERSION);
  delete wire.version;
  await assertMessageError(
    () => decodeReply(bytesOf(wire)),
    "EPAYLOAD",
    /peers\[0\]\.candidates needs payload version 2/,
  );
});

Deno.test("random bytes and random JSON never crash the candidate reader", () => {
  fc.assert(fc.property(fc.jsonValue(), (value) => {
    const wire = wireRequest([HOST, SRFLX]);
    wire.candidates = [value];
    try {
      decodeRequest(bytesOf(wire));
    } catch (err) {
      assert.equal((err as { code?: string }).code, "EPAYLOAD");
    }
  }));
});

Deno.test("a version 2 request may carry a 32-byte introduction key; a version 1 request may not", async () => {
  const wire = wireRequest([HOST]);
  wire.introductionKey = "A".repeat(43);
  const read = decodeRequest(bytesOf(wire));
  assert.equal(read.introductionKey?.length, 32);
  assert.deepStrictEqual(decodeRequest(encodeRequest(read)), read);
  await assertMessageError(
    () => decodeRequest(bytesOf({ ...wire, introductionKey: "AAAA" })),
    "EPAYLOAD",
    /introductionKey has 3 bytes, not 32/,
  );
  const old = { ...wire };
  delete old.version;
  delete old.candidates;
  await assertMessageError(
    () => decodeRequest(bytesOf(old)),
    "EPAYLOAD",
    /introductionKey needs payload version 2/,
  );
});
