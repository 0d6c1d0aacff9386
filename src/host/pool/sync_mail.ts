/**
 * One sync mail (docs/design.md "Host pool"): {@link syncMailOf} seals a payload into the mail to
 * send; {@link openSyncMail} parses a received one, opens its sync block and checks network and
 * date. Whatever is not to be acted on is a {@link SyncRejected} that says whether the mail goes to
 * quarantine or is deleted.
 *
 * @module
 */
import { MailError, MessageError } from "../../errors.ts";
import { MAX_CLOCK_SKEW_MS } from "../../limits.ts";
import { parseMail } from "../../mail/rfc5322/parse.ts";
import type { OutgoingMail } from "../../mail/types.ts";
import { blockKindOf } from "../../message/block.ts";
import type { HostCard } from "../../message/host_card.ts";
import type { HostKeys } from "../../message/key_file.ts";
import { bodyFor, subjectFor } from "../../message/mail_text.ts";
import { MAX_SYNC_BLOCK_BYTES, type SyncPayload } from "./sync_payload.ts";
import { dearmorSync, openSync, sealSync } from "./sync_seal.ts";
import type { Clock } from "../../runtime.ts";

/** A sync mail that is not acted on, why, and what becomes of it. */
export class SyncRejected extends Error {
  constructor(
    readonly code: string,
    reason: string,
    readonly disposal: "quarantine" | "delete",
  ) {
    super(reason);
  }
}

/** Options of {@link openSyncMail}. */
export interface OpenSyncMailOptions {
  /** This host's keys: the block is sealed to them. */
  keys: HostKeys;
  /** The network the payload must be for. */
  network: string;
  /** Read once the block is open, for the date checks. */
  clock: Clock;
  /** A payload older than this (ms) is stale. */
  expiryMs: number;
  /** Largest raw mail parsed. */
  maxMailBytes: number;
}

/**
 * Parses, opens and checks a sync mail (signature, network, date). Who sent it is not checked
 * here: the caller decides what a payload from that host may do.
 *
 * @throws {SyncRejected} `quarantine` for a broken, forged, misdirected or future-dated mail,
 * `delete` for one older than the expiry.
 */
export async function openSyncMail(
  raw: Uint8Array,
  options: OpenSyncMailOptions,
): Promise<{ payload: SyncPayload; messageId?: string }> {
  const { keys, network, clock, expiryMs, maxMailBytes } = options;
  let payload: SyncPayload;
  let messageId: string | undefined;
  try {
    const mail = await parseMail(raw, { maxBytes: maxMailBytes });
    messageId = mail.messageId;
    const block = dearmorSync(mail.text);
    const kind = blockKindOf(block, { maxBytes: MAX_SYNC_BLOCK_BYTES });
    if (kind !== "sync") {
      throw new SyncRejected(
        "EBLOCK",
        `a ${kind} block arrived under the sync subject`,
        "quarantine",
      );
    }
    payload = await openSync(block, { hostKeys: keys });
  } catch (err) {
    if (err instanceof MailError || err instanceof MessageError) {
      throw new SyncRejected(err.code, err.message, "quarantine");
    }
    throw err;
  }
  if (payload.network !== network) {
    throw new SyncRejected(
      "EPAYLOAD",
      `the sync mail is for network ${payload.network}, not ${network}`,
      "quarantine",
    );
  }
  const now = clock.now();
  if (payload.createdAt < now - expiryMs) {
    throw new SyncRejected("ESTALE", `${payload.kind} is older than the expiry`, "delete");
  }
  if (payload.createdAt > now + MAX_CLOCK_SKEW_MS) {
    throw new SyncRejected("ESTALE", `${payload.kind} is dated in the future`, "quarantine");
  }
  return messageId === undefined ? { payload } : { payload, messageId };
}

/** Options of {@link syncMailOf}. */
export interface SyncMailOptions {
  /** This host's keys: they sign the payload, and the mail is from their address. */
  keys: HostKeys;
  network: string;
  /** The receiving host: the payload is sealed to it and the mail goes to its address. */
  to: HostCard;
  /** The mail's date. */
  date: Date;
  /** Message-ID of the table request this mail answers. */
  inReplyTo?: string;
}

/**
 * Seals `payload` to the receiving host and wraps it in a sync mail.
 *
 * @throws {MessageError} as {@link sealSync} does.
 */
export async function syncMailOf(
  payload: SyncPayload,
  options: SyncMailOptions,
): Promise<OutgoingMail> {
  const { keys, network, to, date, inReplyTo } = options;
  const block = await sealSync(payload, { hostKeys: keys, to });
  return {
    from: keys.email,
    to: [to.email],
    subject: subjectFor(network, "sync"),
    text: bodyFor(network, "sync", block),
    date,
    ...(inReplyTo ? { inReplyTo } : {}),
  };
}
