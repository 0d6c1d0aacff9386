/**
 * Error classes and the single table of error codes.
 *
 * Every operational failure is one of the domain errors below, carries a `code` from
 * {@link ERROR_CODES} and a message of the form "Cannot <do what>: <what is wrong>; <what to do>".
 * `cause` is always set (to the underlying error, or to a short description when there is none).
 *
 * @module
 */

/** Every error code mailpeer uses, with a one-line description. */
export const ERROR_CODES = {
  // message layer
  EBLOCK: "The coded block is missing, malformed or of an unknown version or kind",
  ESEAL: "The coded block could not be opened with this key (wrong key or altered bytes)",
  ESIGNATURE: "A signature did not verify against the expected key",
  EPAYLOAD: "The opened payload is not a valid mailpeer payload",
  ECARD: "A host card is malformed",
  EKEY: "A key file or key string is malformed",
  ESESSION: "A reply does not answer the request that is waiting for it",
  // mail layer
  EMAILDIR: "A Maildir cannot be read or written",
  EMAIL: "A mail cannot be parsed",
  ESEND: "A mail server refused a mail for good (5xx)",
  EDEFER: "A mail server deferred a mail (4xx or no answer); it is tried again later",
  ECONNECT: "A mail server cannot be reached",
  EAUTH: "A mail server refused the credentials",
  ETLS: "A TLS connection to a mail server failed",
  // host
  ETABLE: "The control table file cannot be read, locked or written",
  ESTALE: "A request is older than the expiry age, or dated in the future",
  EREPLAY: "A request repeats an earlier request of the same user",
  ERATE: "A sender or user is over its request rate",
  EOWNER: "A request or synced row claims a user id whose live row has another identity key",
  EPOLICY: "A request breaks the host's policy (address class, sender verification)",
  // terminal and peer
  ETIMEOUT: "Nothing arrived in time",
  EPEER: "A peer connection failed",
  EFRAME: "A peer sent a malformed frame",
  EIDENTITY: "A peer proved an identity other than the one the host listed",
  EADDRESS: "No usable address could be found for this terminal",
  EPORTMAP: "The router refused a port mapping or does not offer one (UPnP IGD, NAT-PMP, PCP)",
  ERELAY: "A TURN server refused or lost a relay allocation, permission or channel",
  EFILE: "A local file cannot be read or written",
  // configuration
  ECONFIG: "The configuration is missing, malformed or incomplete",
  ESECRET: "A secret named in the configuration cannot be read",
  ECHECK: "`mailpeer doctor` found a problem (each on its own line, with what to do)",
  EDISCOVER: "The mail servers of an address cannot be found, or what was found is unusable",
} as const;

/** One of the codes of {@link ERROR_CODES}. */
export type ErrorCode = keyof typeof ERROR_CODES;

/** Options common to every mailpeer error. */
export interface MailpeerErrorOptions {
  /** The underlying error, or a short description of what went wrong. */
  cause?: unknown;
}

/** Base class of every mailpeer error: a code from {@link ERROR_CODES} and a cause. */
export class MailpeerError extends Error {
  /** The code from {@link ERROR_CODES}. */
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options: MailpeerErrorOptions = {}) {
    super(message, { cause: options.cause ?? ERROR_CODES[code] });
    this.code = code;
    this.name = new.target.name;
  }
}

/** Wire format, sealing and signature failures. */
export class MessageError extends MailpeerError {}
/** Mail sending and receiving failures. */
export class MailError extends MailpeerError {}
/** Control table and request-processing failures. */
export class HostError extends MailpeerError {}
/** Peer connection and handshake failures. */
export class PeerError extends MailpeerError {}
/** Configuration failures. */
export class ConfigError extends MailpeerError {}

/** True when `err` is a mailpeer error (an operational failure, not a bug). */
export function isMailpeerError(err: unknown): err is MailpeerError {
  return err instanceof MailpeerError;
}
