/**
 * The peer handshake (docs/design.md "Peer connection"), transport-independent: it only sends and
 * receives frames on a {@link FrameChannel}.
 *
 * 1. A → B CONNECT {destination, source, user id, identity key, nonce A, ephemeral key A}
 * 2. B → A CONNECT_ACK {user id, identity key, nonce B, ephemeral key B, signature B}
 * 3. A → B ACK {signature A} → established.
 *
 * The transcript hash is SHA-256("mailpeer v1 handshake" ‖ CONNECT body ‖ CONNECT_ACK body
 * without its signature): it covers both addresses, both nonces, both identity keys and both
 * ephemeral keys. B signs "mailpeer v1 responder" ‖ hash, A signs "mailpeer v1 initiator" ‖
 * hash (the role labels stop a signature being reflected to its maker). The session keys come
 * from the X25519 shared secret salted with the hash ({@link deriveSessionKeys}).
 *
 * A responder that refuses a peer (the `accept` hook) answers CONNECT with DISCONNECT
 * "refused"; the hook sees the claimed identity, which the ACK signature then proves.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { PeerError } from "../errors.ts";
import { toBase64 } from "../message/base64.ts";
import { bytesEqual, concatBytes } from "../message/bytes.ts";
import { generateX25519, sign, verify, x25519 } from "../message/keys.ts";
import type { Endpoint } from "../message/types.ts";
import { type RandomSource, systemRandom } from "../runtime.ts";
import {
  type ConnectAckFields,
  type ConnectBody,
  decodeAck,
  decodeConnect,
  decodeConnectAck,
  decodeDisconnect,
  encodeAck,
  encodeConnect,
  encodeConnectAck,
  encodeConnectAckFields,
  encodeDisconnect,
  NONCE_BYTES,
} from "./frame.ts";
import { type Frame, FrameType } from "./frame.ts";
import { deriveSessionKeys, SessionCipher } from "./session_crypto.ts";
import type { FrameChannel, PeerIdentity } from "./types.ts";

const encoder = new TextEncoder();
const TRANSCRIPT_DOMAIN = encoder.encode("mailpeer v1 handshake");
const RESPONDER_LABEL = encoder.encode("mailpeer v1 responder");
const INITIATOR_LABEL = encoder.encode("mailpeer v1 initiator");
/** Reason a responder puts in the DISCONNECT that refuses a peer. */
export const REFUSED_REASON = "refused";

/** What a successful handshake yields on either side. */
export interface HandshakeResult {
  /** The other side's user id and the identity key it proved. */
  peer: { userId: string; identityKey: Uint8Array };
  /** The CONNECT as sent (initiator) or received (responder): both endpoints. */
  connect: ConnectBody;
  /** SHA-256 transcript hash, the same on both sides. */
  transcriptHash: Uint8Array;
  /** Seals and opens DATA with this session's keys. */
  cipher: SessionCipher;
}

/** Options of {@link initiateHandshake}. */
export interface InitiateOptions {
  identity: PeerIdentity;
  /** This side's endpoint, as the peer should see it. */
  local: Endpoint;
  /** The peer's endpoint as dialled. */
  remote: Endpoint;
  /** The identity key the host listed; any other → `EIDENTITY`. */
  expectedIdentityKey?: Uint8Array;
  /** Default: `systemRandom`. */
  random?: RandomSource;
  /** Datagram transports open DATA unordered; default true. */
  ordered?: boolean;
  /** Aborts the wait for the peer; the rejection is the signal's reason. */
  signal?: AbortSignal;
  /**
   * Asked once the CONNECT_ACK proved the peer, before the ACK that completes the handshake on
   * the peer's side: false ends this handshake with `EPEER` and no ACK, so the peer never
   * completes it (a punch racing several pairs completes exactly one, `udp_punch.ts`).
   */
  claim?: () => boolean;
}

/** Options of {@link respondHandshake}. */
export interface RespondOptions {
  identity: PeerIdentity;
  /** False refuses the peer (DISCONNECT "refused", then `EPEER`). */
  accept?: (peer: { userId: string; identityKey: Uint8Array }) => boolean;
  /** Default: `systemRandom`. */
  random?: RandomSource;
  /** Datagram transports open DATA unordered; default true. */
  ordered?: boolean;
  signal?: AbortSignal;
}

/**
 * SHA-256 of the domain string, the CONNECT body and the unsigned CONNECT_ACK fields
 * (node:crypto, synchronous: WebCrypto's digest is a promise resolved from another thread).
 */
export function transcriptHash(connectBody: Uint8Array, ackFields: Uint8Array): Uint8Array {
  const hash = createHash("sha256");
  for (const part of [TRANSCRIPT_DOMAIN, connectBody, ackFields]) hash.update(part);
  return new Uint8Array(hash.digest());
}

function nonce(random: RandomSource): Uint8Array {
  const n = random(NONCE_BYTES);
  if (n.length !== NONCE_BYTES) throw new RangeError(`Random source gave ${n.length} bytes`);
  return n;
}

async function next(
  channel: FrameChannel,
  step: string,
  signal: AbortSignal | undefined,
): Promise<Frame> {
  const frame = await channel.receive({ signal });
  if (frame === null) {
    throw new PeerError(
      "EPEER",
      `Cannot complete the handshake: the peer closed the connection before ${step}; ` +
        "try another peer",
    );
  }
  return frame;
}

function unexpected(frame: Frame, step: string): PeerError {
  return new PeerError(
    "EFRAME",
    `Cannot complete the handshake: frame type ${frame.type} where ${step} was expected; ` +
      "the peer is not a compatible mailpeer peer",
  );
}

async function sessionKeys(
  privateKey: Uint8Array,
  publicKey: Uint8Array,
  hash: Uint8Array,
  options: { role: "initiator" | "responder"; ordered: boolean | undefined },
): Promise<SessionCipher> {
  let shared: Uint8Array;
  try {
    shared = await x25519(privateKey, publicKey);
  } catch (err) {
    throw new PeerError(
      "EFRAME",
      "Cannot agree on session keys: the peer's ephemeral key is invalid; try another peer",
      { cause: err },
    );
  }
  const keys = deriveSessionKeys(shared, hash, { role: options.role });
  return new SessionCipher(keys, { ordered: options.ordered });
}

/** Runs the initiator's side (A): CONNECT, check CONNECT_ACK, ACK. */
export async function initiateHandshake(
  channel: FrameChannel,
  options: InitiateOptions,
): Promise<HandshakeResult> {
  const { identity, signal } = options;
  const ephemeral = await generateX25519();
  const connect: ConnectBody = {
    destination: options.remote,
    source: options.local,
    userId: identity.userId,
    identityKey: identity.publicKey,
    nonce: nonce(options.random ?? systemRandom),
    ephemeralKey: ephemeral.publicKey,
  };
  const connectBytes = encodeConnect(connect);
  await channel.send({ type: FrameType.CONNECT, body: connectBytes });

  const reply = await next(channel, "CONNECT_ACK", signal);
  if (reply.type === FrameType.DISCONNECT) {
    const reason = decodeDisconnect(reply.body) || REFUSED_REASON;
    throw new PeerError(
      "EPEER",
      `Cannot connect to peer at ${options.remote.address}:${options.remote.port}: ` +
        `${reason}; try another peer`,
      { cause: reason },
    );
  }
  if (reply.type !== FrameType.CONNECT_ACK) throw unexpected(reply, "CONNECT_ACK");
  const ack = decodeConnectAck(reply.body);
  const expected = options.expectedIdentityKey;
  if (expected && !bytesEqual(expected, ack.identityKey)) {
    throw new PeerError(
      "EIDENTITY",
      `Cannot accept peer ${ack.userId}: it has identity key ${toBase64(ack.identityKey)}, ` +
        `not the listed ${toBase64(expected)}; report it and try another peer`,
    );
  }
  const hash = transcriptHash(connectBytes, encodeConnectAckFields(ack));
  if (!await verify(ack.identityKey, concatBytes(RESPONDER_LABEL, hash), ack.signature)) {
    throw new PeerError(
      "EIDENTITY",
      `Cannot accept peer ${ack.userId}: its handshake signature does not verify; ` +
        "report it and try another peer",
    );
  }
  const signature = await sign(identity.privateKey, concatBytes(INITIATOR_LABEL, hash));
  const cipher = await sessionKeys(ephemeral.privateKey, ack.ephemeralKey, hash, {
    role: "initiator",
    ordered: options.ordered,
  });
  if (options.claim && !options.claim()) {
    throw new PeerError(
      "EPEER",
      `Cannot complete the handshake with peer at ${options.remote.address}:` +
        `${options.remote.port}: another pair to this peer completed first; nothing to do`,
    );
  }
  await channel.send({ type: FrameType.ACK, body: encodeAck(signature) });
  return {
    peer: { userId: ack.userId, identityKey: ack.identityKey },
    connect,
    transcriptHash: hash,
    cipher,
  };
}

/** Runs the responder's side (B): wait for CONNECT, CONNECT_ACK, check ACK. */
export async function respondHandshake(
  channel: FrameChannel,
  options: RespondOptions,
): Promise<HandshakeResult> {
  const { identity, signal } = options;
  const first = await next(channel, "CONNECT", signal);
  if (first.type !== FrameType.CONNECT) throw unexpected(first, "CONNECT");
  const connect = decodeConnect(first.body);
  const claimed = { userId: connect.userId, identityKey: connect.identityKey };
  let accepted = false;
  try {
    accepted = options.accept ? options.accept(claimed) === true : true;
  } catch {
    accepted = false;
  }
  if (!accepted) {
    await channel.send({ type: FrameType.DISCONNECT, body: encodeDisconnect(REFUSED_REASON) })
      .catch(() => {});
    throw new PeerError(
      "EPEER",
      `Cannot accept peer ${connect.userId}: refused by the accept hook; ` +
        "list its key (user@fingerprint) in terminal.allow to let it in",
      { cause: REFUSED_REASON },
    );
  }

  const ephemeral = await generateX25519();
  const fields: ConnectAckFields = {
    userId: identity.userId,
    identityKey: identity.publicKey,
    nonce: nonce(options.random ?? systemRandom),
    ephemeralKey: ephemeral.publicKey,
  };
  const hash = transcriptHash(first.body, encodeConnectAckFields(fields));
  const signature = await sign(identity.privateKey, concatBytes(RESPONDER_LABEL, hash));
  await channel.send({
    type: FrameType.CONNECT_ACK,
    body: encodeConnectAck({ ...fields, signature }),
  });

  const last = await next(channel, "ACK", signal);
  if (last.type !== FrameType.ACK) throw unexpected(last, "ACK");
  if (
    !await verify(connect.identityKey, concatBytes(INITIATOR_LABEL, hash), decodeAck(last.body))
  ) {
    throw new PeerError(
      "EIDENTITY",
      `Cannot accept peer ${connect.userId}: its handshake signature does not verify; ` +
        "the peer does not hold the identity key it claims",
    );
  }
  const cipher = await sessionKeys(ephemeral.privateKey, connect.ephemeralKey, hash, {
    role: "responder",
    ordered: options.ordered,
  });
  return { peer: claimed, connect, transcriptHash: hash, cipher };
}
