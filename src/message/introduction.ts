/**
 * The introduction (docs/protocol.md "Introductions"): the host tells a listed terminal B that
 * requester A will try to reach it, with A's user id, identity key and candidates and a punch
 * window. Sealed to the introduction key B announced in its request (so only B opens
 * it), signed by the host (so B acts only on what its host sent). Strict like every payload
 * (wire_reader.ts); an introduction never carries an e-mail address.
 *
 * ```json
 * { "network": "demo", "hostId": "…", "sessionId": "…(B's request)", "createdAt": 1,
 *   "peer": { "userId": "alice", "identityKey": "…", "candidates": [ … ], "relayCandidates": [ … ] },
 *   "peerSessionId": "…(A's request)", "punchStart": 2, "punchEnd": 3 }
 * ```
 *
 * @module
 */
import { MessageError } from "../errors.ts";
import { MAX_PUNCH_WINDOW_MS } from "../protocol.ts";
import { toBase64Url } from "./base64.ts";
import { bytesEqual } from "./bytes.ts";
import { openSignedBlock, sealSignedBlock, signedBlockData } from "./block.ts";
import { candidatesToWire } from "./codec.ts";
import { networkIdProblem, userIdProblem } from "./field_rules.ts";
import type { HostCard } from "./host_card.ts";
import type { HostKeys } from "./key_file.ts";
import { publicKeyOf, verify } from "./keys.ts";
import type { IntroductionPayload } from "./types.ts";
import {
  asObj,
  type Ctx,
  encodeCtx,
  fail,
  get,
  isObj,
  type Obj,
  parseJson,
  readBytes,
  readCandidateList,
  readCount,
  readCtx,
  readText,
} from "./wire_reader.ts";

const utf8 = new TextEncoder();

function fromWire(ctx: Ctx, obj: Obj): IntroductionPayload {
  const network = readText(ctx, obj, "network", "", networkIdProblem);
  const hostId = readBytes(ctx, obj, "hostId", "", 32);
  const sessionId = readBytes(ctx, obj, "sessionId", "", 16);
  const createdAt = readCount(ctx, obj, "createdAt", "");
  const peerObj = asObj(ctx, get(ctx, obj, "peer", ""), "peer");
  const userId = readText(ctx, peerObj, "userId", "peer.", userIdProblem);
  const identityKey = readBytes(ctx, peerObj, "identityKey", "peer.", 32);
  const candidates = readCandidateList(ctx, peerObj, "peer.");
  const peerSessionId = readBytes(ctx, obj, "peerSessionId", "", 16);
  const punchStart = readCount(ctx, obj, "punchStart", "");
  const punchEnd = readCount(ctx, obj, "punchEnd", "");
  if (punchEnd <= punchStart || punchEnd - punchStart > MAX_PUNCH_WINDOW_MS) {
    fail(ctx, `the punch window is not 1 ms to ${MAX_PUNCH_WINDOW_MS} ms long`);
  }
  return {
    network,
    hostId,
    sessionId,
    createdAt,
    peer: { userId, identityKey, candidates },
    peerSessionId,
    punchStart,
    punchEnd,
  };
}

/**
 * Encodes an introduction to deterministic UTF-8 JSON bytes.
 *
 * @throws {MessageError} `EPAYLOAD` when a field breaks the rules decoding enforces.
 */
export function encodeIntroduction(p: IntroductionPayload): Uint8Array {
  const b64 = (b: unknown) => (b instanceof Uint8Array ? toBase64Url(b) : b);
  const peer = isObj(p.peer)
    ? {
      userId: p.peer.userId,
      identityKey: b64(p.peer.identityKey),
      ...candidatesToWire(p.peer.candidates),
    }
    : p.peer;
  const wire: Obj = {
    network: p.network,
    hostId: b64(p.hostId),
    sessionId: b64(p.sessionId),
    createdAt: p.createdAt,
    peer,
    peerSessionId: b64(p.peerSessionId),
    punchStart: p.punchStart,
    punchEnd: p.punchEnd,
  };
  fromWire(encodeCtx("introduction"), wire);
  return utf8.encode(JSON.stringify(wire));
}

/**
 * Decodes and checks an introduction.
 *
 * @throws {MessageError} `EPAYLOAD` naming the first field that is wrong.
 */
export function decodeIntroduction(bytes: Uint8Array): IntroductionPayload {
  const ctx = readCtx("introduction");
  return fromWire(ctx, parseJson(ctx, bytes));
}

/**
 * Signs an introduction with the host's Ed25519 key and seals it to the listed terminal's
 * introduction key.
 *
 * @throws {TypeError} when `payload.hostId` is not the host's key or the introduction key is not
 * 32 bytes.
 */
export async function sealIntroduction(
  payload: IntroductionPayload,
  options: { hostKeys: HostKeys; introductionKey: Uint8Array },
): Promise<Uint8Array> {
  if (!bytesEqual(payload.hostId, options.hostKeys.ed25519.publicKey)) {
    throw new TypeError("Cannot seal introduction: payload.hostId is not the host's Ed25519 key");
  }
  if (options.introductionKey.length !== 32) {
    throw new TypeError("Cannot seal introduction: the introduction key must have 32 bytes");
  }
  return await sealSignedBlock("introduction", encodeIntroduction(payload), {
    signer: options.hostKeys.ed25519.privateKey,
    recipient: options.introductionKey,
  });
}

/** What an introduction must match to be acted on. */
export interface IntroductionCheck {
  /** The private half of the introduction key the terminal announced. */
  introductionPrivateKey: Uint8Array;
  /** The hosts the terminal asked: one of them must have signed it. */
  hosts: readonly HostCard[];
  network: string;
  /** The session id of the terminal's current request. */
  sessionId: Uint8Array;
  /** Now, ms since the epoch: an introduction whose punch window has ended is stale. */
  now: number;
}

/**
 * Opens an introduction and checks everything before anything is acted on: sealed to our
 * introduction key, signed by one of our hosts, for our network and current request, and its
 * punch window not over.
 *
 * @throws {MessageError} `EBLOCK`, `ESEAL` (not for our key), `EPAYLOAD` (bad content, other
 * network), `ESIGNATURE` (not signed by one of our hosts), `ESESSION` (for another request of
 * ours) or `ESTALE` (the punch window is over).
 */
export async function openIntroduction(
  block: Uint8Array,
  check: IntroductionCheck,
): Promise<{ introduction: IntroductionPayload; host: HostCard }> {
  const { body, signature } = await openSignedBlock(block, {
    kind: "introduction",
    recipientPrivateKey: check.introductionPrivateKey,
  });
  const introduction = decodeIntroduction(body);
  const recipient = await publicKeyOf("X25519", check.introductionPrivateKey);
  const data = signedBlockData("introduction", recipient, body);
  const host = check.hosts.find((h) => bytesEqual(h.ed25519, introduction.hostId));
  if (host === undefined || !await verify(host.ed25519, data, signature)) {
    throw new MessageError(
      "ESIGNATURE",
      "Cannot accept introduction: it is not signed by a host this terminal asked; it was forged, ignore it",
    );
  }
  if (introduction.network !== check.network) {
    throw new MessageError(
      "EPAYLOAD",
      `Cannot accept introduction: it is for network ${introduction.network}, not ${check.network}; ignore it`,
    );
  }
  if (!bytesEqual(introduction.sessionId, check.sessionId)) {
    throw new MessageError(
      "ESESSION",
      "Cannot accept introduction: it names another request than the one on standby; it is late or replayed, ignore it",
    );
  }
  if (introduction.punchEnd <= check.now) {
    throw new MessageError(
      "ESTALE",
      `Cannot accept introduction: its punch window ended at ${
        new Date(introduction.punchEnd).toISOString()
      }; the peer has stopped trying, ignore it`,
    );
  }
  return { introduction, host };
}
