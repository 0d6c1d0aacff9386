/**
 * Probes a mail server that is not configured yet (`mailpeer init`): TCP, TLS (implicit, or
 * STARTTLS after the greeting) with the certificate checked, the protocol's greeting, and,
 * when a password is given, one login (IMAP `LOGIN`, POP3 `USER`/`PASS`, SMTP `AUTH PLAIN`),
 * then a polite goodbye. Nothing in a mailbox is read or changed, and no mail is sent. The
 * password is only ever sent inside a TLS session whose certificate verified.
 *
 * Failures are the usual one-line {@link MailError}s (connect_failure.ts): `ECONNECT` for a
 * server that cannot be reached or does not speak the protocol, `ETLS` for a TLS failure
 * (a port of the other TLS mode, an untrusted certificate), `EAUTH` for a refused login.
 *
 * @module
 */
import { imapQuote, LineReader, writeAll } from "./line_reader.ts";
import { Buffer } from "node:buffer";
import { MailError } from "../errors.ts";
import {
  connectError,
  type ConnectTarget,
  isPlainTextAnswer,
  type MailProtocol,
  plainPortError,
  silentServerError,
} from "./connect_failure.ts";
import type { MailServerOptions } from "./types.ts";

/** Options of {@link probeMailServer}. */
export interface ServerProbeOptions {
  /** Time limit of the whole probe, in ms. */
  timeoutMs: number;
  /** Configuration section named in error messages, e.g. `terminal.receive`. */
  configKey: string;
  signal?: AbortSignal;
}

/** Longest line a server may send the probe. */
const MAX_LINE = 8_192;
const encoder = new TextEncoder();

/**
 * Connects to `server` as `protocol`, checks its greeting and TLS, and logs in when
 * `server.password` is set. Resolves when all of that worked; throws a `MailError` otherwise.
 */
export async function probeMailServer(
  protocol: MailProtocol,
  server: MailServerOptions,
  options: ServerProbeOptions,
): Promise<void> {
  const target: ConnectTarget = {
    protocol,
    host: server.host,
    port: server.port,
    configKey: options.configKey,
  };
  const limit = AbortSignal.timeout(options.timeoutMs);
  const signal = options.signal ? AbortSignal.any([limit, options.signal]) : limit;
  let conn: Deno.Conn | undefined;
  const stop = () => {
    try {
      conn?.close();
    } catch {
      // closed already
    }
  };
  signal.addEventListener("abort", stop, { once: true });
  let greeted = false;
  // deno-lint-ignore no-control-regex -- a line break would inject a second command
  if (/[\x00-\x1f\x7f]/.test(server.user + (server.password ?? ""))) {
    throw new MailError(
      "EAUTH",
      `Cannot log in to ${protocol} server ${server.host}:${server.port}: the login name or password holds a control character (a line break?); check them`,
    );
  }
  const caCerts = server.caFile === undefined ? undefined : [await readCa(server, target)];
  const tlsOptions = {
    hostname: server.servername ?? server.host,
    ...(caCerts ? { caCerts } : {}),
  };
  const startTls = async (tcp: Deno.TcpConn) => {
    const tls = await Deno.startTls(tcp, tlsOptions);
    // From here the TLS connection owns the socket: the time limit must close it, not tcp.
    conn = tls;
    if (signal.aborted) stop();
    try {
      await tls.handshake();
    } catch (err) {
      if (limit.aborted) throw silentServerError(target, options.timeoutMs, err);
      if (isPlainTextAnswer(err)) throw plainPortError(target, err);
      throw tlsError(target, err);
    }
    return tls;
  };
  try {
    const tcp = await Deno.connect({ hostname: server.host, port: server.port, signal })
      .catch((err) => {
        const cause = limit.aborted
          ? Object.assign(new Error("timed out"), { code: "ETIMEDOUT" })
          : err;
        throw connectError(cause, target, { timeoutMs: options.timeoutMs });
      });
    conn = tcp;
    if (server.tls === "implicit") conn = await startTls(tcp);
    let lines = new Lines(conn);
    const greeting = await lines.reply(protocol, true);
    greeted = true;
    if (!greeting.ok) throw notThisProtocol(target, greeting.text);
    const say = async (text: string) => {
      await writeAll(conn!, encoder.encode(text + "\r\n"));
      return await lines.reply(protocol);
    };
    let ehlo = protocol === "SMTP" ? await say("EHLO mailpeer-init") : undefined;
    if (server.tls === "starttls") {
      const started = protocol === "IMAP"
        ? await say("a1 STARTTLS")
        : protocol === "POP3"
        ? await say("STLS")
        : await say("STARTTLS");
      if (!started.ok) {
        throw new MailError(
          "ETLS",
          `Cannot connect to ${protocol} server ${server.host}:${server.port}: it does not offer STARTTLS (${
            started.text.slice(0, 80)
          }); use its implicit-TLS port instead`,
          { cause: started.text },
        );
      }
      conn = await startTls(tcp);
      lines = new Lines(conn);
      if (protocol === "SMTP") ehlo = await say("EHLO mailpeer-init");
    }
    if (server.password !== undefined) {
      const user = server.user;
      const pass = server.password;
      let login;
      if (protocol === "IMAP") {
        login = await say(`a2 LOGIN ${imapQuote(user)} ${imapQuote(pass)}`);
      } else if (protocol === "POP3") {
        const u = await say(`USER ${user}`);
        login = u.ok ? await say(`PASS ${pass}`) : u;
      } else {
        if (ehlo && !/AUTH\b/i.test(ehlo.text)) {
          throw new MailError(
            "EAUTH",
            `Cannot log in to SMTP server ${server.host}:${server.port}: it offers no AUTH; use the provider's submission server (port 587 or 465)`,
            { cause: ehlo.text },
          );
        }
        const plain = Buffer.from(`\0${user}\0${pass}`, "utf8").toString("base64");
        login = await say(`AUTH PLAIN ${plain}`);
      }
      if (!login.ok) {
        throw new MailError(
          "EAUTH",
          `Cannot log in to ${protocol} server ${server.host}:${server.port} as ${user}: the server refused the password (${
            login.text.replace(/^a2 /, "").slice(0, 100)
          }); check the password and the login name`,
          { cause: login.text },
        );
      }
    }
    const bye = protocol === "IMAP" ? "a3 LOGOUT" : "QUIT";
    await writeAll(conn, encoder.encode(bye + "\r\n")).catch(() => {});
  } catch (err) {
    if (err instanceof MailError) throw err;
    if (!greeted) {
      if (limit.aborted) throw silentServerError(target, options.timeoutMs, err);
      throw connectError(err, target, { timeoutMs: options.timeoutMs });
    }
    throw new MailError(
      "ECONNECT",
      `Cannot probe ${protocol} server ${server.host}:${server.port}: ${
        limit.aborted ? "it stopped answering" : (err as Error).message.split("\n")[0]
      }; check that it is ${protocol === "IMAP" ? "an" : "a"} ${protocol} server`,
      { cause: err },
    );
  } finally {
    signal.removeEventListener("abort", stop);
    stop();
  }
}

async function readCa(server: MailServerOptions, target: ConnectTarget): Promise<string> {
  try {
    return await Deno.readTextFile(server.caFile!);
  } catch (err) {
    throw new MailError(
      "ETLS",
      `Cannot read the CA file ${server.caFile} for ${target.protocol} server ${server.host}:${server.port}: ${
        (err as Error).message
      }; check the --ca-file path`,
      { cause: err },
    );
  }
}

function tlsError(t: ConnectTarget, err: unknown): MailError {
  const text = (err instanceof Error ? err.message : String(err)).split("\n")[0]!.slice(0, 160);
  return new MailError(
    "ETLS",
    `Cannot connect to ${t.protocol} server ${t.host}:${t.port}: the TLS handshake failed (${text}); ` +
      "the server's certificate must be valid for its name and signed by a trusted CA (pass --ca-file for a CA of your own)",
    { cause: err },
  );
}

function notThisProtocol(t: ConnectTarget, text: string): MailError {
  return new MailError(
    "ECONNECT",
    `Cannot connect to ${t.protocol} server ${t.host}:${t.port}: it does not greet as ${t.protocol} (${
      JSON.stringify(text.slice(0, 60))
    }); it is not the right server or port`,
    { cause: text },
  );
}

/** Reads the servers' replies line by line: one IMAP/POP3 line, or a multi-line SMTP reply. */
class Lines {
  readonly #reader: LineReader;

  constructor(conn: Deno.Conn) {
    this.#reader = new LineReader(conn, { maxBytes: MAX_LINE });
  }

  /** The next reply: IMAP skips untagged `*` lines after the greeting. */
  async reply(protocol: MailProtocol, greeting = false): Promise<{ ok: boolean; text: string }> {
    if (protocol === "SMTP") {
      const all: string[] = [];
      for (;;) {
        const line = await this.#line();
        all.push(line);
        if (!/^\d{3}-/.test(line)) {
          return { ok: /^[23]\d\d/.test(line), text: all.join("\n") };
        }
        if (all.length > 100) throw new Error("an SMTP reply of more than 100 lines");
      }
    }
    if (protocol === "POP3") {
      const line = await this.#line();
      return { ok: line.startsWith("+OK"), text: line };
    }
    for (let n = 0;; n++) {
      const line = await this.#line();
      if (greeting) return { ok: /^\* (OK|PREAUTH)\b/i.test(line), text: line };
      if (line.startsWith("* ")) {
        if (n > 100) throw new Error("more than 100 untagged IMAP lines");
        continue;
      }
      return { ok: /^a\d+ OK\b/i.test(line), text: line };
    }
  }

  #line(): Promise<string> {
    return this.#reader.line();
  }
}
