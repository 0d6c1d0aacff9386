/**
 * Helpers of the rendezvous benchmark: accounts of the real mail stack, warm imapflow
 * mailboxes for the raw baseline, the final sweep that deletes every bench mail, and the
 * statistics.
 *
 * @module
 */
import type { MailLogin, MailServerOptions } from "../../src/mail/types.ts";
import { ImapFlow } from "imapflow";

import { loadStack, type Stack } from "../../tests/support/mailstack.ts";

/** Milliseconds on the monotonic clock. */
export const now = (): number => performance.now();

/** Resolves after `ms`. */
export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The stack as stack.json says now: read anew each time, since a cold restart of the stack
 * (by another user of it) makes new passwords.
 */
function stack(): Stack {
  const found = loadStack();
  if (!found) {
    throw new Error(
      "Cannot run the rendezvous benchmark: the mail stack is not running; " +
        "start it with scripts/mailstack/mailstack.sh start",
    );
  }
  return found;
}

function account(address: string) {
  const s = stack();
  for (const provider of s.providers) {
    const user = provider.users.find((u) => u.address === address);
    if (user) return { provider, user, caFile: s.caFile };
  }
  throw new Error(`no account ${address} in the mail stack`);
}

/** Throws unless the mail stack runs. */
export function requireStack(): void {
  if (!loadStack()) {
    throw new Error(
      "Cannot run the rendezvous benchmark: the mail stack is not running; " +
        "start it with scripts/mailstack/mailstack.sh start",
    );
  }
}

/** SMTP submission (587, STARTTLS, AUTH) of an address of the stack. */
export function smtpFor(address: string): MailServerOptions {
  const { provider, user, caFile } = account(address);
  return {
    host: provider.ip,
    port: provider.ports.submission,
    tls: "starttls",
    user: user.user,
    password: user.password,
    caFile,
    servername: provider.hostname,
  };
}

/** IMAP (143, STARTTLS; or 993, implicit TLS) of an address of the stack. */
export function imapFor(
  address: string,
  tls: "starttls" | "implicit" = "starttls",
): MailLogin {
  const { provider, user, caFile } = account(address);
  return {
    host: provider.ip,
    port: tls === "implicit" ? provider.ports.imaps : provider.ports.imap,
    tls,
    user: user.user,
    password: user.password,
    caFile,
    servername: provider.hostname,
  };
}

async function connect(address: string, mailbox = "INBOX"): Promise<ImapFlow> {
  const s = imapFor(address);
  const client = new ImapFlow({
    host: s.host,
    port: s.port,
    secure: false,
    doSTARTTLS: true,
    servername: s.servername!,
    tls: { ca: [await Deno.readTextFile(s.caFile!)], servername: s.servername },
    auth: { user: s.user, pass: s.password },
    logger: false,
    disableAutoIdle: true,
    connectionTimeout: 15_000,
    greetingTimeout: 15_000,
  });
  client.on("error", () => {});
  await client.connect();
  await client.mailboxOpen(mailbox);
  return client;
}

/**
 * One warm IMAP session on a mailbox, waiting for a mail by subject token the raw way: NOOP
 * every `pollMs` (poll) or IMAP IDLE (idle), SEARCH only after the server announced EXISTS.
 */
export class RawBox {
  #arrivals = 0;
  #wake: (() => void) | undefined;

  private constructor(readonly client: ImapFlow, readonly mode: "poll" | "idle") {
    client.on("exists", () => {
      this.#arrivals++;
      this.#wake?.();
    });
  }

  static async open(address: string, mode: "poll" | "idle"): Promise<RawBox> {
    return new RawBox(await connect(address), mode);
  }

  /**
   * Waits until a mail whose subject contains `token` is in the mailbox, fetches it
   * (`BODY.PEEK[]`) and resolves with its UID and the time it was first seen in a SEARCH.
   */
  async waitFor(
    token: string,
    options: { timeoutMs: number; pollMs: number },
  ): Promise<{ uid: number; seenAt: number; subject: string }> {
    const deadline = now() + options.timeoutMs;
    const c = this.client;
    while (now() < deadline) {
      const before = this.#arrivals;
      const found = await c.search({ subject: token }, { uid: true });
      if (found && found.length > 0) {
        const seenAt = now();
        const uid = found[0]!;
        const msg = await c.fetchOne(String(uid), { uid: true, envelope: true, source: true }, {
          uid: true,
        });
        return { uid, seenAt, subject: msg ? msg.envelope?.subject ?? "" : "" };
      }
      if (this.mode === "poll") {
        while (this.#arrivals === before && now() < deadline) {
          await c.noop();
          if (this.#arrivals !== before) break;
          await sleep(options.pollMs);
        }
      } else {
        const woken = new Promise<void>((resolve) => (this.#wake = resolve));
        let timer: ReturnType<typeof setTimeout> | undefined;
        const limit = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, Math.max(0, deadline - now()));
        });
        if (this.#arrivals === before) {
          const idling = c.idle().catch(() => undefined);
          await Promise.race([woken, limit, idling]);
        }
        clearTimeout(timer);
        this.#wake = undefined;
      }
    }
    throw new Error(`no mail with "${token}" within ${options.timeoutMs} ms`);
  }

  /** Deletes one mail for good (STORE \Deleted + UID EXPUNGE). */
  async delete(uid: number): Promise<void> {
    await this.client.messageDelete(String(uid), { uid: true });
  }

  async close(): Promise<void> {
    await this.client.logout().catch(() => this.client.close());
  }
}

/**
 * Deletes every mail whose subject contains `token` from the INBOX (and Quarantine, when it
 * exists) of each address. Resolves with the number deleted per address.
 */
export async function sweep(
  addresses: string[],
  token: string,
): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const address of addresses) {
    let deleted = 0;
    const client = await connect(address);
    try {
      const boxes = (await client.list()).map((b) => b.path);
      for (const box of ["INBOX", "Quarantine"]) {
        if (!boxes.includes(box)) continue;
        await client.mailboxOpen(box);
        const uids = await client.search({ subject: token }, { uid: true });
        if (uids && uids.length > 0) {
          await client.messageDelete(uids.join(","), { uid: true });
          deleted += uids.length;
        }
      }
    } finally {
      await client.logout().catch(() => client.close());
    }
    out[address] = deleted;
  }
  return out;
}

/** Nearest-rank percentile (p in 0..100) of a non-empty sample. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1]!;
}

/** p50/p90/min/max/n of a sample, rounded to 0.1 ms, with the samples themselves. */
export interface Summary {
  p50: number;
  p90: number;
  min: number;
  max: number;
  n: number;
  samples: number[];
}

const r1 = (x: number) => Math.round(x * 10) / 10;

export function summarize(xs: readonly number[]): Summary {
  return {
    p50: r1(percentile(xs, 50)),
    p90: r1(percentile(xs, 90)),
    min: r1(Math.min(...xs)),
    max: r1(Math.max(...xs)),
    n: xs.length,
    samples: xs.map(r1),
  };
}

/** Writes text to stdout (no console in this repository). */
export function out(text: string): void {
  const bytes = new TextEncoder().encode(text);
  for (let at = 0; at < bytes.length;) at += Deno.stdout.writeSync(bytes.subarray(at));
}
