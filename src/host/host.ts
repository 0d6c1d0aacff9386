/**
 * Host request processing (DESIGN §5): for each matching mail, parse → open → update the
 * table → send the reply → delete the mail. Nothing is lost: a crash at any point can repeat a
 * reply but never drop a request, since the mail is deleted only after the reply was accepted.
 * Invalid mailpeer mail is never answered and goes to quarantine with a log line.
 *
 * @module
 */
import { isMailpeerError, MailError, MessageError } from "../errors.ts";
import { type EventSink, silentSink } from "../events.ts";
import {
  CLAIM_RECOVERY_MS,
  DEFAULT_REQUESTS_PER_SENDER_PER_HOUR,
  DEFAULT_REQUESTS_PER_USER_PER_HOUR,
  MAX_BLOCK_BYTES,
  MAX_CLOCK_SKEW_MS,
  MAX_HOST_CARDS,
  MAX_MAIL_BYTES,
  RATE_WINDOW_MS,
} from "../limits.ts";
import { type Logger, silentLogger } from "../log.ts";
import { headerValues } from "../mail/header_values.ts";
import { type ParsedMail, parseMail } from "../mail/parse.ts";
import {
  type MailRef,
  type MailSender,
  type MailSource,
  matchesSubject,
  type OutgoingMail,
  type SubjectMatch,
} from "../mail/types.ts";
import { emailProblem } from "../message/host_card.ts";
import { dearmorAll } from "../message/armor.ts";
import { fromBase64Url, toBase64Url } from "../message/base64.ts";
import { blockKindOf, openNotice, openRequest, sealReply } from "../message/block.ts";
import type { HostKeys } from "../message/key_file.ts";
import { bodyFor, type MailKind, subjectFor } from "../message/mail_text.ts";
import type { PeerEntry, RequestPayload } from "../message/types.ts";
import { type Clock, systemClock } from "../runtime.ts";
import {
  DEFAULT_TABLE_POLICY,
  expireRows,
  flagFailure,
  selectPeers,
  type TablePolicy,
  upsertRow,
} from "./table.ts";
import type { PeerRow, TableStore } from "./types.ts";
import { endpointProblem } from "./address_policy.ts";
import { admit, nextHistory } from "./admission.ts";
import { senderVerified } from "./auth_results.ts";

/** What one pass over the mailbox did. */
export interface HostPassResult {
  answered: number;
  notices: number;
  quarantined: number;
  stale: number;
}

/** Everything a host needs. */
export interface HostOptions {
  keys: HostKeys;
  network: string;
  source: MailSource;
  sender: MailSender;
  store: TableStore;
  /** Subject matching mode; default `exact`. */
  subjectMatch?: SubjectMatch["mode"];
  /** Table capacity, expiry and peers per reply; defaults from limits.ts. */
  policy?: Partial<TablePolicy>;
  /** Limits against hostile input; defaults from limits.ts. */
  limits?: Partial<HostLimits>;
  /** Accept loopback, private and link-local peer addresses (a LAN party); default false. */
  allowPrivateAddresses?: boolean;
  /**
   * Answer only mail whose sender the host's own mail server verified (SPF or DKIM pass in an
   * `Authentication-Results` header with this authserv-id, RFC 8601); default: not required.
   */
  requireVerifiedSender?: { authservId: string };
  /** Called after each step of processing a mail (fault injection, tracing). */
  onStep?: (step: HostStep) => void | Promise<void>;
  /**
   * Several host processes read this mailbox: claim each mail before processing it (IMAP,
   * Maildir), and put back mail claimed by a process that died. Default false.
   */
  sharedMailbox?: boolean;
  /** Told the host cards of every answered request, so the host learns of its pool. */
  learnHosts?: (cards: string[]) => Promise<unknown>;
  clock?: Clock;
  onEvent?: EventSink;
  logger?: Logger;
}

/** Limits against hostile input. */
export interface HostLimits {
  maxMailBytes: number;
  maxBlockBytes: number;
  requestsPerUserPerHour: number;
  requestsPerSenderPerHour: number;
}

/** The defaults of {@link HostLimits}. */
export const DEFAULT_HOST_LIMITS: Readonly<HostLimits> = Object.freeze({
  maxMailBytes: MAX_MAIL_BYTES,
  maxBlockBytes: MAX_BLOCK_BYTES,
  requestsPerUserPerHour: DEFAULT_REQUESTS_PER_USER_PER_HOUR,
  requestsPerSenderPerHour: DEFAULT_REQUESTS_PER_SENDER_PER_HOUR,
});

/** A step of processing one mail, in order: the table is saved before the reply is sent, and
 * the mail deleted only after that. */
export interface HostStep {
  step: "fetched" | "table-saved" | "reply-sent" | "deleted";
  kind: "request" | "notice";
  /** The mail's id in the source. */
  id: string;
}

/** A mail that must not be answered, and why. */
class Rejected extends Error {
  constructor(
    readonly code: string,
    reason: string,
    readonly disposal: "quarantine" | "delete",
    readonly userId?: string,
  ) {
    super(reason);
  }
}

/** Processes the requests and notices in one host mailbox. */
export class Host {
  readonly #o:
    & Required<
      Omit<HostOptions, "policy" | "limits" | "requireVerifiedSender" | "onStep" | "learnHosts">
    >
    & Pick<HostOptions, "requireVerifiedSender" | "onStep" | "learnHosts">
    & { policy: TablePolicy; limits: HostLimits };

  constructor(options: HostOptions) {
    this.#o = {
      subjectMatch: "exact",
      allowPrivateAddresses: false,
      sharedMailbox: false,
      clock: systemClock,
      onEvent: silentSink,
      logger: silentLogger,
      ...options,
      policy: { ...DEFAULT_TABLE_POLICY, ...options.policy },
      limits: { ...DEFAULT_HOST_LIMITS, ...options.limits },
    };
  }

  async #step(step: HostStep["step"], kind: HostStep["kind"], ref: MailRef): Promise<void> {
    await this.#o.onStep?.({ step, kind, id: ref.id });
  }

  #match(kind: MailKind): SubjectMatch {
    return { subject: subjectFor(this.#o.network, kind), mode: this.#o.subjectMatch };
  }

  /**
   * Processes every pending notice and request once. Resolves with counts; rejects only on
   * failures that leave the mail in place for the next pass (table, sending, connection).
   */
  async processPending(options: { signal?: AbortSignal } = {}): Promise<HostPassResult> {
    const result: HostPassResult = { answered: 0, notices: 0, quarantined: 0, stale: 0 };
    // One listing for both kinds (one server round trip fewer per pass), split by subject;
    // notices first, so their flags count in the replies of the same pass.
    const all = await this.#o.source.list(
      { subject: `[mailpeer] ${this.#o.network} `, mode: "prefix" },
      options,
    );
    for (const kind of ["notice", "request"] as const) {
      const match = this.#match(kind);
      const refs = all.filter((ref) => matchesSubject(ref.subject, match));
      for (const listed of refs) {
        options.signal?.throwIfAborted();
        // On a mailbox shared by several host processes, take the mail first: whoever claims
        // it processes it, the others skip it.
        const ref = this.#o.sharedMailbox && this.#o.source.claim
          ? await this.#o.source.claim(listed)
          : listed;
        if (!ref) continue;
        const outcome = await this.#processOne(ref, kind, options.signal);
        result[outcome]++;
      }
    }
    this.#o.onEvent({ event: "host-pass", ...result });
    return result;
  }

  /** Processes mail until `signal` aborts, waking on new mail (push, watch or poll). */
  async run(
    options: {
      signal: AbortSignal;
      retryDelayMs?: number;
      /** More work for each pass (e.g. table sync), run after the requests. */
      eachPass?: (signal: AbortSignal) => Promise<void>;
    },
  ): Promise<void> {
    const { signal } = options;
    let failures = 0;
    let lastRecovery = 0;
    while (!signal.aborted) {
      try {
        const now = this.#o.clock.now();
        if (
          this.#o.sharedMailbox && this.#o.source.recoverClaims &&
          now - lastRecovery >= CLAIM_RECOVERY_MS
        ) {
          lastRecovery = now;
          await this.#o.source.recoverClaims(CLAIM_RECOVERY_MS);
        }
        await this.processPending({ signal });
        await options.eachPass?.(signal);
        failures = 0;
        await this.#o.source.waitForMail({ signal });
      } catch (err) {
        if (signal.aborted) break;
        if (!isMailpeerError(err)) throw err;
        this.#o.onEvent({ event: "error", code: err.code, message: err.message });
        this.#o.logger.log("error", err.message, { code: err.code });
        const delay = Math.min(30_000, (options.retryDelayMs ?? 500) * 2 ** failures++);
        await this.#o.clock.sleep(delay, signal).catch(() => {});
      }
    }
  }

  async #processOne(
    ref: MailRef,
    kind: "request" | "notice",
    signal?: AbortSignal,
  ): Promise<keyof HostPassResult> {
    const { source, onEvent, logger, limits } = this.#o;
    try {
      if (ref.size !== undefined && ref.size > limits.maxMailBytes) {
        throw new Rejected(
          "EMAIL",
          `mail of ${ref.size} bytes is over the limit of ${limits.maxMailBytes}`,
          "quarantine",
        );
      }
      const raw = await source.fetch(ref, signal ? { signal } : {});
      await this.#step("fetched", kind, ref);
      const parsed = await this.#parse(raw);
      if (kind === "notice") {
        await this.#handleNotice(parsed);
        await this.#step("table-saved", kind, ref);
      } else {
        await this.#handleRequest(parsed, raw, ref);
      }
      await source.delete(ref);
      await this.#step("deleted", kind, ref);
      return kind === "notice" ? "notices" : "answered";
    } catch (err) {
      if (!(err instanceof Rejected)) throw err;
      logger.log("warn", `${kind} not answered: ${err.message}`, {
        subject: ref.subject,
        code: err.code,
      });
      if (err.disposal === "delete") {
        await source.delete(ref);
        onEvent({ event: "request-deleted", userId: err.userId ?? "", reason: err.message });
        return "stale";
      }
      await source.quarantine(ref, err.message);
      onEvent({ event: "quarantined", subject: ref.subject, code: err.code, reason: err.message });
      return "quarantined";
    }
  }

  async #parse(raw: Uint8Array): Promise<{ mail: ParsedMail; blocks: Uint8Array[] }> {
    try {
      const mail = await parseMail(raw, { maxBytes: this.#o.limits.maxMailBytes });
      // A mail to several hosts carries one block per host card; ours is the one that opens.
      const blocks = dearmorAll(mail.text, { max: MAX_HOST_CARDS });
      for (const block of blocks) {
        if (block.length > this.#o.limits.maxBlockBytes) {
          throw new Rejected(
            "EBLOCK",
            `block of ${block.length} bytes is over the limit of ${this.#o.limits.maxBlockBytes}`,
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

  async #open<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof MessageError) throw new Rejected(err.code, err.message, "quarantine");
      throw err;
    }
  }

  /**
   * Sends a reply. A recipient the mail system refuses for good (no such mailbox, a bad
   * address) gets the request quarantined; a passing failure (server down) propagates, so the
   * request stays and is answered on a later pass.
   */
  async #sendReply(mail: OutgoingMail, who: string): Promise<void> {
    try {
      await this.#o.sender.send(mail);
    } catch (err) {
      // A header the composer refuses (a hostile value that slipped through) is as final as a
      // refused recipient: the request is set aside, never allowed to stop the host.
      if (err instanceof TypeError) {
        throw new Rejected(
          "EMAIL",
          `the reply cannot be composed: ${err.message}`,
          "quarantine",
          who,
        );
      }
      if (err instanceof MailError && (err.code === "ESEND" || err.code === "EMAILDIR")) {
        throw new Rejected(
          err.code,
          `the reply to ${mail.to.join(", ")} was refused: ${err.message}`,
          "quarantine",
          who,
        );
      }
      throw err;
    }
  }

  /**
   * Opens the block meant for this host: the first of `kind` that opens with our keys. When
   * none does, the mail is refused with the reason of the last attempt (wrong key, altered).
   */
  async #openOurs<T>(
    blocks: Uint8Array[],
    kind: "request" | "notice",
    open: (block: Uint8Array) => Promise<T>,
  ): Promise<T> {
    let last: unknown;
    for (const block of blocks) {
      const found = await this.#open(() => Promise.resolve(blockKindOf(block)));
      if (found !== kind) {
        last = new Rejected(
          "EBLOCK",
          `a ${found} block arrived under the ${kind} subject`,
          "quarantine",
        );
        continue;
      }
      try {
        return await this.#open(() => open(block));
      } catch (err) {
        last = err;
      }
    }
    throw last;
  }

  async #handleRequest(
    { mail, blocks }: { mail: ParsedMail; blocks: Uint8Array[] },
    raw: Uint8Array,
    ref: MailRef,
  ): Promise<void> {
    const { keys, network, clock, policy, onEvent, store, limits } = this.#o;
    const request = await this.#openOurs(blocks, "request", (b) => openRequest(b, keys));
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
    if (request.network !== network) {
      throw new Rejected(
        "EPAYLOAD",
        `the request is for network ${request.network}, not ${network}`,
        "quarantine",
        who,
      );
    }
    const now = clock.now();
    // The Date header is what the design names; the signed creation time cannot be forged,
    // so a replayed old request with a fresh Date is stale all the same.
    const requestedAt = mail.date?.getTime() ?? request.createdAt;
    const oldest = Math.min(requestedAt, request.createdAt);
    if (oldest < now - policy.expiryMs) {
      throw new Rejected(
        "ESTALE",
        `request of ${who} dated ${new Date(oldest).toISOString()} is older than the expiry`,
        "delete",
        who,
      );
    }
    if (Math.max(requestedAt, request.createdAt) > now + MAX_CLOCK_SKEW_MS) {
      throw new Rejected("ESTALE", `request of ${who} is dated in the future`, "quarantine", who);
    }
    for (const endpoint of request.endpoints) {
      const problem = endpointProblem(endpoint, { allowPrivate: this.#o.allowPrivateAddresses });
      if (problem !== undefined) {
        throw new Rejected(
          "EPOLICY",
          `request of ${who} offers ${problem}, which this host does not hand out (host.allow_private_addresses)`,
          "quarantine",
          who,
        );
      }
    }
    const verify = this.#o.requireVerifiedSender;
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
    const sessionId = toBase64Url(request.sessionId);
    onEvent({ event: "request-received", userId: who, sessionId });
    const row = rowOf(request, mail.from, requestedAt);
    type Outcome =
      | { refused: { code: string; reason: string } }
      | { peers: PeerRow[]; size: number };
    const outcome = await store.update<Outcome>((rows) => {
      const live = expireRows(rows, now, policy);
      const verdict = admit(live, {
        network,
        userId: who,
        email: mail.from,
        sessionId,
        createdAt: request.createdAt,
        now,
      }, {
        perUser: limits.requestsPerUserPerHour,
        perSender: limits.requestsPerSenderPerHour,
        windowMs: RATE_WINDOW_MS,
      });
      if (!verdict.ok) return { rows, result: { refused: verdict } };
      const old = live.find((r) => r.network === network && r.userId === who);
      const next = verdict.repeat ? live : upsertRow(live, {
        ...row,
        history: nextHistory(old, { sessionId, at: now }, policy.expiryMs),
      }, policy);
      const chosen = selectPeers(next, request, {
        now,
        expiryMs: policy.expiryMs,
        max: policy.peersPerReply,
      });
      return { rows: next, result: { peers: chosen, size: next.length } };
    });
    if ("refused" in outcome) {
      throw new Rejected(outcome.refused.code, outcome.refused.reason, "quarantine", who);
    }
    const { peers, size } = outcome as { peers: PeerRow[]; size: number };
    await this.#step("table-saved", "request", ref);
    onEvent({ event: "table-updated", rows: size });
    const reply = await sealReply({
      network,
      sessionId: request.sessionId,
      hostId: keys.ed25519.publicKey,
      createdAt: now,
      peers: peers.map(entryOf),
    }, { hostKeys: keys, replyKey: request.replyKey });
    await this.#sendReply({
      from: keys.email,
      to: [mail.from],
      subject: subjectFor(network, "reply"),
      text: bodyFor(network, "reply", reply),
      date: new Date(now),
      ...(mail.messageId && MSG_ID.test(mail.messageId) ? { inReplyTo: mail.messageId } : {}),
    }, who);
    onEvent({ event: "reply-sent", to: mail.from, userId: request.userId, peers: peers.length });
    await this.#o.learnHosts?.(request.hostCards).catch((err) =>
      this.#o.logger.log("warn", `could not record the request's host cards: ${err}`)
    );
    await this.#step("reply-sent", "request", ref);
  }

  async #handleNotice({ blocks }: { mail: ParsedMail; blocks: Uint8Array[] }): Promise<void> {
    const { keys, network, clock, onEvent, store } = this.#o;
    const notice = await this.#openOurs(blocks, "notice", (b) => openNotice(b, keys));
    if (notice.network !== network) {
      throw new Rejected(
        "EPAYLOAD",
        `the notice is for network ${notice.network}, not ${network}`,
        "quarantine",
      );
    }
    const reporterKey = toBase64Url(notice.identityKey);
    const at = clock.now();
    const known = await store.update((rows) => {
      const reporter = rows.find((r) => r.network === network && r.userId === notice.userId);
      if (!reporter || reporter.identityKey !== reporterKey) return { rows, result: false };
      let next = rows;
      for (const f of notice.failed) next = flagFailure(next, { userId: f.userId, network }, at);
      return { rows: next, result: true };
    });
    if (!known) {
      throw new Rejected(
        "ESIGNATURE",
        `notice from ${notice.userId}, who has no row with that identity key`,
        "quarantine",
      );
    }
    onEvent({
      event: "notice-received",
      userId: notice.userId,
      failed: notice.failed.map((f) => f.userId),
    });
  }
}

/** A Message-ID that can be echoed in In-Reply-To: `<...>` of visible ASCII. */
const MSG_ID = /^<[!-;=?-~]{1,250}>$/;

/** What makes an address unfit to reply to, beyond its syntax. */
function replyAddressProblem(address: string): string | undefined {
  if (address.includes("\uFFFD")) return "it had bytes that are not text";
  if (address.indexOf("@") !== address.lastIndexOf("@")) return "it has more than one @";
  if (address.includes("/")) return "it contains a path";
  return undefined;
}

function rowOf(request: RequestPayload, email: string, requestedAt: number): PeerRow {
  return {
    userId: request.userId,
    network: request.network,
    identityKey: toBase64Url(request.identityKey),
    endpoints: request.endpoints,
    email,
    sessionId: toBase64Url(request.sessionId),
    requestedAt,
    failures: 0,
  };
}

function entryOf(row: PeerRow): PeerEntry {
  return {
    userId: row.userId,
    identityKey: fromBase64Url(row.identityKey),
    endpoints: row.endpoints,
    lastSeen: row.requestedAt,
    failures: row.failures,
  };
}
