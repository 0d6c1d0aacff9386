/**
 * mailpeer rendezvous on the real stack: a {@link Host} (warm, long-running) in a Worker of its
 * own (`rendezvous_host_worker.ts`), a standing-by bob (a TCP listener accepting in a loop,
 * registered once by one request), and N runs of a fresh alice {@link Terminal} (new SMTP and
 * IMAP connections each run) until it is connected to bob. The mail seams are wrapped to time
 * every phase.
 *
 * @module
 */
import type { MailpeerEvent } from "../../src/events.ts";
import type { Logger } from "../../src/log.ts";
import { ImapSource } from "../../src/mail/imap/source.ts";
import { SmtpSender } from "../../src/mail/smtp/sender.ts";
import type {
  MailRef,
  MailSender,
  MailSource,
  OutgoingMail,
  SubjectMatch,
} from "../../src/mail/types.ts";
import { sealRequest } from "../../src/message/block.ts";
import { formatHostCard, type HostCard } from "../../src/message/host_card.ts";
import {
  generateHostKeys,
  generateIdentityKeys,
  hostCardOf,
  type HostKeys,
  type IdentityKeys,
} from "../../src/message/key_file.ts";
import { generateX25519 } from "../../src/message/keys.ts";
import { bodyFor, subjectFor } from "../../src/message/mail_text.ts";
import { TcpTransport } from "../../src/peer/tcp_transport.ts";
import type { PeerLink } from "../../src/peer/types.ts";
import { Terminal } from "../../src/terminal/terminal.ts";
import type { FromHostWorker, ToHostWorker } from "./rendezvous_host_worker.ts";
import { imapFor, now, sleep, smtpFor } from "./rendezvous_stack.ts";

const ALICE = "alice@a.test";
const BOB = "bob@b.test";
const HOST = "host@host.test";

/** Timestamps of one rendezvous, ms since the run started (before any object was made). */
export type Marks = Partial<Record<Mark, number>>;
export type Mark =
  | "listening"
  | "requestSendStart"
  | "requestSent"
  | "aliceFirstListStart"
  | "aliceFirstListEnd"
  | "hostSeen"
  | "hostOpened"
  | "hostReplySent"
  | "aliceSeen"
  | "replyReceived"
  | "connecting"
  | "connected"
  | "total";

/** Collects the marks of the current run (host and terminal report into the same one). */
class Recorder {
  #t0 = 0;
  #marks: Marks | undefined;
  /** Everything that went wrong, over all runs. */
  readonly errors: string[] = [];
  /** True when the current run saw an error or a lost connection: its time is not kept. */
  disturbed = false;

  begin(): void {
    this.#t0 = now();
    this.#marks = {};
    this.disturbed = false;
  }
  end(): Marks {
    const m = this.#marks ?? {};
    this.#marks = undefined;
    return m;
  }
  /** Records `mark` once per run (the first time), at `at` (default: now). */
  mark(mark: Mark, at: number = now()): void {
    if (this.#marks && this.#marks[mark] === undefined) this.#marks[mark] = at - this.#t0;
  }
  /** Records a mark taken in another thread at absolute time `abs` (`timeOrigin + now()`). */
  markAbsolute(mark: Mark, abs: number): void {
    const at = abs - performance.timeOrigin;
    // a late report of an earlier run's host is not this run's
    if (at >= this.#t0) this.mark(mark, at);
  }
  onEvent = (e: MailpeerEvent): void => {
    const map: Partial<Record<MailpeerEvent["event"], Mark>> = {
      "listening": "listening",
      "request-received": "hostOpened",
      "reply-sent": "hostReplySent",
      "reply-received": "replyReceived",
      "connecting": "connecting",
      "connected": "connected",
    };
    const mark = map[e.event];
    if (mark) this.mark(mark);
    if (e.event === "error") this.trouble(`${e.code}: ${e.message}`);
  };
  trouble(what: string): void {
    this.errors.push(what);
    this.disturbed = true;
  }
  /** A logger that counts warnings (IMAP reconnections) as trouble. */
  logger(who: string): Logger {
    return {
      log: (level, message, fields) => {
        if (level === "warn" || level === "error") {
          this.trouble(`${who}: ${message} ${JSON.stringify(fields ?? {})}`);
        }
      },
    };
  }
}

/** A sender that marks when a send starts and when the server accepted it. */
class TimedSender implements MailSender {
  constructor(
    readonly inner: MailSender,
    readonly onSend?: (phase: "start" | "done", mail: OutgoingMail) => void,
  ) {}
  async send(mail: OutgoingMail, options?: { signal?: AbortSignal }) {
    this.onSend?.("start", mail);
    const r = await this.inner.send(mail, options);
    this.onSend?.("done", mail);
    return r;
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** A source that reports each list(): when it started, ended, and what it found. */
export class TimedSource implements MailSource {
  constructor(
    readonly inner: MailSource,
    readonly onList: (match: SubjectMatch, start: number, refs: MailRef[]) => void,
  ) {}
  async list(match: SubjectMatch, options?: { signal?: AbortSignal }): Promise<MailRef[]> {
    const start = now();
    const refs = await this.inner.list(match, options);
    this.onList(match, start, refs);
    return refs;
  }
  fetch(ref: MailRef, options?: { signal?: AbortSignal }): Promise<Uint8Array> {
    return this.inner.fetch(ref, options);
  }
  delete(ref: MailRef): Promise<void> {
    return this.inner.delete(ref);
  }
  deleteMany(refs: MailRef[]): Promise<void> {
    return this.inner.deleteMany(refs);
  }
  get claims(): boolean {
    return this.inner.claims;
  }
  claim(ref: MailRef): Promise<MailRef | undefined> {
    return this.inner.claim(ref);
  }
  claimMany(refs: MailRef[]): Promise<MailRef[]> {
    return this.inner.claimMany(refs);
  }
  recoverClaims(olderThanMs: number): Promise<number> {
    return this.inner.recoverClaims(olderThanMs);
  }
  quarantine(ref: MailRef, reason: string): Promise<void> {
    return this.inner.quarantine(ref, reason);
  }
  waitForMail(options?: { signal?: AbortSignal }): Promise<void> {
    return this.inner.waitForMail(options);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/**
 * The host in a Worker: its own isolate and event loop, so the fresh terminal's TLS handshakes
 * and logins in this thread do not delay its wake-up (in real use it is another machine).
 */
class HostWorker {
  readonly #worker = new Worker(new URL("./rendezvous_host_worker.ts", import.meta.url), {
    type: "module",
  });
  readonly #waiting = new Map<string, (m: FromHostWorker) => void>();
  #failed: Error | undefined;

  constructor(readonly rec: Recorder) {
    this.#worker.onmessage = (e: MessageEvent<FromHostWorker>) => {
      const m = e.data;
      if (m.type === "mark") rec.markAbsolute(m.mark, m.at);
      else if (m.type === "trouble") rec.trouble(m.what);
      const key = m.type === "registered" ? `registered:${m.userId}` : m.type;
      this.#waiting.get(key)?.(m);
      this.#waiting.delete(key);
    };
    this.#worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      this.#failed = new Error(`host worker: ${e.message}`);
      rec.trouble(this.#failed.message);
      for (const done of this.#waiting.values()) done({ type: "stopped" });
      this.#waiting.clear();
    };
  }

  /** Sends `m` and waits for the answer `key` (at most `timeoutMs`). */
  #ask(m: ToHostWorker, key: string, timeoutMs: number): Promise<void> {
    if (this.#failed) return Promise.reject(this.#failed);
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(key);
        reject(new Error(`host worker: no ${key} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiting.set(key, () => {
        clearTimeout(timer);
        if (this.#failed) reject(this.#failed);
        else resolve();
      });
      this.#worker.postMessage(m);
    });
  }

  start(
    o: { keys: HostKeys; network: string; idle: boolean; pollMs: number },
    timeoutMs: number,
  ): Promise<void> {
    return this.#ask({ type: "start", ...o }, "ready", timeoutMs);
  }
  /** Resolves once the host's table holds a row of `userId`. */
  registered(userId: string, timeoutMs: number): Promise<void> {
    return this.#ask({ type: "waitFor", userId }, `registered:${userId}`, timeoutMs);
  }
  /** Stops the host (abort, close source and sender), then ends the worker. */
  async stop(timeoutMs: number): Promise<void> {
    try {
      await this.#ask({ type: "stop" }, "stopped", timeoutMs);
    } finally {
      this.#worker.terminate();
    }
  }
}

export interface RendezvousOptions {
  mode: "poll" | "idle";
  runs: number;
  warmup: number;
  pollMs: number;
  timeoutMs: number;
  /** Network id of this mode, unique per bench run. */
  network: string;
}

export interface RendezvousResult {
  runs: Marks[];
  /** Links bob accepted (runs + warm-ups when all went well). */
  accepted: number;
  /** ms from bob's request to his row in the host's table (host warm-up). */
  bobRegisteredMs: number;
  errors: string[];
  /** Runs not kept (an error, a lost connection, a failed rendezvous) and done again. */
  disturbed: number;
}

/** Bob's one registration request, sealed like Terminal's own. */
async function registerBob(
  o: { network: string; identity: IdentityKeys; card: HostCard; port: number },
  sender: MailSender,
): Promise<void> {
  const replyKeys = await generateX25519();
  const block = await sealRequest({
    network: o.network,
    userId: o.identity.userId,
    identityKey: o.identity.ed25519.publicKey,
    endpoints: [{ transport: "tcp", address: "127.0.0.1", port: o.port }],
    sessionId: crypto.getRandomValues(new Uint8Array(16)),
    createdAt: Date.now(),
    replyKey: replyKeys.publicKey,
    hostCards: [formatHostCard(o.card)],
  }, { identity: o.identity, hostCard: o.card });
  await sender.send({
    from: BOB,
    to: [o.card.email],
    subject: subjectFor(o.network, "request"),
    text: bodyFor(o.network, "request", block),
    date: new Date(),
  });
}

/** Runs one mode: host and bob up once, then `warmup + runs` fresh alice terminals. */
export async function mailpeerRendezvous(o: RendezvousOptions): Promise<RendezvousResult> {
  const rec = new Recorder();
  const hostKeys = await generateHostKeys(HOST);
  const card = hostCardOf(hostKeys);
  const [bobId, aliceId] = await Promise.all([
    generateIdentityKeys("bob"),
    generateIdentityKeys("alice"),
  ]);
  const idle = o.mode === "idle";
  const TERMINAL_TLS = Deno.env.get("BENCH_TERMINAL_TLS13")
    ? {}
    : { tlsMaxVersion: "1.2" as const };
  const TERMINAL_IMAP_TLS = Deno.env.get("BENCH_TERMINAL_STARTTLS") ? "starttls" : "implicit";
  // the host (its marks and trouble come back as messages), warm and long-running
  const host = new HostWorker(rec);
  const stop = new AbortController();

  // bob: a listener accepting in a loop; each link is drained until alice closes it
  const tcp = new TcpTransport();
  const bobListener = await tcp.listen({ address: "127.0.0.1", port: 0 }, {
    identity: {
      userId: "bob",
      publicKey: bobId.ed25519.publicKey,
      privateKey: bobId.ed25519.privateKey,
    },
  });
  let accepted = 0;
  const drain = async (link: PeerLink) => {
    try {
      while ((await link.receive({ signal: stop.signal })) !== null) { /* drop */ }
    } catch { /* stopped */ }
    await link.close().catch(() => {});
  };
  const bobLoop = (async () => {
    while (!stop.signal.aborted) {
      try {
        const link = await bobListener.accept({ signal: stop.signal });
        accepted++;
        void drain(link);
      } catch {
        if (stop.signal.aborted) return;
      }
    }
  })();
  const bobSender = new SmtpSender(smtpFor(BOB));
  const result: RendezvousResult = {
    runs: [],
    accepted: 0,
    bobRegisteredMs: 0,
    errors: [],
    disturbed: 0,
  };
  try {
    await host.start(
      { keys: hostKeys, network: o.network, idle, pollMs: o.pollMs },
      o.timeoutMs,
    );
    const t0 = now();
    await registerBob(
      { network: o.network, identity: bobId, card, port: bobListener.endpoint.port },
      bobSender,
    );
    await host.registered("bob", o.timeoutMs).catch((err) => {
      throw new Error(`bob was not registered within ${o.timeoutMs} ms`, { cause: err });
    });
    result.bobRegisteredMs = Math.round(now() - t0);

    for (let i = 0; i < o.warmup + o.runs;) {
      rec.begin();
      let firstList = true;
      // The terminal's fresh SMTP and IMAP connections offer TLS 1.2 at most
      // (tls_max_version = "1.2"): avoids the servers' TLS 1.3 ticket stall; IMAP uses
      // implicit TLS (993), one round trip fewer than STARTTLS (docs/performance.md).
      const sender = new TimedSender(
        new SmtpSender({ ...smtpFor(ALICE), ...TERMINAL_TLS }),
        (phase) => {
          rec.mark(phase === "start" ? "requestSendStart" : "requestSent");
        },
      );
      const source = new TimedSource(
        new ImapSource({ ...imapFor(ALICE, TERMINAL_IMAP_TLS), ...TERMINAL_TLS }, {
          idle,
          pollIntervalMs: o.pollMs,
          logger: rec.logger("alice IMAP"),
        }),
        (_match, start, refs) => {
          if (firstList) {
            firstList = false;
            rec.mark("aliceFirstListStart", start);
            rec.mark("aliceFirstListEnd");
          }
          if (refs.length > 0) rec.mark("aliceSeen");
        },
      );
      const terminal = new Terminal({
        identity: aliceId,
        email: ALICE,
        network: o.network,
        hosts: [card],
        sender,
        source,
        transport: new TcpTransport(),
        advertise: "127.0.0.1",
        replyTimeoutMs: o.timeoutMs,
        connectTimeoutMs: 5_000,
        standbyTimeoutMs: 2_000,
        onEvent: rec.onEvent,
      });
      try {
        const r = await terminal.rendezvous({ signal: AbortSignal.timeout(o.timeoutMs * 2) });
        rec.mark("total");
        if (r.role !== "initiator" || r.link.remote.userId !== "bob") {
          rec.trouble(`run ${i}: alice got an ${r.role} link to ${r.link.remote.userId}`);
        }
        await r.link.close();
      } catch (err) {
        rec.trouble(`run ${i}: ${(err as Error)?.message ?? err}`);
      } finally {
        await Promise.allSettled([source.close(), sender.close()]);
      }
      const marks = rec.end();
      if (rec.disturbed) {
        if (++result.disturbed > o.runs) throw new Error(`too many failed runs: ${rec.errors}`);
        await sleep(1_000);
        continue;
      }
      if (i++ >= o.warmup) result.runs.push(marks);
    }
  } finally {
    stop.abort();
    await bobListener.close().catch(() => {});
    await Promise.allSettled([host.stop(o.timeoutMs), bobLoop]);
    await bobSender.close().catch(() => {});
  }
  result.accepted = accepted;
  result.errors = rec.errors;
  return result;
}
