/**
 * Builds the raw RFC 5322 bytes of an {@link OutgoingMail}: one text/plain part in UTF-8.
 * A simple mail (plain addresses, ASCII headers, 7-bit body: what mailpeer sends) is written
 * directly by mail/rfc5322/compose_fast.ts; any other goes through nodemailer's MailComposer, so that its
 * headers are folded and encoded correctly.
 *
 * @module
 */
import { MailError } from "../../errors.ts";
import { composeFast } from "./compose_fast.ts";
import type { OutgoingMail } from "../types.ts";

/** Options of {@link composeMail}. */
export interface ComposeOptions {
  /** Right-hand side of a generated Message-ID. Default: the domain of `mail.from`. */
  hostname?: string;
  /** Clock used for the `Date:` header when `mail.date` is absent. Default: `Date.now`. */
  now?: () => number;
}

/** A composed mail. */
export interface ComposedMail {
  /** The whole message, headers and body, with CRLF line ends. */
  raw: Uint8Array;
  /** The Message-ID written into the mail, `<...@...>`. */
  messageId: string;
}

const HEADER_NAME = /^[!-9;-~]+$/;
// deno-lint-ignore no-control-regex
const LINE_BREAK_OR_NUL = /[\r\n\x00]/;

/**
 * Composes `mail` into raw RFC 5322 bytes.
 *
 * The `Date:` comes from `mail.date` or `options.now()`; a Message-ID `<random hex@hostname>`
 * is generated when `mail.messageId` is absent; `In-Reply-To` and extra headers pass through.
 *
 * @example
 * ```ts
 * const { raw, messageId } = await composeMail({
 *   from: "alice@example.org",
 *   to: ["host@example.org"],
 *   subject: "[mailpeer] lan request",
 *   text: "hello\n",
 * });
 * ```
 */
export async function composeMail(
  mail: OutgoingMail,
  options: ComposeOptions = {},
): Promise<ComposedMail> {
  checkOutgoing(mail);
  const now = options.now ?? Date.now;
  const hostname = options.hostname ?? domainOf(mail.from) ?? "localhost";
  const messageId = mail.messageId ?? `<${randomHex(16)}@${hostname}>`;
  const date = mail.date ?? new Date(now());
  const raw = composeFast(mail, { messageId, date }) ??
    await composeWithMailComposer(mail, { messageId, date });
  return { raw, messageId };
}

/**
 * Composes `mail` with nodemailer's MailComposer, the path {@link composeMail} takes for a mail
 * that is not simple. Exported for the tests that hold the fast path to it.
 *
 * @internal
 */
export async function composeWithMailComposer(
  mail: OutgoingMail,
  fields: { messageId: string; date: Date },
): Promise<Uint8Array> {
  // Loaded on first use (see mail/smtp/sender.ts): module loading dominates a cron host's start.
  const { default: MailComposer } = await import("nodemailer/lib/mail-composer/index.js");
  const composer = new MailComposer({
    from: mail.from,
    to: mail.to,
    subject: mail.subject,
    text: mail.text,
    date: fields.date,
    messageId: fields.messageId,
    inReplyTo: mail.inReplyTo,
    headers: mail.headers,
    textEncoding: "quoted-printable",
    newline: "windows",
  });
  try {
    const built: Uint8Array = await composer.compile().build();
    return new Uint8Array(built);
  } catch (err) {
    throw new MailError(
      "ESEND",
      `Cannot compose mail to ${mail.to.join(", ")}: ${
        errorText(err)
      }; check the addresses and headers`,
      { cause: err },
    );
  }
}

/** The domain of an address such as `a@b.c` or `Name <a@b.c>`, lower-cased, if any. */
export function domainOf(address: string): string | undefined {
  const bare = /<([^>]*)>/.exec(address)?.[1] ?? address;
  const at = bare.lastIndexOf("@");
  const domain = at >= 0 ? bare.slice(at + 1).trim().toLowerCase() : "";
  return domain === "" ? undefined : domain;
}

function checkOutgoing(mail: OutgoingMail): void {
  if (mail.to.length === 0) {
    throw new TypeError("Cannot compose mail: it has no recipient; give at least one address");
  }
  const single: [string, string | undefined][] = [
    ["From", mail.from],
    ["Subject", mail.subject],
    ["Message-ID", mail.messageId],
    ["In-Reply-To", mail.inReplyTo],
    ...mail.to.map((to): [string, string] => ["To", to]),
  ];
  for (const [name, value] of single) {
    if (value !== undefined && LINE_BREAK_OR_NUL.test(value)) {
      throw new TypeError(
        `Cannot compose mail: the ${name} value contains a line break; remove it`,
      );
    }
  }
  for (const [name, value] of Object.entries(mail.headers ?? {})) {
    if (!HEADER_NAME.test(name) || LINE_BREAK_OR_NUL.test(value)) {
      throw new TypeError(
        `Cannot compose mail: the header ${JSON.stringify(name)} is not a valid header line; ` +
          "use a plain header name and a value without line breaks",
      );
    }
  }
}

function randomHex(bytes: number): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(bytes)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
