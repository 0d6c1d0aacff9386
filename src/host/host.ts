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
import { MAX_CLOCK_SKEW_MS, MAX_MAIL_BYTES } from "../limits.ts";
import { type Logger, silentLogger } from "../log.ts";
import { type ParsedMail, parseMail } from "../mail/parse.ts";
import type { MailRef, MailSender, MailSource, SubjectMatch } from "../mail/types.ts";
import { dearmor } from "../message/armor.ts";
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
  /** Largest mail accepted; default MAX_MAIL_BYTES. */
  maxMailBytes?: number;
  clock?: Clock;
  onEvent?: EventSink;
  logger?: Logger;
}

/** A mail that must not be answered, and why. */
class Rejected extends Error {
  constructor(readonly code: string, reason: string, readonly disposal: "quarantine" | "delete") {
    super(reason);
  }
}

/** Processes the requests and notices in one host mailbox. */
export class Host {
  readonly #o: Required<Omit<HostOptions, "policy">> & { policy: TablePolicy };

  constructor(options: HostOptions) {
    this.#o = {
      subjectMatch: "exact",
      maxMailBytes: MAX_MAIL_BYTES,
      clock: systemClock,
      onEvent: silentSink,
      logger: silentLogger,
      ...options,
      policy: { ...DEFAULT_TABLE_POLICY, ...options.policy },
    };
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
    for (const kind of ["notice", "request"] as const) {
      const refs = await this.#o.source.list(this.#match(kind), options);
      for (const ref of refs) {
        options.signal?.throwIfAborted();
        const outcome = await this.#processOne(ref, kind, options.signal);
        result[outcome]++;
      }
    }
    this.#o.onEvent({ event: "host-pass", ...result });
    return result;
  }

  /** Processes mail until `signal` aborts, waking on new mail (push, watch or poll). */
  async run(options: { signal: AbortSignal; retryDelayMs?: number }): Promise<void> {
    const { signal } = options;
    let failures = 0;
    while (!signal.aborted) {
      try {
        await this.processPending({ signal });
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
    const { source, onEvent, logger } = this.#o;
    try {
      if (ref.size !== undefined && ref.size > this.#o.maxMailBytes) {
        throw new Rejected(
          "EMAIL",
          `mail of ${ref.size} bytes is over the limit of ${this.#o.maxMailBytes}`,
          "quarantine",
        );
      }
      const raw = await source.fetch(ref, signal ? { signal } : {});
      const mail = await this.#parse(raw);
      if (kind === "notice") {
        await this.#handleNotice(mail);
        await source.delete(ref);
        return "notices";
      }
      await this.#handleRequest(mail);
      await source.delete(ref);
      return "answered";
    } catch (err) {
      if (!(err instanceof Rejected)) throw err;
      logger.log("warn", `${kind} not answered: ${err.message}`, {
        subject: ref.subject,
        code: err.code,
      });
      if (err.disposal === "delete") {
        await source.delete(ref);
        onEvent({ event: "request-deleted", userId: "", reason: err.message });
        return "stale";
      }
      await source.quarantine(ref, err.message);
      onEvent({ event: "quarantined", subject: ref.subject, code: err.code, reason: err.message });
      return "quarantined";
    }
  }

  async #parse(raw: Uint8Array): Promise<{ mail: ParsedMail; block: Uint8Array }> {
    try {
      const mail = await parseMail(raw, { maxBytes: this.#o.maxMailBytes });
      return { mail, block: dearmor(mail.text) };
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

  async #handleRequest({ mail, block }: { mail: ParsedMail; block: Uint8Array }): Promise<void> {
    const { keys, network, clock, policy, onEvent, store } = this.#o;
    const kind = await this.#open(() => Promise.resolve(blockKindOf(block)));
    if (kind !== "request") {
      throw new Rejected(
        "EBLOCK",
        `a ${kind} block arrived under the request subject`,
        "quarantine",
      );
    }
    const request = await this.#open(() => openRequest(block, keys));
    if (request.network !== network) {
      throw new Rejected(
        "EPAYLOAD",
        `the request is for network ${request.network}, not ${network}`,
        "quarantine",
      );
    }
    const now = clock.now();
    const requestedAt = mail.date?.getTime() ?? request.createdAt;
    if (requestedAt < now - policy.expiryMs) {
      throw new Rejected(
        "ESTALE",
        `request of ${request.userId} dated ${
          new Date(requestedAt).toISOString()
        } is older than the expiry`,
        "delete",
      );
    }
    if (requestedAt > now + MAX_CLOCK_SKEW_MS) {
      throw new Rejected(
        "ESTALE",
        `request of ${request.userId} is dated in the future`,
        "quarantine",
      );
    }
    const sessionId = toBase64Url(request.sessionId);
    onEvent({ event: "request-received", userId: request.userId, sessionId });
    const row = rowOf(request, mail.from, requestedAt);
    const { peers, size } = await store.update((rows) => {
      const next = upsertRow(expireRows(rows, now, policy), row, policy);
      const chosen = selectPeers(next, request, {
        now,
        expiryMs: policy.expiryMs,
        max: policy.peersPerReply,
      });
      return { rows: next, result: { peers: chosen, size: next.length } };
    });
    onEvent({ event: "table-updated", rows: size });
    const reply = await sealReply({
      network,
      sessionId: request.sessionId,
      hostId: keys.ed25519.publicKey,
      createdAt: now,
      peers: peers.map(entryOf),
    }, { hostKeys: keys, replyKey: request.replyKey });
    await this.#o.sender.send({
      from: keys.email,
      to: [mail.from],
      subject: subjectFor(network, "reply"),
      text: bodyFor(network, "reply", reply),
      date: new Date(now),
      ...(mail.messageId ? { inReplyTo: mail.messageId } : {}),
    });
    onEvent({ event: "reply-sent", to: mail.from, userId: request.userId, peers: peers.length });
  }

  async #handleNotice({ block }: { mail: ParsedMail; block: Uint8Array }): Promise<void> {
    const { keys, network, clock, onEvent, store } = this.#o;
    const kind = await this.#open(() => Promise.resolve(blockKindOf(block)));
    if (kind !== "notice") {
      throw new Rejected(
        "EBLOCK",
        `a ${kind} block arrived under the notice subject`,
        "quarantine",
      );
    }
    const notice = await this.#open(() => openNotice(block, keys));
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
