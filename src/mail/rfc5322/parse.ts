/**
 * Parses raw RFC 5322 mail into the few fields mailpeer uses, and reads a mail's subject
 * cheaply from its header section alone. A simple mail (what mailpeer sends) is read by
 * mail/rfc5322/parse_fast.ts; any other by mailparser's simpleParser, with the same result.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type { AddressObject } from "mailparser";
import { MailError } from "../../errors.ts";
import { MAX_MAIL_BYTES } from "../../limits.ts";
import { parseFast, rawValue } from "./parse_fast.ts";
import type { ParsedMail } from "../types.ts";

/** Options of {@link parseMail}. */
export interface ParseOptions {
  /** Larger mails are rejected unread. Default: `MAX_MAIL_BYTES` of limits.ts. */
  maxBytes?: number;
}

const HEADER_LINE = /^[!-9;-~]+[ \t]*:/;
const decoder = new TextDecoder();

/**
 * Parses a raw mail. Throws `MailError` `EMAIL` when it is larger than `maxBytes`, is not a
 * mail (no header section) or has no sender address.
 *
 * @example
 * ```ts
 * const mail = await parseMail(raw);
 * if (mail.subject === "[mailpeer] lan request") reply(mail.from, mail.messageId);
 * ```
 */
export async function parseMail(raw: Uint8Array, options: ParseOptions = {}): Promise<ParsedMail> {
  const maxBytes = options.maxBytes ?? MAX_MAIL_BYTES;
  if (raw.byteLength > maxBytes) {
    throw new MailError(
      "EMAIL",
      `Cannot parse mail: it is ${raw.byteLength} bytes, over the limit of ${maxBytes}; ` +
        "a mailpeer mail is small, so this one is not for mailpeer (or raise the limit)",
    );
  }
  const end = headerEnd(raw);
  const head = decoder.decode(raw.subarray(0, end.headerEnd));
  if (!HEADER_LINE.test(head)) {
    throw new MailError(
      "EMAIL",
      "Cannot parse mail: it does not start with a header line; it is not an RFC 5322 mail",
    );
  }
  return (end.complete ? parseFast(raw, end.headerEnd) : undefined) ??
    await parseWithMailparser(raw);
}

/**
 * Parses `raw` with mailparser, the path {@link parseMail} takes for a mail that is not
 * simple. Exported for the tests that hold the fast path to it.
 *
 * @internal
 */
export async function parseWithMailparser(raw: Uint8Array): Promise<ParsedMail> {
  let parsed;
  try {
    const { simpleParser } = await import("mailparser"); // loaded on first use
    parsed = await simpleParser(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength), {
      skipHtmlToText: true,
      skipTextToHtml: true,
      skipTextLinks: true,
      skipImageLinks: true,
    });
  } catch (err) {
    throw new MailError(
      "EMAIL",
      `Cannot parse mail: ${err instanceof Error ? err.message : String(err)}; ` +
        "the mail is malformed",
      { cause: err },
    );
  }
  const from = addressesOf(parsed.from)[0];
  if (from === undefined) {
    throw new MailError(
      "EMAIL",
      "Cannot parse mail: it has no From address; a mail without a sender cannot be answered",
    );
  }
  const headers = new Map<string, string>();
  for (const { key, line } of parsed.headerLines) {
    if (headers.has(key)) continue;
    const value = parsed.headers.get(key);
    headers.set(key, typeof value === "string" ? value : rawValue(line));
  }
  const dateText = headers.get("date");
  const date = dateText === undefined ? undefined : new Date(dateText);
  return {
    subject: parsed.subject ?? "",
    from,
    to: addressesOf(parsed.to),
    date: date === undefined || Number.isNaN(date.getTime()) ? undefined : date,
    messageId: parsed.messageId,
    inReplyTo: parsed.inReplyTo,
    text: parsed.text ?? "",
    headers,
  };
}

/**
 * Reads only the `Subject:` of a raw mail (or of its first bytes: the header section is
 * enough), decoding RFC 2047 encoded-words. Returns "" when there is no subject.
 */
export async function readSubject(raw: Uint8Array): Promise<string> {
  const head = raw.subarray(0, headerEnd(raw).headerEnd);
  const line = unfoldedHeader(decoder.decode(head), "subject");
  if (line === undefined) return "";
  if (!line.includes("=?")) return line.trim();
  try {
    const { simpleParser } = await import("mailparser");
    const parsed = await simpleParser(Buffer.from(`Subject: ${line}\r\n\r\n`), {
      skipHtmlToText: true,
      skipTextToHtml: true,
    });
    return (parsed.subject ?? "").trim();
  } catch {
    return line.trim();
  }
}

/**
 * Where the header section of `raw` ends: `headerEnd` is the index of the blank line,
 * `complete` says whether a blank line was found at all.
 */
export function headerEnd(raw: Uint8Array): { headerEnd: number; complete: boolean } {
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] !== 0x0a) continue;
    if (raw[i + 1] === 0x0a) return { headerEnd: i + 1, complete: true };
    if (raw[i + 1] === 0x0d && raw[i + 2] === 0x0a) return { headerEnd: i + 1, complete: true };
  }
  return { headerEnd: raw.length, complete: false };
}

/** The unfolded value of the first header called `name` (case-insensitive) in `head`. */
function unfoldedHeader(head: string, name: string): string | undefined {
  const lines = head.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? "";
    const colon = line.indexOf(":");
    if (colon <= 0 || line.slice(0, colon).trim().toLowerCase() !== name) continue;
    let value = line.slice(colon + 1);
    while (i + 1 < lines.length && /^[ \t]/.test(lines[i + 1] ?? "")) value += lines[++i];
    return value;
  }
  return undefined;
}

function addressesOf(field: AddressObject | AddressObject[] | undefined): string[] {
  const out: string[] = [];
  const visit = (entries: { address?: string; group?: unknown[] }[]) => {
    for (const entry of entries) {
      if (entry.address) out.push(entry.address.toLowerCase());
      if (Array.isArray(entry.group)) visit(entry.group as { address?: string }[]);
    }
  };
  for (const obj of field === undefined ? [] : Array.isArray(field) ? field : [field]) {
    visit(obj.value);
  }
  return out;
}
