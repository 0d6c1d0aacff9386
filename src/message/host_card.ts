/**
 * Host cards: a host's e-mail address and public keys in one copy-pasteable line.
 *
 * `mailpeer1:<email>:<x25519 base64url>:<ed25519 base64url>[:<check>]`
 *
 * The two keys are split off the right. An address whose local part holds a character that an
 * address parser reads as structure (`:` among them) is refused ({@link emailProblem}).
 *
 * The card people copy (what `mailpeer keygen` prints) ends with a check: the first
 * {@link HOST_CARD_CHECK_LENGTH} base64url characters of the SHA-256 of the card before it. A
 * card with one character changed or lost is then refused when the configuration is read,
 * instead of sealing requests to a key nobody holds (docs/decisions.md, issue 15). Cards
 * without the check are read as before, and cards in mail (requests, table snapshots, the
 * hosts file) never carry it: their canonical form is {@link formatHostCard}'s.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { MessageError } from "../errors.ts";
import { fromBase64Url, toBase64Url } from "./base64.ts";

/** What a terminal needs to know about a host: where to mail it and which keys it holds. */
export interface HostCard {
  /** The host mailbox's e-mail address. */
  email: string;
  /** The host's X25519 public key (32 bytes); requests and notices are sealed to it. */
  x25519: Uint8Array;
  /** The host's Ed25519 public key (32 bytes); every reply is signed with it. */
  ed25519: Uint8Array;
}

/** The prefix every host card starts with. */
export const HOST_CARD_PREFIX = "mailpeer1:";

/** Characters of the check a copied card ends with (36 bits of SHA-256). */
export const HOST_CARD_CHECK_LENGTH = 6;

/** The check of a card's canonical text (without the check). */
function checkOf(canonical: string): string {
  const digest = new Uint8Array(createHash("sha256").update(canonical).digest());
  return toBase64Url(digest).slice(0, HOST_CARD_CHECK_LENGTH);
}

const MAX_EMAIL_LENGTH = 254;
const DOMAIN_LABEL = /^[\p{L}\p{N}](?:[\p{L}\p{N}-]{0,61}[\p{L}\p{N}])?$/u;
/**
 * Characters an address parser reads as structure, not as part of a local part: a list
 * separator (`,` `;`), an angle-bracket or group delimiter (`<` `>` `:`), a comment (`(` `)`),
 * a domain literal (`[` `]`), a quote or escape (`"` `\\`), another `@` (white space anywhere is
 * refused by the check after it). Quoted local parts are refused too: no mailpeer user needs one, and each parser unquotes them its own way.
 */
const LOCAL_PART_SPECIAL = /[,;<>()[\]:"\\@]/;
const ADDRESS_LITERAL = /^\[[0-9A-Fa-f:.]+\]$|^\[IPv6:[0-9A-Fa-f:.]+\]$/;

function hasControlOrSpace(text: string): boolean {
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    if (c <= 0x20 || (c >= 0x7f && c <= 0xa0) || c === 0x2028 || c === 0x2029) return true;
  }
  return false;
}

/**
 * Says what is wrong with an e-mail address, or `undefined` when it is a plausible
 * `local@domain` address (one line, no spaces, a domain of dotted labels or an address literal,
 * a local part without `, ; < > ( ) [ ] : " \\ @` or spaces, so that no address parser can read
 * it as several recipients). This is the one check for every address taken from mail.
 *
 * @example
 * ```ts
 * emailProblem("host@example.org"); // undefined
 * emailProblem("host example.org"); // "it contains spaces or control characters"
 * ```
 */
export function emailProblem(email: string): string | undefined {
  if (email.length === 0) return "it is empty";
  if (email.length > MAX_EMAIL_LENGTH) return `it is longer than ${MAX_EMAIL_LENGTH} characters`;
  const at = email.lastIndexOf("@");
  const special = at > 0 ? LOCAL_PART_SPECIAL.exec(email.slice(0, at)) : null;
  if (special) {
    return `its local part holds ${JSON.stringify(special[0])}, which could make it several ` +
      "recipients";
  }
  if (!email.isWellFormed() || hasControlOrSpace(email)) {
    return "it contains spaces or control characters";
  }
  if (at < 0) return "it has no @";
  const local = email.slice(0, at);
  const domain = email.slice(at + 1);
  if (local.length === 0) return "nothing comes before the @";
  if (domain.length === 0) return "nothing comes after the @";
  if (ADDRESS_LITERAL.test(domain)) return undefined;
  if (!domain.split(".").every((label) => DOMAIN_LABEL.test(label))) {
    return `"${domain}" is not a domain name`;
  }
  return undefined;
}

function checkCard(card: HostCard): void {
  const problem = emailProblem(card.email);
  if (problem !== undefined) {
    throw new TypeError(`Cannot format host card: the e-mail address ${problem}`);
  }
  if (card.x25519.length !== 32 || card.ed25519.length !== 32) {
    throw new TypeError("Cannot format host card: both public keys must have 32 bytes");
  }
}

/**
 * Formats a host card as one line, in the canonical form that mail carries (requests, table
 * snapshots, the hosts file).
 *
 * @example
 * ```ts
 * import { formatHostCard } from "./host_card.ts";
 *
 * const card = { email: "host@example.org", x25519: new Uint8Array(32), ed25519: new Uint8Array(32) };
 * formatHostCard(card); // "mailpeer1:host@example.org:AAAA…:AAAA…"
 * ```
 * @throws {TypeError} when the address is implausible or a key is not 32 bytes.
 */
export function formatHostCard(card: HostCard): string {
  checkCard(card);
  return `${HOST_CARD_PREFIX}${card.email}:${toBase64Url(card.x25519)}:${
    toBase64Url(card.ed25519)
  }`;
}

/**
 * Formats a host card as people copy it into configurations: the canonical form and its
 * check against typos.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatCheckedHostCard, parseHostCard } from "./host_card.ts";
 *
 * const card = { email: "host@example.org", x25519: new Uint8Array(32), ed25519: new Uint8Array(32) };
 * const text = formatCheckedHostCard(card); // "mailpeer1:host@example.org:AAAA…:AAAA…:" + 6 chars
 * assert.deepEqual(parseHostCard(text), card);
 * ```
 * @throws {TypeError} when the address is implausible or a key is not 32 bytes.
 */
export function formatCheckedHostCard(card: HostCard): string {
  const canonical = formatHostCard(card);
  return `${canonical}:${checkOf(canonical)}`;
}

function cardError(what: string, cause?: unknown): MessageError {
  return new MessageError(
    "ECARD",
    `Cannot read host card: ${what}; copy the whole card again from the host (\`mailpeer keygen --card\` prints it)`,
    cause === undefined ? {} : { cause },
  );
}

function readKey(text: string, name: string): Uint8Array {
  let key: Uint8Array;
  try {
    key = fromBase64Url(text);
  } catch (err) {
    throw cardError(`the ${name} key is not base64url`, err);
  }
  if (key.length !== 32 || toBase64Url(key) !== text) {
    throw cardError(`the ${name} key has ${key.length} bytes, not 32`);
  }
  return key;
}

/**
 * Reads a host card (surrounding whitespace ignored), with or without its check; a check that
 * does not match the card is refused.
 *
 * @example
 * ```ts
 * const card = parseHostCard("mailpeer1:host@example.org:<x25519>:<ed25519>");
 * card.email; // "host@example.org"
 * ```
 * @throws {MessageError} `ECARD` naming what is wrong.
 */
export function parseHostCard(text: string): HostCard {
  const trimmed = text.trim();
  const lastField = trimmed.slice(trimmed.lastIndexOf(":") + 1);
  const checked = lastField.length === HOST_CARD_CHECK_LENGTH;
  const line = checked ? trimmed.slice(0, -HOST_CARD_CHECK_LENGTH - 1) : trimmed;
  if (!line.startsWith(HOST_CARD_PREFIX)) {
    throw cardError(`it does not start with "${HOST_CARD_PREFIX}"`);
  }
  const rest = line.slice(HOST_CARD_PREFIX.length);
  const lastColon = rest.lastIndexOf(":");
  const midColon = lastColon < 0 ? -1 : rest.lastIndexOf(":", lastColon - 1);
  if (midColon < 0) throw cardError("it lacks the two keys after the e-mail address");
  const email = rest.slice(0, midColon);
  const problem = emailProblem(email);
  if (problem !== undefined) throw cardError(`the e-mail address ${problem}`);
  const x25519 = readKey(rest.slice(midColon + 1, lastColon), "X25519");
  const ed25519 = readKey(rest.slice(lastColon + 1), "Ed25519");
  if (checked && checkOf(line) !== lastField) {
    throw cardError(
      "its check does not match the rest of the card, so a character was changed or lost " +
        "on the way",
    );
  }
  return { email, x25519, ed25519 };
}
