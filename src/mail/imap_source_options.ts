/**
 * The options of `ImapSource` (imap_source.ts).
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { Backoff, Clock } from "../runtime.ts";

/** Options of `ImapSource`. */
export interface ImapSourceOptions {
  /** Mailbox to read. Default: `INBOX`. */
  mailbox?: string;
  /** Folder that quarantined mail is moved to, created when missing. Default: `Quarantine`. */
  quarantine?: string;
  /** Wait for mail with IMAP IDLE (else NOOP polling). Default: true. */
  idle?: boolean;
  /** NOOP poll interval when `idle` is false (or the server lacks IDLE). Default: 1000. */
  pollIntervalMs?: number;
  /** Longest single {@link ImapSource.waitForMail} without news. Default: 60000. */
  wakeAfterMs?: number;
  /**
   * Connection attempts per operation before it fails with `ECONNECT`, once the source has
   * connected (the first connection is not retried). Default: 6.
   */
  connectAttempts?: number;
  /** Delay before reconnection attempt n. Default: exponential 200 ms .. 5 s. */
  backoff?: Backoff;
  /** Timers. Default: the system clock. */
  clock?: Clock;
  /** Receives connection and protocol log records. Default: silent. */
  logger?: Logger;
  /** Configuration section named in error messages, e.g. `host.receive`. Default: `receive`. */
  configKey?: string;
  /** Folder that claimed mail is moved to, created when missing. Default: `Processing`. */
  processing?: string;
  /**
   * This process's name in its claim keyword `$MailpeerClaim-<claimer>` (letters and digits).
   * Processes sharing a mailbox need distinct names; give each host process of a pool its
   * own (e.g. its index). Default: a random number below 256 (two processes pick the same
   * one with a chance of 1/256; the mailbox never holds more than 256 such keywords).
   */
  claimer?: string;
  /**
   * {@link ImapSource.list} also reads the body of each matching mail of at most this many
   * bytes (RFC822.SIZE), for {@link ImapSource.fetch} to return without a round trip; 0 turns
   * this off. Default: `MAX_MAIL_BYTES` (64 KiB), the largest mail a host parses. (Claimed
   * mails, see {@link ImapSource.claimMany}, are read up to `MAX_MAIL_BYTES` whatever this
   * says: they are this process's to handle.)
   */
  prefetchBytes?: number;
  /**
   * Most bytes of bodies read ahead and held at once: by one listing, and again by claimed
   * mails not yet fetched. Default: 2 MiB.
   */
  prefetchBudgetBytes?: number;
}
