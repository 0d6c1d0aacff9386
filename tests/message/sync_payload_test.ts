import assert from "node:assert/strict";
import fc from "fast-check";
import { MAX_BLOCK_BYTES } from "../../src/protocol.ts";
import { armor } from "../../src/message/armor.ts";
import { blockKindOf, sealSignedBlock } from "../../src/message/block.ts";
import { formatHostCard } from "../../src/message/host_card.ts";
import { generateHostKeys, hostCardOf } from "../../src/message/key_file.ts";
import {
  decodeSyncPayload,
  encodeSyncPayload,
  MAX_SYNC_ROWS,
  type SnapshotPayload,
  type SyncPayload,
  type SyncRow,
} from "../../src/host/pool/sync_payload.ts";
import { dearmorSync, openSync, sealSync } from "../../src/host/pool/sync_seal.ts";
import {
  assertMessageError,
  bytes,
  endpointArb,
  hostCardTextArb,
  networkArb,
  timeArb,
  userIdArb,
} from "./helpers.ts";

const alpha = await generateHostKeys("alpha@hosts.test");
const beta = await generateHostKeys("beta@hosts.test");
const gamma = await generateHostKeys("gamma@hosts.test");
const alphaCard = formatHostCard(hostCardOf(alpha));
const betaCard = hostCardOf(beta);

const rowArb = (network: string): fc.Arbitrary<SyncRow> =>
  fc.record({
    userId: userIdArb,
    identityKey: bytes(32),
    endpoints: fc.array(endpointArb, { maxLength: 4 }),
    sessionId: bytes(16),
    requestedAt: timeArb,
    failures: fc.nat(50),
    lastFailureAt: fc.option(timeArb, { nil: undefined }),
  }, { noNullPrototype: true }).map((r) => {
    const row: SyncRow = { ...r, network };
    if (r.lastFailureAt === undefined) delete row.lastFailureAt;
    return row;
  });

const payloadArb: fc.Arbitrary<SyncPayload> = fc.tuple(networkArb, timeArb).chain((
  [network, createdAt],
) =>
  fc.oneof(
    fc.constant<SyncPayload>({
      network,
      hostId: alpha.ed25519.publicKey,
      createdAt,
      kind: "table-request",
      card: alphaCard,
    }),
    fc.tuple(
      fc.uniqueArray(rowArb(network), { maxLength: 6, selector: (r) => r.userId }),
      fc.array(hostCardTextArb, { maxLength: 3 }),
    ).map(([rows, others]): SyncPayload => ({
      network,
      hostId: alpha.ed25519.publicKey,
      createdAt,
      kind: "snapshot",
      rows,
      cards: [alphaCard, ...others],
    })),
  )
);

function snapshot(rows: SyncRow[]): SnapshotPayload {
  return {
    network: "lan-party",
    hostId: alpha.ed25519.publicKey,
    createdAt: 1_700_000_000_000,
    kind: "snapshot",
    rows,
    cards: [alphaCard],
  };
}

function row(userId: string): SyncRow {
  return {
    userId,
    network: "lan-party",
    identityKey: new Uint8Array(32).fill(7),
    endpoints: [{ transport: "udp", address: "2001:db8::7", port: 4000 }],
    sessionId: new Uint8Array(16).fill(9),
    requestedAt: 1_700_000_000_000,
    failures: 0,
  };
}

Deno.test("sync payloads encode and decode to the same value", () => {
  fc.assert(
    fc.property(payloadArb, (p) => {
      assert.deepEqual(decodeSyncPayload(encodeSyncPayload(p)), p);
    }),
  );
});

Deno.test("a sealed sync block opens with the receiver's keys to the same payload", async () => {
  await fc.assert(
    fc.asyncProperty(payloadArb, async (p) => {
      const block = await sealSync(p, { hostKeys: alpha, to: betaCard });
      assert.equal(blockKindOf(block), "sync");
      assert.deepEqual(await openSync(block, { hostKeys: beta }), p);
      assert.deepEqual(
        await openSync(block, { hostKeys: beta, from: [hostCardOf(alpha)] }),
        p,
      );
    }),
    { numRuns: 25 },
  );
});

Deno.test("an altered sync block is refused", async () => {
  const block = await sealSync(snapshot([row("alice")]), { hostKeys: alpha, to: betaCard });
  await fc.assert(
    fc.asyncProperty(
      fc.nat(block.length - 1),
      fc.integer({ min: 1, max: 255 }),
      async (at, flip) => {
        const bad = block.slice();
        bad[at]! ^= flip;
        let refused = false;
        try {
          await openSync(bad, { hostKeys: beta });
        } catch {
          refused = true;
        }
        assert.ok(refused, `flipping byte ${at} was not noticed`);
      },
    ),
    { numRuns: 60 },
  );
});

Deno.test("a sync block sealed to another host does not open", async () => {
  const block = await sealSync(snapshot([]), { hostKeys: alpha, to: betaCard });
  await assertMessageError(() => openSync(block, { hostKeys: gamma }), "ESEAL");
});

Deno.test("a sync block signed by another key than its host id is refused", async () => {
  // Mallory (gamma) claims to be alpha: alpha's host id and card, gamma's signature.
  const body = encodeSyncPayload(snapshot([row("mallory")]));
  const forged = await sealSignedBlock("sync", body, {
    signer: gamma.ed25519.privateKey,
    recipient: beta.x25519.publicKey,
    maxBytes: 1 << 20,
  });
  await assertMessageError(() => openSync(forged, { hostKeys: beta }), "ESIGNATURE", /forged/);
});

Deno.test("a sync block from a host not among the given cards is refused", async () => {
  const block = await sealSync(snapshot([]), { hostKeys: alpha, to: betaCard });
  await assertMessageError(
    () => openSync(block, { hostKeys: beta, from: [hostCardOf(gamma)] }),
    "ESIGNATURE",
    /not from a known host/,
  );
});

Deno.test("sealing refuses a payload whose host id is not the sealing host", async () => {
  await assert.rejects(
    () =>
      sealSync({ ...snapshot([]), hostId: gamma.ed25519.publicKey }, {
        hostKeys: alpha,
        to: betaCard,
      }),
    TypeError,
  );
});

Deno.test("a snapshot of many rows is larger than a request block and still opens", async () => {
  const rows = Array.from({ length: 400 }, (_, i) => row(`player-${i}`));
  const block = await sealSync(snapshot(rows), { hostKeys: alpha, to: betaCard });
  assert.ok(block.length > MAX_BLOCK_BYTES);
  await assertMessageError(() => Promise.resolve(blockKindOf(block)), "EBLOCK", /more than/);
  const again = dearmorSync(`Hello\n\n${armor(block)}\n`);
  const opened = await openSync(again, { hostKeys: beta });
  assert.equal(opened.kind === "snapshot" && opened.rows.length, 400);
});

Deno.test("a snapshot never carries an e-mail address, even when a row has one", () => {
  const withEmail = { ...row("alice"), email: "alice@player.test" } as SyncRow;
  const text = new TextDecoder().decode(encodeSyncPayload(snapshot([withEmail])));
  assert.ok(!text.includes("player.test"), text);
  const wire = JSON.parse(text);
  wire.rows[0].email = "alice@player.test";
  const decoded = decodeSyncPayload(new TextEncoder().encode(JSON.stringify(wire)));
  assert.ok(decoded.kind === "snapshot" && !("email" in decoded.rows[0]!));
});

Deno.test("the sync codec refuses what it must not read", async () => {
  const encode = (p: unknown) => () => encodeSyncPayload(p as SyncPayload);
  await assertMessageError(encode(snapshot([row("a"), row("a")])), "EPAYLOAD", /repeats/);
  await assertMessageError(
    encode({ ...snapshot([]), cards: [formatHostCard(betaCard)] }),
    "EPAYLOAD",
    /own card/,
  );
  await assertMessageError(
    encode({
      network: "lan-party",
      hostId: alpha.ed25519.publicKey,
      createdAt: 1,
      kind: "table-request",
      card: formatHostCard(betaCard),
    }),
    "EPAYLOAD",
    /not the card of the sending host/,
  );
  await assertMessageError(encode({ ...snapshot([]), kind: "dump" }), "EPAYLOAD", /kind/);
  const many = Array.from({ length: MAX_SYNC_ROWS + 1 }, (_, i) => row(`p${i}`));
  await assertMessageError(encode(snapshot(many)), "EPAYLOAD", /more than 2000/);
  await assertMessageError(
    encode(snapshot([{ ...row("a"), sessionId: new Uint8Array(3) }])),
    "EPAYLOAD",
    /sessionId/,
  );
  await assertMessageError(
    () => decodeSyncPayload(new TextEncoder().encode("[1]")),
    "EPAYLOAD",
    /not an object/,
  );
  await assertMessageError(() => dearmorSync("no block here"), "EBLOCK", /no BEGIN/);
});
