/**
 * The byte stream under a POP3 session (mail/pop3/client.ts): a Deno TCP or TLS connection, or a
 * node socket when certificates are not checked (`insecure`, tests only), with the TLS
 * upgrade for `starttls` and `implicit` and its `ETLS` error.
 *
 * @module
 */
import net from "node:net";
import tls from "node:tls";
import { MailError } from "../../errors.ts";

/** How to reach a POP3 server. */
export interface Pop3ConnectOptions {
  host: string;
  port: number;
  /** `starttls`: STLS after the greeting; `implicit`: TLS from the start; `none`: plain. */
  tls: "starttls" | "implicit" | "none";
  /** PEM certificates trusted in addition to the system roots. */
  caCerts?: string[];
  /** Name the certificate must carry. Default: `host`. */
  servername?: string;
  /** Accept any certificate (tests only). Default: false. */
  insecure?: boolean;
  /** Time limit for each command, in ms. Default: 30 000. */
  timeoutMs?: number;
  /**
   * Time limit for connecting, the TLS handshake and the greeting together, in ms. Default:
   * `DEFAULT_MAIL_CONNECT_TIMEOUT_MS` (10 s).
   */
  connectTimeoutMs?: number;
  /** Configuration section named in error messages, e.g. `host.receive`. Default: `receive`. */
  configKey?: string;
}

/** A byte stream: a Deno connection, or a node socket when certificates are not checked. */
export interface Stream {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  close(): void;
}

/**
 * Upgrades a Deno TCP connection to TLS, checking the certificate for `name`. When `signal`
 * aborts during the handshake, the connection is closed (the handshake then fails).
 */
export async function startTls(
  conn: Deno.TcpConn,
  name: string,
  options: Pop3ConnectOptions,
  where: string,
  signal?: AbortSignal,
): Promise<Deno.TlsConn> {
  let secured: Deno.TlsConn | undefined;
  const stop = () => closeQuietly(secured ?? conn);
  signal?.addEventListener("abort", stop, { once: true });
  try {
    secured = await Deno.startTls(conn, {
      hostname: name,
      ...(options.caCerts ? { caCerts: options.caCerts } : {}),
    });
    if (signal?.aborted) stop();
    await secured.handshake();
    return secured;
  } catch (err) {
    closeQuietly(secured ?? conn);
    throw tlsError(where, name, err);
  } finally {
    signal?.removeEventListener("abort", stop);
  }
}

function tlsError(where: string, name: string, err: unknown): MailError {
  return new MailError(
    "ETLS",
    `Cannot start TLS with POP3 server ${where}: ${errorText(err)} (verifying the name ${name}); ` +
      "set ca_file to the CA that signed the server certificate, or servername to a name it carries",
    { cause: err },
  );
}

/** A plain or TLS node socket with certificate checks off (Deno's own TLS always checks). */
export async function nodeStream(options: Pop3ConnectOptions, timeoutMs: number): Promise<Stream> {
  const socket = net.connect({ host: options.host, port: options.port, noDelay: true });
  await settle(socket, "connect", timeoutMs);
  if (options.tls !== "implicit") return wrap(socket);
  const where = `${options.host}:${options.port}`;
  return await nodeTls(wrap(socket), options.servername ?? options.host, timeoutMs, where);
}

/** Upgrades a node stream from {@link nodeStream} to TLS without certificate checks. */
export async function nodeTls(
  plain: Stream,
  name: string,
  ms: number,
  where: string,
): Promise<Stream> {
  const socket = (plain as NodeStream).socket;
  socket.removeAllListeners("data");
  const servername = net.isIP(name) ? {} : { servername: name };
  const secure = tls.connect({ socket, ...servername, rejectUnauthorized: false });
  await settle(secure, "secureConnect", ms).catch((err) => {
    socket.destroy();
    throw tlsError(where, name, err);
  });
  return wrap(secure);
}

/** Resolves on `event`, rejects on an error or after `ms`. */
function settle(socket: net.Socket, event: string, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no connection within ${ms} ms`));
    }, ms);
    socket.once("error", (err) => (clearTimeout(timer), reject(err)));
    socket.once(event, () => (clearTimeout(timer), socket.removeAllListeners("error"), resolve()));
  });
}

interface NodeStream extends Stream {
  socket: net.Socket;
}

/** Adapts a node socket to {@link Stream}: buffered chunks, read() waits for the next one. */
function wrap(socket: net.Socket): NodeStream {
  const chunks: Uint8Array[] = [];
  let ended: Error | null | undefined;
  let wake = () => {};
  const end = (err: Error | null) => (ended ??= err, wake());
  socket.on("data", (d: Uint8Array) => (chunks.push(new Uint8Array(d)), wake()));
  socket.on("end", () => end(null)).on("close", () => end(null)).on("error", end);
  return {
    socket,
    async read(p) {
      while (chunks.length === 0) {
        if (ended !== undefined) return ended ? Promise.reject(ended) : null;
        await new Promise<void>((resolve) => (wake = resolve));
      }
      const chunk = chunks[0]!;
      const n = Math.min(p.length, chunk.length);
      p.set(chunk.subarray(0, n));
      if (n === chunk.length) chunks.shift();
      else chunks[0] = chunk.subarray(n);
      return n;
    },
    write: (p) =>
      new Promise((resolve, reject) =>
        socket.write(p, (err) => (err ? reject(err) : resolve(p.length)))
      ),
    close: () => socket.destroy(),
  };
}

/** Closes a stream, ignoring that it may be closed already. */
export function closeQuietly(stream: Stream): void {
  try {
    stream.close();
  } catch {
    // already closed (a failed TLS handshake closes it)
  }
}

/** The first line of an error's message. */
export function errorText(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split("\n")[0] ?? "";
}
