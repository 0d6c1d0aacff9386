/**
 * The host cards a host knows: its pool (docs/design.md "Host pool").
 *
 * A card is known by its Ed25519 key (the host id). Each entry is either
 * - **trusted**: configured by the operator, vouched for in a signed snapshot of a trusted host,
 *   or accepted under `acceptUnknownHosts`. Trusted hosts receive our snapshots and may merge
 *   rows into our table; or
 * - **learned**: named in a terminal's request (`hostCards`). Anyone can send a request, so a
 *   learned card is only a candidate: its signed table request is answered, nothing more.
 *
 * Adding a card that is already known never changes it, except that a trusted add replaces a
 * learned entry (or refreshes a trusted one) with the card given, so a terminal cannot
 * redirect a pool host's mail by naming its key with another address. Our own card is never
 * added. The directory holds at most `MAX_KNOWN_HOSTS` cards; learned cards beyond that are
 * dropped, and a trusted card takes the place of the oldest learned one.
 *
 * @module
 */
import { HostError } from "../../errors.ts";
import { bytesEqual } from "../../message/bytes.ts";
import { formatHostCard, type HostCard, parseHostCard } from "../../message/host_card.ts";
import { sweepTempFiles, writeAtomically } from "../store/atomic_file.ts";
import { withFileLock } from "../store/file_lock.ts";

/** Most host cards a directory keeps (proposed for limits.ts). */
export const MAX_KNOWN_HOSTS = 64;

/** Which cards to list. */
export interface HostListOptions {
  /** Only trusted cards (see the module doc); default false: every known card. */
  trustedOnly?: boolean;
}

/** Options of {@link HostDirectory.add}. */
export interface HostAddOptions {
  /** Add as trusted (and upgrade a learned entry); default false: learned. */
  trusted?: boolean;
}

/** The host cards one host knows. */
export interface HostDirectory {
  /** The known cards, oldest first. */
  list(options?: HostListOptions): Promise<HostCard[]>;
  /** Adds cards; resolves with how many were not known before. */
  add(cards: HostCard[], options?: HostAddOptions): Promise<number>;
}

/** One stored entry. */
interface Entry {
  card: HostCard;
  trusted: boolean;
}

/** Options of the directories. */
export interface HostDirectoryOptions {
  /** Our own card, which is never added. */
  self: HostCard;
  /** Most cards kept; default `MAX_KNOWN_HOSTS`. */
  maxHosts?: number;
}

function sameCard(a: HostCard, b: HostCard): boolean {
  return a.email === b.email && bytesEqual(a.x25519, b.x25519) && bytesEqual(a.ed25519, b.ed25519);
}

/** Applies `cards` to `entries` (a copy is returned) and counts the new ones. */
function addTo(
  entries: readonly Entry[],
  cards: readonly HostCard[],
  options: HostAddOptions & { self: HostCard; maxHosts: number },
): { entries: Entry[]; added: number; changed: boolean } {
  const next = [...entries];
  const trusted = options.trusted ?? false;
  let added = 0;
  let changed = false;
  for (const card of cards) {
    if (bytesEqual(card.ed25519, options.self.ed25519)) continue;
    const at = next.findIndex((e) => bytesEqual(e.card.ed25519, card.ed25519));
    const existing = at < 0 ? undefined : next[at];
    if (existing !== undefined) {
      if (trusted && (!existing.trusted || !sameCard(existing.card, card))) {
        next[at] = { card, trusted: true };
        changed = true;
      }
      continue;
    }
    if (next.length >= options.maxHosts) {
      const learned = next.findIndex((e) => !e.trusted);
      if (!trusted || learned < 0) continue;
      next.splice(learned, 1);
    }
    next.push({ card, trusted });
    added++;
    changed = true;
  }
  return { entries: next, added, changed };
}

function listOf(entries: readonly Entry[], options: HostListOptions = {}): HostCard[] {
  return entries.filter((e) => e.trusted || !options.trustedOnly).map((e) => ({ ...e.card }));
}

/**
 * A directory in memory (tests, the combined mode, one-shot runs).
 *
 * @example
 * ```ts
 * import { generateHostKeys, hostCardOf } from "../../message/key_file.ts";
 * import { MemoryHostDirectory } from "./host_directory.ts";
 *
 * const self = hostCardOf(await generateHostKeys("a@hosts.example"));
 * const other = hostCardOf(await generateHostKeys("b@hosts.example"));
 * const directory = new MemoryHostDirectory({ self });
 * await directory.add([self, other], { trusted: true }); // 1: never our own card
 * ```
 */
export class MemoryHostDirectory implements HostDirectory {
  #entries: Entry[] = [];
  readonly #options: { self: HostCard; maxHosts: number };

  constructor(options: HostDirectoryOptions) {
    this.#options = { self: options.self, maxHosts: options.maxHosts ?? MAX_KNOWN_HOSTS };
  }

  list(options: HostListOptions = {}): Promise<HostCard[]> {
    return Promise.resolve(listOf(this.#entries, options));
  }

  add(cards: HostCard[], options: HostAddOptions = {}): Promise<number> {
    const { entries, added } = addTo(this.#entries, cards, { ...options, ...this.#options });
    this.#entries = entries;
    return Promise.resolve(added);
  }
}

const FILE_VERSION = 1;

/**
 * A directory in a JSON file, `{"version":1,"hosts":[{"card":"mailpeer1:…","trusted":true}]}`.
 * Changes hold the file lock of host/store/file_lock.ts and replace the file atomically (temp file,
 * fsync, rename). A missing file is an empty directory.
 *
 * @example
 * ```ts
 * import { generateHostKeys, hostCardOf } from "../../message/key_file.ts";
 * import { JsonFileHostDirectory } from "./host_directory.ts";
 *
 * const self = hostCardOf(await generateHostKeys("a@hosts.example"));
 * const directory = new JsonFileHostDirectory("/var/lib/mailpeer/hosts.json", { self });
 * ```
 */
export class JsonFileHostDirectory implements HostDirectory {
  readonly #path: string;
  /** Whether this instance removed the temp files of killed writers yet. */
  #swept = false;
  readonly #options: { self: HostCard; maxHosts: number };

  constructor(path: string, options: HostDirectoryOptions) {
    this.#path = path;
    this.#options = { self: options.self, maxHosts: options.maxHosts ?? MAX_KNOWN_HOSTS };
  }

  /** The directory file. */
  get path(): string {
    return this.#path;
  }

  /** @throws {HostError} `ETABLE` when the file cannot be read or is not a directory file. */
  async list(options: HostListOptions = {}): Promise<HostCard[]> {
    return listOf(await this.#read(), options);
  }

  /** @throws {HostError} `ETABLE` when the file cannot be read, locked or written. */
  add(cards: HostCard[], options: HostAddOptions = {}): Promise<number> {
    return withFileLock(this.#path, async () => {
      if (!this.#swept) {
        this.#swept = true;
        await sweepTempFiles(this.#path);
      }
      const result = addTo(await this.#read(), cards, { ...options, ...this.#options });
      if (result.changed) await this.#write(result.entries);
      return result.added;
    });
  }

  #fail(what: string, advice: string, cause?: unknown): never {
    throw new HostError(
      "ETABLE",
      `Cannot use the host directory ${this.#path}: ${what}; ${advice}`,
      { cause: cause ?? what },
    );
  }

  async #read(): Promise<Entry[]> {
    let text: string;
    try {
      text = await Deno.readTextFile(this.#path);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return [];
      return this.#fail(String(err), "check the file's permissions", err);
    }
    const move = "move the file away, the host learns its pool again";
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (err) {
      return this.#fail("it is not valid JSON", move, err);
    }
    if (typeof data !== "object" || data === null || !("version" in data) || !("hosts" in data)) {
      return this.#fail(`it has no "version" and "hosts"`, move);
    }
    if (data.version !== FILE_VERSION || !Array.isArray(data.hosts)) {
      return this.#fail(`its version is not ${FILE_VERSION}`, move);
    }
    return data.hosts.map((h: unknown, i: number): Entry => {
      const raw = h as { card?: unknown; trusted?: unknown } | null;
      if (typeof raw?.card !== "string" || typeof raw.trusted !== "boolean") {
        return this.#fail(`entry ${i} is not {card, trusted}`, move);
      }
      try {
        return { card: parseHostCard(raw.card), trusted: raw.trusted };
      } catch (err) {
        return this.#fail(`entry ${i} is not a host card`, move, err);
      }
    });
  }

  async #write(entries: Entry[]): Promise<void> {
    const lines = entries.map((e) =>
      JSON.stringify({ card: formatHostCard(e.card), trusted: e.trusted })
    );
    const text = `{"version":${FILE_VERSION},"hosts":[\n${lines.join(",\n")}\n]}\n`;
    await writeAtomically(this.#path, new TextEncoder().encode(text), "the host directory");
  }
}
