/**
 * Writes the RFC 5322 bytes of a simple {@link OutgoingMail} directly, without nodemailer's
 * MailComposer (a few hundred microseconds of CPU a mail, warm). "Simple" is what mailpeer
 * sends: plain addresses, ASCII header values that need no RFC 2047 encoding, and a 7-bit body
 * whose lines fit in 998 octets. For such a mail the bytes are the ones MailComposer writes,
 * header order, folding and key case included; the one difference is a body line longer than
 * 76 characters, which MailComposer quoted-printable encodes and this module leaves as 7bit
 * (RFC 5322 allows 998). Anything else returns `undefined` and goes to MailComposer.
 *
 * @module
 */
import type { OutgoingMail } from "../types.ts";

/** The header fields {@link composeFast} adds to the mail itself. */
export interface FastFields {
  /** The Message-ID to write, `<...>`. */
  messageId: string;
  /** The `Date:` to write. */
  date: Date;
}

/** Longest body line (without its CRLF) a 7bit body may carry (RFC 5322 §2.1.1). */
const MAX_LINE_OCTETS = 998;
/** Printable ASCII except `"` (MailComposer encodes a value holding a quote). */
const PLAIN_VALUE = /^[\x20\x21\x23-\x7e]*$/;
// A dot-atom local part of common characters and an LDH domain whose last label starts with a
// letter (so that the URL host parser, which MailComposer normalises domains with, leaves it
// as it is apart from the case).
const ATOM = "[A-Za-z0-9_+-]+";
const LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?";
const TOP_LABEL = "[A-Za-z](?:[A-Za-z0-9-]*[A-Za-z0-9])?";
const PLAIN_ADDRESS = new RegExp(`^${ATOM}(?:\\.${ATOM})*@(?:${LABEL}\\.)*${TOP_LABEL}$`);
// Headers MailComposer sets or treats specially (and `key`, which with a `value` beside it
// MailComposer reads as a header given as {key, value}): an extra header with one of these
// names, or any Content-*, sends the mail down the MailComposer path.
const SPECIAL_HEADERS = new Set([
  "from",
  "sender",
  "to",
  "cc",
  "bcc",
  "reply-to",
  "in-reply-to",
  "references",
  "subject",
  "message-id",
  "date",
  "mime-version",
  "otp-token",
  "x-smtpapi",
  "key",
]);
const CONTENT_TYPE = "Content-Type: text/plain; charset=utf-8";
const encoder = new TextEncoder();

/**
 * The raw bytes of `mail` with `fields`, CRLF line ends, or `undefined` when the mail is not
 * simple enough (see the module doc). Expects a mail that passed `composeMail`'s checks.
 */
export function composeFast(mail: OutgoingMail, fields: FastFields): Uint8Array | undefined {
  const body = sevenBitBody(mail.text);
  if (body === undefined || Number.isNaN(fields.date.getTime())) return undefined;
  const from = plainAddress(mail.from);
  const to = mail.to.map(plainAddress);
  if (from === undefined || to.includes(undefined)) return undefined;
  const lines: string[] = [];
  for (const [name, value] of Object.entries(mail.headers ?? {})) {
    const lower = name.toLowerCase();
    if (SPECIAL_HEADERS.has(lower) || lower.startsWith("content-") || !plainText(value)) {
      return undefined;
    }
    header(lines, normalizeHeaderKey(name), value);
  }
  header(lines, "From", from);
  header(lines, "To", to.join(", "));
  if (mail.inReplyTo) {
    const inReplyTo = messageIdValue(mail.inReplyTo);
    if (inReplyTo === undefined) return undefined;
    header(lines, "In-Reply-To", inReplyTo);
  }
  if (mail.subject) {
    if (!plainText(mail.subject)) return undefined;
    header(lines, "Subject", mail.subject);
  }
  const messageId = messageIdValue(fields.messageId);
  if (messageId === undefined) return undefined;
  header(lines, "Message-ID", messageId);
  header(lines, "Date", fields.date.toUTCString().replace(/GMT/, "+0000"));
  lines.push("Content-Transfer-Encoding: 7bit", "MIME-Version: 1.0", CONTENT_TYPE);
  return encoder.encode(lines.join("\r\n") + "\r\n\r\n" + body);
}

/** `text` with CRLF line ends and a final line break, if it is 7-bit with short lines. */
function sevenBitBody(text: string): string | undefined {
  // An empty text makes MailComposer write a body-less text/plain without a charset.
  if (text === "") return undefined;
  let lineLength = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x0a) {
      lineLength = 0;
    } else if (c === 0x0d) {
      if (text.charCodeAt(i + 1) !== 0x0a) return undefined; // a bare CR
    } else if ((c < 0x20 && c !== 0x09) || c > 0x7e || ++lineLength > MAX_LINE_OCTETS) {
      return undefined;
    }
  }
  const crlf = text.replace(/\r?\n/g, "\r\n");
  return crlf.endsWith("\n") ? crlf : crlf + "\r\n";
}

/** True when MailComposer writes `value` as it is: printable ASCII, no quote, no `=?`. */
function plainText(value: string): boolean {
  return PLAIN_VALUE.test(value) && !value.includes("=?");
}

/** The address as MailComposer writes it (domain lower-cased), if it is a plain one. */
function plainAddress(address: string): string | undefined {
  if (!PLAIN_ADDRESS.test(address) || /xn--/i.test(address)) return undefined;
  const at = address.lastIndexOf("@");
  return address.slice(0, at + 1) + address.slice(at + 1).toLowerCase();
}

/** A Message-ID / In-Reply-To value with its angle brackets, as MailComposer writes it. */
function messageIdValue(value: string): string | undefined {
  if (value === "" || !/^[\x20-\x7e]*$/.test(value)) return undefined;
  let out = value.charAt(0) === "<" ? value : "<" + value;
  if (out.charAt(out.length - 1) !== ">") out += ">";
  return out;
}

/** Appends `key: value` folded as MailComposer folds it; a blank value writes no line. */
function header(lines: string[], key: string, value: string): void {
  if (value.trim() === "") return;
  lines.push(foldLines(key + ": " + value, 76));
}

/** MailComposer's header key case: `x-mailpeer-network` becomes `X-Mailpeer-Network`. */
function normalizeHeaderKey(key: string): string {
  return key
    .toLowerCase()
    .replace(
      /^X-SMTPAPI$|^(MIME|DKIM|ARC|BIMI)\b|^OTP(?=-Token$)|^[a-z]|-(SPF|FBL|ID|MD5)$|-[a-z]/gi,
      (c) => c.toUpperCase(),
    )
    .replace(/^Content-Features$/i, "Content-features");
}

/**
 * nodemailer's `mimeFuncs.foldLines` for a value without line breaks: breaks `str` into lines
 * of at most `lineLength` characters at whitespace, long words left whole.
 */
function foldLines(str: string, lineLength: number): string {
  let pos = 0;
  const len = str.length;
  let result = "";
  while (pos < len) {
    let line = str.slice(pos, pos + lineLength);
    if (line.length < lineLength) {
      result += line;
      break;
    }
    let match: RegExpMatchArray | null;
    if ((match = line.match(/^[^\n\r]*(\r?\n|\r)/))) {
      line = match[0];
      result += line;
      pos += line.length;
      continue;
    } else if ((match = line.match(/(\s+)[^\s]*$/)) && match[0].length < line.length) {
      line = line.slice(0, line.length - match[0].length);
    } else if ((match = str.slice(pos + line.length).match(/^[^\s]+(\s*)/))) {
      line = line + match[0].slice(0, match[0].length - (match[1] ?? "").length);
    }
    result += line;
    pos += line.length;
    if (pos < len) result += "\r\n";
  }
  return result;
}
