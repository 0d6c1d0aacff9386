/**
 * What the host checks before a request or notice reaches the control table (docs/design.md "Host
 * processing"): the mail parses, carries a block this host can open, is for this network, is
 * neither stale nor from the future, offers addresses the host hands out, and (optionally) comes
 * from a sender the host's own mail server verified. Each failure is a {@link Rejected} naming the
 * reason and whether the mail is quarantined or just deleted.
 *
 * @module
 */
import { MailError, MessageError } from "../errors.ts";
import { MAX_CLOCK_SKEW_MS } from "../limits.ts";
import { MAX_HOST_CARDS } from "../protocol.ts";
import { headerValues } from "../mail/rfc5322/header_values.ts";
import { parseMail } from "../mail/rfc5322/parse.ts";
import type { ParsedMail } from "../mail/types.ts";
import type { MailRef } from "../mail/types.ts";
import { dearmorAll } from "../message/armor.ts";
import { fromBase64Url, toBase64Url } from "../message/base64.ts";
import { blockKindOf, openNotice } from "../message/block.ts";
import { candidatesOf } from "../message/candidate.ts";
import { emailProblem } from "../message/host_card.ts";
import type { HostKeys } from "../message/key_file.ts";
import { openRequestWithProof } from "./pool/request_proof.ts";
import type { NoticePayload, PeerEntry, RequestPayload, RequestProof } from "../message/types.ts";
import { endpointProblem } from "./address_policy.ts";
import {
  type Admission,
  admit,
  type Candidate,
  nextHistory,
  type RateLimits,
} from "./admission.ts";
import { AdmissionIndex } from "./admission_index.ts";
import { recordListed } from "./notice_admission.ts";
import {
  cloneRow,
  expireRows,
  selectPeers,
  type TablePolicy,
  transportsOf,
  upsertRowChanges,
} from "./table.ts";
import { senderVerified } from "./auth_results.ts";
import type { PeerRow } from "./types.ts";

/** A mail that must not be answered, and why. */
export class Rejected extends Error {
  constructor(
    readonly code: string,
    reason: string,
    readonly disposal: "quarantine" | "delete",
    readonly userId?: string,
  ) {
    super(reason);
  }
}

/** What the checks need to know about the host. */
export interface CheckContext {
  keys: HostKeys;
  network: string;
  maxMailBytes: number;
  maxBlockBytes: number;
  expiryMs: number;
  allowPrivateAddresses: boolean;
  requireVerifiedSender?: { authservId: string };
}

/** A request that passed every check and waits for the table. */
export interface CheckedRequest {
  ref: MailRef;
  mail: ParsedMail;
  request: RequestPayload;
  /** The requester's user id. */
  who: string;
  /** Session id, base64url. */
  sessionId: string;
  /**
   * The Date header, or the signed creation time when there is none. It judges staleness only:
   * the row is dated by the signed creation time.
   */
  requestedAt: number;
  /** When the checks ran. */
  now: number;
  /** The terminal's signed request, kept with the row for other hosts to check. */
  proof?: RequestProof;
}

/** A notice that opened, for this network. */
export interface CheckedNotice {
  ref: MailRef;
  notice: NoticePayload;
  at: number;
}

/** Parses a mail and takes its blocks (one per host card it was sent to). */
export async function parseBlocks(
  raw: Uint8Array,
  ctx: Pick<CheckContext, "maxMailBytes" | "maxBlockBytes">,
): Promise<{ mail: ParsedMail; blocks: Uint8Array[] }> {
  try {
    const mail = await parseMail(raw, { maxBytes: ctx.maxMailBytes });
    const blocks = dearmorAll(mail.text, { max: MAX_HOST_CARDS });
    for (const block of blocks) {
      if (block.length > ctx.maxBlockBytes) {
        throw new Rejected(
          "EBLOCK",
          `block of ${block.length} bytes is over the limit of ${ctx.maxBlockBytes}`,
          "quarantine",
        );
      }
    }
    return { mail, blocks };
  } catch (err) {
    if (err instanceof MailError || err instanceof MessageError) {
      throw new Rejected(err.code, err.message, "quarantine");
    }
    throw err;
  }
}

async function opened<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof MessageError) throw new Rejected(err.code, err.message, "quarantine");
    throw err;
  }
}

/**
 * Opens the block meant for this host: the first of `kind` that opens with our keys. When
 * none does, the mail is refused with the reason of the last attempt (wrong key, altered).
 */
async function openOurs<T>(
  blocks: Uint8Array[],
  kind: "request" | "notice",
  open: (block: Uint8Array) => Promise<T>,
): Promise<T> {
  let last: unknown = new Rejected("EBLOCK", `the mail carries no ${kind} block`, "quarantine");
  for (const block of blocks) {
    const found = await opened(() => Promise.resolve(blockKindOf(block)));
    if (found !== kind) {
      last = new Rejected(
        "EBLOCK",
        `a ${found} block arrived under the ${kind} subject`,
        "quarantine",
      );
      continue;
    }
    try {
      return await opened(() => open(block));
    } catch (err) {
      last = err;
    }
  }
  throw last;
}

/** Checks a fetched request mail; throws {@link Rejected} when it must not be answered. */
export async function checkRequest(
  ref: MailRef,
  raw: Uint8Array,
  ctx: CheckContext,
  now: number,
): Promise<CheckedRequest> {
  const { mail, blocks } = await parseBlocks(raw, ctx);
  const { payload: request, proof } = await openOurs(
    blocks,
    "request",
    (b) => openRequestWithProof(b, ctx.keys),
  );
  const who = request.userId;
  const fromProblem = emailProblem(mail.from) ?? replyAddressProblem(mail.from);
  if (fromProblem !== undefined) {
    throw new Rejected(
      "EMAIL",
      `the sender address ${JSON.stringify(mail.from)} cannot be answered: ${fromProblem}`,
      "quarantine",
      who,
    );
  }
  if (request.network !== ctx.network) {
    throw new Rejected(
      "EPAYLOAD",
      `the request is for network ${request.network}, not ${ctx.network}`,
      "quarantine",
      who,
    );
  }
  // The Date header is what the design names; the signed creation time cannot be forged,
  // so a replayed old request with a fresh Date is stale all the same. Requests are ordered by
  // the signed time alone (rowOf), so a forged Date cannot lock the user out.
  const dated = mail.date?.getTime() ?? request.createdAt;
  const oldest = Math.min(dated, request.createdAt);
  if (oldest < now - ctx.expiryMs) {
    throw new Rejected(
      "ESTALE",
      `request of ${who} dated ${new Date(oldest).toISOString()} is older than the expiry`,
      "delete",
      who,
    );
  }
  if (Math.max(dated, request.createdAt) > now + MAX_CLOCK_SKEW_MS) {
    throw new Rejected("ESTALE", `request of ${who} is dated in the future`, "quarantine", who);
  }
  // Every candidate, relayed ones too (the endpoints are the others' projection).
  for (const candidate of candidatesOf(request)) {
    const problem = endpointProblem(candidate, { allowPrivate: ctx.allowPrivateAddresses });
    if (problem !== undefined) {
      throw new Rejected(
        "EPOLICY",
        `request of ${who} offers ${problem}, which this host does not hand out (host.allow_private_addresses)`,
        "quarantine",
        who,
      );
    }
  }
  const verify = ctx.requireVerifiedSender;
  if (verify) {
    const verdict = senderVerified(headerValues(raw, "Authentication-Results"), {
      authservId: verify.authservId,
      from: mail.from,
    });
    if (!verdict.ok) {
      throw new Rejected(
        "EPOLICY",
        `sender ${mail.from} is not verified: ${verdict.reason}`,
        "quarantine",
        who,
      );
    }
  }
  return {
    ref,
    mail,
    request,
    who,
    sessionId: toBase64Url(request.sessionId),
    requestedAt: dated,
    now,
    proof,
  };
}

/** Checks a fetched notice mail; throws {@link Rejected} when it must be set aside. */
export async function checkNotice(
  ref: MailRef,
  raw: Uint8Array,
  ctx: CheckContext,
  at: number,
): Promise<CheckedNotice> {
  const { blocks } = await parseBlocks(raw, ctx);
  const notice = await openOurs(blocks, "notice", (b) => openNotice(b, ctx.keys));
  if (notice.network !== ctx.network) {
    throw new Rejected(
      "EPAYLOAD",
      `the notice is for network ${notice.network}, not ${ctx.network}`,
      "quarantine",
    );
  }
  return { ref, notice, at };
}

/** A Message-ID that can be echoed in In-Reply-To: `<...>` of visible ASCII. */
export const MSG_ID = /^<[!-;=?-~]{1,250}>$/;

/** What makes an address unfit to reply to, beyond its syntax. */
function replyAddressProblem(address: string): string | undefined {
  if (address.includes("\uFFFD")) return "it had bytes that are not text";
  if (address.indexOf("@") !== address.lastIndexOf("@")) return "it has more than one @";
  if (address.includes("/")) return "it contains a path";
  return undefined;
}

/** What the table says to one request: refused and why, or the peers to reply with. */
export type RequestOutcome =
  | { refused: { code: string; reason: string } }
  | { peers: PeerRow[]; size: number; repeat: boolean };

/**
 * The host's table rule for a batch of checked requests, in order: expire old rows, admit each
 * request (replays and rates count the ones before it), upsert the admitted rows, and only
 * then choose each requester's peers, so terminals that asked together find each other and a
 * repeated batch (after a crash) gets the same peers again.
 */
export function applyRequests(
  rows: readonly PeerRow[],
  requests: readonly CheckedRequest[],
  o: { network: string; policy: TablePolicy; now: number; rates: RateLimits },
): { rows: PeerRow[]; outcomes: RequestOutcome[] } {
  let live = expireRows(rows, o.now, o.policy);
  // Admission reads the rows through an index built once for the batch and told of each change
  // of `live` below (docs/decisions.md "Host admission"): a request costs the same whatever the
  // histories' length.
  const index = new AdmissionIndex(live, {
    floor: Math.min(...requests.map((c) => c.now)) - o.rates.windowMs,
  });
  const verdicts = requests.map((c) => {
    const verdict = admit(live, admissionOf(c, o.network), o.rates, index);
    if (!verdict.ok) return verdict;
    const old = index.own(o.network, c.who);
    const row = admittedRow(c, old, verdict.repeat, o.policy.expiryMs);
    if (verdict.repeat && old !== undefined) {
      live = live.map((r) => r === old ? row : r);
      index.replace([old], [row]);
    } else {
      const changed = upsertRowChanges(live, row, o.policy);
      live = changed.rows;
      index.replace(changed.dropped, changed.stored ? [changed.stored] : []);
    }
    return verdict;
  });
  return repliesOf(live, requests, verdicts, o);
}

/**
 * The row an admitted request leaves: a repeat of the current request keeps the requester's row
 * and only adds to its history (the repeat counts against the rates); anything else is the
 * request's own row, carrying over the history, listings, notices, introductions and first-seen
 * time of the row it replaces.
 */
export function admittedRow(
  c: CheckedRequest,
  old: PeerRow | undefined,
  repeat: boolean,
  expiryMs: number,
): PeerRow {
  const entry = { sessionId: c.sessionId, at: c.now, from: c.mail.from };
  const history = nextHistory(old, entry, expiryMs);
  if (repeat && old !== undefined) return { ...cloneRow(old), history };
  return {
    ...rowOf(c),
    history,
    ...(old?.listed ? { listed: old.listed } : {}),
    ...(old?.notices ? { notices: old.notices } : {}),
    ...(old?.introduced ? { introduced: old.introduced } : {}),
    since: old === undefined ? c.now : (old.since ?? 0),
  };
}

/** A checked request as the admission rule (`admit`) sees it. */
export function admissionOf(c: CheckedRequest, network: string): Candidate {
  return {
    network,
    userId: c.who,
    email: c.mail.from,
    sessionId: c.sessionId,
    identityKey: toBase64Url(c.request.identityKey),
    createdAt: c.request.createdAt,
    now: c.now,
  };
}

/**
 * The second half of the table rule, once every request of the batch was admitted or refused
 * and `live` holds the admitted rows: each admitted request's peers, then what each reply lists
 * recorded in the rows (so the requester can flag only those peers).
 */
export function repliesOf(
  rows: PeerRow[],
  requests: readonly CheckedRequest[],
  verdicts: readonly Admission[],
  o: { network: string; policy: TablePolicy },
): { rows: PeerRow[]; outcomes: RequestOutcome[] } {
  let live = rows;
  const outcomes = requests.map((c, i): RequestOutcome => {
    const verdict = verdicts[i]!;
    if (!verdict.ok) return { refused: verdict };
    const peers = selectPeers(live, c.request, {
      now: c.now,
      expiryMs: o.policy.expiryMs,
      max: o.policy.peersPerReply,
      transports: transportsOf(c.request),
    });
    return { peers, size: live.length, repeat: verdict.repeat };
  });
  requests.forEach((c, i) => {
    const outcome = outcomes[i]!;
    if ("refused" in outcome) return;
    live = recordListed(live, {
      network: o.network,
      userId: c.who,
      identityKey: toBase64Url(c.request.identityKey),
    }, { sessionId: c.sessionId, at: c.now, peers: outcome.peers.map((p) => p.userId) });
  });
  return { rows: live, outcomes };
}

/** The table row a checked request makes, dated by its signed creation time. */
export function rowOf(c: CheckedRequest): PeerRow {
  const row: PeerRow = {
    userId: c.request.userId,
    network: c.request.network,
    identityKey: toBase64Url(c.request.identityKey),
    endpoints: c.request.endpoints,
    ...(c.request.candidates ? { candidates: c.request.candidates } : {}),
    ...(c.request.introductionKey
      ? { introductionKey: toBase64Url(c.request.introductionKey) }
      : {}),
    email: c.mail.from,
    sessionId: c.sessionId,
    requestedAt: c.request.createdAt,
    failures: 0,
  };
  if (c.proof) {
    row.proof = {
      body: toBase64Url(c.proof.body),
      signature: toBase64Url(c.proof.signature),
      recipient: toBase64Url(c.proof.recipient),
    };
  }
  return row;
}

/** The reply entry of a table row (no e-mail address). */
export function entryOf(row: PeerRow): PeerEntry {
  return {
    userId: row.userId,
    identityKey: fromBase64Url(row.identityKey),
    endpoints: row.endpoints,
    ...(row.candidates ? { candidates: row.candidates } : {}),
    lastSeen: row.requestedAt,
    failures: row.failures,
  };
}
