/**
 * Table sync between the hosts of a pool (docs/design.md "Host pool"), by mail under the subject
 * `[mailpeer] <network> sync`:
 *
 * - **bootstrap**: a new host mails a *table request* to the hosts it trusts
 *   ({@link SyncAgent.requestTables}); each answers with *snapshots* of its live table.
 * - **periodic push**: every host mails snapshots to the hosts it trusts
 *   ({@link SyncAgent.pushSnapshots}).
 * - **merge**: a snapshot from a trusted host is merged row by row, keyed by network + user
 *   id; the newer request wins ({@link mergeSyncRows}, in host/pool/sync_merge.ts).
 *
 * - **links**: configured linked hosts (`links`) are synced with like the pool, but rows also
 *   travel on: rows newly merged from one partner are forwarded at once to the others (never
 *   back, each at most once, within the hop bound and a per-partner rate), so a row entered at A
 *   reaches C through B (docs/decisions.md "Linked hosts"; the memory is host/pool/link_routes.ts).
 *
 * Who is trusted is kept by a {@link HostDirectory} (see host/pool/host_directory.ts). Sync mail that is
 * invalid, forged or from a host that may not send it is never acted on and goes to quarantine
 * with a log line; mail is deleted only once it was handled, so a crash repeats work but never
 * loses it (merging is idempotent). Reading one sync mail is in host/pool/sync_mail.ts, what a snapshot
 * carries in host/pool/sync_snapshot.ts.
 *
 * @module
 */
import { MailError, MessageError } from "../../errors.ts";
import { type EventSink, silentSink } from "../../events.ts";
import { MAX_HOST_CARDS } from "../../protocol.ts";
import { type Logger, silentLogger } from "../../log.ts";
import {
  type MailRef,
  type MailSender,
  type MailSource,
  matchesSubject,
  type SubjectMatch,
} from "../../mail/types.ts";
import { toBase64Url } from "../../message/base64.ts";
import { bytesEqual } from "../../message/bytes.ts";
import { formatHostCard, type HostCard, parseHostCard } from "../../message/host_card.ts";
import { hostCardOf, type HostKeys } from "../../message/key_file.ts";
import { subjectFor } from "../../message/mail_text.ts";
import {
  MAX_SYNC_BLOCK_BYTES,
  type SnapshotPayload,
  type SyncPayload,
  type SyncRow,
} from "./sync_payload.ts";
import {
  DEFAULT_FORWARDS_PER_HOUR,
  DEFAULT_MAX_HOPS,
  LEARNED_ANSWERS_PER_HOUR,
  RATE_WINDOW_MS,
} from "../../limits.ts";
import { type Clock, systemClock } from "../../runtime.ts";
import { LinkRoutes, routeKey } from "./link_routes.ts";
import { writeAtomically } from "../store/atomic_file.ts";
import type { HostDirectory } from "./host_directory.ts";
import { syncRowProblem } from "./request_proof.ts";
import { mergeSyncRows } from "./sync_merge.ts";
import { openSyncMail, syncMailOf, SyncRejected } from "./sync_mail.ts";
import { liveSyncRows, paginateSnapshot } from "./sync_snapshot.ts";
import { DEFAULT_TABLE_POLICY, type TablePolicy } from "../table.ts";
import type { PeerRow, TableStore } from "../types.ts";

/** Largest raw sync mail fetched: a full sync block, armored, plus headers (proposed limit). */
export const MAX_SYNC_MAIL_BYTES = Math.ceil(MAX_SYNC_BLOCK_BYTES / 3 * 4 * 66 / 64) + 16_384;
/** Default least time between two snapshots answering table requests of one host, in ms. */
export const DEFAULT_MIN_ANSWER_INTERVAL_MS = 60_000;

/** Everything a sync agent needs. */
export interface SyncAgentOptions {
  keys: HostKeys;
  network: string;
  source: MailSource;
  sender: MailSender;
  store: TableStore;
  directory: HostDirectory;
  /** Subject matching mode; default `exact`. */
  subjectMatch?: SubjectMatch["mode"];
  /**
   * Answer table requests of hosts we do not know, and trust them from then on (an open pool);
   * default false: only hosts in the directory are answered, only trusted ones trusted.
   */
  acceptUnknownHosts?: boolean;
  /** Merge rows with loopback, private or link-local endpoints (a LAN party); default false. */
  allowPrivateAddresses?: boolean;
  /** Least time between two answers to one host's table requests, in ms; default 60 s. */
  minAnswerIntervalMs?: number;
  /** Largest sync mail fetched; default `MAX_SYNC_MAIL_BYTES`. */
  maxMailBytes?: number;
  /**
   * Linked hosts (`host.links`): synced with like the pool, and rows merged from one partner
   * are forwarded to the others; their snapshots' cards are not trusted. Default none.
   */
  links?: HostCard[];
  /** Most hops a merged row may have made (this host's cap); default DEFAULT_MAX_HOPS. */
  maxHops?: number;
  /** Forwarding mails to one partner per hour; default DEFAULT_FORWARDS_PER_HOUR; 0: none. */
  forwardsPerHour?: number;
  /**
   * Where the routes of synced rows are kept between runs (host/pool/link_routes.ts); default:
   * in memory only (a run that did not merge a row counts it as 1 hop from an unknown host).
   */
  routesFile?: string;
  /** Table capacity and expiry; defaults from limits.ts. */
  policy?: Partial<TablePolicy>;
  clock?: Clock;
  onEvent?: EventSink;
  logger?: Logger;
}

/** What one pass over the sync mail did. */
export interface SyncPassResult {
  /** Table requests answered with snapshots. */
  answered: number;
  /** Snapshots merged. */
  merged: number;
  /** Rows added or changed by those snapshots. */
  rows: number;
  quarantined: number;
  /** Sync mail deleted unused: older than the expiry, or a too-frequent table request. */
  stale: number;
}

/** A host this host syncs with: the pool (trusted in the directory) or a configured link. */
interface Partner {
  card: HostCard;
  /** The host id, base64url. */
  id: string;
  kind: "pool" | "link";
}

/** What this host knows of a sending host. */
type KnownHost = { card: HostCard; id: string; trust: "pool" | "link" | "learned" };

/** How many sync mails went out, and to how many hosts sending failed. */
export interface SyncSendResult {
  sent: number;
  failed: number;
}

/**
 * Exchanges control tables with the other hosts of the pool.
 *
 * @example A host that trusts one other host, bootstraps from it, then keeps it current
 * ```ts
 * import { MaildirPostOffice } from "../../mail/maildir/post_office.ts";
 * import { MaildirSender } from "../../mail/maildir/sender.ts";
 * import { MaildirSource } from "../../mail/maildir/source.ts";
 * import { generateHostKeys, hostCardOf } from "../../message/key_file.ts";
 * import { MemoryHostDirectory } from "./host_directory.ts";
 * import { MemoryStore } from "../store/memory_store.ts";
 * import { SyncAgent } from "./sync_agent.ts";
 *
 * const office = new MaildirPostOffice(await Deno.makeTempDir());
 * const keys = await generateHostKeys("b@hosts.example");
 * const other = hostCardOf(await generateHostKeys("a@hosts.example"));
 * const directory = new MemoryHostDirectory({ self: hostCardOf(keys) });
 * await directory.add([other], { trusted: true }); // from the configuration
 * const agent = new SyncAgent({
 *   keys,
 *   network: "lan-party",
 *   source: new MaildirSource(await office.ensureMailbox(keys.email)),
 *   sender: new MaildirSender(office),
 *   store: new MemoryStore(),
 *   directory,
 * });
 * await agent.requestTables(); // { sent: 1, failed: 0 }
 * await agent.processPending(); // merges the snapshots that came back
 * await agent.pushSnapshots(); // periodically
 * ```
 */
export class SyncAgent {
  readonly #o:
    & Required<Omit<SyncAgentOptions, "policy" | "routesFile">>
    & { policy: TablePolicy; routesFile?: string };
  readonly #card: HostCard;
  /** When each host's table request (by host id) was last answered. */
  readonly #answered = new Map<string, number>();
  /** When table requests of learned hosts were answered, within the last hour. */
  #learnedAnswers: number[] = [];
  #routes: LinkRoutes;
  /** Whether the routes file was read (once per agent). */
  #routesRead = false;

  constructor(options: SyncAgentOptions) {
    this.#o = {
      subjectMatch: "exact",
      acceptUnknownHosts: false,
      allowPrivateAddresses: false,
      minAnswerIntervalMs: DEFAULT_MIN_ANSWER_INTERVAL_MS,
      maxMailBytes: MAX_SYNC_MAIL_BYTES,
      links: [],
      maxHops: DEFAULT_MAX_HOPS,
      forwardsPerHour: DEFAULT_FORWARDS_PER_HOUR,
      clock: systemClock,
      onEvent: silentSink,
      logger: silentLogger,
      ...options,
      policy: { ...DEFAULT_TABLE_POLICY, ...options.policy },
    };
    this.#card = hostCardOf(options.keys);
    this.#routes = new LinkRoutes({
      maxHops: this.#o.maxHops,
      forwardsPerHour: this.#o.forwardsPerHour,
    });
  }

  /**
   * Records the host cards a terminal's request named (`hostCards`, signed by the terminal) as
   * *learned*. With `recipients` (the To and Cc addresses of the requests, host/pool/recipient_tap.ts)
   * only cards whose address is among them are learned: the hosts the terminal mailed together
   * with this one, as the patent has hosts learn of each other. A recipient without such a card
   * is never learned (an address alone cannot be sealed to, and is never mailed). A learned
   * host is not synced with; its table request is answered within `LEARNED_ANSWERS_PER_HOUR`
   * (docs/decisions.md "Hosts learned from a request's recipients"). Bad cards are logged and
   * skipped. Resolves with how many cards were new.
   */
  async learn(cards: string[], options: { recipients?: readonly string[] } = {}): Promise<number> {
    const { directory, logger, onEvent } = this.#o;
    const recipients = options.recipients === undefined
      ? undefined
      : new Set(options.recipients.map((r) => r.toLowerCase()));
    const parsed: HostCard[] = [];
    for (const text of cards) {
      let card: HostCard;
      try {
        card = parseHostCard(text);
      } catch (err) {
        if (!(err instanceof MessageError)) throw err;
        logger.log("warn", `host card not learned: ${err.message}`, { code: err.code });
        continue;
      }
      if (recipients !== undefined && !recipients.has(card.email.toLowerCase())) {
        logger.log(
          "info",
          `host card of ${card.email} not learned: the request was not mailed to it`,
        );
        continue;
      }
      parsed.push(card);
    }
    if (parsed.length === 0) return 0;
    const before = new Set((await directory.list()).map((c) => toBase64Url(c.ed25519)));
    const added = await directory.add(parsed);
    if (added > 0) {
      for (const card of await directory.list()) {
        if (before.has(toBase64Url(card.ed25519))) continue;
        if (!parsed.some((p) => bytesEqual(p.ed25519, card.ed25519))) continue;
        onEvent({ event: "host-learned", email: card.email, trusted: false });
      }
    }
    return added;
  }

  /** The hosts this host syncs with: its trusted directory and its links, never itself. */
  async #partners(): Promise<Partner[]> {
    const out = new Map<string, Partner>();
    const self = toBase64Url(this.#card.ed25519);
    for (const card of await this.#o.directory.list({ trustedOnly: true })) {
      const id = toBase64Url(card.ed25519);
      if (id !== self) out.set(id, { card, id, kind: "pool" });
    }
    for (const card of this.#o.links) {
      const id = toBase64Url(card.ed25519);
      if (id !== self && !out.has(id)) out.set(id, { card, id, kind: "link" });
    }
    return [...out.values()];
  }

  /** Mails a table request to every trusted host (bootstrap of a new or restarted host). */
  async requestTables(options: { signal?: AbortSignal } = {}): Promise<SyncSendResult> {
    const { keys, network, clock } = this.#o;
    const hosts = (await this.#partners()).map((p) => p.card);
    const card = formatHostCard(this.#card);
    return await this.#sendEach(hosts, options.signal, () => [{
      network,
      hostId: keys.ed25519.publicKey,
      createdAt: clock.now(),
      kind: "table-request",
      card,
    }]);
  }

  /**
   * Mails snapshots of the live table (no e-mail addresses; failure flags kept) and of the
   * trusted host cards to every trusted and linked host: to each, the rows that did not come
   * from it and stay within the hop bound. A large table goes in several snapshots.
   */
  async pushSnapshots(options: { signal?: AbortSignal } = {}): Promise<SyncSendResult> {
    const partners = await this.#partners();
    if (partners.length === 0) return { sent: 0, failed: 0 };
    await this.#readRoutes();
    const table = await this.#o.store.read();
    this.#routes.prune(table);
    await this.#writeRoutes();
    const pages = new Map<string, SnapshotPayload[]>();
    for (const p of partners) pages.set(p.id, await this.#snapshotPages(table, p.id));
    return await this.#sendEach(
      partners.map((p) => p.card),
      options.signal,
      (to) => pages.get(toBase64Url(to.ed25519)) ?? [],
    );
  }

  /** True while the table is empty: a new host, which asks its pool for tables first. */
  async isNew(): Promise<boolean> {
    return (await this.#o.store.read()).length === 0;
  }

  /**
   * Handles every pending sync mail once: answers table requests, merges snapshots, and
   * quarantines the rest. Rejects only on failures that leave the mail in place for the next
   * pass (table, sending, connection).
   *
   * With `listing`, the refs of a listing the caller just made with a match that covers sync
   * mail (such as the host's `[mailpeer] <network> ` prefix), the sync mails among them are
   * handled without listing the mailbox again; sync mail that arrived after that listing waits
   * for the next pass.
   */
  async processPending(
    options: { signal?: AbortSignal; listing?: readonly MailRef[] } = {},
  ): Promise<SyncPassResult> {
    const result: SyncPassResult = { answered: 0, merged: 0, rows: 0, quarantined: 0, stale: 0 };
    await this.#readRoutes();
    const match: SubjectMatch = {
      subject: subjectFor(this.#o.network, "sync"),
      mode: this.#o.subjectMatch,
    };
    const refs = options.listing === undefined
      ? await this.#o.source.list(match, options)
      : options.listing.filter((ref) => matchesSubject(ref.subject, match));
    try {
      for (const ref of refs) {
        options.signal?.throwIfAborted();
        await this.#processOne(ref, result, options.signal);
      }
    } finally {
      if (result.merged > 0) await this.#writeRoutes();
    }
    return result;
  }

  /** Reads the routes file once, if there is one; a missing or unreadable file starts afresh. */
  async #readRoutes(): Promise<void> {
    const file = this.#o.routesFile;
    if (this.#routesRead || file === undefined) return;
    this.#routesRead = true;
    let data: unknown;
    try {
      data = JSON.parse(await Deno.readTextFile(file));
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return;
      data = undefined;
    }
    const options = { maxHops: this.#o.maxHops, forwardsPerHour: this.#o.forwardsPerHour };
    const read = LinkRoutes.fromJSON(data, options);
    if (read === undefined) {
      this.#o.logger.log("warn", `${file} is not a routes file: synced rows count as 1 hop`);
      return;
    }
    this.#routes = read;
  }

  /** Keeps the routes for the next run; a failure costs only precision, so it is logged. */
  async #writeRoutes(): Promise<void> {
    const file = this.#o.routesFile;
    if (file === undefined) return;
    const bytes = new TextEncoder().encode(JSON.stringify(this.#routes.toJSON()));
    await writeAtomically(file, bytes, "the link routes").catch((err) =>
      this.#o.logger.log("warn", `link routes not kept: ${err.message}`, { code: err.code })
    );
  }

  async #processOne(ref: MailRef, result: SyncPassResult, signal?: AbortSignal): Promise<void> {
    const { source, logger, onEvent, maxMailBytes } = this.#o;
    try {
      if (ref.size !== undefined && ref.size > maxMailBytes) {
        throw new SyncRejected(
          "EMAIL",
          `sync mail of ${ref.size} bytes is over ${maxMailBytes}`,
          "quarantine",
        );
      }
      const raw = await source.fetch(ref, signal ? { signal } : {});
      const { keys, network, clock, policy } = this.#o;
      const { payload, messageId } = await openSyncMail(raw, {
        keys,
        network,
        clock,
        expiryMs: policy.expiryMs,
        maxMailBytes,
      });
      if (payload.kind === "table-request") {
        await this.#answer(payload, messageId, signal);
        result.answered++;
      } else {
        result.rows += await this.#merge(payload, signal);
        result.merged++;
      }
      await source.delete(ref);
    } catch (err) {
      if (!(err instanceof SyncRejected)) throw err;
      logger.log("warn", `sync mail not used: ${err.message}`, {
        subject: ref.subject,
        code: err.code,
      });
      if (err.disposal === "delete") {
        await source.delete(ref);
        result.stale++;
        return;
      }
      await source.quarantine(ref, err.message);
      onEvent({ event: "quarantined", subject: ref.subject, code: err.code, reason: err.message });
      result.quarantined++;
    }
  }

  async #hostOf(hostId: Uint8Array): Promise<KnownHost | undefined> {
    const id = toBase64Url(hostId);
    const partner = (await this.#partners()).find((p) => p.id === id);
    if (partner) return { card: partner.card, id, trust: partner.kind };
    const learned = (await this.#o.directory.list()).find((c) => bytesEqual(c.ed25519, hostId));
    return learned ? { card: learned, id, trust: "learned" } : undefined;
  }

  async #answer(
    payload: SyncPayload & { kind: "table-request" },
    messageId: string | undefined,
    signal?: AbortSignal,
  ): Promise<void> {
    const { acceptUnknownHosts, clock, directory, minAnswerIntervalMs, logger } = this.#o;
    const id = toBase64Url(payload.hostId);
    const known = await this.#hostOf(payload.hostId);
    if (known === undefined && !acceptUnknownHosts) {
      throw new SyncRejected(
        "ESIGNATURE",
        `table request from ${id}, a host not in this host's pool (host.accept_unknown_hosts)`,
        "quarantine",
      );
    }
    const now = clock.now();
    const last = this.#answered.get(id);
    if (last !== undefined && now - last < minAnswerIntervalMs) {
      throw new SyncRejected(
        "ERATE",
        `table request of ${id} repeats one answered at ${last}`,
        "delete",
      );
    }
    // A learned host is a stranger's word (anyone can send a request): few answers in all.
    if (known?.trust === "learned" && !acceptUnknownHosts) {
      this.#learnedAnswers = this.#learnedAnswers.filter((at) => at > now - RATE_WINDOW_MS);
      if (this.#learnedAnswers.length >= LEARNED_ANSWERS_PER_HOUR) {
        throw new SyncRejected(
          "ERATE",
          `table request of ${id}, a learned host, over ${LEARNED_ANSWERS_PER_HOUR} such answers an hour`,
          "delete",
        );
      }
      this.#learnedAnswers.push(now);
    }
    // The card in the request is signed by the host itself: its own word on where to reach a
    // pool host (or an open pool's). A link is answered at its configured card, and a learned
    // host only at the card a request was mailed to: its own word could name anyone's address.
    const signed = parseHostCard(payload.card);
    const own = known?.trust === "pool" || (known?.trust !== "link" && acceptUnknownHosts);
    if (own) await directory.add([signed], { trusted: true });
    const card = own || known === undefined ? signed : known.card;
    const pages = await this.#snapshotPages(await this.#o.store.read(), id);
    for (const page of pages) {
      await this.#send(page, card, messageId, signal);
    }
    this.#answered.set(id, now);
    logger.log("info", `table request of ${card.email} answered with ${pages.length} snapshot(s)`);
    this.#o.onEvent({ event: "sync-answered", to: card.email, snapshots: pages.length });
  }

  async #merge(payload: SnapshotPayload, signal?: AbortSignal): Promise<number> {
    const { directory, store, clock, policy, network, allowPrivateAddresses, logger } = this.#o;
    const known = await this.#hostOf(payload.hostId);
    const id = toBase64Url(payload.hostId);
    if (known === undefined || known.trust === "learned") {
      throw new SyncRejected(
        "ESIGNATURE",
        `snapshot from ${id}, a host this host does not trust; add its card to host.pool or host.links`,
        "quarantine",
      );
    }
    // Only rows their terminal signed are merged: a trusted host cannot inject or alter rows.
    const proven: SnapshotPayload["rows"] = [];
    const maxHops = this.#routes.maxHops;
    for (const row of payload.rows) {
      // The hop bound is this host's, whatever the sender's: a row from too far is refused.
      if ((row.hops ?? 1) > maxHops) {
        logger.log(
          "warn",
          `synced row of ${row.userId} not merged: ${row.hops} hops, over ${maxHops}`,
          {
            code: "EPOLICY",
            from: known.card.email,
          },
        );
        continue;
      }
      const problem = await syncRowProblem(row);
      if (problem === undefined) {
        proven.push(row);
        continue;
      }
      logger.log("warn", `synced row of ${row.userId} not merged: ${problem}`, {
        code: "ESIGNATURE",
        from: known.card.email,
      });
    }
    const now = clock.now();
    const incoming = new Map(proven.map((r) => [routeKey(syncKeyOf(r)), r]));
    const { changed, fresh, table } = await store.update((rows) => {
      const before = new Set(rows.map(routeKey));
      const merged = mergeSyncRows(rows, proven, {
        now,
        network,
        policy,
        allowPrivateAddresses,
        onRefused: (_row, code, reason) =>
          logger.log("warn", `synced row not merged: ${reason}`, { code, from: known.card.email }),
      });
      // Rows of a request this host had not seen: the only ones that travel on at once.
      const fresh = merged.rows.filter((r) =>
        !before.has(routeKey(r)) && incoming.has(routeKey(r))
      );
      return { rows: merged.rows, result: { changed: merged.changed, fresh, table: merged.rows } };
    });
    this.#routes.prune(table);
    for (const row of fresh) {
      this.#routes.record(row, { from: id, hops: incoming.get(routeKey(row))?.hops ?? 1 });
    }
    // The sender's own card is signed by it; the others are vouched for by a trusted (pool)
    // host. A link vouches for nobody: trust does not travel along links.
    if (known.trust === "pool") {
      await directory.add(payload.cards.map((c) => parseHostCard(c)), { trusted: true });
    }
    logger.log("info", `snapshot of ${known.card.email} merged: ${changed} row(s) changed`, {
      rows: payload.rows.length,
    });
    this.#o.onEvent({
      event: "sync-merged",
      from: known.card.email,
      rows: payload.rows.length,
      changed,
    });
    await this.#forward(fresh, known, signal);
    return changed;
  }

  /**
   * Sends rows just merged from `from` on to the other partners at once: a link's rows to
   * every other partner, a pool host's rows to the links only (the pool has them from it).
   * Each row goes to a partner at most once and never back; a partner over its hourly
   * forwarding budget gets them with the next periodic push instead. Best effort: a failed
   * forward is logged, and the periodic push repairs it.
   */
  async #forward(fresh: PeerRow[], from: KnownHost, signal?: AbortSignal): Promise<void> {
    if (fresh.length === 0) return;
    const { clock, logger, onEvent } = this.#o;
    const partners = (await this.#partners())
      .filter((p) => p.id !== from.id && (from.trust === "link" || p.kind === "link"));
    for (const p of partners) {
      const rows = fresh.filter((r) => this.#routes.mayForward(r, p.id));
      if (rows.length === 0) continue;
      if (!this.#routes.takeForward(p.id, clock.now())) {
        logger.log("info", `${rows.length} row(s) for ${p.card.email} wait for the periodic push`, {
          code: "ERATE",
        });
        continue;
      }
      const pages = await this.#snapshotPages(rows, p.id);
      const sent = await this.#sendEach([p.card], signal, () => pages);
      if (sent.failed > 0) continue;
      this.#routes.forwarded(rows, p.id);
      onEvent({
        event: "sync-forwarded",
        to: p.card.email,
        from: from.card.email,
        rows: rows.length,
      });
    }
  }

  /**
   * Snapshots of `table`'s live rows for the host `to` (host id): the rows that may go there
   * (not back where they came from, within the hop bound), each with its next hop count,
   * split so each fits a sync block.
   */
  async #snapshotPages(table: readonly PeerRow[], to: string): Promise<SnapshotPayload[]> {
    const { clock, policy, network, keys, directory, logger } = this.#o;
    const now = clock.now();
    const going = table.filter((r) => this.#routes.mayGo(r, to));
    const hops = new Map(going.map((r) => [routeKey(r), this.#routes.routeOf(r).hops + 1]));
    const rows = liveSyncRows(going, {
      now,
      network,
      policy,
      onSkip: (row) =>
        logger.log(
          "warn",
          `row of ${row.userId} not synced: it has no signed request, or its keys are not base64url`,
        ),
    }).map((r) => ({ ...r, hops: hops.get(routeKey(syncKeyOf(r))) ?? 1 }));
    const others = (await directory.list({ trustedOnly: true }))
      .map(formatHostCard)
      .slice(0, MAX_HOST_CARDS - 1);
    const cards = [formatHostCard(this.#card), ...others];
    return paginateSnapshot(rows, {
      network,
      hostId: keys.ed25519.publicKey,
      createdAt: now,
      cards,
    });
  }

  async #sendEach(
    hosts: HostCard[],
    signal: AbortSignal | undefined,
    build: (to: HostCard) => SyncPayload[],
  ): Promise<SyncSendResult> {
    const result: SyncSendResult = { sent: 0, failed: 0 };
    for (const host of hosts) {
      signal?.throwIfAborted();
      try {
        for (const payload of build(host)) {
          await this.#send(payload, host, undefined, signal);
          result.sent++;
          this.#o.onEvent({
            event: "sync-sent",
            to: host.email,
            kind: payload.kind,
            rows: payload.kind === "snapshot" ? payload.rows.length : 0,
          });
        }
      } catch (err) {
        if (!(err instanceof MailError || err instanceof MessageError)) throw err;
        result.failed++;
        this.#o.onEvent({ event: "error", code: err.code, message: err.message });
        this.#o.logger.log("error", err.message, { code: err.code, to: host.email });
      }
    }
    return result;
  }

  async #send(
    payload: SyncPayload,
    to: HostCard,
    inReplyTo: string | undefined,
    signal?: AbortSignal,
  ): Promise<void> {
    const { keys, network, sender, clock } = this.#o;
    const date = new Date(clock.now());
    const mail = await syncMailOf(payload, { keys, network, to, date, inReplyTo });
    await sender.send(mail, signal ? { signal } : {});
  }
}

/** The route key of a synced row (its session id as the table writes it). */
function syncKeyOf(row: SyncRow): { network: string; userId: string; sessionId: string } {
  return { network: row.network, userId: row.userId, sessionId: toBase64Url(row.sessionId) };
}
