/**
 * The coded block: a payload signed by its sender and sealed to its recipient.
 *
 * ```
 * block     = version u8 | kind u8 | HPKE enc (32) | HPKE ciphertext
 * plaintext = body length u32 BE | body (codec bytes) | Ed25519 signature (64)
 * signed    = "mailpeer v1 <kind> signature\0" | recipient X25519 public key | body
 * ```
 *
 * Sealing is HPKE base mode (RFC 9180: DHKEM X25519, HKDF-SHA256, AES-128-GCM) with info
 * `"mailpeer v1 <kind>"` and the two header bytes as associated data, so no byte of a block can
 * change without the block being refused. The signature binds the body to the recipient key,
 * so a signed body cannot be re-sealed to another host or reply key.
 *
 * @module
 */
import { MessageError } from "../errors.ts";
import { MAX_BLOCK_BYTES, PROTOCOL_VERSION } from "../protocol.ts";
import { bytesEqual, concatBytes } from "./bytes.ts";
import {
  decodeNotice,
  decodeReply,
  decodeRequest,
  encodeNotice,
  encodeReply,
  encodeRequest,
} from "./codec.ts";
import type { HostCard } from "./host_card.ts";
import { hpkeRecipientKeyPair, hpkeSuite as suite } from "./hpke_suite.ts";
import type { HostKeys, IdentityKeys } from "./key_file.ts";
import { publicKeyOf, sign, verify } from "./keys.ts";
import {
  BlockKind,
  type BlockKindName,
  type NoticePayload,
  type ReplyPayload,
  type RequestPayload,
} from "./types.ts";

const HEADER_BYTES = 2;
const ENC_BYTES = 32;
const TAG_BYTES = 16;
const LENGTH_BYTES = 4;
const SIGNATURE_BYTES = 64;
const MIN_BLOCK_BYTES = HEADER_BYTES + ENC_BYTES + TAG_BYTES + LENGTH_BYTES + SIGNATURE_BYTES;

const utf8 = new TextEncoder();

function buf(bytes: Uint8Array): ArrayBuffer {
  return bytes.slice().buffer as ArrayBuffer;
}

function blockError(problem: string, advice: string): MessageError {
  return new MessageError("EBLOCK", `Cannot read the mailpeer block: ${problem}; ${advice}`);
}

/**
 * The kind of a coded block, read from its header.
 *
 * `options.maxBytes` (default `MAX_BLOCK_BYTES`) raises the size limit for kinds that may be
 * larger, such as sync snapshots.
 *
 * @throws {MessageError} `EBLOCK` when the block is too short, too large, of another protocol
 * version or of an unknown kind.
 */
export function blockKindOf(
  block: Uint8Array,
  options: { maxBytes?: number } = {},
): BlockKindName {
  const maxBytes = options.maxBytes ?? MAX_BLOCK_BYTES;
  if (block.length < MIN_BLOCK_BYTES) {
    throw blockError(
      `it has ${block.length} bytes, fewer than the ${MIN_BLOCK_BYTES} of the smallest block`,
      "the mail was truncated or altered; ignore it",
    );
  }
  if (block.length > maxBytes) {
    throw blockError(
      `it has ${block.length} bytes, more than ${maxBytes}`,
      "ignore this mail",
    );
  }
  // Only a version byte near ours is another mailpeer version; any other byte is damage or
  // forgery, and saying "version" would send the user after the wrong problem.
  if (block[0] !== PROTOCOL_VERSION) {
    throw block[0]! >= 1 && block[0]! <= PROTOCOL_VERSION + 2
      ? blockError(
        `it is of protocol version ${block[0]}, this mailpeer reads version ${PROTOCOL_VERSION}`,
        "run the same mailpeer version on both sides",
      )
      : blockError(
        `its version byte ${block[0]} is no mailpeer version`,
        "the mail was damaged or forged; ignore it",
      );
  }
  const kind = (Object.keys(BlockKind) as BlockKindName[]).find((k) => BlockKind[k] === block[1]);
  if (kind === undefined) {
    throw blockError(
      `its kind byte ${block[1]} is unknown`,
      "a newer mailpeer may have written it (run the same version on both sides), or it was damaged",
    );
  }
  return kind;
}

function signedData(kind: BlockKindName, recipient: Uint8Array, body: Uint8Array): Uint8Array {
  return concatBytes(utf8.encode(`mailpeer v1 ${kind} signature\0`), recipient, body);
}

async function sealBlock(
  kind: BlockKindName,
  body: Uint8Array,
  keys: { signer: Uint8Array; recipient: Uint8Array; maxBytes?: number },
): Promise<Uint8Array> {
  const maxBytes = keys.maxBytes ?? MAX_BLOCK_BYTES;
  const header = new Uint8Array([PROTOCOL_VERSION, BlockKind[kind]]);
  const signature = await sign(keys.signer, signedData(kind, keys.recipient, body));
  const length = new Uint8Array(LENGTH_BYTES);
  new DataView(length.buffer).setUint32(0, body.length);
  let enc: ArrayBuffer;
  let ciphertext: ArrayBuffer;
  try {
    const recipientPublicKey = await suite.kem.deserializePublicKey(buf(keys.recipient));
    const sender = await suite.createSenderContext({
      recipientPublicKey,
      info: buf(utf8.encode(`mailpeer v1 ${kind}`)),
    });
    enc = sender.enc;
    ciphertext = await sender.seal(buf(concatBytes(length, body, signature)), buf(header));
  } catch (err) {
    throw new MessageError(
      "EKEY",
      `Cannot seal ${kind}: the recipient's X25519 key is not usable; check the host card`,
      { cause: err },
    );
  }
  const block = concatBytes(header, new Uint8Array(enc), new Uint8Array(ciphertext));
  if (block.length > maxBytes) {
    throw new MessageError(
      "EPAYLOAD",
      `Cannot seal ${kind}: the block would have ${block.length} bytes, more than ${maxBytes}; send fewer endpoints, host cards or peers`,
    );
  }
  return block;
}

async function openBlock(
  block: Uint8Array,
  kind: BlockKindName,
  recipientPrivateKey: Uint8Array,
  maxBytes: number = MAX_BLOCK_BYTES,
): Promise<{ body: Uint8Array; signature: Uint8Array }> {
  const actual = blockKindOf(block, { maxBytes });
  if (actual !== kind) {
    throw blockError(`it is a ${actual} block, not a ${kind}`, "check the mail's subject key");
  }
  const header = block.subarray(0, HEADER_BYTES);
  const enc = block.subarray(HEADER_BYTES, HEADER_BYTES + ENC_BYTES);
  const ciphertext = block.subarray(HEADER_BYTES + ENC_BYTES);
  let plain: Uint8Array;
  try {
    const recipientKey = await hpkeRecipientKeyPair(recipientPrivateKey);
    const recipient = await suite.createRecipientContext({
      recipientKey,
      enc: buf(enc),
      info: buf(utf8.encode(`mailpeer v1 ${kind}`)),
    });
    plain = new Uint8Array(await recipient.open(buf(ciphertext), buf(header)));
  } catch (err) {
    throw new MessageError(
      "ESEAL",
      `Cannot open ${kind}: the block does not open with this key (it was sealed to another key or altered); check that the right host card and keys are used`,
      { cause: err },
    );
  }
  const length = plain.length >= LENGTH_BYTES ? new DataView(plain.buffer).getUint32(0) : -1;
  if (length < 0 || plain.length !== LENGTH_BYTES + length + SIGNATURE_BYTES) {
    throw new MessageError(
      "EPAYLOAD",
      `Cannot open ${kind}: the sealed content is not framed as a mailpeer payload; the sender runs a faulty mailpeer, ignore this mail`,
    );
  }
  return {
    body: plain.slice(LENGTH_BYTES, LENGTH_BYTES + length),
    signature: plain.slice(LENGTH_BYTES + length),
  };
}

/**
 * The bytes a block's signature covers: `"mailpeer v1 <kind> signature\0"`, the recipient's
 * X25519 public key, then the body. For kinds built on {@link sealSignedBlock}.
 */
export function signedBlockData(
  kind: BlockKindName,
  recipient: Uint8Array,
  body: Uint8Array,
): Uint8Array {
  return signedData(kind, recipient, body);
}

/**
 * Signs `body` with `signer` (an Ed25519 private key) and seals it to `recipient` (an X25519
 * public key) with the block layout above. The building block of every sealed kind; the sync
 * kind uses it with a larger `maxBytes` (default `MAX_BLOCK_BYTES`).
 *
 * @throws {MessageError} `EKEY` (unusable recipient key) or `EPAYLOAD` (over `maxBytes`).
 */
export function sealSignedBlock(
  kind: BlockKindName,
  body: Uint8Array,
  options: { signer: Uint8Array; recipient: Uint8Array; maxBytes?: number },
): Promise<Uint8Array> {
  return sealBlock(kind, body, options);
}

/**
 * Opens a block of `kind` with the recipient's X25519 private key and returns the body and the
 * signature, unverified: the caller checks the signature over {@link signedBlockData} against
 * the key it expects.
 *
 * @throws {MessageError} `EBLOCK` (header, size over `maxBytes`, other kind), `ESEAL` (wrong key
 * or altered bytes) or `EPAYLOAD` (bad framing).
 */
export function openSignedBlock(
  block: Uint8Array,
  options: { kind: BlockKindName; recipientPrivateKey: Uint8Array; maxBytes?: number },
): Promise<{ body: Uint8Array; signature: Uint8Array }> {
  return openBlock(block, options.kind, options.recipientPrivateKey, options.maxBytes);
}

/**
 * Signs a request with the terminal's identity key and seals it to the host.
 *
 * @example
 * ```ts
 * const block = await sealRequest(payload, { identity, hostCard: parseHostCard(card) });
 * ```
 * @throws {TypeError} when `payload.identityKey` is not the identity's public key.
 * @throws {MessageError} `EPAYLOAD` when the payload breaks a limit.
 */
export async function sealRequest(
  payload: RequestPayload,
  options: { identity: IdentityKeys; hostCard: HostCard },
): Promise<Uint8Array> {
  if (!bytesEqual(payload.identityKey, options.identity.ed25519.publicKey)) {
    throw new TypeError("Cannot seal request: payload.identityKey is not the identity's key");
  }
  return await sealBlock("request", encodeRequest(payload), {
    signer: options.identity.ed25519.privateKey,
    recipient: options.hostCard.x25519,
  });
}

/**
 * Opens a request block with the host's keys and checks the terminal's signature.
 *
 * @throws {MessageError} `EBLOCK` (header), `ESEAL` (wrong key or altered bytes), `EPAYLOAD`
 * (bad content) or `ESIGNATURE` (not signed by the identity key it carries).
 */
export async function openRequest(block: Uint8Array, hostKeys: HostKeys): Promise<RequestPayload> {
  const { body, signature } = await openBlock(block, "request", hostKeys.x25519.privateKey);
  return await verifyRequest(body, signature, hostKeys.x25519.publicKey);
}

/**
 * Decodes an opened request body and checks the terminal's signature over it (as sealed to
 * `recipient`, the host's X25519 public key): the one check behind {@link openRequest} and a
 * synced row's proof (host/pool/request_proof.ts).
 *
 * @throws {MessageError} `EPAYLOAD` for a bad body, `ESIGNATURE` when the identity key it
 * carries did not sign it.
 */
export async function verifyRequest(
  body: Uint8Array,
  signature: Uint8Array,
  recipient: Uint8Array,
): Promise<RequestPayload> {
  const payload = decodeRequest(body);
  const data = signedData("request", recipient, body);
  if (!await verify(payload.identityKey, data, signature)) {
    throw new MessageError(
      "ESIGNATURE",
      `Cannot accept request: it is not signed by the identity key it carries (user id "${payload.userId}"); the mail was forged, ignore it`,
    );
  }
  return payload;
}

/**
 * Signs a reply with the host's Ed25519 key and seals it to the request's reply key.
 *
 * @throws {TypeError} when `payload.hostId` is not the host's Ed25519 public key or the reply
 * key is not 32 bytes.
 */
export async function sealReply(
  payload: ReplyPayload,
  options: { hostKeys: HostKeys; replyKey: Uint8Array },
): Promise<Uint8Array> {
  if (!bytesEqual(payload.hostId, options.hostKeys.ed25519.publicKey)) {
    throw new TypeError("Cannot seal reply: payload.hostId is not the host's Ed25519 key");
  }
  if (options.replyKey.length !== 32) {
    throw new TypeError("Cannot seal reply: the reply key must have 32 bytes");
  }
  return await sealBlock("reply", encodeReply(payload), {
    signer: options.hostKeys.ed25519.privateKey,
    recipient: options.replyKey,
  });
}

/**
 * Opens a reply block with the request's reply private key and checks that the host of
 * `hostCard` signed it (and, when `sessionId` is given, that it answers that request).
 *
 * @throws {MessageError} `EBLOCK`, `ESEAL`, `EPAYLOAD`, `ESIGNATURE` (not signed by the host of
 * the card) or `ESESSION` (answers another request).
 */
export async function openReply(
  block: Uint8Array,
  options: { replyPrivateKey: Uint8Array; hostCard: HostCard; sessionId?: Uint8Array },
): Promise<ReplyPayload> {
  const { body, signature } = await openBlock(block, "reply", options.replyPrivateKey);
  const payload = decodeReply(body);
  const replyKey = await publicKeyOf("X25519", options.replyPrivateKey);
  const data = signedData("reply", replyKey, body);
  const host = options.hostCard;
  if (!bytesEqual(payload.hostId, host.ed25519) || !await verify(host.ed25519, data, signature)) {
    throw new MessageError(
      "ESIGNATURE",
      `Cannot accept reply: it is not signed by the host ${host.email}; it was forged or comes from another host, ignore it`,
    );
  }
  if (options.sessionId !== undefined && !bytesEqual(payload.sessionId, options.sessionId)) {
    throw new MessageError(
      "ESESSION",
      `Cannot accept reply: it answers another request than the one waiting (session ids differ); it is a late reply to an earlier request, ignore it`,
    );
  }
  return payload;
}

/**
 * Signs a notice with the terminal's identity key and seals it to the host.
 *
 * @throws {TypeError} when `payload.identityKey` is not the identity's public key.
 */
export async function sealNotice(
  payload: NoticePayload,
  options: { identity: IdentityKeys; hostCard: HostCard },
): Promise<Uint8Array> {
  if (!bytesEqual(payload.identityKey, options.identity.ed25519.publicKey)) {
    throw new TypeError("Cannot seal notice: payload.identityKey is not the identity's key");
  }
  return await sealBlock("notice", encodeNotice(payload), {
    signer: options.identity.ed25519.privateKey,
    recipient: options.hostCard.x25519,
  });
}

/**
 * Opens a notice block with the host's keys and checks the reporter's signature.
 *
 * @throws {MessageError} `EBLOCK`, `ESEAL`, `EPAYLOAD` or `ESIGNATURE`.
 */
export async function openNotice(block: Uint8Array, hostKeys: HostKeys): Promise<NoticePayload> {
  const { body, signature } = await openBlock(block, "notice", hostKeys.x25519.privateKey);
  const payload = decodeNotice(body);
  const data = signedData("notice", hostKeys.x25519.publicKey, body);
  if (!await verify(payload.identityKey, data, signature)) {
    throw new MessageError(
      "ESIGNATURE",
      `Cannot accept notice: it is not signed by the identity key it carries (user id "${payload.userId}"); the mail was forged, ignore it`,
    );
  }
  return payload;
}
