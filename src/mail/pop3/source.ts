/**
 * {@link MailSource} over POP3 (RFC 1939), for providers that offer no IMAP.
 *
 * POP3 shows a fixed snapshot of the maildrop per session and applies `DELE` only at `QUIT`,
 * so: {@link Pop3Source.list} starts a new session (to see new mail), reads `UIDL` and `LIST`,
 * and reads the subject of each mail it has not seen before with `TOP n 0` (subjects are kept
 * by UIDL, so each mail's headers are read once); refs carry the UIDL as id. `fetch` uses
 * `RETR` in that session. `delete` sends `DELE` and then `QUIT` at once, and resolves only
 * after the server confirmed the commit; the next call opens a new session. POP3 has no
 * folders: `quarantine` deletes. `TOP` and `RETR` change nothing (POP3 has no seen flag), and
 * only mail listed as matching is ever deleted.
 *
 * @module
 */
import { MailError } from "../../errors.ts";
import { DEFAULT_POLL_INTERVAL_MS, MAX_MAIL_BYTES } from "../../limits.ts";
import { FIRST_FAILURE_KEPT_MS } from "../tuning.ts";
import { type Logger, silentLogger } from "../../log.ts";
import { type Clock, systemClock } from "../../runtime.ts";
import { isFinalFailure } from "../connect_failure.ts";
import { readSubject } from "../rfc5322/parse.ts";
import { isConnectionDrop, isOversized, Pop3Client } from "./client.ts";
import type { Pop3ConnectOptions } from "./stream.ts";
import {
  type MailLogin,
  type MailRef,
  type MailSource,
  matchesSubject,
  type SubjectMatch,
} from "../types.ts";

/** Options of {@link Pop3Source}. */
export interface Pop3SourceOptions {
  /** How long {@link Pop3Source.waitForMail} waits before the caller lists again. Default: 1000. */
  pollIntervalMs?: number;
  /** Timers for the poll interval. Default: the system clock. */
  clock?: Clock;
  /** Where reconnects and quarantines are logged. Default: silent. */
  logger?: Logger;
  /** Largest mail `fetch` downloads, in bytes. Default: `MAX_MAIL_BYTES` (64 KiB). */
  maxMailBytes?: number;
  /** Time limit for each command, in ms. Default: 30 000. */
  timeoutMs?: number;
  /** Configuration section named in error messages, e.g. `host.receive`. Default: `receive`. */
  configKey?: string;
}

/** An open session and its view of the maildrop. */
interface Session {
  client: Pop3Client;
  /** Message number by UIDL. */
  numbers: Map<string, number>;
  /** Size in octets by message number. */
  sizes: Map<number, number>;
}

/** Turns a `-ERR` answer (the session goes on) into `undefined`; rethrows anything else. */
function refused(err: unknown): undefined {
  if (err instanceof MailError && err.code === "EMAIL" && !isOversized(err)) return undefined;
  throw err;
}

/** Tries of one operation when an established connection drops. */
const MAX_TRIES = 3;

/**
 * Reads a POP3 mailbox, seeing only mail that matches.
 *
 * @example
 * ```ts
 * const source = new Pop3Source({
 *   host: "pop.example.org", port: 995, tls: "implicit",
 *   user: "host@example.org", password: Deno.env.get("POP3_PASSWORD") ?? "",
 * });
 * for (const ref of await source.list({ subject: "[mailpeer] lan request", mode: "exact" })) {
 *   const raw = await source.fetch(ref);
 *   await source.delete(ref);
 * }
 * await source.close();
 * ```
 */
export class Pop3Source implements MailSource {
  readonly #server: MailLogin;
  readonly #pollIntervalMs: number;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #maxMailBytes: number;
  readonly #timeoutMs: number | undefined;
  readonly #configKey: string;
  #caCerts: Promise<string[] | undefined> | undefined;
  #session: Session | undefined;
  /** True once a session was opened. */
  #everConnected = false;
  /**
   * The failure of the settings, when the first session could not be opened and asking again
   * would only repeat it at the same cost (`isFinalFailure`), and when: later calls answer it at
   * once for `FIRST_FAILURE_KEPT_MS`.
   */
  #failed: { error: MailError; at: number } | undefined;
  /** Subject by UIDL (`null`: unreadable, never matches). A UIDL never changes its mail. */
  #subjects = new Map<string, string | null>();
  /** UIDLs handed out by list() as matching: only these may be deleted. */
  readonly #listed = new Set<string>();
  #queue: Promise<unknown> = Promise.resolve();
  readonly #closing = new AbortController();

  constructor(server: MailLogin, options: Pop3SourceOptions = {}) {
    if (server.accessToken !== undefined) {
      throw new TypeError("Cannot log in to POP3 with OAuth2 (no XOAUTH2 here); use IMAP");
    }
    this.#server = server;
    this.#pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? silentLogger;
    this.#maxMailBytes = options.maxMailBytes ?? MAX_MAIL_BYTES;
    this.#timeoutMs = options.timeoutMs;
    this.#configKey = options.configKey ?? "receive";
  }

  /**
   * Logs in once and logs out (`MailSource.open`): a POP3 session sees the mailbox as it was
   * at login, so {@link list} opens its own.
   */
  open(options: { signal?: AbortSignal } = {}): Promise<void> {
    return this.#run("open", options.signal, async () => {
      await this.#ensureSession();
      await this.#endSession();
    });
  }

  /** Lists matching mail in arrival order (message number), in a new session. */
  list(match: SubjectMatch, options: { signal?: AbortSignal } = {}): Promise<MailRef[]> {
    return this.#run("list", options.signal, async () => {
      for (;;) {
        await this.#endSession();
        const session = await this.#ensureSession();
        let current = "";
        try {
          const refs: MailRef[] = [];
          for (const [uid, n] of session.numbers) {
            current = uid;
            let subject = this.#subjects.get(uid);
            if (subject === undefined) {
              const head = await session.client.top(n, 0, MAX_MAIL_BYTES).catch(refused);
              if (head === undefined) continue; // expunged by another session meanwhile
              subject = await readSubject(head);
              this.#subjects.set(uid, subject);
            }
            if (subject === null || !matchesSubject(subject, match)) continue;
            refs.push({ id: uid, subject: subject.trim(), size: session.sizes.get(n) });
          }
          for (const uid of this.#subjects.keys()) {
            if (!session.numbers.has(uid)) this.#subjects.delete(uid);
          }
          for (const uid of this.#listed) if (!session.numbers.has(uid)) this.#listed.delete(uid);
          for (const ref of refs) this.#listed.add(ref.id);
          return refs;
        } catch (err) {
          if (!isOversized(err)) throw err;
          // headers too large to read: the mail is never ours; the reply was cut, so the
          // session is gone: list again in a new one, skipping this mail from now on
          this.#subjects.set(current, null);
          this.#logger.log("warn", "POP3 mail headers unreadable; the mail is left alone", {
            server: this.#where,
            id: current,
            error: (err as Error).message,
          });
        }
      }
    });
  }

  /** Downloads a listed mail with RETR; it stays in the mailbox. */
  fetch(ref: MailRef, options: { signal?: AbortSignal } = {}): Promise<Uint8Array> {
    return this.#run("fetch", options.signal, async () => {
      const session = await this.#ensureSession();
      const n = session.numbers.get(ref.id);
      if (n === undefined || !this.#subjects.has(ref.id)) {
        throw new MailError(
          "EMAIL",
          `Cannot fetch mail ${ref.id} from POP3 server ${this.#where}: it is not in the mailbox ` +
            "(or was never listed); list the mailbox again",
        );
      }
      const size = session.sizes.get(n) ?? 0;
      if (size > this.#maxMailBytes) {
        throw new MailError(
          "EMAIL",
          `Cannot fetch mail ${ref.id} from POP3 server ${this.#where}: it has ${size} bytes, ` +
            `over the limit of ${this.#maxMailBytes}; quarantine it or raise the mail size limit`,
        );
      }
      return await session.client.retr(n, this.#maxMailBytes);
    });
  }

  /** POP3 has no folders to move a mail into: a claim cannot keep other readers off it. */
  readonly claims = false;

  /** The ref itself: POP3 cannot claim (see {@link claims}); one reader per mailbox. */
  claim(ref: MailRef): Promise<MailRef | undefined> {
    return Promise.resolve(ref);
  }

  /** The refs themselves, as {@link claim}. */
  claimMany(refs: MailRef[]): Promise<MailRef[]> {
    return Promise.resolve(refs);
  }

  /** Nothing is ever claimed, so nothing is put back. */
  recoverClaims(_olderThanMs: number): Promise<number> {
    return Promise.resolve(0);
  }

  /** {@link delete} of each, in order (each one its own DELE + QUIT). */
  async deleteMany(refs: MailRef[]): Promise<void> {
    for (const ref of refs) await this.delete(ref);
  }

  /**
   * Deletes a listed mail for good: DELE, then QUIT, which commits it. Resolves once the
   * server confirmed; a mail that is already gone is not an error. A ref that list() did not
   * return as matching is ignored: nothing else is ever deleted.
   */
  delete(ref: MailRef): Promise<void> {
    return this.#run("delete", undefined, async () => {
      if (!this.#listed.has(ref.id)) return; // never listed as matching: not ours to delete
      const session = await this.#ensureSession();
      const n = session.numbers.get(ref.id);
      if (n === undefined) {
        this.#listed.delete(ref.id);
        return;
      }
      if (await session.client.dele(n).then(() => true, refused) === undefined) {
        // refused: most likely expunged by another session; look again in a new one
        await this.#endSession();
        if ((await this.#ensureSession()).numbers.has(ref.id)) {
          throw new MailError(
            "EMAIL",
            `Cannot delete mail ${ref.id} on POP3 server ${this.#where}: the server refused DELE; ` +
              "check the server log",
          );
        }
      } else {
        this.#session = undefined;
        await session.client.quit();
      }
      this.#subjects.delete(ref.id);
      this.#listed.delete(ref.id);
    });
  }

  /** POP3 has no folders: a quarantined mail is deleted (and the reason logged). */
  async quarantine(ref: MailRef, reason: string): Promise<void> {
    await this.delete(ref);
    this.#logger.log("info", "POP3 has no folders: quarantined mail deleted", {
      server: this.#where,
      id: ref.id,
      reason,
    });
  }

  /**
   * Ends the session (so the server holds no lock while nothing happens), then resolves after
   * one poll interval, or at once when `signal` aborts or the source is closed.
   */
  async waitForMail(options: { signal?: AbortSignal } = {}): Promise<void> {
    const signal = options.signal;
    if (signal?.aborted || this.#closing.signal.aborted) return;
    await this.#run("wait", undefined, () => this.#endSession()).catch(() => {});
    const signals = [this.#closing.signal, ...(signal ? [signal] : [])];
    await this.#clock.sleep(this.#pollIntervalMs, AbortSignal.any(signals)).catch(() => {});
  }

  /** Ends the session (QUIT) and wakes every waiter. */
  async close(): Promise<void> {
    this.#closing.abort();
    await this.#run("close", undefined, () => this.#endSession()).catch(() => {});
  }

  get #where(): string {
    return `${this.#server.host}:${this.#server.port}`;
  }

  /** Runs `op` after every earlier one (one session, one command at a time), with retries. */
  #run<T>(op: string, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
    const attempt = async (): Promise<T> => {
      for (let tries = 1;; tries++) {
        signal?.throwIfAborted();
        try {
          return await fn();
        } catch (err) {
          this.#dropSession();
          if (!isConnectionDrop(err) || tries >= MAX_TRIES) throw err;
          this.#logger.log("warn", "POP3 connection dropped; reconnecting", {
            server: this.#where,
            op,
            tries,
            error: (err as Error).message,
          });
        }
      }
    };
    const result = this.#queue.then(attempt);
    this.#queue = result.catch(() => {});
    return result;
  }

  async #ensureSession(): Promise<Session> {
    if (this.#session) return this.#session;
    if (this.#closing.signal.aborted) {
      throw new MailError(
        "ECONNECT",
        `Cannot read POP3 server ${this.#where}: the source is closed; open a new one`,
      );
    }
    const options: Pop3ConnectOptions = {
      host: this.#server.host,
      port: this.#server.port,
      tls: this.#server.tls,
      ...(this.#server.servername ? { servername: this.#server.servername } : {}),
      ...(this.#server.insecure ? { insecure: true } : {}),
      ...(this.#timeoutMs ? { timeoutMs: this.#timeoutMs } : {}),
      ...(this.#server.connectTimeoutMs ? { connectTimeoutMs: this.#server.connectTimeoutMs } : {}),
      configKey: this.#configKey,
    };
    if (this.#failed && this.#clock.now() - this.#failed.at < FIRST_FAILURE_KEPT_MS) {
      throw this.#failed.error;
    }
    const caCerts = await this.#loadCa();
    if (caCerts) options.caCerts = caCerts;
    let client: Pop3Client | undefined;
    try {
      client = await Pop3Client.connect(options);
      // The configuration refuses token_command for POP3 (no XOAUTH2 here).
      await client.login(this.#server.user, this.#server.password ?? "");
    } catch (err) {
      client?.close();
      if (isFinalFailure(err) && !this.#everConnected && !this.#closing.signal.aborted) {
        this.#failed = { error: err as MailError, at: this.#clock.now() };
      }
      throw err;
    }
    this.#everConnected = true;
    try {
      const uids = await client.uidl();
      const sizes = await client.list();
      const numbers = new Map<string, number>();
      for (const [n, uid] of [...uids].sort((a, b) => a[0] - b[0])) numbers.set(uid, n);
      this.#session = { client, numbers, sizes };
      return this.#session;
    } catch (err) {
      client.close();
      throw err;
    }
  }

  /** QUITs the session. It has no pending DELE (delete() commits at once). */
  async #endSession(): Promise<void> {
    const session = this.#session;
    this.#session = undefined;
    await session?.client.quit().catch(() => {});
  }

  #dropSession(): void {
    this.#session?.client.close();
    this.#session = undefined;
  }

  #loadCa(): Promise<string[] | undefined> {
    const file = this.#server.caFile;
    if (file === undefined) return Promise.resolve(undefined);
    this.#caCerts ??= Deno.readTextFile(file).then((pem) => [pem], (err) => {
      this.#caCerts = undefined;
      throw new MailError(
        "ETLS",
        `Cannot read the CA file ${file} for POP3 server ${this.#where}: ${
          (err as Error).message
        }; check ca_file`,
        { cause: err },
      );
    });
    return this.#caCerts;
  }
}
