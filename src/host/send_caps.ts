/**
 * Sending caps (docs/providers.md "Sending limits"): mail providers cap how much one account may
 * send per hour and per day, and an account over its cap is blocked for a day or worse. A host
 * given caps counts what each of its sending accounts sent, in a ledger file beside its table,
 * and sends through the first account still under its caps. When every account is at its cap the
 * mail is not sent: `EDEFER` (a passing failure), so a reply's request stays in the mailbox and is
 * answered on a later pass, never lost.
 *
 * The ledger is shared by every process of the host (cron runs, processes on a shared mailbox):
 * a slot is reserved under a file lock before the mail goes out, and given back if sending fails.
 *
 * @module
 */
import { HostError, MailError } from "../errors.ts";
import type { MailSender, OutgoingMail } from "../mail/types.ts";
import { MAX_SEND_CAP } from "../limits.ts";
import { type Clock, systemClock } from "../runtime.ts";
import { writeAtomically } from "./store/atomic_file.ts";
import { withFileLock } from "./store/file_lock.ts";

const HOUR_MS = 60 * 60 * 1000;
const DAY_MS = 24 * HOUR_MS;

/** One sending account and its caps. */
export interface SendAccount {
  sender: MailSender;
  /** How the account is named in the ledger and in messages, e.g. `smtp host@example.org`. */
  name: string;
  /** Mails per rolling hour; unset: no hourly cap. */
  maxPerHour?: number;
  /** Mails per rolling 24 hours; unset: no daily cap. */
  maxPerDay?: number;
}

/** Options of {@link CappedSender}. */
export interface CappedSenderOptions {
  /** The ledger file (JSON), e.g. `<table>.sent.json`. */
  ledger: string;
  clock?: Clock;
}

interface Ledger {
  version: 1;
  /** Per account name: when each counted mail went out (ms), oldest first. */
  sent: Record<string, number[]>;
}

/**
 * A {@link MailSender} over several accounts, each held to its caps.
 *
 * @example
 * ```ts ignore
 * const sender = new CappedSender([
 *   { sender: primary, name: "smtp host@example.org", maxPerHour: 100, maxPerDay: 500 },
 *   { sender: spare, name: "smtp host2@example.org", maxPerDay: 500 },
 * ], { ledger: "table.json.sent.json" });
 * ```
 */
export class CappedSender implements MailSender {
  readonly #accounts: SendAccount[];
  readonly #ledger: string;
  readonly #clock: Clock;
  /** This process's ledger updates, one at a time (the file lock keeps other processes out). */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(accounts: SendAccount[], options: CappedSenderOptions) {
    if (accounts.length === 0) throw new TypeError("CappedSender needs at least one account");
    const names = new Set(accounts.map((a) => a.name));
    if (names.size !== accounts.length) throw new TypeError("CappedSender: account names repeat");
    this.#accounts = accounts;
    this.#ledger = options.ledger;
    this.#clock = options.clock ?? systemClock;
  }

  async send(
    mail: OutgoingMail,
    options?: { signal?: AbortSignal },
  ): Promise<{ messageId: string }> {
    return await this.#through(
      `mail to ${mail.to.join(", ")}`,
      (sender) => sender.send(mail, options),
    );
  }

  async forward(
    raw: Uint8Array,
    options: { from: string; to: string[]; signal?: AbortSignal },
  ): Promise<{ messageId: string }> {
    return await this.#through(`a forward to ${options.to.join(", ")}`, (sender) => {
      if (!sender.forward) {
        throw new TypeError(
          "Cannot forward: this sending account cannot forward; use SMTP or Maildir",
        );
      }
      return sender.forward(raw, options);
    });
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.#accounts.map((a) => a.sender.close()));
  }

  /** What each account sent in the last hour and day, for status and tests. */
  async usage(): Promise<{ name: string; lastHour: number; lastDay: number }[]> {
    const ledger = await this.#read();
    const now = this.#clock.now();
    return this.#accounts.map(({ name }) => {
      const times = ledger.sent[name] ?? [];
      return {
        name,
        lastHour: times.filter((t) => t > now - HOUR_MS).length,
        lastDay: times.filter((t) => t > now - DAY_MS).length,
      };
    });
  }

  /** Reserves a slot on the first account under its caps, sends, and gives it back on failure. */
  async #through<T>(what: string, send: (sender: MailSender) => Promise<T>): Promise<T> {
    const reserved = await this.#reserve(what);
    try {
      return await send(reserved.account.sender);
    } catch (err) {
      await this.#release(reserved.account.name, reserved.at).catch(() => {});
      throw err;
    }
  }

  /** Runs `fn` on the ledger under its lock, after this process's earlier updates. */
  #locked<T>(fn: () => Promise<T>): Promise<T> {
    // The lock's waits for another process run on real time: how long another process holds
    // the ledger is not this sender's clock's business.
    const run = this.#queue.then(() => withFileLock(this.#ledger, fn));
    this.#queue = run.catch(() => {});
    return run;
  }

  #reserve(what: string): Promise<{ account: SendAccount; at: number }> {
    return this.#locked(async () => {
      const ledger = await this.#read();
      const now = this.#clock.now();
      let nextFree = Infinity;
      for (const account of this.#accounts) {
        const times = (ledger.sent[account.name] ?? []).filter((t) => t > now - DAY_MS);
        const hour = times.filter((t) => t > now - HOUR_MS);
        const overHour = account.maxPerHour !== undefined && hour.length >= account.maxPerHour;
        const overDay = account.maxPerDay !== undefined && times.length >= account.maxPerDay;
        if (!overHour && !overDay) {
          times.push(now);
          ledger.sent[account.name] = this.#kept(account, times, now);
          await this.#write(ledger);
          return { account, at: now };
        }
        // When this account has room again: its oldest counted mail leaves the window.
        if (overHour) {
          nextFree = Math.min(nextFree, hour[hour.length - account.maxPerHour!]! + HOUR_MS);
        }
        if (overDay) {
          nextFree = Math.min(nextFree, times[times.length - account.maxPerDay!]! + DAY_MS);
        }
      }
      const caps = this.#accounts.map((a) =>
        `${a.name}: ${
          [
            a.maxPerHour !== undefined ? `${a.maxPerHour} per hour` : "",
            a.maxPerDay !== undefined ? `${a.maxPerDay} per day` : "",
          ].filter((x) => x).join(", ")
        }`
      ).join("; ");
      throw new MailError(
        "EDEFER",
        `Cannot send ${what}: every sending account is at its cap (${caps}); it waits and goes ` +
          `out after ${
            new Date(nextFree).toISOString()
          } (add an account under [[host.send_also]] ` +
          `to send more)`,
        { cause: "send cap" },
      );
    });
  }

  #release(name: string, at: number): Promise<void> {
    return this.#locked(async () => {
      const ledger = await this.#read();
      const times = ledger.sent[name] ?? [];
      const i = times.lastIndexOf(at);
      if (i >= 0) times.splice(i, 1);
      await this.#write(ledger);
    });
  }

  /** The timestamps an account must keep: within the day, and no more than its caps need. */
  #kept(account: SendAccount, times: number[], now: number): number[] {
    const window = account.maxPerDay !== undefined ? DAY_MS : HOUR_MS;
    const keep = Math.max(account.maxPerDay ?? 0, account.maxPerHour ?? 0, 1);
    return times.filter((t) => t > now - window).slice(-keep);
  }

  async #read(): Promise<Ledger> {
    let text: string;
    try {
      text = await Deno.readTextFile(this.#ledger);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return { version: 1, sent: {} };
      throw this.#broken(`cannot be read (${(err as Error).message})`, err);
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw this.#broken("is not JSON", err);
    }
    const sent = (value as Ledger | null)?.sent;
    if (
      (value as Ledger | null)?.version !== 1 || typeof sent !== "object" || sent === null ||
      Object.values(sent).some((t) =>
        !Array.isArray(t) || t.length > MAX_SEND_CAP || t.some((x) => !Number.isSafeInteger(x))
      )
    ) {
      throw this.#broken("is not a mailpeer sending ledger", "bad ledger");
    }
    return value as Ledger;
  }

  async #write(ledger: Ledger): Promise<void> {
    await writeAtomically(
      this.#ledger,
      new TextEncoder().encode(JSON.stringify(ledger)),
      "the sending ledger",
    );
  }

  #broken(what: string, cause: unknown): HostError {
    // Sending on without knowing the count could break the provider's cap: refuse, in one line.
    return new HostError(
      "EFILE",
      `Cannot count the mail sent: the sending ledger ${this.#ledger} ${what}; remove it to ` +
        "count afresh (the caps then start from zero)",
      { cause },
    );
  }
}
