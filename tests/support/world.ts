/**
 * A small world for host and terminal tests: a temporary local post office, a host's keys,
 * helpers to mail requests and notices as a terminal would, and to read replies back.
 */
import { join } from "node:path";
import { Host } from "../../src/host/host.ts";
import type { HostOptions } from "../../src/host/host.ts";
import { MemoryStore } from "../../src/host/store/memory_store.ts";
import { MemoryHostDirectory } from "../../src/host/pool/host_directory.ts";
import { SyncAgent, type SyncAgentOptions } from "../../src/host/pool/sync_agent.ts";
import { MaildirPostOffice } from "../../src/mail/maildir/post_office.ts";
import { MaildirSender } from "../../src/mail/maildir/sender.ts";
import { MaildirSource } from "../../src/mail/maildir/source.ts";
import { parseMail } from "../../src/mail/rfc5322/parse.ts";
import { dearmor } from "../../src/message/armor.ts";
import { openReply, sealNotice, sealRequest } from "../../src/message/block.ts";
import { formatHostCard } from "../../src/message/host_card.ts";
import {
  generateHostKeys,
  generateIdentityKeys,
  hostCardOf,
  type HostKeys,
  type IdentityKeys,
} from "../../src/message/key_file.ts";
import { generateX25519 } from "../../src/message/keys.ts";
import { bodyFor, subjectFor } from "../../src/message/mail_text.ts";
import type { Candidate, Endpoint, ReplyPayload } from "../../src/message/types.ts";
import type { MailpeerEvent } from "../../src/events.ts";
import { ManualClock } from "./manual_clock.ts";

export const NETWORK = "testnet";

export interface Player {
  identity: IdentityKeys;
  email: string;
  endpoints: Endpoint[];
  /** Typed candidates (a version 2 request); `endpoints` must be their projection. */
  candidates?: Candidate[];
  /** The X25519 key pair introductions are sealed to (a version 2 request only). */
  introduction?: { publicKey: Uint8Array; privateKey: Uint8Array };
}

export class World {
  readonly events: MailpeerEvent[] = [];
  readonly clock = new ManualClock(Date.UTC(2026, 10, 26, 12));
  readonly store = new MemoryStore();
  host!: Host;
  hostKeys!: HostKeys;
  postOffice!: MaildirPostOffice;
  hostSource!: MaildirSource;
  sender!: MaildirSender;
  #dir = "";
  #sources: MaildirSource[] = [];

  static async create(hostOptions: Partial<HostOptions> = {}): Promise<World> {
    const w = new World();
    w.#dir = await Deno.makeTempDir({ prefix: "mailpeer-test-" });
    w.postOffice = new MaildirPostOffice(join(w.#dir, "po"));
    w.hostKeys = await generateHostKeys("host@host.test");
    w.sender = new MaildirSender(w.postOffice, { now: () => w.clock.now() });
    w.hostSource = new MaildirSource(await w.postOffice.ensureMailbox("host@host.test"), {
      clock: w.clock,
    });
    w.host = new Host({
      keys: w.hostKeys,
      network: NETWORK,
      source: w.hostSource,
      sender: w.sender,
      store: w.store,
      clock: w.clock,
      allowPrivateAddresses: true,
      onEvent: (e) => w.events.push(e),
      ...hostOptions,
    });
    return w;
  }

  get dir(): string {
    return this.#dir;
  }

  get card() {
    return hostCardOf(this.hostKeys);
  }

  /**
   * The host's sync agent as the CLI wires it (its mailbox, sender and table, a memory directory
   * of its own card); `options` adds to or replaces what it is given.
   */
  syncAgent(options: Partial<SyncAgentOptions> = {}): {
    sync: SyncAgent;
    directory: MemoryHostDirectory;
  } {
    const directory = new MemoryHostDirectory({ self: this.card });
    const sync = new SyncAgent({
      keys: this.hostKeys,
      network: NETWORK,
      source: this.hostSource,
      sender: this.sender,
      store: this.store,
      directory,
      clock: this.clock,
      allowPrivateAddresses: true,
      onEvent: (e) => this.events.push(e),
      ...options,
    });
    return { sync, directory };
  }

  async player(userId: string, port: number): Promise<Player> {
    return {
      identity: await generateIdentityKeys(userId),
      email: `${userId}@player.test`,
      endpoints: [{ transport: "tcp", address: "192.0.2.10", port }],
    };
  }

  sourceOf(email: string, clock = this.clock): Promise<MaildirSource> {
    return this.postOffice.ensureMailbox(email).then((dir) => {
      const s = new MaildirSource(dir, { clock });
      this.#sources.push(s);
      return s;
    });
  }

  /** Builds a request block as a terminal would; returns it with the reply key. */
  async requestBlock(
    p: Player,
    options: { sessionId?: Uint8Array; createdAt?: number; reads?: string[] } = {},
  ) {
    const reply = await generateX25519();
    const sessionId = options.sessionId ?? crypto.getRandomValues(new Uint8Array(16));
    const block = await sealRequest({
      network: NETWORK,
      userId: p.identity.userId,
      identityKey: p.identity.ed25519.publicKey,
      endpoints: p.endpoints,
      ...(p.candidates ? { candidates: p.candidates } : {}),
      ...(p.introduction ? { introductionKey: p.introduction.publicKey } : {}),
      sessionId,
      createdAt: options.createdAt ?? this.clock.now(),
      replyKey: reply.publicKey,
      hostCards: [formatHostCard(this.card)],
      ...(options.reads ? { reads: options.reads } : {}),
    }, { identity: p.identity, hostCard: this.card });
    return { block, replyPrivateKey: reply.privateKey, sessionId };
  }

  /** Mails a raw block under the request subject from `p`. */
  async mailBlock(
    p: Player,
    block: Uint8Array,
    options: { date?: Date; kind?: "request" | "notice" } = {},
  ) {
    const kind = options.kind ?? "request";
    await this.sender.send({
      from: p.email,
      to: ["host@host.test"],
      subject: subjectFor(NETWORK, kind),
      text: bodyFor(NETWORK, kind, block),
      date: options.date ?? new Date(this.clock.now()),
    });
  }

  /** Mails a request from `p`; returns what is needed to open the reply. */
  async request(p: Player, options: { date?: Date; reads?: string[] } = {}) {
    const r = await this.requestBlock(p, options.reads ? { reads: options.reads } : {});
    await this.mailBlock(p, r.block, options);
    return r;
  }

  async notice(p: Player, failed: string, sessionId: Uint8Array) {
    const block = await sealNotice({
      network: NETWORK,
      userId: p.identity.userId,
      identityKey: p.identity.ed25519.publicKey,
      sessionId,
      createdAt: this.clock.now(),
      failed: [{ userId: failed, reason: "ETIMEOUT" }],
    }, { identity: p.identity, hostCard: this.card });
    await this.mailBlock(p, block, { kind: "notice" });
  }

  /** Reads every reply in `p`'s mailbox, opened with `replyPrivateKey`. */
  async replies(p: Player, replyPrivateKey: Uint8Array): Promise<ReplyPayload[]> {
    const source = await this.sourceOf(p.email);
    const out: ReplyPayload[] = [];
    for (const ref of await source.list({ subject: subjectFor(NETWORK, "reply"), mode: "exact" })) {
      const mail = await parseMail(await source.fetch(ref));
      try {
        out.push(await openReply(dearmor(mail.text), { replyPrivateKey, hostCard: this.card }));
      } catch {
        // A reply to another request of the same player.
      }
    }
    return out;
  }

  /** Names of the files in a Maildir folder of `email` (`new`, `cur`, `.Quarantine/cur`). */
  async files(email: string, folder: string): Promise<string[]> {
    const dir = join(this.postOffice.maildirOf(email), folder);
    const names: string[] = [];
    try {
      for await (const e of Deno.readDir(dir)) names.push(e.name);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    return names.sort();
  }

  async close(): Promise<void> {
    await Promise.all([this.hostSource.close(), ...this.#sources.map((s) => s.close())]);
    await Deno.remove(this.#dir, { recursive: true });
  }
}
