/**
 * A small POP3 client (RFC 1939, STLS from RFC 2595) over Deno's TCP and TLS sockets: just
 * what {@link Pop3Source} needs. Every read is bounded (line length, response size) and timed,
 * so a hostile or stuck server cannot make it buffer without limit or hang.
 *
 * Errors are `MailError`s naming the server: `ECONNECT` (unreachable, timed out, dropped),
 * `ETLS` (certificate or handshake), `EAUTH` (credentials refused), `EMAIL` (any other `-ERR`
 * or an oversized response).
 *
 * @module
 */
import { MailError } from "../../errors.ts";
import { DEFAULT_MAIL_CONNECT_TIMEOUT_MS, MAX_MAIL_BYTES } from "../../limits.ts";
import { TLS_PORT_PROBE_AFTER_MS } from "../tuning.ts";
import {
  connectError,
  type ConnectTarget,
  implicitPortError,
  isPlainTextAnswer,
  plainPortError,
  silentServerError,
} from "../connect_failure.ts";
import {
  closeQuietly,
  errorText,
  nodeStream,
  nodeTls,
  type Pop3ConnectOptions,
  startTls,
  type Stream,
} from "./stream.ts";
import { speaksImplicitTls } from "../tls_port_probe.ts";

/** Longest status line or listing line accepted (RFC 1939 allows 512 octets). */
const MAX_LINE_BYTES = 8192;
/** Default time one connect or one command may take, in ms. */
export const POP3_TIMEOUT_MS = 30_000;

const dropped = new WeakSet<object>();
const oversized = new WeakSet<object>();

/** True when `err` means a response was larger than allowed (the connection is closed). */
export function isOversized(err: unknown): boolean {
  return typeof err === "object" && err !== null && oversized.has(err);
}

/** True when `err` means an established connection broke (worth one reconnect). */
export function isConnectionDrop(err: unknown): boolean {
  return typeof err === "object" && err !== null && dropped.has(err);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One POP3 session. Commands must not overlap: await each before the next. */
export class Pop3Client {
  readonly #where: string;
  readonly #timeoutMs: number;
  readonly #configKey: string;
  #stream: Stream;
  #buf = new Uint8Array(0);
  #timedOut = false;
  #closed = false;

  private constructor(stream: Stream, where: string, timeoutMs: number, configKey: string) {
    this.#stream = stream;
    this.#where = where;
    this.#timeoutMs = timeoutMs;
    this.#configKey = configKey;
  }

  /**
   * Connects, reads the greeting and, for `starttls`, upgrades with STLS, all within the
   * connect timeout. A STARTTLS (or plain) connection whose greeting is late asks
   * {@link speaksImplicitTls} whether the port expects TLS from the first byte.
   */
  static async connect(options: Pop3ConnectOptions): Promise<Pop3Client> {
    const where = `${options.host}:${options.port}`;
    const target: ConnectTarget = {
      protocol: "POP3",
      host: options.host,
      port: options.port,
      configKey: options.configKey ?? "receive",
    };
    const timeoutMs = options.timeoutMs ?? POP3_TIMEOUT_MS;
    const connectMs = options.connectTimeoutMs ?? DEFAULT_MAIL_CONNECT_TIMEOUT_MS;
    const deadline = AbortSignal.timeout(connectMs);
    const timedOut = () => Object.assign(new Error("timed out"), { code: "ETIMEDOUT" });
    const name = options.servername ?? options.host;
    let stream: Stream;
    try {
      stream = options.insecure
        ? await nodeStream(options, connectMs)
        : await Deno.connect({ hostname: options.host, port: options.port, signal: deadline });
      if ("setNoDelay" in stream) (stream as Deno.TcpConn).setNoDelay(true);
    } catch (err) {
      throw connectError(deadline.aborted ? timedOut() : err, target, { timeoutMs: connectMs });
    }
    let greeted = false;
    let implicitPort = false;
    const stop = () => greeted || closeQuietly(stream);
    deadline.addEventListener("abort", stop, { once: true });
    const probing = new AbortController();
    const probe = options.tls === "implicit" ? undefined : setTimeout(async () => {
      const tls = await speaksImplicitTls(options.host, options.port, {
        servername: name,
        timeoutMs: Math.max(1, connectMs - TLS_PORT_PROBE_AFTER_MS),
        signal: probing.signal,
      });
      if (tls && !greeted) {
        implicitPort = true;
        closeQuietly(stream);
      }
    }, TLS_PORT_PROBE_AFTER_MS);
    try {
      if (options.tls === "implicit" && !options.insecure) {
        stream = await startTls(stream as Deno.TcpConn, name, options, where, deadline).catch(
          (err) => {
            if (isPlainTextAnswer(err)) throw plainPortError(target, err);
            if (deadline.aborted) throw silentServerError(target, connectMs, err);
            throw err;
          },
        );
      }
      let client = new Pop3Client(stream, where, timeoutMs, target.configKey);
      await client.#expectOk("read the greeting of").catch((err) => {
        if (implicitPort) throw implicitPortError(target, options.tls, err);
        if (deadline.aborted) throw silentServerError(target, connectMs, err);
        if (isConnectionDrop(err)) {
          const closed = Object.assign(new Error("it sent no greeting"), {
            code: "ECONNRESET",
            cause: err,
          });
          throw connectError(closed, target);
        }
        throw err;
      });
      greeted = true;
      if (options.tls === "starttls") {
        await client.command("STLS", "start TLS with");
        client.#buf = new Uint8Array(0); // nothing sent before the handshake may be trusted
        stream = options.insecure
          ? await nodeTls(stream, name, timeoutMs, where)
          : await startTls(stream as Deno.TcpConn, name, options, where);
        client = new Pop3Client(stream, where, timeoutMs, target.configKey);
      }
      return client;
    } catch (err) {
      closeQuietly(stream);
      throw err;
    } finally {
      greeted = true;
      clearTimeout(probe);
      probing.abort();
      deadline.removeEventListener("abort", stop);
    }
  }

  /** USER + PASS. A refusal is `EAUTH`. */
  async login(user: string, password: string): Promise<void> {
    if (/[\r\n]/.test(user) || /[\r\n]/.test(password)) {
      throw new TypeError("Cannot log in to POP3: the user or password contains a line break");
    }
    try {
      await this.command(`USER ${user}`, "log in to");
      await this.command(`PASS ${password}`, "log in to", { quiet: true });
    } catch (err) {
      if (!(err instanceof MailError) || err.code !== "EMAIL") throw err;
      const reply = err.cause instanceof Error ? err.cause.message : String(err.cause);
      if (/\[(IN-USE|SYS\/)/i.test(reply)) {
        throw new MailError(
          "EMAIL",
          `Cannot log in to POP3 server ${this.#where} as ${user}: the mailbox is busy or the ` +
            `server failed (${reply}); try again later`,
          { cause: err },
        );
      }
      const key = this.#configKey;
      throw new MailError(
        "EAUTH",
        `Cannot log in to POP3 server ${this.#where} as ${user}: the server refused the password ` +
          `(${reply}); check ${key}.password_env (or ${key}.password_file) and ${key}.user`,
        { cause: err },
      );
    }
  }

  /** STAT: number of messages and their total size. */
  async stat(): Promise<{ count: number; size: number }> {
    const [count = NaN, size = NaN] = (await this.command("STAT", "count mail on"))
      .split(" ").map(Number);
    return { count, size };
  }

  /** UIDL: unique id by message number. */
  async uidl(): Promise<Map<number, string>> {
    const out = new Map<number, string>();
    for (const [n, uid] of await this.#listing("UIDL", "list unique ids on")) out.set(n, uid);
    return out;
  }

  /** LIST: size in octets by message number. */
  async list(): Promise<Map<number, number>> {
    const out = new Map<number, number>();
    for (const [n, size] of await this.#listing("LIST", "list mail on")) out.set(n, Number(size));
    return out;
  }

  /** TOP n lines: the header section and the first `lines` body lines. */
  async top(n: number, lines: number, maxBytes = MAX_MAIL_BYTES): Promise<Uint8Array> {
    await this.command(`TOP ${n} ${lines}`, "read headers on");
    return await this.#multiLine(maxBytes, `the headers of mail ${n}`);
  }

  /** RETR n: the whole message, dot-unstuffed, CRLF line ends. */
  async retr(n: number, maxBytes = MAX_MAIL_BYTES): Promise<Uint8Array> {
    await this.command(`RETR ${n}`, "fetch mail from");
    return await this.#multiLine(maxBytes, `mail ${n}`);
  }

  /** DELE n: marks for deletion; it takes effect at QUIT. */
  async dele(n: number): Promise<void> {
    await this.command(`DELE ${n}`, "delete mail on");
  }

  /** NOOP. */
  async noop(): Promise<void> {
    await this.command("NOOP", "talk to");
  }

  /** RSET: unmarks every DELE of this session. */
  async rset(): Promise<void> {
    await this.command("RSET", "reset the session on");
  }

  /** QUIT: commits the DELEs, then closes. Throws when the server did not commit them. */
  async quit(): Promise<void> {
    try {
      await this.command("QUIT", "commit deletions on");
    } finally {
      this.close();
    }
  }

  /** Closes the connection without QUIT (pending DELEs are dropped). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeQuietly(this.#stream);
  }

  /** Sends one command line and returns the text after `+OK`; `-ERR` throws `EMAIL`. */
  async command(line: string, doing: string, opts: { quiet?: boolean } = {}): Promise<string> {
    return await this.#timed(async () => {
      await this.#writeAll(encoder.encode(`${line}\r\n`));
      return await this.#status(opts.quiet ? line.split(" ")[0]! : line, doing);
    });
  }

  async #expectOk(doing: string): Promise<string> {
    return await this.#timed(() => this.#status("greeting", doing));
  }

  async #status(what: string, doing: string): Promise<string> {
    const line = decoder.decode(await this.#readLine(MAX_LINE_BYTES, "a status line"));
    if (line.startsWith("+OK")) return line.slice(3).trim();
    const reply = line.slice(0, 200);
    throw new MailError(
      "EMAIL",
      `Cannot ${doing} POP3 server ${this.#where}: ${what} was answered "${reply}"; ` +
        "check the server log or try again",
      { cause: new Error(reply) },
    );
  }

  async #listing(cmd: string, doing: string): Promise<[number, string][]> {
    await this.command(cmd, doing);
    const body = await this.#multiLine(MAX_MAIL_BYTES, `the ${cmd} listing`);
    const out: [number, string][] = [];
    for (const row of decoder.decode(body).split("\r\n")) {
      const [n, value] = row.trim().split(/\s+/);
      if (n && value && /^\d+$/.test(n)) out.push([Number(n), value]);
    }
    return out;
  }

  /** Reads a dot-terminated response body, unstuffed, with CRLF line ends. */
  async #multiLine(maxBytes: number, what: string): Promise<Uint8Array> {
    return await this.#timed(async () => {
      let out = new Uint8Array(Math.min(maxBytes, 16 * 1024) + 2);
      let length = 0;
      for (;;) {
        let line = await this.#readLine(maxBytes + 2, what);
        if (line.length === 1 && line[0] === 0x2e) return out.slice(0, length);
        if (line[0] === 0x2e) line = line.subarray(1);
        if (length + line.length + 2 > maxBytes) {
          this.close(); // the rest is still on the wire: this session cannot go on
          const err = new MailError(
            "EMAIL",
            `Cannot read ${what} from POP3 server ${this.#where}: it is larger than ${maxBytes} bytes; ` +
              "quarantine it or raise the mail size limit",
          );
          oversized.add(err);
          throw err;
        }
        if (length + line.length + 2 > out.length) {
          const grown = new Uint8Array(Math.min(maxBytes, 2 * (length + line.length + 2)));
          grown.set(out.subarray(0, length));
          out = grown;
        }
        out.set(line, length);
        out[length + line.length] = 0x0d;
        out[length + line.length + 1] = 0x0a;
        length += line.length + 2;
      }
    });
  }

  /** One line without its CR LF (a bare LF also ends a line). */
  async #readLine(max: number, what: string): Promise<Uint8Array> {
    let scanned = 0;
    for (;;) {
      const lf = this.#buf.indexOf(0x0a, scanned);
      if (lf >= 0) {
        const end = lf > 0 && this.#buf[lf - 1] === 0x0d ? lf - 1 : lf;
        const line = this.#buf.subarray(0, end);
        this.#buf = this.#buf.subarray(lf + 1);
        return line;
      }
      scanned = this.#buf.length;
      if (scanned > max) {
        this.close();
        const err = new MailError(
          "EMAIL",
          `Cannot read ${what} from POP3 server ${this.#where}: a line is longer than ${max} bytes; ` +
            "check that the server speaks POP3",
        );
        oversized.add(err);
        throw err;
      }
      const chunk = new Uint8Array(64 * 1024);
      let n: number | null;
      try {
        n = this.#closed ? null : await this.#stream.read(chunk);
      } catch (err) {
        throw this.#drop(errorText(err), err);
      }
      if (n === null) throw this.#drop("the server closed the connection");
      const joined = new Uint8Array(this.#buf.length + n);
      joined.set(this.#buf);
      joined.set(chunk.subarray(0, n), this.#buf.length);
      this.#buf = joined;
    }
  }

  async #writeAll(data: Uint8Array): Promise<void> {
    try {
      for (let off = 0; off < data.length;) off += await this.#stream.write(data.subarray(off));
    } catch (err) {
      throw this.#drop(errorText(err), err);
    }
  }

  /** Runs `fn` under the command time limit: when it passes, the connection is closed. */
  async #timed<T>(fn: () => Promise<T>): Promise<T> {
    const timer = setTimeout(() => {
      this.#timedOut = true;
      this.close();
    }, this.#timeoutMs);
    try {
      return await fn();
    } finally {
      clearTimeout(timer);
    }
  }

  #drop(why: string, cause?: unknown): MailError {
    this.close();
    const reason = this.#timedOut ? `no answer within ${this.#timeoutMs} ms` : why;
    const err = new MailError(
      "ECONNECT",
      `Cannot talk to POP3 server ${this.#where}: ${reason}; check that the server runs and try again`,
      { cause: cause ?? reason },
    );
    dropped.add(err);
    return err;
  }
}
