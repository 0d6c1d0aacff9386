/**
 * A terminal's signed request as proof of a control-table row (issue 12): the request body as
 * the terminal encoded it, its Ed25519 signature and the X25519 key of the host it was sealed
 * to (the signature covers `"mailpeer v1 request signature\0" | recipient | body`, block.ts).
 * A host keeps the proof with the row and sends it along in sync snapshots, so every host that
 * merges the row checks that the terminal itself signed its user id, key, endpoints, session
 * and time: no host can inject or alter a row.
 *
 * @module
 */
import { MessageError } from "../../errors.ts";
import { bytesEqual } from "../../message/bytes.ts";
import { openSignedBlock, verifyRequest } from "../../message/block.ts";
import type { HostKeys } from "../../message/key_file.ts";
import type { SyncRow } from "./sync_payload.ts";
import type { RequestPayload, RequestProof } from "../../message/types.ts";

/**
 * Checks that the identity key inside `proof.body` signed it, and returns the request.
 *
 * @throws {MessageError} `EPAYLOAD` (the body is no request) or `ESIGNATURE` (not signed by the
 * identity key it carries).
 */
export function verifyRequestProof(proof: RequestProof): Promise<RequestPayload> {
  return verifyRequest(proof.body, proof.signature, proof.recipient);
}

/**
 * Opens a request block with the host's keys, checks the terminal's signature, and returns the
 * request with its proof (what {@link verifyRequestProof} checks again on another host).
 *
 * @example
 * ```ts ignore
 * const { payload, proof } = await openRequestWithProof(block, hostKeys);
 * ```
 * @throws {MessageError} as `openRequest` of block.ts does.
 */
export async function openRequestWithProof(
  block: Uint8Array,
  hostKeys: HostKeys,
): Promise<{ payload: RequestPayload; proof: RequestProof }> {
  const { body, signature } = await openSignedBlock(block, {
    kind: "request",
    recipientPrivateKey: hostKeys.x25519.privateKey,
  });
  const proof = { body, signature, recipient: hostKeys.x25519.publicKey };
  return { payload: await verifyRequestProof(proof), proof };
}

/**
 * Why a synced row may not be merged: it carries no proof, the proof's signature fails, or the
 * row differs from what the terminal signed (user id, network, identity key, endpoints, session
 * id, or `requestedAt` other than the signed creation time). Undefined when the row is proven.
 */
export async function syncRowProblem(row: SyncRow): Promise<string | undefined> {
  if (row.proof === undefined) return "it carries no signed request of its terminal";
  let signed: RequestPayload;
  try {
    signed = await verifyRequestProof(row.proof);
  } catch (err) {
    if (err instanceof MessageError) return `its signed request does not verify (${err.code})`;
    throw err;
  }
  const endpoints = (a: RequestPayload["endpoints"], b: RequestPayload["endpoints"]) =>
    a.length === b.length &&
    a.every((e, i) =>
      e.transport === b[i]!.transport && e.address === b[i]!.address && e.port === b[i]!.port
    );
  if (
    signed.userId !== row.userId || signed.network !== row.network ||
    !bytesEqual(signed.identityKey, row.identityKey) ||
    !bytesEqual(signed.sessionId, row.sessionId) || signed.createdAt !== row.requestedAt ||
    !endpoints(signed.endpoints, row.endpoints)
  ) {
    return "it differs from the request its terminal signed";
  }
  return undefined;
}
