/**
 * The mail seams: {@link MailSender} and {@link MailSource} (docs/design.md "Seams").
 *
 * Implementations: Maildir (the embedded local post office), SMTP (nodemailer), IMAP
 * (imapflow) and POP3. A receiver only ever sees, reads, deletes or quarantines mail whose
 * subject matches its {@link SubjectMatch}; every other mail stays where it was, unread.
 *
 * @module
 */

/**
 * Where and how to reach a mail server and log in: one type for SMTP, IMAP and POP3, and the
 * shape the configuration's `send` and `receive` sections are read into (docs/config.md).
 */
export interface MailServerOptions {
  host: string;
  port: number;
  /** `starttls` upgrades a plain connection, `implicit` starts with TLS, `none` never uses TLS. */
  tls: "starttls" | "implicit" | "none";
  user: string;
  /** The password, resolved. SMTP logs in (AUTH) only when it is given; IMAP and POP3 need it. */
  password?: string;
  /**
   * OAuth2 instead of a password (IMAP and SMTP, XOAUTH2): gives an access token; `renew` is
   * true after the server refused the last one (expired), so a fresh one is needed.
   */
  accessToken?: AccessToken;
  /** PEM file of the CA that signed the server certificate. Default: the system roots. */
  caFile?: string;
  /** Accept any certificate (tests only; every connection logs a warning). Default: false. */
  insecure?: boolean;
  /** TLS name to verify when `host` is an IP literal. Default: `host`. */
  servername?: string;
  /**
   * Highest TLS version to offer (SMTP and IMAP). `1.2` avoids a ~40 ms stall on servers that
   * hold their first answer after a TLS 1.3 handshake until the session ticket is acknowledged
   * (docs/performance.md). Default: the highest both sides support.
   */
  tlsMaxVersion?: "1.2" | "1.3";
  /**
   * How long connecting, the TLS handshake and the server's greeting may take together, in ms.
   * Default: `DEFAULT_MAIL_CONNECT_TIMEOUT_MS` (10 s).
   */
  connectTimeoutMs?: number;
}

/** Gives an OAuth2 access token; `renew`: the last one was refused, get a fresh one. */
export type AccessToken = (renew: boolean) => Promise<string>;

/**
 * A server a receiver logs in to (IMAP, POP3): with a password, or (IMAP only) with an OAuth2
 * access token.
 */
export type MailLogin =
  & MailServerOptions
  & ({ password: string; accessToken?: undefined } | { accessToken: AccessToken });

/** How a receiver recognises its own mail by subject. */
export interface SubjectMatch {
  /** The search key, e.g. `[mailpeer] lan-party request`. */
  subject: string;
  /** `exact`: the whole subject equals the key; `prefix`: the subject starts with it. */
  mode: "exact" | "prefix";
}

/** True when `subject` matches `match` (surrounding whitespace ignored). */
export function matchesSubject(subject: string, match: SubjectMatch): boolean {
  const s = subject.trim();
  return match.mode === "exact" ? s === match.subject : s.startsWith(match.subject);
}

/** A mail to send. `text` is the whole text/plain body. */
export interface OutgoingMail {
  from: string;
  to: string[];
  subject: string;
  text: string;
  /** Set by the sender when absent; `<...@domain>` form. */
  messageId?: string;
  inReplyTo?: string;
  /** Defaults to the sender's clock. */
  date?: Date;
  /** Extra headers (e.g. `Resent-From`). */
  headers?: Record<string, string>;
}

/** Sends mail. */
export interface MailSender {
  /** Sends one mail; resolves with its Message-ID once the server (or Maildir) accepted it. */
  send(mail: OutgoingMail, options?: { signal?: AbortSignal }): Promise<{ messageId: string }>;
  /**
   * Optional: resends raw mail bytes unchanged apart from a prepended `Resent-*` block
   * (RFC 5322 §3.6.6, see `resentRaw`), with `from` as the envelope sender and `to` as the
   * envelope recipients. The original `From:`, `Subject:` and `Message-ID:` stay as they were,
   * so the receiver answers the original sender. Resolves with the `Resent-Message-ID`.
   */
  forward?(
    raw: Uint8Array,
    options: { from: string; to: string[]; signal?: AbortSignal },
  ): Promise<{ messageId: string }>;
  /** Releases connections. */
  close(): Promise<void>;
}

/** A matching mail in a source, not yet fetched. */
export interface MailRef {
  /** Stable id within the source: Maildir unique name, IMAP UID, POP3 UIDL. */
  id: string;
  subject: string;
  /** Size in bytes when the source knows it cheaply, else undefined. */
  size?: number;
}

/** Reads a mailbox, seeing only mail that matches its subject key. */
export interface MailSource {
  /**
   * Connects and logs in, so that a wrong password, an unreachable server or a missing
   * mailbox is known before anything depends on the mailbox: a terminal opens it before it
   * mails its request (docs/decisions.md "The terminal opens its mailbox before it mails").
   * Rejects with the error {@link list} would give. Optional: a local source has nothing to
   * open.
   */
  open?(options?: { signal?: AbortSignal }): Promise<void>;
  /** Lists the mails whose subject matches, oldest first, without marking them read. */
  list(match: SubjectMatch, options?: { signal?: AbortSignal }): Promise<MailRef[]>;
  /** Returns the raw RFC 5322 bytes of a listed mail. */
  fetch(ref: MailRef, options?: { signal?: AbortSignal }): Promise<Uint8Array>;
  /** Removes a processed mail for good. */
  delete(ref: MailRef): Promise<void>;
  /**
   * Removes several processed mails: same effect as {@link delete} on each. IMAP does it in
   * one STORE + one EXPUNGE for the set; the others delete one by one.
   */
  deleteMany(refs: MailRef[]): Promise<void>;
  /** Moves an invalid mail out of the way (quarantine folder, or deletion where there is none). */
  quarantine(ref: MailRef, reason: string): Promise<void>;
  /**
   * Resolves when new mail may have arrived (push, file watch or one poll interval), or when
   * `signal` aborts. Spurious wake-ups are allowed; callers list again.
   */
  waitForMail(options?: { signal?: AbortSignal }): Promise<void>;
  /**
   * Whether {@link claim} gives a mail to this process alone (IMAP, Maildir). A source that
   * cannot (POP3: it has no folders) answers every claim with the ref itself and needs one
   * reader per mailbox; the configuration refuses `shared_mailbox` on it.
   */
  readonly claims: boolean;
  /**
   * Takes a listed mail for this process alone, so that several processes reading one mailbox
   * never handle a mail twice. Resolves with a new ref (valid for fetch, delete and
   * quarantine; the mail now sits in a processing folder) or `undefined` when another process
   * took it first or it is gone. Without {@link claims}: the ref itself.
   */
  claim(ref: MailRef): Promise<MailRef | undefined>;
  /**
   * {@link claim} of several listed mails (IMAP: a constant number of round trips for the
   * set), with the same guarantee: of processes racing for a mail, never two win it. Resolves
   * with the new refs of the mails this process won, in any order; the others were taken by
   * another process first or are gone.
   */
  claimMany(refs: MailRef[]): Promise<MailRef[]>;
  /**
   * Reads the bodies of these listed mails ahead, in one go where the source can (IMAP: one
   * `UID FETCH`), so that {@link fetch} of each needs no round trip. Optional: a source
   * without it fetches each mail when asked. Best effort: it does not reject; what it could
   * not read, {@link fetch} reads (and reports).
   */
  prefetch?(refs: MailRef[]): Promise<void>;
  /**
   * Puts mails claimed longer than `olderThanMs` ago back where {@link list} sees them (their
   * claimer died before deleting them), so a crash never loses a request. Resolves with how
   * many were put back (always 0 without {@link claims}). Choose `olderThanMs` well above the
   * time one mail takes to process: a mail put back while still being processed is processed
   * twice.
   */
  recoverClaims(olderThanMs: number): Promise<number>;
  /** Releases connections and watchers, after finishing the operations already started. */
  close(): Promise<void>;
}

/** The parts of a mail that mailpeer reads (`parseMail` in mail/rfc5322/parse.ts makes it). */
export interface ParsedMail {
  /** Decoded subject; empty when absent. */
  subject: string;
  /** Bare sender address, lower-cased. */
  from: string;
  /** Bare recipient addresses (To only), lower-cased. */
  to: string[];
  /** The `Date:` header; undefined when absent or not a valid date. */
  date?: Date;
  messageId?: string;
  inReplyTo?: string;
  /** The text/plain body, decoded. */
  text: string;
  /**
   * Every header by lower-cased name (first occurrence wins). Unstructured values are
   * decoded (RFC 2047); structured ones are the raw unfolded value.
   */
  headers: Map<string, string>;
}
