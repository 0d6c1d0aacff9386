/**
 * mailpeer rendezvous on the real stack: an in-process {@link Host} (warm, long-running), a
 * standing-by bob (a TCP listener accepting in a loop, registered once by one request), and
 * N runs of a fresh alice {@link Terminal} (new SMTP and IMAP connections each run) until it
 * is connected to bob. The mail seams are wrapped to time every phase.
 *
 * @module
 */
import type { MailpeerEvent } from "../../src/events.ts";
import type { Logger } from "../../src/log.ts";
import { Host } from "../../src/host/host.ts";
import { MemoryStore } from "../../src/host/memory_store.ts";
import { ImapSource } from "../../src/mail/imap_source.ts";
import { SmtpSender } from "../../src/mail/smtp_sender.ts";
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
  type IdentityKeys,
} from "../../src/message/key_file.ts";
import { generateX25519 } from "../../src/message/keys.ts";
import { bodyFor, subjectFor } from "../../src/message/mail_text.ts";
import { TcpTransport } from "../../src/peer/tcp_transport.ts";
import type { PeerLink } from "../../src/peer/types.ts";
import { Terminal } from "../../src/terminal/terminal.ts";
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
class TimedSource implements MailSource {
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
  const requestSubject = subjectFor(o.network, "request");
  const store = new MemoryStore();
  const hostSource = new TimedSource(
    new ImapSource(imapFor(HOST), {
      idle,
      pollIntervalMs: o.pollMs,
      configKey: "host.receive",
      logger: rec.logger("host IMAP"),
    }),
    (_match, _start, refs) => {
      // the host lists every kind at once (prefix); the request is among them once seen
      if (refs.some((r) => r.subject.trim() === requestSubject)) rec.mark("hostSeen");
    },
  );
  const hostSender = new SmtpSender(smtpFor(HOST));
  const TERMINAL_TLS = Deno.env.get("BENCH_TERMINAL_TLS13")
    ? {}
    : { tlsMaxVersion: "1.2" as const };
  const TERMINAL_IMAP_TLS = Deno.env.get("BENCH_TERMINAL_STARTTLS") ? "starttls" : "implicit";
  const host = new Host({
    logger: rec.logger("host"),
    keys: hostKeys,
    network: o.network,
    source: hostSource,
    sender: hostSender,
    store,
    // Everyone is on loopback here; and one sender (alice) asks many times in the hour.
    allowPrivateAddresses: true,
    limits: { requestsPerUserPerHour: 100_000, requestsPerSenderPerHour: 100_000 },
    onEvent: rec.onEvent,
  });
  const stop = new AbortController();
  const hostRun = host.run({ signal: stop.signal });

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
    const t0 = now();
    await registerBob(
      { network: o.network, identity: bobId, card, port: bobListener.endpoint.port },
      bobSender,
    );
    const until = now() + o.timeoutMs;
    while (!(await store.read()).some((r) => r.userId === "bob")) {
      if (now() > until) throw new Error(`bob was not registered within ${o.timeoutMs} ms`);
      await sleep(10);
    }
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
    await Promise.allSettled([hostRun, bobLoop]);
    await Promise.allSettled([hostSource.close(), hostSender.close(), bobSender.close()]);
  }
  result.accepted = accepted;
  result.errors = rec.errors;
  return result;
}
