/**
 * A synced row's candidates and introduction key come from the terminal's signed request (its
 * proof), never from anything the sending host could change (issue 13).
 */
import assert from "node:assert/strict";
import { mergeSyncRows } from "../../src/host/pool/sync_merge.ts";
import { DEFAULT_TABLE_POLICY } from "../../src/host/table.ts";
import { toBase64Url } from "../../src/message/base64.ts";
import { signedBlockData } from "../../src/message/block.ts";
import { candidatePriority, endpointsOf } from "../../src/message/candidate.ts";
import { encodeRequest } from "../../src/message/codec.ts";
import { generateIdentityKeys } from "../../src/message/key_file.ts";
import { generateX25519, sign } from "../../src/message/keys.ts";
import { syncRowProblem } from "../../src/host/pool/request_proof.ts";
import type { SyncRow } from "../../src/host/pool/sync_payload.ts";
import type { Candidate } from "../../src/message/types.ts";

Deno.test("a synced row takes its candidates and introduction key from the signed request, and no e-mail address", async () => {
  const identity = await generateIdentityKeys("bob");
  const candidates: Candidate[] = [{
    transport: "udp",
    address: "198.51.100.7",
    port: 61_000,
    type: "srflx",
    priority: candidatePriority("srflx"),
    mapping: "endpoint-dependent",
  }];
  const introductionKey = (await generateX25519()).publicKey;
  const sessionId = crypto.getRandomValues(new Uint8Array(16));
  const now = Date.UTC(2026, 11, 4, 12);
  const body = encodeRequest({
    network: "n",
    userId: "bob",
    identityKey: identity.ed25519.publicKey,
    endpoints: endpointsOf(candidates),
    candidates,
    sessionId,
    createdAt: now,
    replyKey: (await generateX25519()).publicKey,
    hostCards: [],
    introductionKey,
  });
  const recipient = (await generateX25519()).publicKey;
  const signature = await sign(
    identity.ed25519.privateKey,
    signedBlockData("request", recipient, body),
  );
  const row: SyncRow = {
    userId: "bob",
    network: "n",
    identityKey: identity.ed25519.publicKey,
    endpoints: endpointsOf(candidates),
    sessionId,
    requestedAt: now,
    failures: 0,
    proof: { body, signature, recipient },
  };
  assert.equal(await syncRowProblem(row), undefined);
  const { rows } = mergeSyncRows([], [row], {
    now,
    network: "n",
    policy: DEFAULT_TABLE_POLICY,
    allowPrivateAddresses: true,
  });
  assert.deepStrictEqual(rows[0]?.candidates, candidates);
  assert.equal(rows[0]?.introductionKey, toBase64Url(introductionKey));
  // Only the host that got the request knows the address: this one cannot introduce bob.
  assert.equal(rows[0]?.email, "");
});
