/**
 * {@link MailSender} over SMTP submission, through a pooled nodemailer transport.
 *
 * The mail is composed by {@link composeMail} (the same bytes the Maildir sender writes) and
 * handed to nodemailer as `raw` with an explicit envelope, checked first to hold exactly the
 * recipients meant: nodemailer parses envelope addresses as address lists, so `a,b@evil.test`
 * (say, a crafted From being answered) would otherwise become two RCPT TO. Connections are pooled (a new TLS
 * connection costs ~50 ms under Deno) and get `TCP_NODELAY` through nodemailer's `getSocket`
 * hook (without it each pooled message stalls ~40 ms on Nagle + delayed ACK).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import net from "node:net";
import os from "node:os";
import addressparser from "nodemailer/lib/addressparser/index.js";
import { MailError } from "../../errors.ts";
import { DEFAULT_MAIL_CONNECT_TIMEOUT_MS } from "../../limits.ts";
import {
  FIRST_FAILURE_KEPT_MS,
  SMTP_POOL_CONNECTIONS,
  TLS_PORT_PROBE_AFTER_MS,
} from "../tuning.ts";
import { type Logger, silentLogger } from "../../log.ts";
import type { Clock } from "../../runtime.ts";
import { emailProblem } from "../../message/host_card.ts";
import { composeMail, domainOf } from "../rfc5322/compose.ts";
import {
  connectError,
  connectFailure,
  type ConnectTarget,
  implicitPortError,
  isFinalFailure,
  isPlainTextAnswer,
  plainPortError,
  silentServerError,
} from "../connect_failure.ts";
import { resentRaw } from "../rfc5322/resend.ts";
import { speaksImplicitTls } from "../tls_port_probe.ts";
import {
  type LaneAnswer,
  LaneBroken,
  LaneLoginRefused,
  LaneUnavailable,
  SmtpLane,
} from "./smtp_lane.ts";
import type { AccessToken, MailSender, MailServerOptions, OutgoingMail } from "../types.ts";
import { nodemailerTlsMode, nodeTlsSettings } from "../tls_settings.ts";

/** Options of {@link SmtpSender}. */
export interface SmtpSenderOptions {
  /** Right-hand side of generated Message-IDs and the EHLO name. Default: the sender's domain
   * for Message-IDs, this machine's host name for EHLO. */
  hostname?: string;
  /** Clock for the `Date:` header. Default: `Date.now`. */
  now?: () => number;
  /** Where partial rejections are logged. Default: silent. */
  logger?: Logger;
  /** Time limit for each command, in ms. Default: 30 000. */
  timeoutMs?: number;
  /** Configuration section named in error messages, e.g. `terminal.send`. Default: `send`. */
  configKey?: string;
  /**
   * Carry mail on the fast lane (`smtp_lane.ts`) once nodemailer has delivered one. Default:
   * true; the host benchmark's echo turns it off to stay a plain nodemailer client.
   */
  lanes?: boolean;
  /**
   * Timer of an idle fast lane's QUIT (`LANE_IDLE_MS`; `now` stays the clock of dates). Default:
   * the system clock, without keeping the process alive.
   */
  clock?: Pick<Clock, "sleep">;
  /**
   * Timer of a fast lane's deadlines (`timeoutMs`: connecting, logging in, each write's
   * answers). Default: the system clock, without keeping the process alive.
   */
  deadlineClock?: Pick<Clock, "sleep">;
}

/** Default time limit of one SMTP step, in ms. */
const SMTP_TIMEOUT_MS = 30_000;
/** nodemailer's own connect and greeting timers run this much longer than ours (backstops). */
const BACKSTOP_MS = 1_000;
/** How long close() waits for the pool's sockets to go away, in ms. */
const CLOSE_WAIT_MS = 2_000;

type SocketCallback = (err: Error | null, socket?: { connection: net.Socket }) => void;

/**
 * A socket destroyed by this sender before the greeting carries the one-line error to report
 * (nodemailer passes the socket's error object on, with its own code).
 */
interface WithReport {
  mailpeerReport?: MailError;
}

/** The part of nodemailer's transporter this sender uses. */
interface Transport {
  sendMail(mail: {
    envelope: { from: string; to: string[] };
    raw: Buffer;
  }): Promise<{ accepted?: unknown[]; rejected?: unknown[] }>;
  close(): void;
}

/** nodemailer's codes for a connection that failed or broke (socket errors keep their own). */
const CONNECT_CODES = new Set(["ECONNECTION", "ESOCKET", "EDNS"]);

/**
 * Sends mail through an SMTP server (pooled, at most `SMTP_POOL_CONNECTIONS` connections, opened as needed).
 *
 * @example
 * ```ts
 * const sender = new SmtpSender({
 *   host: "smtp.example.org", port: 587, tls: "starttls",
 *   user: "alice@example.org", password: Deno.env.get("SMTP_PASSWORD"),
 * });
 * await sender.send({ from: "alice@example.org", to: ["host@example.org"], subject: "hi", text: "hello\n" });
 * await sender.close();
 * ```
 */
export class SmtpSender implements MailSender {
  readonly #server: MailServerOptions;
  readonly #options: SmtpSenderOptions;
  readonly #logger: Logger;
  readonly #sockets = new Set<net.Socket>();
  #transport: Promise<Transport> | undefined;
  #closed = false;
  /** True once a mail was accepted. */
  #everSent = false;
  /**
   * The failure of the settings, when the first mail could not be submitted and trying again
   * would only repeat it at the same cost (`isFinalFailure`: a refused password, TLS, nothing
   * answering), and when: later mails get it at once for `FIRST_FAILURE_KEPT_MS`.
   */
  #failed: { error: MailError; at: number } | undefined;
  /** Open fast lanes (at most `SMTP_POOL_CONNECTIONS`), and how many are being opened. */
  #lanes: SmtpLane[] = [];
  /** Lanes being opened. */
  readonly #opening = new Set<Promise<SmtpLane | undefined>>();
  /** Lanes are not tried before this time (the last open failed), or never (`Infinity`). */
  #lanesAfter = 0;
  /** The OAuth2 token nodemailer logged in with last (lanes log in with it too). */
  #token: string | undefined;
  /** The PEM of `caFile`, once read. */
  #ca: string | undefined;
  /** Mails each path carried (accepted or refused by the server). */
  readonly #carried = { lane: 0, nodemailer: 0 };
  /** Mails under way through nodemailer. */
  #nodemailerBusy = 0;

  constructor(server: MailServerOptions, options: SmtpSenderOptions = {}) {
    this.#server = server;
    this.#options = options;
    this.#logger = options.logger ?? silentLogger;
  }

  /** Sends one mail; resolves with its Message-ID once the server accepted it. */
  async send(
    mail: OutgoingMail,
    options: { signal?: AbortSignal } = {},
  ): Promise<{ messageId: string }> {
    options.signal?.throwIfAborted();
    if (this.#closed) {
      throw new MailError(
        "ESEND",
        `Cannot send mail via ${this.#where}: the sender is closed; send before closing it`,
        { cause: "closed" },
      );
    }
    const envelope = this.#envelope("send mail", mail.from, mail.to);
    const { raw, messageId } = await composeMail(mail, {
      ...(this.#options.hostname ? { hostname: this.#options.hostname } : {}),
      ...(this.#options.now ? { now: this.#options.now } : {}),
    });
    return await this.#submit(raw, { envelope, messageId, ...options });
  }

  /**
   * Resends `raw` unchanged apart from a prepended `Resent-*` block (see `resentRaw`): the
   * envelope goes from `from` to `to`, so the original `From:` and `Subject:` reach the
   * recipients as they were. Resolves with the `Resent-Message-ID`.
   */
  async forward(
    raw: Uint8Array,
    options: { from: string; to: string[]; signal?: AbortSignal },
  ): Promise<{ messageId: string }> {
    options.signal?.throwIfAborted();
    if (this.#closed) {
      throw new MailError(
        "ESEND",
        `Cannot forward mail via ${this.#where}: the sender is closed; forward before closing it`,
        { cause: "closed" },
      );
    }
    const envelope = this.#envelope("forward mail", options.from, options.to);
    const host = this.#options.hostname ?? domainOf(options.from) ?? "localhost";
    const messageId = `<${crypto.randomUUID().replaceAll("-", "")}@${host}>`;
    const resent = resentRaw(raw, {
      from: options.from,
      to: options.to,
      date: new Date((this.#options.now ?? Date.now)()),
      messageId,
    });
    return await this.#submit(resent, {
      envelope,
      messageId,
      ...(options.signal ? { signal: options.signal } : {}),
    });
  }

  /**
   * The SMTP envelope: one plain address per sender and recipient, each of which nodemailer
   * reads back as exactly that one address; anything else is a `MailError` `ESEND`.
   */
  #envelope(what: string, from: string, to: string[]): { from: string; to: string[] } {
    const plain = (address: string, role: string): string => {
      const bare = bareAddress(address);
      const parsed = addressparser(bare, { flatten: true });
      const problem = emailProblem(bare) ??
        (parsed.length === 1 && parsed[0]!.address === bare
          ? undefined
          : `reads as ${parsed.length} addresses`);
      if (problem !== undefined) {
        throw new MailError(
          "ESEND",
          `Cannot ${what} via ${this.#where}: the ${role} address ${
            JSON.stringify(address)
          } is not one plain address (${problem}); send only to plain local@domain addresses`,
          { cause: problem },
        );
      }
      return bare;
    };
    if (to.length === 0) {
      throw new MailError(
        "ESEND",
        `Cannot ${what} via ${this.#where}: it has no recipient; name one`,
      );
    }
    return { from: plain(from, "sender"), to: to.map((t) => plain(t, "recipient")) };
  }

  /** Submits raw bytes with the given envelope; the one path `send` and `forward` share. */
  async #submit(
    raw: Uint8Array,
    o: { envelope: { from: string; to: string[] }; messageId: string; signal?: AbortSignal },
  ): Promise<{ messageId: string }> {
    const now = this.#options.now ?? Date.now;
    if (this.#failed && now() - this.#failed.at < FIRST_FAILURE_KEPT_MS) throw this.#failed.error;
    if (this.#everSent && !this.#closed && this.#options.lanes !== false) {
      const answer = await this.#viaLane(raw, o.envelope);
      o.signal?.throwIfAborted();
      if (answer !== undefined) return this.#laneResult(answer, o);
    }
    const transport = await this.#ensureTransport();
    o.signal?.throwIfAborted();
    const to = o.envelope.to;
    let info: { accepted?: unknown[]; rejected?: unknown[] };
    this.#nodemailerBusy++;
    try {
      info = await transport.sendMail({ envelope: o.envelope, raw: toBuffer(raw) });
    } catch (err) {
      const failure = this.#error(err, to);
      if (!this.#everSent && !this.#closed && isFinalFailure(failure)) {
        this.#failed = { error: failure, at: now() };
      }
      throw failure;
    } finally {
      this.#nodemailerBusy--;
    }
    this.#everSent = true;
    this.#carried.nodemailer++;
    this.#logRejected((info.rejected ?? []).map(String), o.messageId);
    return { messageId: o.messageId };
  }

  /** Mails carried so far by each path: the fast lane and nodemailer. */
  get carried(): { lane: number; nodemailer: number } {
    return { ...this.#carried };
  }

  #logRejected(rejected: string[], messageId: string): void {
    if (rejected.length === 0) return;
    this.#logger.log("warn", "SMTP server refused some recipients", {
      server: this.#where,
      messageId,
      rejected,
    });
  }

  /**
   * Submits on a fast lane; undefined when no lane can carry this mail now (none opens, the
   * server offers none, the mail needs what a lane lacks, the lane broke under it): then
   * nodemailer does. docs/decisions.md "The SMTP fast lane".
   */
  async #viaLane(
    raw: Uint8Array,
    envelope: { from: string; to: string[] },
  ): Promise<LaneAnswer | undefined> {
    const lane = await this.#pickLane();
    if (lane === undefined || !lane.carries(envelope.from, envelope.to, raw)) return undefined;
    try {
      const answer = await lane.submit(envelope.from, envelope.to, raw);
      this.#carried.lane++;
      // nodemailer's pooled connections idle while lanes carry the mail: let them go
      if (this.#nodemailerBusy === 0) this.#dropTransport();
      return answer;
    } catch (err) {
      if (!(err instanceof LaneBroken)) throw err;
      // a server that broke a lane is given none for a while; nodemailer carries this mail
      if (!err.onPurpose) {
        this.#lanesAfter = (this.#options.now ?? Date.now)() + FIRST_FAILURE_KEPT_MS;
        this.#logger.log("debug", `SMTP fast lane broke: ${err.message}`, { server: this.#where });
      }
      return undefined;
    }
  }

  /**
   * An idle lane, a new one while fewer than the pool's are open, else the least loaded (or
   * the next to open); undefined when none opens.
   */
  async #pickLane(): Promise<SmtpLane | undefined> {
    for (;;) {
      this.#lanes = this.#lanes.filter((l) => !l.broken);
      const idle = this.#lanes.find((l) => l.load === 0);
      if (idle !== undefined) return idle;
      const now = (this.#options.now ?? Date.now)();
      const room = this.#lanes.length + this.#opening.size < SMTP_POOL_CONNECTIONS;
      if (room && now >= this.#lanesAfter && !this.#closed) {
        const opening = this.#newLane(now);
        this.#opening.add(opening);
        return await opening.finally(() => this.#opening.delete(opening));
      }
      if (this.#lanes.length > 0) {
        return this.#lanes.reduce((best, l) => (l.load < best.load ? l : best));
      }
      if (this.#opening.size === 0) return undefined;
      await Promise.race(this.#opening); // then pick among what opened
    }
  }

  /** Opens a lane and adds it to the pool; undefined when it cannot open (for a while). */
  async #newLane(now: number): Promise<SmtpLane | undefined> {
    try {
      const lane = await this.#openLane();
      if (this.#closed) {
        await lane.close();
        return undefined;
      }
      this.#lanes.push(lane);
      return lane;
    } catch (err) {
      // a server without what lanes need is asked no more; a failed open, not for a while
      this.#lanesAfter = err instanceof LaneUnavailable ? Infinity : now + FIRST_FAILURE_KEPT_MS;
      this.#logger.log("debug", `SMTP fast lane not used: ${(err as Error).message}`, {
        server: this.#where,
      });
      return undefined;
    }
  }

  async #openLane(): Promise<SmtpLane> {
    const s = this.#server;
    if (s.caFile !== undefined) this.#ca ??= await Deno.readTextFile(s.caFile);
    const open = (token: string | undefined) =>
      SmtpLane.open(s, {
        ehloName: this.#options.hostname ?? ehloName(),
        timeoutMs: Math.max(this.#options.timeoutMs ?? SMTP_TIMEOUT_MS, this.#connectMs),
        ...(this.#ca !== undefined ? { ca: this.#ca } : {}),
        ...(token !== undefined ? { token } : {}),
        ...(this.#options.clock !== undefined ? { clock: this.#options.clock } : {}),
        ...(this.#options.deadlineClock !== undefined
          ? { deadlines: this.#options.deadlineClock }
          : {}),
      });
    if (s.accessToken === undefined) return await open(undefined);
    try {
      return await open(this.#token ?? await s.accessToken(false));
    } catch (err) {
      // the token expired since: renew it once
      if (!(err instanceof LaneLoginRefused)) throw err;
      return await open(this.#token = await s.accessToken(true));
    }
  }

  /** A lane's answer as `send` resolves it, or the error nodemailer's path would throw. */
  #laneResult(answer: LaneAnswer, o: { messageId: string; envelope: { to: string[] } }) {
    if (!answer.accepted) {
      throw this.#error({ responseCode: answer.code, response: answer.reply }, o.envelope.to);
    }
    this.#logRejected(answer.rejected, o.messageId);
    return { messageId: o.messageId };
  }

  /** Closes nodemailer's pool; the next mail that needs it opens a new one. */
  #dropTransport(): void {
    const transport = this.#transport;
    this.#transport = undefined;
    transport?.then((t) => t.close(), () => {});
  }

  /** Closes the pool and waits (briefly) until its connections are gone. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(this.#lanes.splice(0).map((l) => l.close()));
    const transport = await this.#transport?.catch(() => undefined);
    transport?.close();
    const gone = [...this.#sockets].map((s) =>
      new Promise<void>((resolve) => {
        if (s.destroyed) return resolve();
        s.once("close", () => resolve());
      })
    );
    let timer: ReturnType<typeof setTimeout> | undefined;
    const limit = new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_WAIT_MS)));
    await Promise.race([Promise.all(gone), limit]);
    clearTimeout(timer);
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
  }

  get #where(): string {
    return `SMTP server ${this.#server.host}:${this.#server.port}`;
  }

  #ensureTransport(): Promise<Transport> {
    this.#transport ??= this.#createTransport().catch((err) => {
      this.#transport = undefined;
      throw err;
    });
    return this.#transport;
  }

  async #createTransport(): Promise<Transport> {
    const s = this.#server;
    let ca: string | undefined;
    if (s.caFile !== undefined) {
      try {
        ca = await Deno.readTextFile(s.caFile);
      } catch (err) {
        throw new MailError(
          "ETLS",
          `Cannot read the CA file ${s.caFile} for ${this.#where}: ${
            (err as Error).message
          }; check ca_file`,
          { cause: err },
        );
      }
    }
    const timeout = this.#options.timeoutMs ?? SMTP_TIMEOUT_MS;
    // Loaded on first use: a host run that has nothing to answer never pays for it.
    const { default: nodemailer } = await import("nodemailer");
    return nodemailer.createTransport({
      pool: true,
      maxConnections: SMTP_POOL_CONNECTIONS,
      maxMessages: 1000,
      host: s.host,
      port: s.port,
      ...nodemailerTlsMode(s.tls),
      ...(s.accessToken !== undefined
        ? { auth: oauth2Auth(s.user, s.accessToken, (token) => (this.#token = token)) }
        : s.password !== undefined
        ? { auth: { user: s.user, pass: s.password } }
        : {}),
      ...(this.#options.hostname ? { name: this.#options.hostname } : {}),
      tls: nodeTlsSettings(s, ca),
      // our own deadline (#connect) decides first and words the failure; these are backstops
      connectionTimeout: this.#connectMs + BACKSTOP_MS,
      greetingTimeout: this.#connectMs + BACKSTOP_MS,
      socketTimeout: Math.max(timeout, this.#connectMs + BACKSTOP_MS),
      logger: false,
      debug: false,
      getSocket: (_opts: unknown, callback: SocketCallback) => this.#connect(callback),
    });
  }

  get #connectMs(): number {
    return this.#server.connectTimeoutMs ?? DEFAULT_MAIL_CONNECT_TIMEOUT_MS;
  }

  get #target(): ConnectTarget {
    return {
      protocol: "SMTP",
      host: this.#server.host,
      port: this.#server.port,
      configKey: this.#key,
    };
  }

  get #key(): string {
    return this.#options.configKey ?? "send";
  }

  /**
   * Opens the TCP connection with TCP_NODELAY; nodemailer does the TLS and SMTP on it. The
   * connect timeout runs until the server's first bytes (its greeting, or its TLS handshake);
   * a STARTTLS (or plain) connection still silent after `TLS_PORT_PROBE_AFTER_MS` asks
   * {@link speaksImplicitTls} whether the port expects TLS from the first byte.
   */
  #connect(callback: SocketCallback): void {
    const s = this.#server;
    const connectMs = this.#connectMs;
    const target = this.#target;
    const socket = net.connect({ host: s.host, port: s.port });
    socket.setNoDelay(true);
    let connected = false;
    // the server's first bytes (greeting or TLS handshake); no listener of ours may take them
    const spoke = () => socket.bytesRead > 0;
    const probing = new AbortController();
    const fail = (report: MailError) => {
      clearTimeout(deadline);
      clearTimeout(probe);
      probing.abort();
      if (!connected) {
        socket.destroy();
        callback(Object.assign(new Error(report.message), { mailpeerReport: report }));
        return;
      }
      socket.destroy(Object.assign(new Error(report.message), { mailpeerReport: report }));
    };
    const deadline = setTimeout(() => {
      if (spoke()) return;
      fail(
        connected ? silentServerError(target, connectMs) : connectError(
          Object.assign(new Error("timed out"), { code: "ETIMEDOUT" }),
          target,
          { timeoutMs: connectMs },
        ),
      );
    }, connectMs);
    const probe = s.tls === "implicit" ? undefined : setTimeout(async () => {
      if (spoke() || !connected) return;
      const tls = await speaksImplicitTls(s.host, s.port, {
        ...(s.servername ? { servername: s.servername } : {}),
        timeoutMs: Math.max(1, connectMs - TLS_PORT_PROBE_AFTER_MS),
        signal: probing.signal,
      });
      if (tls && !spoke()) fail(implicitPortError(target, s.tls));
    }, TLS_PORT_PROBE_AFTER_MS);
    socket.once("error", (err) => {
      if (connected) return;
      clearTimeout(deadline);
      clearTimeout(probe);
      callback(err);
    });
    socket.once("connect", () => {
      connected = true;
      socket.removeAllListeners("error");
      socket.on("error", () => {}); // nodemailer listens on its own; never an unhandled event
      this.#sockets.add(socket);
      socket.once("close", () => {
        this.#sockets.delete(socket);
        clearTimeout(deadline);
        clearTimeout(probe);
        probing.abort();
      });
      callback(null, { connection: socket });
    });
  }

  /** Maps a nodemailer or socket error to a one-line MailError. */
  #error(err: unknown, to: string[]): MailError {
    const report = (err as WithReport | undefined)?.mailpeerReport;
    if (report !== undefined) return report;
    const e = (err ?? {}) as { code?: string; responseCode?: number; response?: string };
    const code = e.code ?? "";
    const reply = oneLine(e.response ?? (err instanceof Error ? err.message : String(err)));
    const s = this.#server;
    const k = this.#key;
    if (code === "EAUTH" || code === "ENOAUTH" || e.responseCode === 535) {
      return new MailError(
        "EAUTH",
        `Cannot log in to ${this.#where} as ${s.user}: the server refused the password (${reply}); ` +
          `check ${k}.password_env (or ${k}.password_file) and ${k}.user`,
        { cause: err },
      );
    }
    if (s.tls === "implicit" && e.responseCode === undefined && isPlainTextAnswer(err)) {
      return plainPortError(this.#target, err);
    }
    const deniedWithoutLogin = s.password === undefined && e.responseCode === 554 &&
      /access denied/i.test(reply);
    if (e.responseCode === 530 || deniedWithoutLogin) {
      return new MailError(
        "EAUTH",
        `Cannot send mail via ${this.#where}: the server requires a login (${reply}); ` +
          `set ${k}.password_env or ${k}.password_file`,
        { cause: err },
      );
    }
    if (code === "ETLS" || isCertificateError(err)) {
      return new MailError(
        "ETLS",
        `Cannot start TLS with ${this.#where}: ${reply}; set ${k}.ca_file to the CA that signed ` +
          `the server certificate, or ${k}.servername to a name it carries`,
        { cause: err },
      );
    }
    if (e.responseCode === undefined && connectFailure(err) !== "other") {
      return connectError(err, this.#target, { timeoutMs: this.#connectMs });
    }
    if (CONNECT_CODES.has(code)) {
      return new MailError(
        "ECONNECT",
        `Cannot connect to ${this.#where}: ${reply}; check ${k}.host, ${k}.port and that the ` +
          "server runs",
        { cause: err },
      );
    }
    if (e.responseCode !== undefined && e.responseCode >= 500) {
      return new MailError(
        "ESEND",
        `Cannot send mail to ${to.join(", ")} via ${this.#where}: ${reply}; ` +
          "check the recipient addresses and the server's answer",
        { cause: err },
      );
    }
    // A 4xx answer (greylisting, a full queue) or a failure without an answer: try again later.
    return new MailError(
      "EDEFER",
      `Cannot send mail to ${to.join(", ")} via ${this.#where} now: ${reply}; ` +
        "it is tried again on the next pass",
      { cause: err },
    );
  }
}

/** True for certificate verification failures (node and Deno spell them differently). */
function isCertificateError(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = String((e as { code?: unknown }).code ?? "");
    if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/i.test(code)) return true;
    if (/certificate|UnknownIssuer|NotValidForName/i.test(e.message)) return true;
  }
  return false;
}

/**
 * The EHLO name nodemailer would say: this machine's name when it is a domain, else a
 * bracketed address literal.
 */
function ehloName(): string {
  let name = "";
  try {
    name = os.hostname();
  } catch { /* no permission to read it */ }
  if (!name.includes(".")) return "[127.0.0.1]";
  return /^\d+\.\d+\.\d+\.\d+$/.test(name) ? `[${name}]` : name;
}

/** `a@b` from `Name <a@b>` or `a@b`. */
function bareAddress(address: string): string {
  return (/<([^>]*)>/.exec(address)?.[1] ?? address).trim();
}

function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, " ").trim().slice(0, 300);
}

function toBuffer(raw: Uint8Array): Buffer {
  // nodemailer takes a Buffer; Deno's node Buffer is a Uint8Array subclass
  return Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
}

/**
 * nodemailer's OAuth2 login (XOAUTH2) with the token from `accessToken`: nodemailer asks again
 * with `renew` when the server refused the last token, and retries the login once.
 */
function oauth2Auth(user: string, accessToken: AccessToken, onToken: (token: string) => void) {
  return {
    type: "OAuth2" as const,
    user,
    provisionCallback: (
      _user: string,
      renew: boolean,
      done: (err: Error | null, token?: string) => void,
    ) => {
      accessToken(renew).then((token) => {
        onToken(token);
        done(null, token);
      }, (err: Error) => done(err));
    },
  };
}
