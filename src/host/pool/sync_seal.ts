/**
 * Sync blocks on the wire: {@link sealSync} signs a sync payload (host/pool/sync_payload.ts) with the
 * sending host's Ed25519 key and seals it to the receiving host's X25519 key with the layout of
 * block.ts (block kind `sync`); {@link openSync} opens and verifies one; {@link dearmorSync}
 * finds the armored block in a mail body, allowing the larger sync block limit.
 *
 * @module
 */
import { MessageError } from "../../errors.ts";
import { BEGIN_LINE, END_LINE } from "../../message/armor.ts";
import { fromBase64, toBase64Url } from "../../message/base64.ts";
import { bytesEqual } from "../../message/bytes.ts";
import { openSignedBlock, sealSignedBlock, signedBlockData } from "../../message/block.ts";
import type { HostCard } from "../../message/host_card.ts";
import type { HostKeys } from "../../message/key_file.ts";
import { verify } from "../../message/keys.ts";
import {
  decodeSyncPayload,
  encodeSyncPayload,
  MAX_SYNC_BLOCK_BYTES,
  type SyncPayload,
} from "./sync_payload.ts";

/**
 * Signs a sync payload with the host's Ed25519 key and seals it to the host of `to`.
 *
 * @example
 * ```ts
 * import { formatHostCard } from "../../message/host_card.ts";
 * import { generateHostKeys, hostCardOf } from "../../message/key_file.ts";
 * import { openSync, sealSync } from "./sync_seal.ts";
 *
 * const a = await generateHostKeys("a@hosts.example");
 * const b = await generateHostKeys("b@hosts.example");
 * const block = await sealSync({
 *   network: "lan-party",
 *   hostId: a.ed25519.publicKey,
 *   createdAt: Date.now(),
 *   kind: "table-request",
 *   card: formatHostCard(hostCardOf(a)),
 * }, { hostKeys: a, to: hostCardOf(b) });
 * const payload = await openSync(block, { hostKeys: b, from: [hostCardOf(a)] });
 * ```
 * @throws {TypeError} when `payload.hostId` is not the host's Ed25519 public key.
 * @throws {MessageError} `EPAYLOAD` when the payload breaks a limit, `EKEY` when the card's
 * X25519 key is not usable.
 */
export async function sealSync(
  payload: SyncPayload,
  options: { hostKeys: HostKeys; to: HostCard },
): Promise<Uint8Array> {
  if (
    !(payload.hostId instanceof Uint8Array) ||
    !bytesEqual(payload.hostId, options.hostKeys.ed25519.publicKey)
  ) {
    throw new TypeError("Cannot seal sync: payload.hostId is not the host's Ed25519 key");
  }
  return await sealSignedBlock("sync", encodeSyncPayload(payload), {
    signer: options.hostKeys.ed25519.privateKey,
    recipient: options.to.x25519,
    maxBytes: MAX_SYNC_BLOCK_BYTES,
  });
}

/**
 * Opens a sync block with the host's X25519 key and checks that the host named by
 * `payload.hostId` signed it; with `from`, that host must also be one of those cards.
 *
 * @throws {MessageError} `EBLOCK` (header, size, not a sync block), `ESEAL` (wrong key or
 * altered bytes), `EPAYLOAD` (bad content) or `ESIGNATURE` (forged, or not from a known host).
 */
export async function openSync(
  block: Uint8Array,
  options: { hostKeys: HostKeys; from?: HostCard[] },
): Promise<SyncPayload> {
  const { hostKeys, from } = options;
  const { body, signature } = await openSignedBlock(block, {
    kind: "sync",
    recipientPrivateKey: hostKeys.x25519.privateKey,
    maxBytes: MAX_SYNC_BLOCK_BYTES,
  });
  const payload = decodeSyncPayload(body);
  const data = signedBlockData("sync", hostKeys.x25519.publicKey, body);
  if (!await verify(payload.hostId, data, signature)) {
    throw new MessageError(
      "ESIGNATURE",
      `Cannot accept sync: it is not signed by the host key it carries (${
        toBase64Url(payload.hostId)
      }); the mail was forged, ignore it`,
    );
  }
  if (from !== undefined && !from.some((card) => bytesEqual(card.ed25519, payload.hostId))) {
    throw new MessageError(
      "ESIGNATURE",
      `Cannot accept sync: it is not from a known host (host key ${
        toBase64Url(payload.hostId)
      }); add that host's card to the pool if it belongs there`,
    );
  }
  return payload;
}

/**
 * Finds the one armored block of a sync mail and decodes it, allowing up to
 * `MAX_SYNC_BLOCK_BYTES` (armor.ts's `dearmor` stops at the 16 KiB of requests).
 *
 * @throws {MessageError} `EBLOCK`: no block, more than one, bad base64, or too large.
 */
export function dearmorSync(text: string): Uint8Array {
  const bad = (problem: string, cause?: unknown): never => {
    throw new MessageError(
      "EBLOCK",
      `Cannot read the mailpeer block: ${problem}; ignore this mail`,
      cause === undefined ? {} : { cause },
    );
  };
  const lines = text.split(/\r\n|\r|\n/).map((line) => line.trim());
  const begin = lines.indexOf(BEGIN_LINE);
  const end = lines.indexOf(END_LINE);
  if (begin < 0) return bad("no BEGIN line");
  if (end < begin) return bad("no END line after the BEGIN line");
  if (lines.lastIndexOf(BEGIN_LINE) !== begin || lines.lastIndexOf(END_LINE) !== end) {
    return bad("more than one block");
  }
  const body = lines.slice(begin + 1, end).join("");
  if (body.length > Math.ceil(MAX_SYNC_BLOCK_BYTES / 3) * 4) {
    return bad(`too large (more than ${MAX_SYNC_BLOCK_BYTES} bytes)`);
  }
  let block: Uint8Array;
  try {
    block = fromBase64(body);
  } catch (err) {
    return bad("bad base64", err);
  }
  if (block.length === 0) return bad("the block is empty");
  return block;
}
