/**
 * ASCII armor of a coded block, so it travels in the text/plain body of any mail.
 *
 * ```
 * -----BEGIN MAILPEER BLOCK-----
 * <base64, 64 characters a line>
 * -----END MAILPEER BLOCK-----
 * ```
 *
 * @module
 */
import { MessageError } from "../errors.ts";
import { MAX_BLOCK_BYTES } from "../protocol.ts";
import { fromBase64, toBase64 } from "./base64.ts";

/** First line of an armored block. */
export const BEGIN_LINE = "-----BEGIN MAILPEER BLOCK-----";
/** Last line of an armored block. */
export const END_LINE = "-----END MAILPEER BLOCK-----";

const LINE_LENGTH = 64;
const MAX_BASE64_CHARS = Math.ceil(MAX_BLOCK_BYTES / 3) * 4;

/**
 * Armors a coded block: BEGIN line, base64 in 64-character lines, END line (`\n` line ends,
 * no trailing newline).
 *
 * @example
 * ```ts
 * armor(new Uint8Array([1, 2, 3]));
 * // "-----BEGIN MAILPEER BLOCK-----\nAQID\n-----END MAILPEER BLOCK-----"
 * ```
 */
export function armor(block: Uint8Array): string {
  const text = toBase64(block);
  const lines = [BEGIN_LINE];
  for (let i = 0; i < text.length; i += LINE_LENGTH) lines.push(text.slice(i, i + LINE_LENGTH));
  lines.push(END_LINE);
  return lines.join("\n");
}

function armorError(problem: string, advice: string, cause?: unknown): MessageError {
  return new MessageError(
    "EBLOCK",
    `Cannot read the mailpeer block: ${problem}; ${advice}`,
    cause === undefined ? {} : { cause },
  );
}

/**
 * Finds the one armored block in a mail body and decodes it. Line ends may be CRLF or LF and
 * lines may carry surrounding whitespace; lines quoted with `>` are not part of a block.
 *
 * @throws {MessageError} `EBLOCK`: no BEGIN line, no END line, more than one block, bad
 * base64, or too large.
 */
export function dearmor(text: string): Uint8Array {
  const lines = text.split(/\r\n|\r|\n/).map((line) => line.trim());
  const begins = lines.flatMap((line, i) => line === BEGIN_LINE ? [i] : []);
  const ends = lines.flatMap((line, i) => line === END_LINE ? [i] : []);
  if (begins.length === 0) {
    throw armorError("no BEGIN line", "this is not a mailpeer mail, or it was altered");
  }
  if (begins.length > 1 || ends.length > 1) {
    throw armorError(
      "more than one block",
      "a mailpeer mail carries exactly one block; do not quote one in another",
    );
  }
  const begin = begins[0]!;
  const end = ends[0];
  if (end === undefined || end < begin) {
    throw armorError("no END line", "the mail was truncated; ask the sender to send it again");
  }
  return decodeArmored(lines.slice(begin + 1, end));
}

function decodeArmored(bodyLines: string[]): Uint8Array {
  const body = bodyLines.join("");
  if (body.length > MAX_BASE64_CHARS) {
    throw armorError(`too large (more than ${MAX_BLOCK_BYTES} bytes)`, "ignore this mail");
  }
  let block: Uint8Array;
  try {
    block = fromBase64(body);
  } catch (err) {
    throw armorError("bad base64", "the mail was altered on its way; ignore it", err);
  }
  if (block.length === 0) throw armorError("the block is empty", "ignore this mail");
  if (block.length > MAX_BLOCK_BYTES) {
    throw armorError(`too large (more than ${MAX_BLOCK_BYTES} bytes)`, "ignore this mail");
  }
  return block;
}

/**
 * Finds every armored block in a mail body, in order: a request mailed to several hosts at
 * once carries one block per host card. Blocks may not nest or overlap.
 *
 * @example
 * ```ts
 * const blocks = dearmorAll(mail.text, { max: 16 });
 * ```
 * @throws {MessageError} `EBLOCK`: no block, an unclosed or nested block, more than `max`
 * blocks, bad base64, or a block too large.
 */
export function dearmorAll(text: string, options: { max: number }): Uint8Array[] {
  const lines = text.split(/\r\n|\r|\n/).map((line) => line.trim());
  const blocks: Uint8Array[] = [];
  let open = -1;
  for (const [i, line] of lines.entries()) {
    if (line === BEGIN_LINE) {
      if (open >= 0) throw armorError("a block starts inside another", "ignore this mail");
      open = i;
    } else if (line === END_LINE) {
      if (open < 0) throw armorError("an END line without BEGIN", "ignore this mail");
      if (blocks.length >= options.max) {
        throw armorError(`more than ${options.max} blocks`, "ignore this mail");
      }
      blocks.push(decodeArmored(lines.slice(open + 1, i)));
      open = -1;
    }
  }
  if (open >= 0) {
    throw armorError("no END line", "the mail was truncated; ask the sender to send it again");
  }
  if (blocks.length === 0) {
    throw armorError("no BEGIN line", "this is not a mailpeer mail, or it was altered");
  }
  return blocks;
}
