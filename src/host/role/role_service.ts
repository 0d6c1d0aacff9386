/**
 * A member of a group with no standing host (docs/decisions.md "First receiver becomes host"):
 * it reads the group's shared mailbox, and the first member to claim a request there takes the
 * host role under a signed, expiring lease kept in that mailbox as a role mail
 * (host/role/role_mail.ts). While another member's lease runs, this member leaves the requests
 * to it; the holder renews its lease every third of the lease and after each pass that answered,
 * each time with its table, which every member merges into its own. When the holder goes away
 * its lease runs out, and the next member to claim a request takes the next epoch with the
 * table it already holds.
 *
 * @module
 */
import { isMailpeerError, MessageError } from "../../errors.ts";
import { type EventSink, silentSink } from "../../events.ts";
import { CLAIM_RECOVERY_MS, DEFAULT_ROLE_LEASE_MS, MAX_ROLE_MAILS } from "../../limits.ts";
import { type Logger, silentLogger } from "../../log.ts";
import { parseMail } from "../../mail/rfc5322/parse.ts";
import {
  type MailRef,
  type MailSender,
  type MailSource,
  matchesSubject,
  type SubjectMatch,
} from "../../mail/types.ts";
import { subjectFor } from "../../message/mail_text.ts";
import type { HostKeys } from "../../message/key_file.ts";
import { type Clock, systemClock } from "../../runtime.ts";
import type { Host } from "../host.ts";
import { waitForMailUntil } from "../host_service.ts";
import { syncRowProblem } from "../pool/request_proof.ts";
import { MAX_SYNC_MAIL_BYTES } from "../pool/sync_agent.ts";
import type { SnapshotPayload } from "../pool/sync_payload.ts";
import { mergeSyncRows } from "../pool/sync_merge.ts";
import { liveSyncRows } from "../pool/sync_snapshot.ts";
import type { TablePolicy } from "../table.ts";
import type { TableStore } from "../types.ts";
import { currentHolder, nextEpoch, type RoleLease } from "./role_lease.ts";
import { readRoleMail, roleMailBody, roleSubject } from "./role_mail.ts";

/** Options of {@link RoleService}. */
export interface RoleServiceOptions {
  /**
   * Answers the requests this member claimed: a Host on the shared mailbox with the network
   * keys and `sharedMailbox` false (this service claims before it hands mail over).
   */
  host: Host;
  sender: MailSender;
  store: TableStore;
  /** The group's network host key (members hold it; it signs leases, replies and tables). */
  keys: HostKeys;
  /** This member's name in leases (its terminal's user id). */
  member: string;
  policy: Pick<TablePolicy, "capacity" | "expiryMs">;
  allowPrivateAddresses?: boolean;
  /** How request and notice subjects are matched (config `subject_match`); default "exact". */
  subjectMatch?: SubjectMatch["mode"];
  /** How long a lease lasts unless renewed; default DEFAULT_ROLE_LEASE_MS. */
  leaseMs?: number;
  /** Claims older than this are put back (a member that died mid-pass); CLAIM_RECOVERY_MS. */
  claimRecoveryMs?: number;
  /** First wait after a failed pass, doubled per failure up to 30 s; default 500 ms. */
  retryDelayMs?: number;
  clock?: Clock;
  onEvent?: EventSink;
  logger?: Logger;
}

interface ReadLease {
  lease: RoleLease;
  ref: MailRef;
}

/** Runs one member: passes over the shared mailbox until stopped. */
export class RoleService {
  readonly #o: Required<Omit<RoleServiceOptions, "allowPrivateAddresses">> & {
    allowPrivateAddresses: boolean;
  };
  readonly #source: MailSource;
  readonly #network: string;
  /** Role mails read, by mail id (a mail is read once while it stays in the mailbox). */
  readonly #read = new Map<string, ReadLease>();
  /** Role mails set aside (bad, or over the size bound): never read again. */
  readonly #refused = new Set<string>();
  /** The leases seen, by epoch, holder and take time (the latest renewal), until they expire. */
  readonly #leases = new Map<string, RoleLease>();
  /** The highest epoch seen, expired leases included: the next taker goes one above. */
  #highestEpoch = 0;
  /** This member's lease while it holds the role. */
  #mine: RoleLease | undefined;
  /** The holder this member last deferred to, so `role-deferred` is said once per lease holder. */
  #deferredTo = "";
  #lastRecovery = -Infinity;

  constructor(options: RoleServiceOptions) {
    this.#o = {
      subjectMatch: "exact",
      leaseMs: DEFAULT_ROLE_LEASE_MS,
      claimRecoveryMs: CLAIM_RECOVERY_MS,
      retryDelayMs: 500,
      clock: systemClock,
      onEvent: silentSink,
      logger: silentLogger,
      allowPrivateAddresses: false,
      ...options,
    };
    this.#source = options.host.source;
    this.#network = options.host.network;
  }

  /** This member's lease while it holds the role, else undefined. */
  get lease(): RoleLease | undefined {
    return this.#mine;
  }

  /** Passes until `signal` aborts, waking on new mail and when the lease is due for renewal. */
  async run(options: { signal: AbortSignal }): Promise<void> {
    const { signal } = options;
    const { clock, onEvent, logger, retryDelayMs } = this.#o;
    let failures = 0;
    while (!signal.aborted) {
      try {
        await this.pass(signal);
        failures = 0;
        await waitForMailUntil(this.#source, clock, this.#renewalDue(), signal);
      } catch (err) {
        if (signal.aborted) break;
        if (!isMailpeerError(err)) throw err;
        onEvent({ event: "error", code: err.code, message: err.message });
        logger.log("error", err.message, { code: err.code });
        const delay = Math.min(30_000, retryDelayMs * 2 ** failures++);
        await clock.sleep(delay, signal).catch(() => {});
      }
    }
  }

  /** When the holder renews next: a third of the lease after the last renewal. */
  #renewalDue(): number | undefined {
    return this.#mine ? this.#mine.since + this.#o.leaseMs / 3 : undefined;
  }

  /**
   * One pass: read new role mails (merging their tables), decide who holds the role, and when
   * it is free or this member's, claim and answer the pending requests and notices.
   */
  async pass(signal?: AbortSignal): Promise<void> {
    const { clock, claimRecoveryMs, member, host, keys, onEvent } = this.#o;
    const source = this.#source;
    if (source.claims && clock.now() - this.#lastRecovery >= claimRecoveryMs) {
      this.#lastRecovery = clock.now();
      await source.recoverClaims(claimRecoveryMs);
    }
    const listing = await source.list(
      { subject: `[mailpeer] ${this.#network} `, mode: "prefix" },
      signal ? { signal } : {},
    );
    const roleMails = listing.filter((r) => r.subject === roleSubject(this.#network));
    await this.#readRoleMails(roleMails, signal);
    const now = clock.now();
    // Leases are remembered after their mails are gone: between a holder's new mail and the
    // deletion of its old one, a listing may show neither.
    for (const [key, lease] of this.#leases) if (lease.until <= now) this.#leases.delete(key);
    const leases = [...this.#leases.values()];
    if (this.#mine) leases.push(this.#mine);
    const current = currentHolder(leases, now);
    if (current !== undefined && current.holder !== member) {
      if (this.#mine) {
        onEvent({ event: "role-lost", epoch: this.#mine.epoch, holder: current.holder });
      }
      this.#mine = undefined;
      const key = `${current.epoch}:${current.holder}`;
      if (this.#deferredTo !== key) {
        this.#deferredTo = key;
        onEvent({ event: "role-deferred", epoch: current.epoch, holder: current.holder });
      }
      return;
    }
    await this.#dropSuperseded();
    // only what the host answers: other mailpeer mail here is no member's to take
    const pending = listing.filter((r) =>
      (["request", "notice"] as const).some((kind) =>
        matchesSubject(r.subject, {
          subject: subjectFor(this.#network, kind),
          mode: this.#o.subjectMatch,
        })
      )
    );
    // Free role and nothing to answer: nobody needs a host yet.
    if (current === undefined && this.#mine === undefined && pending.length === 0) return;
    const claimed = pending.length > 0 ? await source.claimMany(pending) : [];
    if (this.#mine === undefined || this.#mine.until <= now) {
      // The role is free: the member that claimed a request takes it.
      if (claimed.length === 0) return;
      this.#mine = {
        network: this.#network,
        epoch: nextEpoch(leases, this.#highestEpoch),
        holder: member,
        taken: now,
        since: now,
        until: now + this.#o.leaseMs,
      };
      this.#deferredTo = "";
      onEvent({ event: "role-taken", epoch: this.#mine.epoch, holder: member });
      await this.#publish(true);
    }
    // The replies say who answered in the role, to requests that read it (docs/protocol.md
    // "Reply extensions"): later terminals mail the holder's card, the shared mailbox.
    const mine = this.#mine;
    const role = { holder: member, epoch: mine.epoch, until: mine.until, address: keys.email };
    const answered = claimed.length > 0
      ? (await host.processPending({
        listing: claimed,
        role,
        ...(signal ? { signal } : {}),
      })).answered
      : 0;
    if (answered > 0 || now >= this.#renewalDue()!) await this.#publish(false);
  }

  /**
   * Mails this member's (renewed) lease with its table to the shared mailbox. The role mails it
   * supersedes go once it is in the mailbox (`#dropSuperseded`).
   */
  async #publish(taking: boolean): Promise<void> {
    const { clock, keys, store, sender, policy, onEvent } = this.#o;
    const now = clock.now();
    const mine = this.#mine!;
    // Each role mail's lease ends strictly later than the one before (a millisecond more at
    // most), so the holder's newest role mail is the one with the latest `until`, even when two
    // are sent within one millisecond (`#dropSuperseded` relies on it).
    if (!taking) {
      const since = Math.max(now, mine.since + 1);
      this.#mine = { ...mine, since, until: since + this.#o.leaseMs };
    }
    const rows = liveSyncRows(await store.read(), { now, network: this.#network, policy });
    const body = await roleMailBody(this.#mine!, rows, keys, now);
    await sender.send({
      from: keys.email,
      to: [keys.email],
      subject: roleSubject(this.#network),
      text: body.text,
    });
    const sent = this.#mine!;
    onEvent({
      event: "role-sent",
      epoch: sent.epoch,
      holder: sent.holder,
      until: sent.until,
      rows: body.rows,
    });
  }

  /**
   * The holder deletes the role mails its own newest role mail supersedes, once that mail is in
   * the mailbox (read this pass): the mailbox never goes without a role mail, so a member that
   * has not read any lease yet cannot list an empty mailbox between the two and take a role that
   * is held (docs/decisions.md "First receiver becomes host").
   */
  async #dropSuperseded(): Promise<void> {
    const mine = this.#mine;
    if (mine === undefined) return;
    let newest: RoleLease | undefined;
    for (const { lease } of this.#read.values()) {
      if (lease.holder === mine.holder && lease.epoch === mine.epoch) {
        if (newest === undefined || lease.until > newest.until) newest = lease;
      }
    }
    if (newest === undefined) return;
    const done = [...this.#read.values()]
      .filter(({ lease }) => lease !== newest && lease.until <= newest.until)
      .map(({ ref }) => ref);
    if (done.length === 0) return;
    await this.#source.deleteMany(done);
    for (const r of done) this.#read.delete(r.id);
  }

  /** Reads the role mails not read yet (at most MAX_ROLE_MAILS a pass), merging their tables. */
  async #readRoleMails(refs: readonly MailRef[], signal?: AbortSignal): Promise<void> {
    const { keys, clock, onEvent, logger } = this.#o;
    const present = new Set(refs.map((r) => r.id));
    for (const id of this.#read.keys()) if (!present.has(id)) this.#read.delete(id);
    const fresh = refs.filter((r) => !this.#read.has(r.id) && !this.#refused.has(r.id))
      .slice(0, MAX_ROLE_MAILS);
    for (const ref of fresh) {
      // a server failure propagates (the mail is read next pass); a bad mail is set aside
      const raw = ref.size !== undefined && ref.size > MAX_SYNC_MAIL_BYTES
        ? undefined
        : await this.#source.fetch(ref, signal ? { signal } : {});
      try {
        if (raw === undefined) {
          throw new MessageError(
            "EPAYLOAD",
            `Cannot read the role mail: ${ref.size} bytes is over ${MAX_SYNC_MAIL_BYTES}; ignore it`,
          );
        }
        const mail = await parseMail(raw, { maxBytes: MAX_SYNC_MAIL_BYTES });
        const read = await readRoleMail(mail.text, {
          keys,
          network: this.#network,
          now: clock.now(),
        });
        this.#read.set(ref.id, { lease: read.lease, ref });
        this.#remember(read.lease);
        await this.#merge(read.lease, read.snapshot);
      } catch (err) {
        if (!isMailpeerError(err)) throw err;
        this.#refused.add(ref.id);
        logger.log("warn", err.message, { code: err.code });
        onEvent({
          event: "quarantined",
          subject: ref.subject,
          code: err.code,
          reason: err.message,
        });
        await this.#source.quarantine(ref, err.message).catch(() => {});
      }
    }
  }

  #remember(lease: RoleLease): void {
    this.#highestEpoch = Math.max(this.#highestEpoch, lease.epoch);
    const key = `${lease.epoch}|${lease.holder}|${lease.taken}`;
    const known = this.#leases.get(key);
    if (known === undefined || known.until < lease.until) this.#leases.set(key, lease);
  }

  /** Merges a role mail's table into this member's, each row checked against its signed request. */
  async #merge(lease: RoleLease, snapshot: SnapshotPayload): Promise<void> {
    const { store, clock, policy, allowPrivateAddresses, logger, onEvent } = this.#o;
    const proven: SnapshotPayload["rows"] = [];
    for (const row of snapshot.rows) {
      const problem = await syncRowProblem(row);
      if (problem === undefined) proven.push(row);
      else {
        logger.log("warn", `row of ${row.userId} not merged: ${problem}`, { code: "ESIGNATURE" });
      }
    }
    const now = clock.now();
    const changed = await store.update((rows) => {
      const merged = mergeSyncRows(rows, proven, {
        now,
        network: this.#network,
        policy,
        allowPrivateAddresses,
      });
      return { rows: merged.rows, result: merged.changed };
    });
    onEvent({
      event: "role-merged",
      holder: lease.holder,
      epoch: lease.epoch,
      until: lease.until,
      rows: snapshot.rows.length,
      changed,
    });
  }
}
