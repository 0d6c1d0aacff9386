/**
 * {@link MailSender} for the local post office: composes the mail and delivers it into the
 * Maildir of every recipient the standard way (write to `tmp/`, then rename into `new/`).
 *
 * @module
 */
import { join } from "node:path";
import { MailError } from "../../errors.ts";
import { composeMail, domainOf } from "../rfc5322/compose.ts";
import { ensureMaildir, mailboxName, MaildirPostOffice } from "./post_office.ts";
import { resentRaw } from "../rfc5322/resend.ts";
import type { MailSender, OutgoingMail } from "../types.ts";

/** Options of {@link deliverToMaildir}. */
export interface DeliverOptions {
  /** Clock for the time part of the unique name. Default: `Date.now`. */
  now?: () => number;
  /** Host name part of the unique name. Default: this machine's host name. */
  hostname?: string;
}

let sequence = 0;

/**
 * Delivers raw mail bytes into the Maildir `maildir` (created when missing): written to
 * `tmp/<unique>`, then renamed into `new/<unique>`, so readers never see a partial mail.
 * Resolves with the unique name. Throws `MailError` `EMAILDIR` when the Maildir is not writable.
 */
export async function deliverToMaildir(
  maildir: string,
  raw: Uint8Array,
  options: DeliverOptions = {},
): Promise<string> {
  await ensureMaildir(maildir);
  const name = uniqueName(options.now ?? Date.now, options.hostname ?? localHostname());
  const tmp = join(maildir, "tmp", name);
  try {
    await Deno.writeFile(tmp, raw, { createNew: true, mode: 0o600 });
    await Deno.rename(tmp, join(maildir, "new", name));
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw new MailError(
      "EMAILDIR",
      `Cannot deliver mail into ${maildir}: ${err instanceof Error ? err.message : String(err)}; ` +
        "check that the Maildir is writable",
      { cause: err },
    );
  }
  return name;
}

/** Options of {@link MaildirSender}. */
export interface MaildirSenderOptions {
  /** Clock for the `Date:` header and unique names. Default: `Date.now`. */
  now?: () => number;
  /**
   * Host name written into Maildir unique names. Default: this machine's host name.
   * (Generated Message-IDs use the sender's domain.)
   */
  hostname?: string;
}

/**
 * Sends mail by delivering it into the post office's Maildirs. A recipient without a mailbox
 * gets one: a local post office accepts any address.
 *
 * @example
 * ```ts
 * const sender = new MaildirSender("/var/lib/mailpeer/post");
 * await sender.send({ from: "a@lan", to: ["host@lan"], subject: "hi", text: "hello\n" });
 * ```
 */
export class MaildirSender implements MailSender {
  readonly #postOffice: MaildirPostOffice;
  readonly #now: () => number;
  readonly #hostname: string | undefined;
  #closed = false;

  constructor(postOffice: MaildirPostOffice | string, options: MaildirSenderOptions = {}) {
    this.#postOffice = typeof postOffice === "string"
      ? new MaildirPostOffice(postOffice)
      : postOffice;
    this.#now = options.now ?? Date.now;
    this.#hostname = options.hostname;
  }

  /** Composes `mail` and delivers it to every recipient; resolves with its Message-ID. */
  async send(
    mail: OutgoingMail,
    options: { signal?: AbortSignal } = {},
  ): Promise<{ messageId: string }> {
    this.#checkOpen("send mail");
    const mailboxes = [...new Set(mail.to.map(mailboxName))];
    const { raw, messageId } = await composeMail(mail, { now: this.#now });
    for (const mailbox of mailboxes) {
      options.signal?.throwIfAborted();
      await deliverToMaildir(this.#postOffice.maildirOf(mailbox), raw, {
        now: this.#now,
        hostname: this.#hostname,
      });
    }
    return { messageId };
  }

  /**
   * Resends `raw` unchanged apart from a prepended `Resent-*` block (see `resentRaw`) into
   * the Maildir of every address in `to`; resolves with the `Resent-Message-ID`.
   */
  async forward(
    raw: Uint8Array,
    options: { from: string; to: string[]; signal?: AbortSignal },
  ): Promise<{ messageId: string }> {
    this.#checkOpen("forward mail");
    const mailboxes = [...new Set(options.to.map(mailboxName))];
    const messageId = resentId(options.from);
    const resent = resentRaw(raw, {
      from: options.from,
      to: options.to,
      date: new Date(this.#now()),
      messageId,
    });
    for (const mailbox of mailboxes) {
      options.signal?.throwIfAborted();
      await deliverToMaildir(this.#postOffice.maildirOf(mailbox), resent, {
        now: this.#now,
        hostname: this.#hostname,
      });
    }
    return { messageId };
  }

  /** Nothing to release; later sends are refused, as with every sender. */
  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  #checkOpen(what: string): void {
    if (this.#closed) {
      throw new MailError(
        "ESEND",
        `Cannot ${what} into the post office ${this.#postOffice.root}: the sender is closed; ` +
          "send before closing it",
        { cause: "closed" },
      );
    }
  }
}

/** A fresh `<random@domain of from>` Message-ID. */
function resentId(from: string): string {
  const random = Array.from(
    crypto.getRandomValues(new Uint8Array(16)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  return `<${random}@${domainOf(from) ?? "localhost"}>`;
}

/** `<seconds>.M<microseconds>P<pid>Q<sequence>R<random>.<host>`, as the Maildir spec suggests. */
function uniqueName(now: () => number, hostname: string): string {
  const ms = now();
  const seconds = Math.floor(ms / 1000);
  const micros = String(Math.floor(ms % 1000) * 1000).padStart(6, "0");
  const seq = String(sequence++).padStart(9, "0");
  const random = Array.from(
    crypto.getRandomValues(new Uint8Array(6)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  return `${seconds}.M${micros}P${Deno.pid}Q${seq}R${random}.${safeHostname(hostname)}`;
}

function localHostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "localhost";
  }
}

/** The Maildir spec's escaping: `/` → `\057`, `:` → `\072`; other unsafe characters dropped. */
function safeHostname(hostname: string): string {
  // deno-lint-ignore no-control-regex
  const cleaned = hostname.replace(/[\x00-\x1f\x7f\\]/g, "").replaceAll("/", "\\057")
    .replaceAll(":", "\\072");
  return cleaned === "" ? "localhost" : cleaned;
}
