/**
 * The SMTP fast lane: one submission connection on Deno's own TCP and TLS that carries mails
 * pipelined (RFC 2920) and framed by BDAT (CHUNKING, RFC 3030). A mail is `MAIL FROM`, one
 * `RCPT TO` per recipient and `BDAT <size> LAST` followed by its bytes, all in one write; every
 * mail that queued while the connection was busy goes out in the next write, and the answers
 * are read back in order. BDAT frames the message by its byte count, so a refused `MAIL` or
 * `RCPT` can never turn message bytes into commands (pipelined `DATA` could), and nothing is
 * dot-stuffed.
 *
 * {@link SmtpSender} opens lanes only once nodemailer has delivered a mail with the same
 * settings, so every failure of the settings is still worded by that path; a lane that breaks
 * (connection lost, a timeout, an answer that is not SMTP) rejects its mails with
 * {@link LaneBroken} and the sender submits them through nodemailer. docs/decisions.md "The SMTP
 * fast lane"; why it exists: docs/performance.md "Hosts that scale out".
 *
 * @module
 */
import { concatBytes } from "../../message/bytes.ts";
import { backgroundClock, type Clock } from "../../runtime.ts";
import { LineReader, writeAll } from "../line_reader.ts";
import type { MailServerOptions } from "../types.ts";

/** Most mails one write carries; more wait for the next. */
export const LANE_BATCH_MAX = 32;
/**
 * A lane idle this long says QUIT, before the server's own idle timeout (Postfix: 300 s) could
 * close it under the next mail.
 */
export const LANE_IDLE_MS = 60_000;
/** Longest reply line read from the server (RFC 5321 allows 512; a hostile server, more). */
const MAX_REPLY_LINE_BYTES = 4_096;
/** Most lines of one (multi-line) reply. */
const MAX_REPLY_LINES = 64;

/** The server lacks something the lane needs (PIPELINING, CHUNKING, the login): use nodemailer. */
export class LaneUnavailable extends Error {}

/**
 * The connection failed under a mail; the mail was not (known to be) accepted. `onPurpose`:
 * the lane closed itself (after a refusal, or closing), not a failure of the server.
 */
export class LaneBroken extends Error {
  onPurpose = false;
}

/** The server refused the lane's login (an OAuth2 token may have expired: renew it once). */
export class LaneLoginRefused extends LaneBroken {}

function closedOnPurpose(why: string): LaneBroken {
  return Object.assign(new LaneBroken(why), { onPurpose: true });
}

/** The server's answer to one mail. */
export type LaneAnswer =
  /** Accepted for every recipient but `rejected`. */
  | { accepted: true; rejected: string[] }
  /** Refused: the first refusing reply (MAIL, every RCPT, or BDAT). */
  | { accepted: false; code: number; reply: string };

/** What {@link SmtpLane.open} needs besides the server. */
export interface LaneOptions {
  /** EHLO name. */
  ehloName: string;
  /** PEM of the CA to trust (else the default roots). */
  ca?: string;
  /** Time limit of the connection and login, and of each write and its answers, in ms. */
  timeoutMs: number;
  /** The OAuth2 token, when the server options name one (XOAUTH2). */
  token?: string;
  /**
   * Timer of the idle QUIT ({@link LANE_IDLE_MS}). Default: `backgroundClock`, whose wait does
   * not keep the process alive.
   */
  clock?: Pick<Clock, "sleep">;
  /**
   * Timer of the deadlines (`timeoutMs`: connecting, logging in, each write's answers).
   * Default: `backgroundClock`.
   */
  deadlines?: Pick<Clock, "sleep">;
}

interface Queued {
  from: string;
  to: string[];
  raw: Uint8Array;
  resolve: (answer: LaneAnswer) => void;
  reject: (err: unknown) => void;
}

interface Reply {
  code: number;
  text: string;
}

const encoder = new TextEncoder();

/** A submission connection carrying pipelined BDAT transactions; see the module comment. */
export class SmtpLane {
  #conn: Deno.Conn;
  #reader: LineReader;
  readonly #timeoutMs: number;
  readonly #maxSize: number | undefined;
  readonly #eightBit: boolean;
  readonly #clock: Pick<Clock, "sleep">;
  readonly #deadlines: Pick<Clock, "sleep">;
  #queue: Queued[] = [];
  #inFlight = 0;
  #pumping = false;
  #broken = false;
  /** Aborts the idle QUIT's wait (armed while the lane is idle). */
  #idle: AbortController | undefined;

  private constructor(
    conn: Deno.Conn,
    reader: LineReader,
    o: {
      timeoutMs: number;
      maxSize: number | undefined;
      eightBit: boolean;
      clock: Pick<Clock, "sleep">;
      deadlines: Pick<Clock, "sleep">;
    },
  ) {
    this.#conn = conn;
    this.#reader = reader;
    this.#timeoutMs = o.timeoutMs;
    this.#maxSize = o.maxSize;
    this.#eightBit = o.eightBit;
    this.#clock = o.clock;
    this.#deadlines = o.deadlines;
  }

  /**
   * Connects, says EHLO (after STARTTLS when `tls` is `starttls`) and logs in. Throws
   * {@link LaneUnavailable} when the server or the settings do not allow a lane, anything else
   * when connecting or logging in failed (the caller then keeps to nodemailer).
   */
  static async open(server: MailServerOptions, o: LaneOptions): Promise<SmtpLane> {
    if (server.insecure) throw new LaneUnavailable("insecure TLS is nodemailer's alone");
    if (server.accessToken !== undefined && o.token === undefined) {
      throw new LaneUnavailable("no token for XOAUTH2");
    }
    const deadlines = o.deadlines ?? backgroundClock;
    const tcp = await withDeadline(
      Deno.connect({ hostname: server.host, port: server.port }),
      o.timeoutMs,
      deadlines,
      (late) => close(late),
    );
    tcp.setNoDelay(true);
    let conn: Deno.Conn = tcp;
    const stopDeadline = deadline(deadlines, o.timeoutMs, () => close(conn));
    try {
      const tls = () =>
        Deno.startTls(tcp, {
          hostname: server.servername ?? server.host,
          ...(o.ca !== undefined ? { caCerts: [o.ca] } : {}),
        });
      if (server.tls === "implicit") conn = await tls();
      let reader = new LineReader(conn, { maxBytes: MAX_REPLY_LINE_BYTES });
      expect(await readReply(reader), 220, "greeting");
      let ehlo = await command(conn, reader, `EHLO ${o.ehloName}`);
      expect(ehlo, 250, "EHLO");
      if (server.tls === "starttls") {
        expect(await command(conn, reader, "STARTTLS"), 220, "STARTTLS");
        conn = await tls();
        reader = new LineReader(conn, { maxBytes: MAX_REPLY_LINE_BYTES });
        ehlo = await command(conn, reader, `EHLO ${o.ehloName}`);
        expect(ehlo, 250, "EHLO");
      }
      const caps = capabilities(ehlo.text);
      if (!caps.has("PIPELINING") || !caps.has("CHUNKING")) {
        throw new LaneUnavailable("the server offers no PIPELINING with CHUNKING");
      }
      const auth = caps.get("AUTH")?.split(" ") ?? [];
      if (o.token !== undefined) {
        if (!auth.includes("XOAUTH2")) throw new LaneUnavailable("no AUTH XOAUTH2");
        const sasl = btoa(`user=${server.user}\x01auth=Bearer ${o.token}\x01\x01`);
        const answer = await command(conn, reader, `AUTH XOAUTH2 ${sasl}`);
        if (answer.code !== 235) {
          throw new LaneLoginRefused(`AUTH answered ${answer.code} ${answer.text.split("\n")[0]}`);
        }
      } else if (server.password !== undefined) {
        if (!auth.includes("PLAIN")) throw new LaneUnavailable("no AUTH PLAIN");
        const sasl = base64Utf8(`\0${server.user}\0${server.password}`);
        expect(await command(conn, reader, `AUTH PLAIN ${sasl}`), 235, "AUTH");
      }
      const size = Number(caps.get("SIZE"));
      return new SmtpLane(conn, reader, {
        timeoutMs: o.timeoutMs,
        maxSize: Number.isSafeInteger(size) && size > 0 ? size : undefined,
        eightBit: caps.has("8BITMIME"),
        clock: o.clock ?? backgroundClock,
        deadlines,
      });
    } catch (err) {
      close(conn);
      throw err;
    } finally {
      stopDeadline();
    }
  }

  /** Mails queued or under way: the sender picks the least loaded lane. */
  get load(): number {
    return this.#queue.length + this.#inFlight;
  }

  /** True once the connection failed or was closed: the lane takes no more mail. */
  get broken(): boolean {
    return this.#broken;
  }

  /**
   * True when this lane can carry `raw` to `to`: within the server's SIZE, 8-bit bytes only
   * where it offers 8BITMIME, and ASCII addresses (SMTPUTF8 is nodemailer's).
   */
  carries(from: string, to: string[], raw: Uint8Array): boolean {
    if (this.#maxSize !== undefined && raw.length > this.#maxSize) return false;
    if (![from, ...to].every((a) => /^[\x21-\x7e]+$/.test(a) && !/[<>]/.test(a))) return false;
    return this.#eightBit || !raw.some((b) => b >= 0x80);
  }

  /**
   * Queues one mail; resolves with the server's answer to it, or rejects with
   * {@link LaneBroken} when the connection failed before that answer was read.
   */
  submit(from: string, to: string[], raw: Uint8Array): Promise<LaneAnswer> {
    if (this.#broken) return Promise.reject(closedOnPurpose("the lane is closed"));
    this.#idle?.abort();
    return new Promise<LaneAnswer>((resolve, reject) => {
      this.#queue.push({ from, to, raw, resolve, reject });
      if (!this.#pumping) void this.#pump();
    });
  }

  /** Says QUIT (briefly) and closes; queued mails are rejected with {@link LaneBroken}. */
  async close(): Promise<void> {
    this.#idle?.abort();
    const idle = this.#inFlight === 0 && this.#queue.length === 0;
    await this.#fail(closedOnPurpose("the lane is closed"), idle);
  }

  /** Writes the queued mails, a batch per write, and hands each its answer. */
  async #pump(): Promise<void> {
    this.#pumping = true;
    try {
      while (this.#queue.length > 0 && !this.#broken) {
        const batch = this.#queue.splice(0, LANE_BATCH_MAX);
        this.#inFlight = batch.length;
        const stopDeadline = deadline(
          this.#deadlines,
          this.#timeoutMs,
          () => void this.#fail(new LaneBroken(`no answer within ${this.#timeoutMs} ms`)),
        );
        try {
          await writeAll(this.#conn, transactions(batch, this.#eightBit));
          let refused = false;
          while (batch.length > 0) {
            const mail = batch[0]!;
            const answer = await this.#answer(mail);
            batch.shift();
            this.#inFlight--;
            if (!answer.accepted) refused = true;
            mail.resolve(answer);
          }
          // After a refusal the server's framing is trusted no further: a fresh lane next time.
          if (refused) void this.#fail(closedOnPurpose("closed after a refused mail"), true);
        } catch (err) {
          const broken = err instanceof LaneBroken
            ? err
            : new LaneBroken(String(err), { cause: err });
          for (const mail of batch) mail.reject(broken);
          this.#inFlight = 0;
          void this.#fail(broken);
        } finally {
          stopDeadline();
        }
      }
    } finally {
      this.#pumping = false;
      if (!this.#broken) {
        const idle = this.#idle = new AbortController();
        this.#clock.sleep(LANE_IDLE_MS, idle.signal).then(() => void this.close(), () => {});
      }
    }
  }

  /** Reads the answers to one mail's MAIL, RCPTs and BDAT. */
  async #answer(mail: Queued): Promise<LaneAnswer> {
    const replies: Reply[] = [];
    for (let i = 0; i < mail.to.length + 2; i++) replies.push(await readReply(this.#reader));
    const [from, ...rest] = replies;
    const bdat = rest.pop()!;
    const rcpts = rest;
    if (from!.code !== 250) return refusal(from!);
    const rejected = mail.to.filter((_, i) => !isPositive(rcpts[i]!));
    if (rejected.length === mail.to.length) return refusal(rcpts[0]!);
    if (bdat.code !== 250) return refusal(bdat);
    return { accepted: true, rejected };
  }

  /** Marks the lane broken, rejects what waits and closes the connection. */
  #fail(err: LaneBroken, quietly = false): Promise<void> {
    if (this.#broken) return Promise.resolve();
    this.#broken = true;
    for (const mail of this.#queue.splice(0)) mail.reject(err);
    if (!quietly) {
      close(this.#conn);
      return Promise.resolve();
    }
    return withDeadline(
      writeAll(this.#conn, encoder.encode("QUIT\r\n")),
      1_000,
      this.#deadlines,
      undefined,
    ).catch(() => {}).finally(() => close(this.#conn));
  }
}

/** The bytes of a batch: each mail's MAIL FROM, RCPT TO lines and BDAT chunk, back to back. */
function transactions(batch: readonly Queued[], eightBit: boolean): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const mail of batch) {
    const body = eightBit && mail.raw.some((b) => b >= 0x80) ? " BODY=8BITMIME" : "";
    const head = `MAIL FROM:<${mail.from}>${body}\r\n` +
      mail.to.map((to) => `RCPT TO:<${to}>\r\n`).join("") +
      `BDAT ${mail.raw.length} LAST\r\n`;
    parts.push(encoder.encode(head), mail.raw);
  }
  return concatBytes(...parts);
}

/** Reads one reply (all its lines); anything that is not an SMTP reply breaks the lane. */
async function readReply(reader: LineReader): Promise<Reply> {
  const lines: string[] = [];
  for (;;) {
    let line: string;
    try {
      line = await reader.line();
    } catch (err) {
      throw new LaneBroken(err instanceof Error ? err.message : String(err), { cause: err });
    }
    const m = /^([2-5]\d\d)([ -]|$)(.*)$/.exec(line);
    if (m === null) {
      throw new LaneBroken(`the server answered ${JSON.stringify(line.slice(0, 80))}, not SMTP`);
    }
    if (lines.length > 0 && Number(m[1]) !== Number(/^\d+/.exec(lines[0]!)![0])) {
      throw new LaneBroken("a reply whose lines carry different codes");
    }
    lines.push(line);
    if (lines.length > MAX_REPLY_LINES) throw new LaneBroken("a reply of too many lines");
    if (m[2] !== "-") {
      return { code: Number(m[1]), text: lines.map((l) => l.slice(4)).join("\n") };
    }
  }
}

async function command(conn: Deno.Conn, reader: LineReader, line: string): Promise<Reply> {
  await writeAll(conn, encoder.encode(line + "\r\n"));
  return await readReply(reader);
}

function expect(reply: Reply, code: number, step: string): void {
  if (reply.code !== code) {
    throw new LaneBroken(`${step} answered ${reply.code} ${reply.text.split("\n")[0]}`);
  }
}

/** EHLO keywords (upper case) → their parameters; the first line is the server's name. */
function capabilities(ehlo: string): Map<string, string> {
  const caps = new Map<string, string>();
  for (const line of ehlo.split("\n").slice(1)) {
    const [keyword = "", ...params] = line.trim().split(/\s+/);
    caps.set(keyword.toUpperCase(), params.join(" ").toUpperCase());
  }
  return caps;
}

function isPositive(reply: Reply): boolean {
  return reply.code >= 200 && reply.code < 300;
}

function refusal(reply: Reply): LaneAnswer {
  return { accepted: false, code: reply.code, reply: `${reply.code} ${reply.text}` };
}

function base64Utf8(text: string): string {
  let binary = "";
  for (const b of encoder.encode(text)) binary += String.fromCharCode(b);
  return btoa(binary);
}

function close(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch { /* already closed */ }
}

/** Calls `expire` after `ms` on `clock` unless the function it returns is called first. */
function deadline(clock: Pick<Clock, "sleep">, ms: number, expire: () => void): () => void {
  const stop = new AbortController();
  clock.sleep(ms, stop.signal).then(expire, () => {});
  return () => stop.abort();
}

/**
 * `promise`, or a rejection after `ms` on `clock` (then `onLate` gets what it resolves with).
 */
function withDeadline<T>(
  promise: Promise<T>,
  ms: number,
  clock: Pick<Clock, "sleep">,
  onLate: ((value: T) => void) | undefined,
): Promise<T> {
  let late = false;
  let stop = () => {};
  return Promise.race([
    promise.then((value) => {
      if (late) onLate?.(value);
      return value;
    }),
    new Promise<never>((_, reject) => {
      stop = deadline(clock, ms, () => {
        late = true;
        reject(new LaneBroken(`no answer within ${ms} ms`));
      });
    }),
  ]).finally(() => stop());
}
