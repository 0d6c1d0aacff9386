/**
 * Shared fast-check arbitraries and assertions for the message layer tests.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { MessageError } from "../../src/errors.ts";
import type { ErrorCode } from "../../src/errors.ts";
import { userIdProblem } from "../../src/message/field_rules.ts";
import { formatHostCard } from "../../src/message/host_card.ts";
import { endpointsOf } from "../../src/message/candidate.ts";
import type {
  Candidate,
  Endpoint,
  NoticePayload,
  PeerEntry,
  ReplyPayload,
  RequestPayload,
} from "../../src/message/types.ts";

const record = <T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> =>
  fc.record(model, { noNullPrototype: true }) as fc.Arbitrary<T>;

export const bytes = (n: number): fc.Arbitrary<Uint8Array> =>
  fc.uint8Array({ minLength: n, maxLength: n });

export const networkArb: fc.Arbitrary<string> = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,30}$/);

export const userIdArb: fc.Arbitrary<string> = fc
  .string({ unit: "grapheme", minLength: 1, maxLength: 16 })
  .filter((s) => userIdProblem(s) === undefined);

export const timeArb: fc.Arbitrary<number> = fc.integer({ min: 0, max: 2 ** 45 });

export const endpointArb: fc.Arbitrary<Endpoint> = record({
  transport: fc.constantFrom("tcp" as const, "udp" as const),
  address: fc.oneof(fc.ipV4(), fc.ipV6()),
  port: fc.integer({ min: 1, max: 65535 }),
});

export const hostCardTextArb: fc.Arbitrary<string> = record({
  email: fc.emailAddress(),
  x25519: bytes(32),
  ed25519: bytes(32),
})
  .map(formatHostCard);

/** A version 1 request of alice, with one endpoint and no host card. */
export const sampleRequest: RequestPayload = {
  network: "lan-party",
  userId: "alice",
  identityKey: new Uint8Array(32).fill(1),
  endpoints: [{ transport: "tcp", address: "203.0.113.7", port: 4000 }],
  sessionId: new Uint8Array(16).fill(2),
  createdAt: 1_767_225_600_000,
  replyKey: new Uint8Array(32).fill(3),
  hostCards: [],
};

/** A request payload; `identityKey` is replaced by the caller when it must match a key. */
export const requestArb: fc.Arbitrary<RequestPayload> = record({
  network: networkArb,
  userId: userIdArb,
  identityKey: bytes(32),
  endpoints: fc.array(endpointArb, { maxLength: 8 }),
  sessionId: bytes(16),
  createdAt: timeArb,
  replyKey: bytes(32),
  hostCards: fc.array(hostCardTextArb, { maxLength: 3 }),
});

export const peerArb: fc.Arbitrary<PeerEntry> = record({
  userId: userIdArb,
  identityKey: bytes(32),
  endpoints: fc.array(endpointArb, { maxLength: 4 }),
  lastSeen: timeArb,
  failures: fc.nat(1000),
});

export const replyArb: fc.Arbitrary<ReplyPayload> = record({
  network: networkArb,
  sessionId: bytes(16),
  hostId: bytes(32),
  createdAt: timeArb,
  peers: fc.array(peerArb, { maxLength: 8 }),
});

const failureArb: fc.Arbitrary<NoticePayload["failed"][number]> = fc.oneof(
  record({
    userId: userIdArb,
    reason: fc.string({ maxLength: 40 }).filter((s) => !/\p{Cc}/u.test(s)),
  }),
  record({ userId: userIdArb, endpoint: endpointArb, reason: fc.constantFrom("timeout", "") }),
);

export const noticeArb: fc.Arbitrary<NoticePayload> = record({
  network: networkArb,
  userId: userIdArb,
  identityKey: bytes(32),
  sessionId: bytes(16),
  createdAt: timeArb,
  failed: fc.array(failureArb, { minLength: 1, maxLength: 8 }),
});

/** Asserts that `fn` throws (or rejects with) a `MessageError` with `code`, message matching. */
export async function assertMessageError(
  fn: () => unknown,
  code: ErrorCode,
  message?: RegExp,
): Promise<MessageError> {
  let caught: unknown;
  try {
    await fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof MessageError, `expected a MessageError ${code}, got ${caught}`);
  assert.equal(caught.code, code, caught.message);
  assert.match(caught.message, /^Cannot [^:]+: .+; .+/);
  if (message) assert.match(caught.message, message);
  return caught;
}

/** A version 2 request of alice with `candidates`, its endpoints their projection. */
export function candidateRequest(candidates: Candidate[]): RequestPayload {
  return {
    network: "net",
    userId: "alice",
    identityKey: new Uint8Array(32),
    endpoints: endpointsOf(candidates),
    candidates,
    sessionId: new Uint8Array(16),
    createdAt: 1,
    replyKey: new Uint8Array(32),
    hostCards: [],
  };
}
