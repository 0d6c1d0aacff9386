/**
 * The few lines of raw mail protocol the probes speak before any mail library loads (the cron
 * host's empty-mailbox probe, `imap/probe.ts`; init's server probe, `server_probe.ts`): reading
 * CRLF lines from a connection with a bound on their length, writing a whole buffer, and quoting
 * an IMAP string.
 *
 * @module
 */

const decoder = new TextDecoder();

/** Reads CRLF-terminated lines from a connection, each at most `maxBytes` (a hostile server). */
export class LineReader {
  #buffer = new Uint8Array(0);
  readonly #conn: Deno.Conn;
  readonly #maxBytes: number;

  constructor(conn: Deno.Conn, options: { maxBytes?: number } = {}) {
    this.#conn = conn;
    this.#maxBytes = options.maxBytes ?? 65_536;
  }

  /** The next line, without its line end; rejects on a too-long line or a closed connection. */
  async line(): Promise<string> {
    for (;;) {
      const end = this.#buffer.indexOf(0x0a);
      if (end >= 0) {
        const line = decoder.decode(this.#buffer.subarray(0, end)).replace(/\r$/, "");
        this.#buffer = this.#buffer.subarray(end + 1);
        return line;
      }
      if (this.#buffer.length > this.#maxBytes) throw new Error("a line too long");
      const chunk = new Uint8Array(16_384);
      const n = await this.#conn.read(chunk);
      if (n === null) throw new Error("the server closed the connection");
      const next = new Uint8Array(this.#buffer.length + n);
      next.set(this.#buffer);
      next.set(chunk.subarray(0, n), this.#buffer.length);
      this.#buffer = next;
    }
  }
}

/** Writes all of `bytes` (a socket write may take only part). */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length;) done += await conn.write(bytes.subarray(done));
}

/** An IMAP quoted string (RFC 3501 §4.3); callers refuse CR, LF and NUL before quoting. */
export function imapQuote(text: string): string {
  return `"${text.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}
