/**
 * {@link MailSource} over one Maildir (the local post office, or any Maildir a mail server
 * delivers into, e.g. Dovecot's `~/Maildir`).
 *
 * Only mail whose subject matches is ever listed, fetched, moved or removed. Every other mail
 * stays where it is, byte for byte, under the same name (so it stays unread in `new/`).
 *
 * Claims (several host processes on one Maildir): {@link MaildirSource.claim} renames the
 * mail into the `cur/` of a Maildir++ folder (`.Processing`); `rename(2)` is atomic, so of
 * two processes exactly one succeeds and the other gets `NotFound`. The claim time is the
 * file's mtime, set just before the rename; {@link MaildirSource.recoverClaims} renames files
 * whose mtime is older than the limit back into `cur/`.
 *
 * @module
 */
import { join } from "node:path";
import { MailError } from "../../errors.ts";
import { DEFAULT_POLL_INTERVAL_MS } from "../../limits.ts";
import { type Clock, systemClock } from "../../runtime.ts";
import { errorText, exists, idOf, safeName, subjectOf } from "./files.ts";
import { ensureMaildir } from "./post_office.ts";
import { type MailRef, type MailSource, matchesSubject, type SubjectMatch } from "../types.ts";

/** Options of {@link MaildirSource}. */
export interface MaildirSourceOptions {
  /** How long {@link MaildirSource.waitForMail} waits without a file event. Default: 1000. */
  pollIntervalMs?: number;
  /** Timers for the poll interval, and the time of claims. Default: the system clock. */
  clock?: Clock;
  /** Maildir++ folder (a name starting with `.`) that claimed mail moves to. Default: `.Processing`. */
  processing?: string;
}

/** Where a mail currently is. */
interface Location {
  path: string;
  /** The file name (unique name plus any `:2,<flags>` info). */
  name: string;
  inNew: boolean;
}

/** Sub-folder (Maildir++) that quarantined mail is moved to; mail clients show it as a folder. */
export const QUARANTINE_FOLDER = ".Quarantine";

/** Default Maildir++ sub-folder of claimed mail ({@link MaildirSource.claim}). */
export const PROCESSING_FOLDER = ".Processing";

/**
 * Reads a Maildir (created with tmp/, new/, cur/ when missing), seeing only mail that matches.
 *
 * @example
 * ```ts
 * const source = new MaildirSource("/var/lib/mailpeer/post/host@lan");
 * for (const ref of await source.list({ subject: "[mailpeer] lan request", mode: "exact" })) {
 *   const raw = await source.fetch(ref);
 * }
 * await source.close();
 * ```
 */
export class MaildirSource implements MailSource {
  readonly #dir: string;
  readonly #pollIntervalMs: number;
  readonly #clock: Clock;
  readonly #processing: string;
  #ready: Promise<void> | undefined;
  #watcher: Deno.FsWatcher | undefined;
  #watchLoop: Promise<void> | undefined;
  readonly #waiters = new Set<() => void>();
  /** Ids handed out by list(): only these may be moved from new/ to cur/. */
  readonly #listed = new Set<string>();
  /** Subject by unique name; a Maildir file never changes its content. */
  #subjects = new Map<string, string>();
  /** Names in new/ at the last list(), to notice deliveries before a watcher saw them. */
  #newSnapshot: Set<string> | undefined;
  #closed = false;

  constructor(maildir: string, options: MaildirSourceOptions = {}) {
    this.#dir = maildir;
    this.#pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
    this.#clock = options.clock ?? systemClock;
    this.#processing = options.processing ?? PROCESSING_FOLDER;
    if (!/^\.[^/\\:]+$/.test(this.#processing) || this.#processing === QUARANTINE_FOLDER) {
      throw new TypeError(
        `Cannot use ${JSON.stringify(this.#processing)} as the processing folder: it must be ` +
          "a Maildir++ folder name such as .Processing (a dot, no slash or colon)",
      );
    }
  }

  /** Lists matching mail in new/ and cur/, oldest first (file mtime, then name). */
  async list(match: SubjectMatch, options: { signal?: AbortSignal } = {}): Promise<MailRef[]> {
    options.signal?.throwIfAborted();
    await this.#ensure();
    this.#startWatcher();
    const found: { ref: MailRef; mtime: number; name: string }[] = [];
    const subjects = new Map<string, string>();
    const newNames = new Set<string>();
    for (const sub of ["new", "cur"] as const) {
      for (const name of await this.#names(sub)) {
        if (sub === "new") newNames.add(name);
        const id = idOf(name);
        if (subjects.has(id)) continue;
        const path = join(this.#dir, sub, name);
        const subject = this.#subjects.get(id) ?? await subjectOf(path);
        if (subject === undefined) continue; // vanished or unreadable: not ours to judge
        subjects.set(id, subject);
        if (!matchesSubject(subject, match)) continue;
        const info = await Deno.stat(path).catch(() => undefined);
        if (info === undefined) continue;
        found.push({
          ref: { id, subject: subject.trim(), size: info.size },
          mtime: info.mtime?.getTime() ?? 0,
          name: id,
        });
      }
    }
    this.#subjects = subjects;
    this.#newSnapshot = newNames;
    found.sort((a, b) => a.mtime - b.mtime || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const id of this.#listed) if (!subjects.has(id)) this.#listed.delete(id);
    for (const { ref } of found) this.#listed.add(ref.id);
    return found.map((f) => f.ref);
  }

  /** Reads a listed mail; one still in new/ moves to cur/ marked seen (`:2,S`). */
  async fetch(ref: MailRef, options: { signal?: AbortSignal } = {}): Promise<Uint8Array> {
    for (let attempt = 0; attempt < 3; attempt++) {
      options.signal?.throwIfAborted();
      let at = await this.#locate(ref.id);
      if (at === undefined) break;
      try {
        if (at.inNew && this.#listed.has(ref.id)) {
          const name = `${ref.id}:2,S`;
          const path = join(this.#dir, "cur", name);
          await Deno.rename(at.path, path);
          at = { path, name, inNew: false };
        }
        return await Deno.readFile(at.path);
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw this.#error("fetch", ref, err);
        // moved by another reader meanwhile: look again
      }
    }
    throw new MailError(
      "EMAILDIR",
      `Cannot fetch mail ${ref.id}: it is no longer in ${this.#dir}; list the mailbox again`,
    );
  }

  /** Removes a mail for good, wherever it is (new/ or cur/). Already gone: nothing to do. */
  async delete(ref: MailRef): Promise<void> {
    const at = await this.#locate(ref.id);
    this.#listed.delete(ref.id);
    if (at === undefined) return;
    await Deno.remove(at.path).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw this.#error("delete", ref, err);
    });
  }

  /**
   * Moves a mail into the `.Quarantine` Maildir++ folder (its `cur/`), keeping its flags.
   * The reason is for the caller's log; the mail itself is not changed.
   */
  async quarantine(ref: MailRef, _reason: string): Promise<void> {
    const at = await this.#locate(ref.id);
    this.#listed.delete(ref.id);
    if (at === undefined) return;
    const folder = join(this.#dir, QUARANTINE_FOLDER);
    try {
      await ensureMaildir(folder);
      await Deno.writeFile(join(folder, "maildirfolder"), new Uint8Array(), { create: true });
      const flags = at.inNew ? "" : (at.name.split(":2,")[1] ?? "");
      await Deno.rename(at.path, join(folder, "cur", `${idOf(at.name)}:2,${flags}`));
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw this.#error("quarantine", ref, err);
    }
  }

  /** {@link delete} of each (a rename-free unlink per mail: nothing to batch). */
  async deleteMany(refs: MailRef[]): Promise<void> {
    for (const ref of refs) await this.delete(ref);
  }

  /** A rename into the processing folder is atomic: one process wins each mail. */
  readonly claims = true;

  /** {@link claim} of each, in order: the refs this process won. */
  async claimMany(refs: MailRef[]): Promise<MailRef[]> {
    const won: MailRef[] = [];
    for (const ref of refs) {
      const claimed = await this.claim(ref);
      if (claimed) won.push(claimed);
    }
    return won;
  }

  /**
   * Takes a listed mail for this process: renames it into `<processing>/cur/` after setting
   * its mtime to the claim time. Resolves with the claimed ref (id `<processing>/<unique>`),
   * or undefined when another process renamed it first (or it is gone).
   */
  async claim(ref: MailRef): Promise<MailRef | undefined> {
    if (this.#claimedName(ref.id) !== undefined) {
      throw new TypeError(`Cannot claim mail ${ref.id}: it is already claimed`);
    }
    const folder = join(this.#dir, this.#processing);
    await this.#ensureFolder(folder);
    // a plain reader may move it from new/ to cur/ meanwhile: then look again
    for (let attempt = 0; attempt < 3; attempt++) {
      const at = await this.#locate(ref.id);
      if (at === undefined) break;
      const flags = at.inNew ? "" : (at.name.split(":2,")[1] ?? "");
      const name = `${ref.id}:2,${flags}`;
      const now = new Date(this.#clock.now());
      try {
        await Deno.utime(at.path, now, now); // the claim time, read by recoverClaims
        await Deno.rename(at.path, join(folder, "cur", name));
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) continue;
        throw this.#error("claim", ref, err);
      }
      this.#listed.delete(ref.id);
      const claimed: MailRef = { id: `${this.#processing}/${ref.id}`, subject: ref.subject };
      if (ref.size !== undefined) claimed.size = ref.size;
      return claimed;
    }
    return undefined;
  }

  /**
   * Renames every claimed mail whose claim time (mtime) is `olderThanMs` or more ago back
   * into `cur/`, where {@link list} sees it again. Resolves with how many were put back.
   */
  async recoverClaims(olderThanMs: number): Promise<number> {
    if (!(olderThanMs >= 0)) {
      throw new RangeError(`Cannot recover claims: olderThanMs must be >= 0, not ${olderThanMs}`);
    }
    await this.#ensure();
    const folder = join(this.#dir, this.#processing);
    const limit = this.#clock.now() - olderThanMs;
    let count = 0;
    for (const sub of ["cur", "new"]) {
      const names: string[] = [];
      try {
        for await (const entry of Deno.readDir(join(folder, sub))) {
          if (!entry.name.startsWith(".") && entry.isFile) names.push(entry.name);
        }
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) continue;
        throw this.#error("recover claims in", { id: this.#processing, subject: "" }, err);
      }
      for (const name of names) {
        const path = join(folder, sub, name);
        const info = await Deno.stat(path).catch(() => undefined);
        if (info === undefined || (info.mtime?.getTime() ?? 0) > limit) continue;
        try {
          await Deno.rename(path, join(this.#dir, "cur", name.includes(":") ? name : `${name}:2,`));
          count++;
        } catch (err) {
          if (!(err instanceof Deno.errors.NotFound)) {
            throw this.#error("recover", { id: name, subject: "" }, err);
          }
        }
      }
    }
    return count;
  }

  /**
   * Resolves when new/ changes (file watch), after one poll interval, or when `signal`
   * aborts, whichever comes first. Resolves at once when new/ holds a mail that the last
   * list() did not see.
   */
  async waitForMail(options: { signal?: AbortSignal } = {}): Promise<void> {
    const signal = options.signal;
    if (signal?.aborted || this.#closed) return;
    await this.#ensure();
    this.#startWatcher();
    let wake = () => {};
    const woken = new Promise<void>((resolve) => (wake = resolve));
    const timer = new AbortController();
    this.#waiters.add(wake);
    signal?.addEventListener("abort", wake, { once: true });
    try {
      if (signal?.aborted || this.#closed || await this.#newHasUnseen()) return;
      const slept = this.#clock.sleep(this.#pollIntervalMs, timer.signal).catch(() => {});
      await Promise.race([woken, slept]);
    } finally {
      this.#waiters.delete(wake);
      signal?.removeEventListener("abort", wake);
      timer.abort();
    }
  }

  /** Stops the file watcher and wakes every waiter. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#watcher?.close();
    this.#watcher = undefined;
    await this.#watchLoop;
    for (const wake of this.#waiters) wake();
  }

  /** Creates a Maildir++ sub-folder (with its `maildirfolder` marker) when missing. */
  async #ensureFolder(folder: string): Promise<void> {
    await this.#ensure();
    await ensureMaildir(folder);
    await Deno.writeFile(join(folder, "maildirfolder"), new Uint8Array(), { create: true })
      .catch((err) => {
        throw this.#error("create the folder for", { id: folder, subject: "" }, err);
      });
  }

  /** The unique name of a claimed id (`<processing>/<unique>`), else undefined. */
  #claimedName(id: string): string | undefined {
    const prefix = `${this.#processing}/`;
    return id.startsWith(prefix) ? id.slice(prefix.length) : undefined;
  }

  #ensure(): Promise<void> {
    this.#ready ??= ensureMaildir(this.#dir).catch((err) => {
      this.#ready = undefined;
      throw err;
    });
    return this.#ready;
  }

  #startWatcher(): void {
    if (this.#watcher !== undefined || this.#closed) return;
    let watcher: Deno.FsWatcher;
    try {
      watcher = Deno.watchFs(join(this.#dir, "new"), { recursive: false });
    } catch {
      return; // no file events here: the poll interval still wakes waiters
    }
    this.#watcher = watcher;
    this.#watchLoop = (async () => {
      try {
        for await (const _event of watcher) {
          for (const wake of this.#waiters) wake();
        }
      } catch {
        // the watcher failed: polling continues
      }
    })();
  }

  async #newHasUnseen(): Promise<boolean> {
    const seen = this.#newSnapshot;
    if (seen === undefined) return false;
    return (await this.#names("new")).some((name) => !seen.has(name));
  }

  /** File names in new/ or cur/, skipping dot files and directories. */
  async #names(sub: "new" | "cur"): Promise<string[]> {
    const names: string[] = [];
    try {
      for await (const entry of Deno.readDir(join(this.#dir, sub))) {
        if (entry.name.startsWith(".") || entry.isDirectory) continue;
        names.push(entry.name);
      }
    } catch (err) {
      throw new MailError(
        "EMAILDIR",
        `Cannot read the Maildir ${this.#dir}: ${errorText(err)}; check the path and permissions`,
        { cause: err },
      );
    }
    return names;
  }

  async #locate(id: string): Promise<Location | undefined> {
    const claimed = this.#claimedName(id);
    if (claimed !== undefined) {
      if (!safeName(claimed)) return undefined;
      const cur = join(this.#dir, this.#processing, "cur");
      const names = await Array.fromAsync(Deno.readDir(cur)).catch(() => []);
      const hit = names.find((e) => idOf(e.name) === claimed);
      return hit ? { path: join(cur, hit.name), name: hit.name, inNew: false } : undefined;
    }
    if (!safeName(id)) return undefined;
    const inNew = join(this.#dir, "new", id);
    if (await exists(inNew)) return { path: inNew, name: id, inNew: true };
    for (const name of await this.#names("cur")) {
      if (idOf(name) === id) return { path: join(this.#dir, "cur", name), name, inNew: false };
    }
    return undefined;
  }

  #error(action: string, ref: MailRef, err: unknown): MailError {
    return new MailError(
      "EMAILDIR",
      `Cannot ${action} mail ${ref.id} in ${this.#dir}: ${errorText(err)}; ` +
        "check the Maildir permissions",
      { cause: err },
    );
  }
}
