/**
 * The ids of IMAP {@link MailRef}s: `<uidvalidity>:<uid>` for mail in the source's mailbox,
 * `<folder>:<uidvalidity>:<uid>` for mail claimed into a processing folder (the folder
 * percent-encoded).
 *
 * @module
 */
import type { MailRef } from "../types.ts";

/** A parsed {@link MailRef.id}. */
export interface RefId {
  /** The percent-encoded folder of a claimed mail; undefined for the source's mailbox. */
  folder?: string;
  validity: bigint;
  uid: number;
}

/** Parses `<uidvalidity>:<uid>` or `<folder>:<uidvalidity>:<uid>`. */
export function parseRefId(id: string): RefId | undefined {
  const m = /^(?:([^:]+):)?(\d+):(\d+)$/.exec(id);
  if (m === null) return undefined;
  const uid = Number(m[3]);
  if (!Number.isSafeInteger(uid) || uid < 1) return undefined;
  const ref: RefId = { validity: BigInt(m[2]!), uid };
  if (m[1] !== undefined) ref.folder = m[1];
  return ref;
}

/** The id of a ref into the source's own mailbox; a TypeError for any other id. */
export function mailboxRefId(ref: MailRef): RefId {
  const id = parseRefId(ref.id);
  if (id === undefined || id.folder !== undefined) {
    throw new TypeError(`Not an IMAP mail id: ${JSON.stringify(ref.id)}`);
  }
  return id;
}

/**
 * For a ref claimed into `processing`: the same ref as the processing folder's own source
 * knows it. Undefined for a ref into the mailbox; a TypeError for one claimed elsewhere.
 */
export function unclaimedRef(ref: MailRef, processing: string): MailRef | undefined {
  const id = parseRefId(ref.id);
  if (id?.folder === undefined) return undefined;
  if (id.folder !== encodeURIComponent(processing)) {
    throw new TypeError(
      `Cannot use mail ${ref.id}: it was claimed into another folder than ` +
        `${processing}; use the source that claimed it`,
    );
  }
  return { ...ref, id: `${id.validity}:${id.uid}` };
}

/** The ref of `ref`'s mail after a claim moved it to `uid` of `processing`. */
export function claimedRef(
  ref: MailRef,
  processing: string,
  moved: { validity: bigint; uid: number },
): MailRef {
  const claimed: MailRef = {
    id: `${encodeURIComponent(processing)}:${moved.validity}:${moved.uid}`,
    subject: ref.subject,
  };
  if (ref.size !== undefined) claimed.size = ref.size;
  return claimed;
}
