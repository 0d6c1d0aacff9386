/**
 * Relayed candidates on the wire (issue 14): a `relay` candidate travels in `relayCandidates`,
 * apart from the others, so that a reader of issue 13 (which knows host, srflx and mapped only,
 * refuses any other type and ignores unknown fields) still reads the rest of the request, reply
 * or introduction; and what a hostile payload gets (always `EPAYLOAD`).
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  CANDIDATES_PAYLOAD_VERSION,
  MAX_CANDIDATES,
  MAX_RELAY_CANDIDATES,
} from "../../src/protocol.ts";
import { byPriority, candidatePriority, endpointsOf } from "../../src/message/candidate.ts";
import { decodeReply, decodeRequest, encodeReply, encodeRequest } from "../../src/message/codec.ts";
import { decodeIntroduction, encodeIntroduction } from "../../src/message/introduction.ts";
import type { Candidate, IntroductionPayload } from "../../src/message/types.ts";
import { assertMessageError, candidateRequest, endpointArb, requestArb } from "./helpers.ts";

const utf8 = new TextEncoder();
const json = (bytes: Uint8Array) => JSON.parse(new TextDecoder().decode(bytes));
const bytesOf = (value: unknown) => utf8.encode(JSON.stringify(value));

const HOST: Candidate = {
  transport: "udp",
  address: "192.168.1.20",
  port: 7000,
  type: "host",
  priority: candidatePriority("host"),
};
const SRFLX: Candidate = {
  transport: "udp",
  address: "203.0.113.5",
  port: 61000,
  type: "srflx",
  priority: candidatePriority("srflx"),
  mapping: "endpoint-dependent",
};
const RELAY: Candidate = {
  transport: "udp",
  address: "198.51.100.7",
  port: 51020,
  type: "relay",
  priority: candidatePriority("relay"),
};

const request = candidateRequest;

/**
 * What the version 2 reader of issue 13 demands of a candidates object, written out from its
 * rules (src/message/wire_reader.ts as merged for issue 13): the three types it knows, and
 * `endpoints` exactly the `candidates`' addresses. Other fields it ignores.
 */
function issue13ReaderAccepts(wire: Record<string, unknown>): boolean {
  const candidates = wire.candidates as Record<string, unknown>[];
  const endpoints = wire.endpoints as Record<string, unknown>[];
  return wire.version === CANDIDATES_PAYLOAD_VERSION && candidates.length <= MAX_CANDIDATES &&
    candidates.every((c) => c.type === "host" || c.type === "srflx" || c.type === "mapped") &&
    endpoints.length === candidates.length &&
    candidates.every((c, i) =>
      c.transport === endpoints[i]!.transport && c.address === endpoints[i]!.address &&
      c.port === endpoints[i]!.port
    );
}

Deno.test("a relay candidate has the lowest priority of all types and is tried last", () => {
  assert.equal(candidatePriority("relay"), 2 ** 24 - 1);
  assert.ok(candidatePriority("relay") < candidatePriority("srflx", 0));
  assert.deepStrictEqual(byPriority([RELAY, SRFLX, HOST]).map((c) => c.type), [
    "host",
    "srflx",
    "relay",
  ]);
  // The existing numbers stay: an issue 13 peer ranks its own candidates as before.
  assert.equal(candidatePriority("host"), 126 * 2 ** 24 + 65535 * 256 + 255);
  assert.equal(candidatePriority("mapped"), 110 * 2 ** 24 + 65535 * 256 + 255);
  assert.equal(candidatePriority("srflx"), 100 * 2 ** 24 + 65535 * 256 + 255);
});

Deno.test("a request's relay candidate travels apart, so a reader of issue 13 reads the rest", () => {
  const payload = request([HOST, SRFLX, RELAY]);
  assert.deepStrictEqual(payload.endpoints, endpointsOf([HOST, SRFLX]), "no relay endpoint");
  const wire = json(encodeRequest(payload));
  assert.deepStrictEqual(Object.keys(wire).slice(0, 7), [
    "version",
    "network",
    "userId",
    "identityKey",
    "endpoints",
    "candidates",
    "relayCandidates",
  ]);
  assert.equal(wire.version, CANDIDATES_PAYLOAD_VERSION, "no new payload version");
  assert.deepStrictEqual(wire.candidates.map((c: Candidate) => c.type), ["host", "srflx"]);
  assert.deepStrictEqual(wire.relayCandidates, [{
    type: "relay",
    transport: "udp",
    address: "198.51.100.7",
    port: 51020,
    priority: candidatePriority("relay"),
  }]);
  assert.ok(issue13ReaderAccepts(wire));
  // This reader reads it whole; one that ignores relayCandidates reads the rest unchanged.
  assert.deepStrictEqual(decodeRequest(bytesOf(wire)), payload);
  delete wire.relayCandidates;
  assert.deepStrictEqual(decodeRequest(bytesOf(wire)), request([HOST, SRFLX]));
});

Deno.test("a request of issue 13 (no relayCandidates) reads as before", () => {
  const wire = {
    version: 2,
    network: "net",
    userId: "bob",
    identityKey: "A".repeat(43),
    endpoints: [{ transport: "udp", address: "203.0.113.5", port: 61000 }],
    candidates: [{
      type: "srflx",
      transport: "udp",
      address: "203.0.113.5",
      port: 61000,
      priority: 1694498815,
      mapping: "endpoint-independent",
    }],
    sessionId: "A".repeat(22),
    createdAt: 1764849600000,
    replyKey: "A".repeat(43),
    hostCards: [],
  };
  const read = decodeRequest(bytesOf(wire));
  assert.deepStrictEqual(read.candidates?.map((c) => c.type), ["srflx"]);
  assert.deepStrictEqual(json(encodeRequest(read)), wire);
});

Deno.test("requests with relay candidates read back exactly as encoded, relayed ones after the rest", () => {
  const direct = fc.tuple(
    endpointArb,
    fc.constantFrom("host" as const, "srflx" as const, "mapped" as const),
  ).map(([e, type]): Candidate => ({ ...e, type, priority: candidatePriority(type) }));
  const relay = endpointArb.map((e): Candidate => ({
    ...e,
    transport: "udp",
    type: "relay",
    priority: candidatePriority("relay", e.port),
  }));
  const key = (c: Candidate) => `${c.transport} ${c.address} ${c.port}`;
  const lists = fc.tuple(
    fc.uniqueArray(direct, { maxLength: MAX_CANDIDATES - MAX_RELAY_CANDIDATES, selector: key }),
    fc.uniqueArray(relay, { maxLength: MAX_RELAY_CANDIDATES, selector: key }),
  ).filter(([d, r]) => new Set([...d, ...r].map(key)).size === d.length + r.length);
  fc.assert(fc.property(requestArb, lists, (base, [d, r]) => {
    const candidates = [...d, ...r];
    const payload = { ...base, endpoints: endpointsOf(candidates), candidates };
    const wire = json(encodeRequest(payload));
    assert.ok(issue13ReaderAccepts(wire));
    assert.equal(Object.hasOwn(wire, "relayCandidates"), r.length > 0);
    assert.deepStrictEqual(decodeRequest(encodeRequest(payload)), payload);
  }));
});

Deno.test("a reply lists a peer's relay candidate apart too, and stays version 2", () => {
  const peer = {
    userId: "bob",
    identityKey: new Uint8Array(32),
    endpoints: endpointsOf([SRFLX, RELAY]),
    candidates: [SRFLX, RELAY],
    lastSeen: 1,
    failures: 0,
  };
  const payload = {
    network: "net",
    sessionId: new Uint8Array(16),
    hostId: new Uint8Array(32),
    createdAt: 1,
    peers: [peer],
  };
  const bytes = encodeReply(payload);
  const wire = json(bytes);
  assert.equal(wire.version, CANDIDATES_PAYLOAD_VERSION);
  assert.ok(issue13ReaderAccepts({ version: wire.version, ...wire.peers[0] }));
  assert.deepStrictEqual(wire.peers[0].relayCandidates.map((c: Candidate) => c.type), ["relay"]);
  assert.deepStrictEqual(decodeReply(bytes), payload);
});

Deno.test("an introduction carries the requester's relay candidate apart from the others", () => {
  const payload: IntroductionPayload = {
    network: "net",
    hostId: new Uint8Array(32),
    sessionId: new Uint8Array(16),
    createdAt: 1,
    peer: { userId: "alice", identityKey: new Uint8Array(32), candidates: [SRFLX, RELAY] },
    peerSessionId: new Uint8Array(16),
    punchStart: 2,
    punchEnd: 3,
  };
  const bytes = encodeIntroduction(payload);
  const wire = json(bytes);
  assert.deepStrictEqual(wire.peer.candidates.map((c: Candidate) => c.type), ["srflx"]);
  assert.deepStrictEqual(wire.peer.relayCandidates.map((c: Candidate) => c.type), ["relay"]);
  assert.deepStrictEqual(decodeIntroduction(bytes), payload);
  wire.peer.relayCandidates = [{ ...wire.peer.relayCandidates[0], type: "host" }];
  assert.throws(() => decodeIntroduction(bytesOf(wire)), /peer\.relayCandidates\[0\]\.type/);
});

Deno.test("hostile relay candidates are refused with EPAYLOAD naming the field", async () => {
  const relayAt = (port: number) => ({ ...RELAY, port });
  const cases: [string, (w: Record<string, unknown>) => void, RegExp][] = [
    [
      `more than ${MAX_RELAY_CANDIDATES} relay candidates`,
      (w) => (w.relayCandidates = [relayAt(1), relayAt(2), relayAt(3)]),
      /relayCandidates has 3 entries, more than 2/,
    ],
    [
      "more than 8 candidates with the relayed ones",
      (w) => {
        const direct = Array.from({ length: 7 }, (_, i) => ({ ...HOST, port: 1000 + i }));
        w.candidates = direct;
        w.endpoints = endpointsOf(direct);
        w.relayCandidates = [relayAt(1), relayAt(2)];
      },
      /candidates and relayCandidates have 9 entries, more than 8/,
    ],
    [
      "another type among the relayed",
      (w) => (w.relayCandidates = [{ ...RELAY, type: "srflx" }]),
      /relayCandidates\[0\]\.type is not relay/,
    ],
    [
      "an unknown type among the relayed",
      (w) => (w.relayCandidates = [{ ...RELAY, type: "turn" }]),
      /relayCandidates\[0\]\.type is not relay/,
    ],
    [
      "a relay over TCP",
      (w) => (w.relayCandidates = [{ ...RELAY, transport: "tcp" }]),
      /relayCandidates\[0\]\.transport of a relay candidate is not udp/,
    ],
    [
      "a NAT mapping on a relay candidate",
      (w) => (w.relayCandidates = [{ ...RELAY, mapping: "endpoint-independent" }]),
      /mapping is given for a relay candidate/,
    ],
    [
      "a relayed address that repeats a direct one",
      (w) => (w.relayCandidates = [{ ...RELAY, address: SRFLX.address, port: SRFLX.port }]),
      /relayCandidates\[0\] repeats 203.0.113.5 port 61000/,
    ],
    [
      "the relayed address among the endpoints",
      (w) => {
        const relayed = { transport: "udp", address: RELAY.address, port: RELAY.port };
        w.endpoints = [...endpointsOf([HOST, SRFLX]), relayed];
      },
      /endpoints are not the candidates' addresses/,
    ],
    [
      "relayCandidates not a list",
      (w) => (w.relayCandidates = {}),
      /relayCandidates is not a list/,
    ],
    ["a relay candidate that is a name", (w) => (w.relayCandidates = ["x"]), /is not an object/],
    [
      "relayCandidates in version 1",
      (w) => {
        delete w.version;
        delete w.candidates;
      },
      /relayCandidates needs candidates/,
    ],
  ];
  for (const [what, spoil, message] of cases) {
    const wire = json(encodeRequest(request([HOST, SRFLX, RELAY])));
    spoil(wire);
    const err = await assertMessageError(() => decodeRequest(bytesOf(wire)), "EPAYLOAD", message);
    assert.match(err.message, /^Cannot read request: /, what);
  }
  // The encoder holds its own payloads to the same rules.
  await assertMessageError(
    () => encodeRequest(request([HOST, RELAY, relayAt(2), relayAt(3)] as Candidate[])),
    "EPAYLOAD",
    /^Cannot encode request: relayCandidates has 3 entries/,
  );
});

Deno.test("random JSON in relayCandidates never crashes the reader: it reads or is EPAYLOAD", () => {
  fc.assert(fc.property(fc.jsonValue(), fc.jsonValue(), (list, entry) => {
    for (const relayCandidates of [list, [entry], [RELAY, entry]]) {
      const wire = json(encodeRequest(request([HOST, SRFLX])));
      wire.relayCandidates = relayCandidates;
      try {
        const read = decodeRequest(bytesOf(wire));
        assert.ok(read.candidates!.every((c, i) => i < 2 || c.type === "relay"));
      } catch (err) {
        assert.equal((err as { code?: string }).code, "EPAYLOAD");
      }
    }
  }));
});
