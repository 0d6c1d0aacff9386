/**
 * What a {@link Host} is given and what it reports: its options, limits, steps and the counts
 * of one pass.
 *
 * @module
 */
import type { EventSink } from "../events.ts";
import {
  DEFAULT_NEW_ROWS_PER_HOUR,
  DEFAULT_REQUESTS_PER_HOUR,
  DEFAULT_REQUESTS_PER_SENDER_PER_HOUR,
  DEFAULT_REQUESTS_PER_USER_PER_HOUR,
  MAX_BLOCK_BYTES,
  MAX_MAIL_BYTES,
} from "../limits.ts";
import type { Logger } from "../log.ts";
import type { MailSender, MailSource, SubjectMatch } from "../mail/types.ts";
import type { HostKeys } from "../message/key_file.ts";
import type { Clock } from "../runtime.ts";
import type { TablePolicy } from "./table.ts";
import type { TableStore } from "./types.ts";

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
  /**
   * Most mails handled together: fetched and checked, saved in one table update, answered,
   * then deleted at once. A crash repeats at most one batch's replies. Default
   * HOST_BATCH_SIZE.
   */
  batchSize?: number;
  /** Replies sent at the same time; default HOST_REPLY_CONCURRENCY (the SMTP pool's size). */
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
