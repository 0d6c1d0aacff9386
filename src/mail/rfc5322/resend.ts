/**
 * Resending a mail without changing its sender (RFC 5322 §3.6.6): a block of `Resent-*`
 * fields is put on top of the unchanged original, so the receiver still sees the original
 * `From:`, `Subject:`, `Date:` and `Message-ID:` and answers the original sender directly.
 *
 * A host-pool representative (docs/design.md "Host pool") forwards terminal requests to its workers
 * this way.
 *
 * @module
 */
import { domainOf } from "./compose.ts";

/** Options of {@link resentRaw}. */
export interface ResendOptions {
  /** Who resends (the `Resent-From:`), e.g. the representative's address. */
  from: string;
  /** Who it is resent to (the `Resent-To:`); at least one address. */
  to: string[];
  /** The `Resent-Date:`. Default: now. */
  date?: Date;
  /** The `Resent-Message-ID:`, `<...@...>`. Default: random, at the domain of `from`. */
  messageId?: string;
}

// deno-lint-ignore no-control-regex
const LINE_BREAK_OR_NUL = /[\r\n\x00]/;
const MESSAGE_ID = /^<[^<>\s]+@[^<>\s]+>$/;
const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/**
 * The bytes of `raw` resent: a `Resent-Date`, `Resent-From`, `Resent-To` and
 * `Resent-Message-ID` block prepended to the original, which follows byte for byte. The new
 * lines end like the original's first line (CRLF, or LF for a mail stored with bare LFs).
 *
 * @example
 * ```ts
 * const raw = new TextEncoder().encode("From: a@x.test\r\nSubject: hi\r\n\r\nhello\r\n");
 * const resent = resentRaw(raw, { from: "rep@host.test", to: ["worker@host.test"] });
 * new TextDecoder().decode(resent).endsWith("From: a@x.test\r\nSubject: hi\r\n\r\nhello\r\n"); // true
 * ```
 * @throws {TypeError} when there is no recipient, or a value contains a line break, or the
 * Message-ID is not of the form `<left@right>`.
 */
export function resentRaw(raw: Uint8Array, options: ResendOptions): Uint8Array {
  const { from, to } = options;
  if (to.length === 0) {
    throw new TypeError("Cannot resend mail: it has no recipient; give at least one address");
  }
  const messageId = options.messageId ??
    `<${randomHex(16)}@${domainOf(from) ?? "localhost"}>`;
  for (
    const [name, value] of [
      ["Resent-From", from],
      ["Resent-Message-ID", messageId],
      ...to
        .map((t) => ["Resent-To", t]),
    ]
  ) {
    if (LINE_BREAK_OR_NUL.test(value!) || value!.trim() === "") {
      throw new TypeError(
        `Cannot resend mail: the ${name} value is empty or contains a line break; fix it`,
      );
    }
  }
  if (!MESSAGE_ID.test(messageId)) {
    throw new TypeError(
      `Cannot resend mail: the Resent-Message-ID ${JSON.stringify(messageId)} is not of the ` +
        "form <left@right>; give one such as <id@example.org>",
    );
  }
  const eol = lineEnd(raw);
  const date = options.date ?? new Date();
  if (Number.isNaN(date.getTime())) {
    throw new TypeError("Cannot resend mail: the Resent-Date is not a valid date");
  }
  const header = `Resent-Date: ${rfc5322Date(date)}${eol}` +
    `Resent-From: ${from.trim()}${eol}` +
    `Resent-To: ${to.map((t) => t.trim()).join(`,${eol} `)}${eol}` +
    `Resent-Message-ID: ${messageId}${eol}`;
  const head = new TextEncoder().encode(header);
  const out = new Uint8Array(head.length + raw.length);
  out.set(head, 0);
  out.set(raw, head.length);
  return out;
}

/** `Thu, 26 Nov 2026 06:39:15 +0000` (RFC 5322 §3.3, in UTC). */
export function rfc5322Date(date: Date): string {
  const two = (n: number) => String(n).padStart(2, "0");
  return `${DAYS[date.getUTCDay()]}, ${date.getUTCDate()} ${MONTHS[date.getUTCMonth()]} ` +
    `${date.getUTCFullYear()} ${two(date.getUTCHours())}:${two(date.getUTCMinutes())}:` +
    `${two(date.getUTCSeconds())} +0000`;
}

/** CRLF unless the first line of `raw` ends with a bare LF. */
function lineEnd(raw: Uint8Array): string {
  const lf = raw.indexOf(0x0a);
  return lf > 0 && raw[lf - 1] !== 0x0d ? "\n" : "\r\n";
}

function randomHex(bytes: number): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(bytes)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}
