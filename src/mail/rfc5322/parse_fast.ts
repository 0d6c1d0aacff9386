/**
 * Reads a simple mail without mailparser (a few hundred microseconds of CPU a mail): one
 * text/plain part in UTF-8 or US-ASCII, 7bit, 8bit, binary or quoted-printable, with an
 * ASCII header section of plain addresses and no RFC 2047 encoded words. That is every mail
 * mailpeer sends. For such a mail the result is the one mailparser gives, field for field
 * (tests/mail/fast_path_test.ts holds the two to that); anything else returns `undefined` and
 * goes to mailparser, errors included.
 *
 * What mailparser does and this module repeats: header lines are split at LF and unfolded;
 * a value is the unfolded text after the first colon with the whitespace after each fold
 * turned into one space, trimmed; the subject, Message-ID and In-Reply-To are the first
 * non-empty ones, an id gets its missing angle brackets; `from` is the first address of the
 * first From, `to` every address of every To; the body is decoded as UTF-8 with CRLF read as
 * LF.
 *
 * @module
 */
import type { ParsedMail } from "../types.ts";

/** mailsplit's limit on the header section (with its per-line floor, see `headerCost`). */
const MAX_HEAD_COST = 1024 * 1024;
/** What mailsplit counts a header line as at least. */
const HEADER_LINE_MIN_COST = 64;
const HEADER_NAME = /^[!-9;-~]+:/;
// Headers whose mailparser treatment this module does not repeat.
const UNHANDLED = new Set([
  "references",
  "priority",
  "x-priority",
  "x-msmail-priority",
  "importance",
  "content-disposition",
  "otp-token",
]);
// Headers mailparser turns into an object; ParsedMail.headers has their raw value.
const STRUCTURED = new Set([
  "content-type",
  "dkim-signature",
  "date",
  "from",
  "to",
  "cc",
  "bcc",
  "sender",
  "reply-to",
  "delivered-to",
  "return-path",
  "disposition-notification-to",
]);
// Headers of which mailparser keeps the first (non-empty) value even when there are several.
const SINGLE = new Set([
  "subject",
  "message-id",
  "in-reply-to",
  "content-id",
  "content-transfer-encoding",
  "mime-version",
  "content-description",
  "precedence",
  "errors-to",
]);
// Charsets mailparser reads as UTF-8 without a decoder.
const CHARSET = "(?:utf-?8|us-ascii|ascii)";
const TEXT_PLAIN = new RegExp(
  `^text/plain(?:[ \\t]*;[ \\t]*charset[ \\t]*=[ \\t]*(?:"${CHARSET}"|${CHARSET}))?$`,
  "i",
);
const PASS_THROUGH = new Set(["", "7bit", "8bit", "binary"]);
// A local part and a domain of characters that mean nothing special to an address parser.
const ADDR_SPEC = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+";
const BARE_ADDRESS = new RegExp(`^(${ADDR_SPEC})$`);
const NAMED_ADDRESS = new RegExp(
  `^(?:[A-Za-z0-9_.' -]*|"[A-Za-z0-9_.' -]*"[ \\t]*)<(${ADDR_SPEC})>$`,
);

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const ascii = new TextDecoder();

interface Field {
  key: string;
  /** The header line as mailsplit keeps it: physical lines joined with CRLF. */
  line: string;
}

/**
 * Parses `raw`, whose header section ends at `headEnd` (the index of the blank line), or
 * returns `undefined` when it is not a simple mail.
 */
export function parseFast(raw: Uint8Array, headEnd: number): ParsedMail | undefined {
  const fields = headerFields(raw, headEnd);
  if (fields === undefined) return undefined;

  const values = new Map<string, string[]>();
  const firstLine = new Map<string, string>();
  for (const { key, line } of fields) {
    if (UNHANDLED.has(key) || key.startsWith("list-")) return undefined;
    if (!firstLine.has(key)) firstLine.set(key, line);
    const value = decodedValue(line);
    let list = values.get(key);
    if (list === undefined) values.set(key, list = []);
    list.push(value);
  }

  const contentType = values.get("content-type")?.[0];
  if (contentType !== undefined && !TEXT_PLAIN.test(contentType)) return undefined;
  const encoding = (values.get("content-transfer-encoding")?.[0] ?? "").toLowerCase();
  const qp = encoding === "quoted-printable";
  if (!qp && !PASS_THROUGH.has(encoding)) return undefined;

  const fromValue = values.get("from")?.[0];
  const from = fromValue === undefined ? undefined : addresses(fromValue)?.[0];
  if (from === undefined) return undefined;
  const to: string[] = [];
  for (const value of values.get("to") ?? []) {
    const list = addresses(value);
    if (list === undefined) return undefined;
    to.push(...list);
  }

  const bodyStart = headEnd + (raw[headEnd] === 0x0d ? 2 : 1);
  let body = raw.subarray(bodyStart);
  if (qp) body = decodeQuotedPrintable(body);
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    return undefined; // not UTF-8: mailparser's replacement characters are its own business
  }

  const headers = new Map<string, string>();
  for (const [key, line] of firstLine) {
    const mine = valueOf(key, values.get(key) ?? []);
    headers.set(key, mine ?? rawValue(line));
  }
  const dateText = headers.get("date");
  const date = dateText === undefined ? undefined : new Date(dateText);
  return {
    subject: valueOf("subject", values.get("subject") ?? []) ?? "",
    from,
    to,
    date: date === undefined || Number.isNaN(date.getTime()) ? undefined : date,
    messageId: valueOf("message-id", values.get("message-id") ?? []),
    inReplyTo: valueOf("in-reply-to", values.get("in-reply-to") ?? []),
    text: text.replace(/\r?\n/g, "\n"),
    headers,
  };
}

/**
 * The header lines of an ASCII header section, or `undefined` when it holds anything but
 * printable ASCII, tabs and line breaks, an encoded word, a line that is neither a field nor
 * a fold, or more than mailsplit accepts.
 */
function headerFields(raw: Uint8Array, headEnd: number): Field[] | undefined {
  let lines = 1;
  for (let i = 0; i < headEnd; i++) {
    const c = raw[i]!;
    if (c === 0x0a) {
      lines++;
    } else if (c === 0x0d) {
      if (raw[i + 1] !== 0x0a) return undefined;
    } else if ((c < 0x20 && c !== 0x09) || c > 0x7e) {
      return undefined;
    }
  }
  if (headEnd + 2 + lines * HEADER_LINE_MIN_COST > MAX_HEAD_COST) return undefined;
  const head = ascii.decode(raw.subarray(0, headEnd));
  if (head.includes("=?")) return undefined;
  const fields: Field[] = [];
  const physical = head.split(/\r?\n/);
  physical.pop(); // the head ends with the line break of its last line
  for (const line of physical) {
    const first = line.charCodeAt(0);
    if (first === 0x20 || first === 0x09) {
      const last = fields[fields.length - 1];
      if (last === undefined) return undefined;
      last.line += "\r\n" + line;
    } else if (HEADER_NAME.test(line)) {
      fields.push({ key: line.slice(0, line.indexOf(":")).toLowerCase(), line });
    } else {
      return undefined;
    }
  }
  return fields;
}

/** libmime's `decodeHeader(line).value`: unfolded, each fold one space, trimmed. */
function decodedValue(line: string): string {
  const unfolded = line.replace(/(?:\r?\n|\r)[ \t]*/g, " ").trim();
  return unfolded.slice(unfolded.indexOf(":") + 1).trim();
}

/** The unfolded raw value of a header line (what mail/rfc5322/parse.ts keeps for structured headers). */
export function rawValue(line: string): string {
  const colon = line.indexOf(":");
  return line.slice(colon + 1).replace(/\r?\n(?=[ \t])/g, "").trim();
}

/**
 * The string mailparser keeps for `key` given its decoded `values`, or `undefined` where it
 * keeps an object, a list or nothing (ParsedMail.headers then has the raw value).
 */
function valueOf(key: string, values: string[]): string | undefined {
  if (STRUCTURED.has(key)) return undefined;
  const present = values.filter((v) => v !== "");
  if (present.length === 0 || (present.length > 1 && !SINGLE.has(key))) return undefined;
  const value = present[0]!;
  if (key !== "message-id" && key !== "in-reply-to") return value;
  const open = value.charAt(0) === "<" ? value : "<" + value;
  return open.charAt(open.length - 1) === ">" ? open : open + ">";
}

/**
 * The bare addresses, lower-cased, of an address list made only of `a@b.c`, `Name <a@b.c>`
 * and `"Name" <a@b.c>` items, or `undefined` for any other list.
 */
function addresses(value: string): string[] | undefined {
  if (value === "") return [];
  const out: string[] = [];
  for (const part of value.split(",")) {
    const item = part.trim();
    const match = BARE_ADDRESS.exec(item) ?? NAMED_ADDRESS.exec(item);
    if (match === null || /xn--/i.test(match[1]!)) return undefined;
    out.push(match[1]!.toLowerCase());
  }
  return out;
}

/** libqp's `decode`: trailing whitespace dropped, soft line breaks removed, `=XX` decoded. */
function decodeQuotedPrintable(bytes: Uint8Array): Uint8Array {
  let input = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    input += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  input = input
    .replace(/(^|[^ \t])[ \t]+(?=[\n\r\u2028\u2029]|$)/g, "$1")
    .replace(/[=](?:\r?\n|$)/g, "");
  const out = new Uint8Array(input.length);
  let n = 0;
  for (let i = 0; i < input.length; i++) {
    const code = input.charCodeAt(i);
    if (code === 0x3d && i < input.length - 2) {
      const hi = hexValue(input.charCodeAt(i + 1));
      const lo = hexValue(input.charCodeAt(i + 2));
      if (hi >= 0 && lo >= 0) {
        out[n++] = hi * 16 + lo;
        i += 2;
        continue;
      }
    }
    out[n++] = code;
  }
  return out.subarray(0, n);
}

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x41 && code <= 0x46) return code - 0x41 + 10;
  if (code >= 0x61 && code <= 0x66) return code - 0x61 + 10;
  return -1;
}
