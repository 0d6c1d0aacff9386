/**
 * How the mail adapters are tuned: pool sizes, probe timings, the prefetch budget and how long a
 * first failure is remembered. Measured choices, not part of any protocol (docs/performance.md);
 * the wire contract's constants are in `src/protocol.ts`, limits against hostile input in
 * `src/limits.ts`.
 *
 * @module
 */

/** Default budget of one source's body cache (the listing's and the claimed mails'). */
export const DEFAULT_PREFETCH_BUDGET_BYTES = 2 * 1024 * 1024;

/**
 * How long `host --once` looks into its IMAP mailbox before loading imapflow; past it, the run
 * takes the full path.
 */
export const IMAP_PROBE_TIMEOUT_MS = 10_000;

/**
 * Most connections of one SMTP sender's pool (nodemailer's, then the fast lanes), opened as mail
 * queues up (a new TLS connection costs ~50 ms under Deno). Two carry a host's whole batch of
 * replies, since each lane writes the mails queued on it together; several host processes on one
 * account then hold two each, not four (providers cap an account's connections). Measured
 * against four: docs/decisions.md "Performance (issue 7)", replies a batch at a time.
 */
export const SMTP_POOL_CONNECTIONS = 2;

/**
 * How long a STARTTLS connection waits for the server's greeting before it checks, on a
 * second connection, whether the port speaks TLS from the first byte (an implicit-TLS port:
 * both sides would wait for the other until the connect timeout). A plain server greets in
 * milliseconds; a slower one is only probed, never given up on before the connect timeout.
 */
export const TLS_PORT_PROBE_AFTER_MS = 500;

/**
 * How long a mail client that never connected answers later calls with its first failure
 * (a refused password, a TLS failure, nothing answering) instead of asking the server again,
 * in ms: long enough that a terminal's second look at its mailbox does not wait out the
 * server's failed-login delay twice, short enough that a long-running host, which retries
 * every pass, notices a server that came up or a password that was fixed.
 */
export const FIRST_FAILURE_KEPT_MS = 30_000;
