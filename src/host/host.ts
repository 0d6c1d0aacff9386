/**
 * Host request processing (docs/design.md "Host processing"): for each matching mail, parse →
 * open → update the table → send the reply → delete the mail. Nothing is lost: a crash at any point
 * can repeat a reply but never drop a request, since the mail is deleted only after the reply was
 * accepted. Invalid mailpeer mail is never answered and goes to quarantine with a log line.
 *
 * @module
 */
import { isMailpeerError, MailError } from "../errors.ts";
import { type EventSink, silentSink } from "../events.ts";
import {
  CLAIM_RECOVERY_MS,
  CLAIM_WINDOW_BATCHES,
  DEFAULT_NEW_ROWS_PER_HOUR,
  DEFAULT_REQUESTS_PER_HOUR,
  DEFAULT_REQUESTS_PER_SENDER_PER_HOUR,
  DEFAULT_REQUESTS_PER_USER_PER_HOUR,
  HOST_BATCH_SIZE,
  INTRODUCTIONS_PER_HOUR,
  INTRODUCTIONS_PER_TARGET_PER_HOUR,
  MAX_MAIL_BYTES,
  MAX_REMEMBERED_REPLIES,
  PUNCH_WINDOW_DELAY_MS,
  PUNCH_WINDOW_MS,
  RATE_WINDOW_MS,
  REPEAT_REPLY_WINDOW_MS,
} from "../limits.ts";
import { MAX_BLOCK_BYTES, REPLY_READS_ROLE } from "../protocol.ts";
import { type Logger, silentLogger } from "../log.ts";
import {
  type MailRef,
  type MailSender,
  type MailSource,
  matchesSubject,
  type OutgoingMail,
  type SubjectMatch,
} from "../mail/types.ts";
import { fromBase64Url } from "../message/base64.ts";
import { sealReply } from "../message/block.ts";
import { candidatesOf } from "../message/candidate.ts";
import { sealIntroduction } from "../message/introduction.ts";
import { bodyFor, type MailKind, subjectFor } from "../message/mail_text.ts";
import type { HostKeys } from "../message/key_file.ts";
import type { ReplyRole } from "../message/types.ts";
import { type Clock, systemClock } from "../runtime.ts";
import { planIntroductions, type PlannedIntroduction } from "./introductions.ts";
import { applyNotices } from "./notice_admission.ts";
import { DEFAULT_TABLE_POLICY, reachableOn, type TablePolicy, transportsOf } from "./table.ts";
import type { ClaimLedger, PeerRow, TableStore } from "./types.ts";
import {
  applyRequests,
  type CheckContext,
  type CheckedNotice,
  type CheckedRequest,
  checkNotice,
  checkRequest,
  entryOf,
  MSG_ID,
  Rejected,
  type RequestOutcome,
} from "./host_request.ts";

/**
 * Replies a host has in flight at once: a whole batch. The sender spreads them over its SMTP
 * fast lanes, and each lane writes the mails queued on it together (PIPELINING + BDAT), so a
 * batch costs a few writes and reads instead of one round trip per mail (docs/decisions.md
 * "Performance (issue 7)": replies a batch at a time).
 */
export const HOST_REPLY_CONCURRENCY = HOST_BATCH_SIZE;

/** Passes in a row that stop on a stale listing without taking a mail and still list again. */
const STALE_RELISTS_AT_MOST = 3;

/** Codes of a mailbox that cannot be reached: every mail waits for the next pass. */
const MAILBOX_UNREACHABLE: ReadonlySet<string> = new Set(["ECONNECT", "EAUTH", "ETLS"]);

/** Processes the requests and notices in one host mailbox. */
export class Host {
  readonly #o:
    & Required<
      Omit<
        HostOptions,
        "policy" | "limits" | "requireVerifiedSender" | "onStep" | "learnHosts" | "claimLedger"
      >
    >
    & Pick<HostOptions, "requireVerifiedSender" | "onStep" | "learnHosts" | "claimLedger">
    & { policy: TablePolicy; limits: HostLimits };

  /**
   * When this process last replied to each request (user id + session id), oldest first, at
   * most MAX_REMEMBERED_REPLIES: a repeat within REPEAT_REPLY_WINDOW_MS gets no second reply.
   * Kept in memory on purpose: after a crash the memory is gone and a repeat is answered again,
   * so a request whose reply the crash cut off is never lost.
   */
  readonly #replied = new Map<string, number>();
  /** Refs of refused mails that could not be quarantined or deleted: skipped from then on. */
  readonly #setAside = new Set<string>();
  /**
   * Mails (by ref id) whose ledger claim another process held when this one tried, and when:
   * left out of later listings while they stay listed, up to `CLAIM_RECOVERY_MS` (a claim of
   * a process that died lapses by then). Claims in the mailbox leave such mails out of the
   * listing itself (an IMAP keyword); ledger claims leave the mailbox as it is.
   */
  readonly #claimedElsewhere = new Map<string, number>();
  #wonThisPass = 0;
  #staleListing = false;
  /** Passes in a row that took no mail (see {@link relistNow}). */
  #fruitless = 0;

  constructor(options: HostOptions) {
    this.#o = {
      subjectMatch: "exact",
      allowPrivateAddresses: false,
      sharedMailbox: false,
      batchSize: HOST_BATCH_SIZE,
      replyConcurrency: HOST_REPLY_CONCURRENCY,
      random: Math.random,
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
   * Processes every pending notice and request once (of `listing` when given: refs of a
   * listing with the `[mailpeer] <network> ` prefix). Resolves with counts; rejects only on
   * failures that leave the mail in place for the next pass (table, sending, connection).
   *
   * Mails go in batches of at most `batchSize`: each mail is fetched and checked, then the
   * whole batch's rows are applied in one table update, then the replies are sent, then the
   * batch is deleted. Per mail the order stays fetched → table saved → reply sent → deleted, so
   * a crash can repeat replies but never drop a request. The batches overlap as a pipeline
   * (docs/performance.md "Host: capacity, CPU per request"): the next batch is claimed, fetched
   * and checked while this one's replies are out, and this one is deleted while the next one's
   * are; the table updates stay in batch order (notices first). So a crash repeats at most two
   * batches' replies. With claims in a ledger, each batch is the first `batchSize` mails the
   * ledger gives of a window of the listing (see {@link #takeBatch}).
   *
   * `role`: the host role this process holds for the pass (a group member's RoleService hands
   * it in), said in the reply to each request that reads `role` (docs/protocol.md "Reply
   * extensions"); without it no reply carries a role.
   */
  async processPending(
    options: { signal?: AbortSignal; listing?: readonly MailRef[]; role?: ReplyRole } = {},
  ): Promise<HostPassResult> {
    const result: HostPassResult = { answered: 0, notices: 0, quarantined: 0, stale: 0 };
    const { signal } = options;
    // One listing for both kinds (one server round trip fewer per pass), split by subject;
    // notices first, so their flags count in the replies of the same pass. A HostService
    // hands in the listing it made for every handler of the pass.
    const all = options.listing ?? await this.#o.source.list(
      { subject: `[mailpeer] ${this.#o.network} `, mode: "prefix" },
      signal ? { signal } : {},
    );
    // The batches are cut as they go, from a cursor over each kind's listing: with ledger
    // claims, how far a batch reaches depends on what the ledger gave the one before.
    const elsewhere = this.#stillClaimedElsewhere(all);
    const lanes: Lane[] = (["notice", "request"] as const).map((kind) => {
      const match = this.#match(kind);
      const refs = this.#rotated(
        all.filter((ref) =>
          matchesSubject(ref.subject, match) && !this.#setAside.has(ref.id) &&
          !elsewhere.has(ref.id)
        ),
      );
      return { kind, refs, at: 0 };
    });
    // Called only once the batch before was claimed, so the cursors are where it left them.
    const prepare = () => {
      const lane = lanes.find(({ refs, at }) => at < refs.length);
      if (lane === undefined) return undefined;
      const prepared = (async (): Promise<PreparedBatch> => {
        signal?.throwIfAborted();
        const refs = await this.#takeBatch(lane);
        this.#wonThisPass += refs.length;
        const checked = await this.#prepareBatch(refs, lane.kind, result, signal);
        return { kind: lane.kind, won: this.#o.sharedMailbox ? refs.length : undefined, checked };
      })();
      prepared.catch(() => {}); // awaited below; a failure ends the pass there
      return prepared;
    };
    let next = prepare();
    let deleting: Promise<void> = Promise.resolve();
    this.#staleListing = false;
    this.#wonThisPass = 0;
    try {
      while (next !== undefined) {
        const { kind, won, checked } = await next;
        // On a shared mailbox, a batch of which this process won nothing shows the listing
        // is stale (other processes took its mails): claiming the rest of it would mostly
        // lose again, a round trip per batch. The pass ends; the host service lists afresh at
        // once when this pass answered anything (docs/decisions.md "Several host processes
        // on one mailbox").
        if (won === 0) {
          this.#staleListing = true;
          break;
        }
        next = prepare(); // claimed, fetched and checked while these replies go out
        if (checked.length === 0) continue;
        const done = kind === "notice"
          ? await this.#applyNotices(checked as CheckedNotice[], result)
          : await this.#answerRequests(checked as CheckedRequest[], result, options.role);
        await deleting;
        deleting = this.#delete(done, kind).then(() => {
          result[kind === "notice" ? "notices" : "answered"] += done.length;
        });
        deleting.catch(() => {}); // awaited before the next delete or the end of the pass
      }
      await deleting;
    } finally {
      // nothing of this pass keeps running after it: a failure waits for the work under way
      await Promise.allSettled([next, deleting]);
    }
    // passes that won nothing in a row: after STALE_RELISTS_AT_MOST of them, wait for mail
    this.#fruitless = this.#wonThisPass > 0 ? 0 : this.#fruitless + 1;
    this.#o.onEvent({ event: "host-pass", ...result });
    return result;
  }

  /**
   * True when the last {@link processPending} stopped early on a shared mailbox because other
   * processes had taken the mails of a batch: list again now rather than wait for new mail
   * (the listing's other mails may still wait). After STALE_RELISTS_AT_MOST such passes in a
   * row that took nothing, false: mail that stays listed but cannot be taken is not listed in
   * a busy loop.
   */
  get relistNow(): boolean {
    return this.#staleListing && this.#fruitless <= STALE_RELISTS_AT_MOST;
  }

  /** The mailbox this host reads (a {@link HostService} lists it once per pass). */
  get source(): MailSource {
    return this.#o.source;
  }

  /** The network this host answers. */
  get network(): string {
    return this.#o.network;
  }

  /**
   * Several processes on one mailbox start at different places of the listing, so that they
   * claim different mails instead of racing for the same first ones.
   */
  #rotated(refs: MailRef[]): MailRef[] {
    if (!this.#o.sharedMailbox || refs.length < 2) return refs;
    const at = this.#o.random() * refs.length | 0;
    return [...refs.slice(at), ...refs.slice(0, at)];
  }

  #context(): CheckContext {
    const { keys, network, limits, policy, allowPrivateAddresses, requireVerifiedSender } = this.#o;
    return {
      keys,
      network,
      maxMailBytes: limits.maxMailBytes,
      maxBlockBytes: limits.maxBlockBytes,
      expiryMs: policy.expiryMs,
      allowPrivateAddresses,
      ...(requireVerifiedSender ? { requireVerifiedSender } : {}),
    };
  }

  /**
   * The next batch of `lane` and the mails of it this process may process; moves the lane's
   * cursor past what it offered. Alone on the mailbox: the next `batchSize` mails. On a
   * mailbox shared by several host processes the mails are taken first (whoever claims a mail
   * processes it, the others skip it): in the mailbox, the next `batchSize` mails at once
   * where the source can; in a ledger, up to `batchSize` of a window of the next
   * `batchSize * CLAIM_WINDOW_BATCHES` (docs/decisions.md "Claims in the shared store").
   */
  async #takeBatch(lane: Lane): Promise<MailRef[]> {
    const { batchSize, sharedMailbox, claimLedger, source } = this.#o;
    if (sharedMailbox && claimLedger) {
      const window = lane.refs.slice(lane.at, lane.at + batchSize * CLAIM_WINDOW_BATCHES);
      const { won, reached } = await this.#claimInLedger(window, claimLedger);
      lane.at += reached;
      return won;
    }
    const listed = lane.refs.slice(lane.at, lane.at + batchSize);
    lane.at += listed.length;
    return sharedMailbox ? await source.claimMany(listed) : listed;
  }

  /**
   * The second half of taking a batch: fetches and checks each mail of `refs`. Refused mails
   * are set aside (counted in `result`); resolves with those to answer.
   */
  async #prepareBatch(
    refs: MailRef[],
    kind: "request" | "notice",
    result: HostPassResult,
    signal?: AbortSignal,
  ): Promise<(CheckedRequest | CheckedNotice)[]> {
    const { source, limits, clock } = this.#o;
    const ctx = this.#context();
    const checked: (CheckedRequest | CheckedNotice)[] = [];
    for (const ref of refs) {
      signal?.throwIfAborted();
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
        if (kind === "notice") {
          checked.push(await checkNotice(ref, raw, ctx, clock.now()));
        } else {
          const request = await checkRequest(ref, raw, ctx, clock.now());
          this.#o.onEvent({
            event: "request-received",
            userId: request.who,
            sessionId: request.sessionId,
          });
          checked.push(request);
        }
      } catch (err) {
        result[await this.#dispose(err, ref, kind)]++;
      }
    }
    return checked;
  }

  /**
   * Takes up to `batchSize` mails of `window` (in order) through the shared store's claims:
   * the mails stay where they are (no keyword, no move), and the bodies of those won are read
   * in one go. Resolves with the mails won and how many of the window the ledger reached: up
   * to the last one won when it filled the batch (the rest stays for the next batch), else
   * all. Those it reached but did not give are another process's. docs/decisions.md "Claims in
   * the shared store".
   */
  async #claimInLedger(
    window: MailRef[],
    ledger: ClaimLedger,
  ): Promise<{ won: MailRef[]; reached: number }> {
    const upTo = this.#o.batchSize;
    const held = await ledger.claim(window.map((ref) => ref.id), { upTo });
    const won = window.filter((ref) => held.has(ref.id));
    const reached = won.length >= upTo ? window.indexOf(won.at(-1)!) + 1 : window.length;
    const now = this.#o.clock.now();
    for (const ref of window.slice(0, reached)) {
      if (!held.has(ref.id)) this.#claimedElsewhere.set(ref.id, now);
    }
    if (won.length > 0) await this.#o.source.prefetch?.(won);
    return { won, reached };
  }

  /**
   * The ids of `listing` another process held the ledger claim of, recently; forgets those no
   * longer listed (gone) and those older than `CLAIM_RECOVERY_MS` (tried again).
   */
  #stillClaimedElsewhere(listing: readonly MailRef[]): Set<string> {
    if (this.#claimedElsewhere.size === 0) return new Set();
    const listed = new Set(listing.map((ref) => ref.id));
    const now = this.#o.clock.now();
    for (const [id, at] of this.#claimedElsewhere) {
      if (!listed.has(id) || now - at >= CLAIM_RECOVERY_MS) this.#claimedElsewhere.delete(id);
    }
    return new Set(this.#claimedElsewhere.keys());
  }

  /** Sets a refused mail aside (quarantine or delete) and says which count it adds to. */
  async #dispose(
    err: unknown,
    ref: MailRef,
    kind: "request" | "notice",
  ): Promise<"quarantined" | "stale"> {
    if (!(err instanceof Rejected)) throw err;
    const { source, onEvent, logger } = this.#o;
    logger.log("warn", `${kind} not answered: ${err.message}`, {
      subject: ref.subject,
      code: err.code,
    });
    try {
      if (err.disposal === "delete") {
        await source.delete(ref);
        onEvent({ event: "request-deleted", userId: err.userId ?? "", reason: err.message });
        return "stale";
      }
      await source.quarantine(ref, err.message);
      onEvent({ event: "quarantined", subject: ref.subject, code: err.code, reason: err.message });
    } catch (failed) {
      // One mail that cannot be moved or deleted (a folder the server refuses) must not stop
      // the others of the batch being answered: it stays where it is, and this process skips
      // it from now on (docs/providers.md). A lost connection fails the pass as before.
      if (!isMailpeerError(failed) || MAILBOX_UNREACHABLE.has(failed.code)) throw failed;
      this.#setAside.add(ref.id);
      logger.log("error", `${kind} left in the mailbox: ${failed.message}`, {
        subject: ref.subject,
        code: failed.code,
      });
      onEvent({ event: "error", code: failed.code, message: failed.message });
    }
    return err.disposal === "delete" ? "stale" : "quarantined";
  }

  /** Deletes processed mail, in one go where the source can. */
  async #delete(refs: MailRef[], kind: "request" | "notice"): Promise<void> {
    if (refs.length === 0) return;
    const { source, claimLedger, logger } = this.#o;
    await source.deleteMany(refs);
    if (claimLedger && this.#o.sharedMailbox) {
      // best effort: an unfinished claim still keeps others off until it lapses
      claimLedger.finish(refs.map((ref) => ref.id)).catch((err) =>
        logger.log("debug", `could not mark claims done: ${err}`)
      );
    }
    for (const ref of refs) await this.#step("deleted", kind, ref);
  }

  /** Applies the notices' failure flags in one table update; resolves with what to delete. */
  async #applyNotices(notices: CheckedNotice[], result: HostPassResult): Promise<MailRef[]> {
    const { network, onEvent, store } = this.#o;
    const verdicts = await store.update((rows) => {
      const { rows: next, verdicts } = applyNotices(rows, notices, { network });
      return { rows: next, result: verdicts };
    });
    const done: MailRef[] = [];
    for (const [i, { ref, notice }] of notices.entries()) {
      const verdict = verdicts[i]!;
      if (!verdict.ok) {
        const err = new Rejected(verdict.code, verdict.reason, verdict.disposal, notice.userId);
        result[await this.#dispose(err, ref, "notice")]++;
        continue;
      }
      await this.#step("table-saved", "notice", ref);
      onEvent({ event: "notice-received", userId: notice.userId, failed: verdict.flagged });
      done.push(ref);
    }
    return done;
  }

  /**
   * Applies the requests' rows in one table update, then sends each admitted request its
   * reply. Resolves with the mails answered (to delete). When a reply fails in passing (the
   * server is down), the mails answered so far are deleted and the error rethrown: the rest
   * stays for the next pass.
   */
  async #answerRequests(
    requests: CheckedRequest[],
    result: HostPassResult,
    role: ReplyRole | undefined,
  ): Promise<MailRef[]> {
    const { network, clock, policy, onEvent, store, limits } = this.#o;
    const { outcomes, plans } = await store.update<
      { outcomes: RequestOutcome[]; plans: PlannedIntroduction[] }
    >((rows) => {
      const { rows: applied, outcomes } = applyRequests(rows, requests, {
        network,
        policy,
        now: clock.now(),
        rates: {
          perUser: limits.requestsPerUserPerHour,
          perSender: limits.requestsPerSenderPerHour,
          perHost: limits.requestsPerHour,
          newRows: limits.newRowsPerHour,
          windowMs: RATE_WINDOW_MS,
        },
      });
      // Each listed peer that asked for introductions is told of its requester (first answers
      // only: a repeat was introduced the first time), recorded in the same table update; a
      // peer on another transport is not (it could not punch back, docs/decisions.md "Peers on
      // another transport").
      const answeredNow = outcomes.flatMap((outcome, i) => {
        if (!("peers" in outcome) || outcome.repeat) return [];
        const transports = transportsOf(requests[i]!.request);
        return [{
          requestIndex: i,
          requester: requests[i]!.who,
          network,
          peers: outcome.peers.filter((p) => reachableOn(p, transports)).map((p) => p.userId),
        }];
      });
      const { rows: next, plans } = planIntroductions(applied, answeredNow, {
        now: clock.now(),
        perTarget: INTRODUCTIONS_PER_TARGET_PER_HOUR,
        perHour: INTRODUCTIONS_PER_HOUR,
        windowMs: RATE_WINDOW_MS,
      });
      return { rows: next, result: { outcomes, plans } };
    });
    const admitted: { c: CheckedRequest; peers: PeerRow[] }[] = [];
    const now = clock.now();
    const inBatch = new Set<string>();
    for (const [i, c] of requests.entries()) {
      const outcome = outcomes[i]!;
      const key = `${c.who}\0${c.sessionId}`;
      const last = this.#replied.get(key);
      const answered = inBatch.has(key) ||
        ("repeat" in outcome && outcome.repeat && last !== undefined &&
          now - last < REPEAT_REPLY_WINDOW_MS);
      if ("refused" in outcome || answered) {
        const { code, reason } = "refused" in outcome ? outcome.refused : {
          code: "EREPLAY",
          reason: `request of ${c.who} repeats session ${c.sessionId}, answered within the last ${
            REPEAT_REPLY_WINDOW_MS / 60_000
          } min; no second reply`,
        };
        result[
          await this.#dispose(new Rejected(code, reason, "quarantine", c.who), c.ref, "request")
        ]++;
        continue;
      }
      inBatch.add(key);
      await this.#step("table-saved", "request", c.ref);
      onEvent({ event: "table-updated", rows: outcome.size });
      admitted.push({ c, peers: outcome.peers });
    }
    // Replies go out `replyConcurrency` at a time (a whole batch, by default). After a
    // passing failure (server down) no new reply starts; the mails answered so far are done
    // and deleted, the rest stays for the next pass.
    const answered: MailRef[] = [];
    let failure: { err: unknown } | undefined;
    let next = 0;
    const sendNext = async (): Promise<void> => {
      while (failure === undefined && next < admitted.length) {
        const { c, peers } = admitted[next++]!;
        try {
          await this.#reply(c, peers, role);
          this.#remember(`${c.who}\0${c.sessionId}`);
          answered.push(c.ref);
        } catch (err) {
          try {
            result[await this.#dispose(err, c.ref, "request")]++;
          } catch (err) {
            failure ??= { err };
          }
        }
      }
    };
    const workers = Math.max(1, Math.min(this.#o.replyConcurrency, admitted.length));
    await Promise.all(Array.from({ length: workers }, sendNext));
    if (failure !== undefined) {
      await this.#delete(answered, "request");
      result.answered += answered.length;
      throw failure.err;
    }
    await this.#introduce(plans, requests, answered);
    const cards = [...new Set(admitted.flatMap(({ c }) => c.request.hostCards))];
    if (cards.length > 0) {
      await this.#o.learnHosts?.(cards).catch((err) =>
        this.#o.logger.log("warn", `could not record the requests' host cards: ${err}`)
      );
    }
    return answered;
  }

  /**
   * Mails the planned introductions of the requests that were answered. Best effort: an
   * introduction that cannot be sent is logged and dropped, never allowed to hold up a reply.
   */
  async #introduce(
    plans: PlannedIntroduction[],
    requests: CheckedRequest[],
    answered: MailRef[],
  ): Promise<void> {
    const { keys, network, clock, onEvent, logger } = this.#o;
    for (const { requestIndex, target } of plans) {
      const c = requests[requestIndex]!;
      if (!answered.includes(c.ref) || target.introductionKey === undefined) continue;
      try {
        const now = clock.now();
        const punchStart = now + PUNCH_WINDOW_DELAY_MS;
        const block = await sealIntroduction({
          network,
          hostId: keys.ed25519.publicKey,
          sessionId: fromBase64Url(target.sessionId),
          createdAt: now,
          peer: {
            userId: c.who,
            identityKey: c.request.identityKey,
            candidates: candidatesOf(c.request),
          },
          peerSessionId: c.request.sessionId,
          punchStart,
          punchEnd: punchStart + PUNCH_WINDOW_MS,
        }, { hostKeys: keys, introductionKey: fromBase64Url(target.introductionKey) });
        await this.#o.sender.send({
          from: keys.email,
          to: [target.email],
          subject: subjectFor(network, "introduction"),
          text: bodyFor(network, "introduction", block),
          date: new Date(now),
        });
        onEvent({ event: "introduction-sent", userId: target.userId, peer: c.who });
      } catch (err) {
        if (!isMailpeerError(err) && !(err instanceof TypeError)) throw err;
        logger.log("warn", `could not introduce ${c.who} to ${target.userId}: ${err.message}`);
      }
    }
  }

  /** Records that a request was answered now, forgetting the oldest beyond the bound. */
  #remember(key: string): void {
    this.#replied.delete(key);
    this.#replied.set(key, this.#o.clock.now());
    for (const old of this.#replied.keys()) {
      if (this.#replied.size <= MAX_REMEMBERED_REPLIES) break;
      this.#replied.delete(old);
    }
  }

  /**
   * Seals and sends one reply; it says `role` only to a request that reads it, so any other
   * requester gets the same bytes as from a host without the role.
   */
  async #reply(c: CheckedRequest, peers: PeerRow[], role: ReplyRole | undefined): Promise<void> {
    const { keys, network, onEvent } = this.#o;
    const now = this.#o.clock.now();
    const says = role !== undefined && (c.request.reads ?? []).includes(REPLY_READS_ROLE);
    const reply = await sealReply({
      network,
      sessionId: c.request.sessionId,
      hostId: keys.ed25519.publicKey,
      createdAt: now,
      peers: peers.map(entryOf),
      ...(says ? { role } : {}),
    }, { hostKeys: keys, replyKey: c.request.replyKey });
    await this.#sendReply({
      from: keys.email,
      to: [c.mail.from],
      subject: subjectFor(network, "reply"),
      text: bodyFor(network, "reply", reply),
      date: new Date(now),
      ...(c.mail.messageId && MSG_ID.test(c.mail.messageId) ? { inReplyTo: c.mail.messageId } : {}),
    }, c.who);
    onEvent({
      event: "reply-sent",
      to: c.mail.from,
      userId: c.who,
      peers: peers.length,
      ...(says ? { role: { holder: role.holder, epoch: role.epoch } } : {}),
    });
    await this.#step("reply-sent", "request", c.ref);
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
}

/** One kind's mails of a pass's listing, and how far the batches cut so far reach. */
interface Lane {
  kind: "request" | "notice";
  refs: MailRef[];
  at: number;
}

/** A batch taken, fetched and checked: how many mails a shared mailbox gave (else undefined). */
interface PreparedBatch {
  kind: "request" | "notice";
  won: number | undefined;
  checked: (CheckedRequest | CheckedNotice)[];
}

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
  /**
   * With `sharedMailbox`: claims kept in the shared store instead of the mailbox (the mails
   * stay in place; docs/decisions.md "Claims in the shared store"). Default: mailbox claims.
   */
  claimLedger?: ClaimLedger;
  /** Told the host cards of every answered request, so the host learns of its pool. */
  learnHosts?: (cards: string[]) => Promise<unknown>;
  /**
   * Most mails handled together: fetched and checked, saved in one table update, answered,
   * then deleted at once. A crash repeats at most one batch's replies. Default
   * HOST_BATCH_SIZE.
   */
  batchSize?: number;
  /** Replies sent at the same time; default HOST_REPLY_CONCURRENCY (a whole batch). */
  replyConcurrency?: number;
  /** Where a process on a shared mailbox starts in the listing; default `Math.random`. */
  random?: () => number;
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
  /** Requests answered per hour over all users and senders. */
  requestsPerHour: number;
  /** New user ids (rows) the network may gain per hour. */
  newRowsPerHour: number;
}

/** The defaults of {@link HostLimits}. */
export const DEFAULT_HOST_LIMITS: Readonly<HostLimits> = Object.freeze({
  maxMailBytes: MAX_MAIL_BYTES,
  maxBlockBytes: MAX_BLOCK_BYTES,
  requestsPerUserPerHour: DEFAULT_REQUESTS_PER_USER_PER_HOUR,
  requestsPerSenderPerHour: DEFAULT_REQUESTS_PER_SENDER_PER_HOUR,
  requestsPerHour: DEFAULT_REQUESTS_PER_HOUR,
  newRowsPerHour: DEFAULT_NEW_ROWS_PER_HOUR,
});

/** A step of processing one mail, in order: the table is saved before the reply is sent, and
 * the mail deleted only after that. */
export interface HostStep {
  step: "fetched" | "table-saved" | "reply-sent" | "deleted";
  kind: "request" | "notice";
  /** The mail's id in the source. */
  id: string;
}
