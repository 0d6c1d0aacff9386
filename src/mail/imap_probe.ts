/**
 * A quick look into an IMAP mailbox before the host loads its IMAP library: connect, log in,
 * EXAMINE (read-only) and SEARCH for the subject prefix, with Deno's own TCP and TLS.
 *
 * Why: cron runs `host --once` every minute or so on a mailbox that is empty most of the time,
 * and loading imapflow (with its logger, charset tables and MIME code) is most of such a run
 * (docs/performance.md). When the search finds nothing, there is nothing to do and imapflow is
 * never loaded. The probe only ever says "certainly nothing" or "maybe something": anything it
 * does not understand (a literal in a response, an unusual password, `insecure = true`, a
 * refused login, a server that closes) answers `undefined`, and the caller takes the full path,
 * which reports problems with its usual one-line errors. It never changes the mailbox: EXAMINE
 * opens it read-only, so no flag changes, not even \Recent.
 *
 * @module
 */
import type { ImapServerOptions } from "./imap_connect.ts";

/** Options of {@link probeImap}. */
export interface ProbeOptions {
  /** Mailbox to look into. */
  mailbox: string;
  /** Subject prefix to search for (IMAP SEARCH matches substrings: hits are only candidates). */
  subject: string;
  /** Give up (answer `undefined`) after this long, in ms. */
  timeoutMs: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** What a quoted string may hold here: printable ASCII (quotes and backslashes get escaped). */
const QUOTABLE = /^[\x20-\x7e]*$/;

/**
 * Resolves `false` when the mailbox certainly holds no mail whose subject contains `subject`,
 * `true` when it may, and `undefined` when the probe could not tell (take the full path).
 */
export async function probeImap(
  server: ImapServerOptions,
  options: ProbeOptions,
): Promise<boolean | undefined> {
  const texts = [server.user, server.password, options.mailbox, options.subject];
  if (server.insecure || !texts.every((t) => QUOTABLE.test(t))) return undefined;
  let conn: Deno.Conn | undefined;
  const timer = setTimeout(() => conn?.close(), options.timeoutMs);
  try {
    const tcp = await Deno.connect({ hostname: server.host, port: server.port });
    conn = tcp;
    const caCerts = server.caFile === undefined
      ? undefined
      : [await Deno.readTextFile(server.caFile)];
    const tlsOptions = {
      hostname: server.servername ?? server.host,
      ...(caCerts ? { caCerts } : {}),
    };
    if (server.tls === "implicit") conn = await Deno.startTls(tcp, tlsOptions);
    let session = new LineReader(conn);
    if (!(await session.line()).startsWith("* OK")) return undefined;
    if (server.tls === "starttls") {
      if (!(await command(conn, session, "STARTTLS")).ok) return undefined;
      conn = await Deno.startTls(tcp, tlsOptions);
      session = new LineReader(conn);
    }
    const login = await command(
      conn,
      session,
      `LOGIN ${quote(server.user)} ${quote(server.password)}`,
    );
    if (!login.ok) return undefined;
    const examine = await command(conn, session, `EXAMINE ${quote(options.mailbox)}`);
    if (!examine.ok) return undefined;
    const search = await command(conn, session, `SEARCH SUBJECT ${quote(options.subject)}`);
    if (!search.ok) return undefined;
    const hits = search.untagged.filter((l) => /^\* SEARCH\b/i.test(l))
      .flatMap((l) => l.slice(8).trim().split(/\s+/).filter(Boolean));
    await command(conn, session, "LOGOUT").catch(() => {});
    return hits.length > 0;
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
    try {
      conn?.close();
    } catch {
      // already closed
    }
  }
}

function quote(text: string): string {
  return `"${text.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

let tagCounter = 0;

/** Sends one command and reads up to its tagged answer. */
async function command(
  conn: Deno.Conn,
  reader: LineReader,
  text: string,
): Promise<{ ok: boolean; untagged: string[] }> {
  const tag = `p${++tagCounter}`;
  await writeAll(conn, encoder.encode(`${tag} ${text}\r\n`));
  const untagged: string[] = [];
  for (;;) {
    const line = await reader.line();
    // A literal would need reading by length; the probe does not expect one and gives up.
    if (/\{\d+\+?\}$/.test(line)) throw new Error("literal in a response");
    if (line.startsWith(`${tag} `)) {
      return { ok: line.slice(tag.length + 1).toUpperCase().startsWith("OK"), untagged };
    }
    untagged.push(line);
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length;) done += await conn.write(bytes.subarray(done));
}

/** Reads CRLF-terminated lines from a connection, at most 64 KiB each. */
class LineReader {
  #buffer = new Uint8Array(0);
  readonly #conn: Deno.Conn;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  async line(): Promise<string> {
    for (;;) {
      const end = this.#buffer.indexOf(0x0a);
      if (end >= 0) {
        const line = decoder.decode(this.#buffer.subarray(0, end)).replace(/\r$/, "");
        this.#buffer = this.#buffer.subarray(end + 1);
        return line;
      }
      if (this.#buffer.length > 65_536) throw new Error("line too long");
      const chunk = new Uint8Array(16_384);
      const n = await this.#conn.read(chunk);
      if (n === null) throw new Error("connection closed");
      const next = new Uint8Array(this.#buffer.length + n);
      next.set(this.#buffer);
      next.set(chunk.subarray(0, n), this.#buffer.length);
      this.#buffer = next;
    }
  }
}
