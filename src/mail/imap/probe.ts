/**
 * A quick look into an IMAP mailbox before the host loads its IMAP library: connect, log in,
 * EXAMINE (read-only) and SEARCH for the subject prefix in each mailbox it reads, with Deno's
 * own TCP and TLS. With `junk = "auto"` the Junk folder is found first, as the full path finds
 * it: one `LIST` (with `RETURN (SPECIAL-USE)` where the server has the RFC 6154 marks), each
 * mailbox judged by imapflow's own classifier (the server's `\Junk` mark, else its table of
 * localized names); where more than one mailbox could be the Junk folder, it cannot tell.
 *
 * Why: cron runs `host --once` every minute or so on a mailbox that is empty most of the time,
 * and loading imapflow (with its logger, charset tables and MIME code) is most of such a run
 * (docs/performance.md). When the search finds nothing, there is nothing to do and imapflow is
 * never loaded. The probe only ever says "certainly nothing" or "maybe something": anything it
 * does not understand (a literal in a response, an unusual password, `insecure = true`, a
 * greeting later than `TLS_PORT_PROBE_AFTER_MS`, a server that closes) answers `undefined`,
 * and the caller takes the full path, which reports problems with its usual one-line errors.
 * Three answers are final, in the same words the full path uses: a connection that cannot be
 * made (refused, unknown name, unreachable, nothing answers within the connect timeout) is an
 * `ECONNECT`, a port that expects TLS first (STARTTLS configured on 993) an `ETLS`, and a
 * refused password an `EAUTH` (trying it again would only wait out the server's delay for
 * failed logins twice). It never changes the mailbox: EXAMINE opens it
 * read-only, so no flag changes, not even \Recent.
 *
 * @module
 */
import { imapQuote, LineReader, writeAll } from "../line_reader.ts";
import type { MailLogin } from "../types.ts";
import { MailError } from "../../errors.ts";
import { DEFAULT_MAIL_CONNECT_TIMEOUT_MS, IMAP_PROBE_MAX_RESPONSES } from "../../limits.ts";
import { TLS_PORT_PROBE_AFTER_MS } from "../tuning.ts";
import { connectError, type ConnectTarget, implicitPortError } from "../connect_failure.ts";

import { connectionError } from "./errors.ts";
import { speaksImplicitTls } from "../tls_port_probe.ts";

/** Options of {@link probeImap}. */
export interface ProbeOptions {
  /** Mailboxes to look into. */
  mailboxes: string[];
  /** Also the Junk folder, found as `junk = "auto"` finds it (see the module doc). */
  findJunk?: boolean;
  /** Subject prefix to search for (IMAP SEARCH matches substrings: hits are only candidates). */
  subject: string;
  /** Give up (answer `undefined`) after this long, in ms. */
  timeoutMs: number;
  /** Configuration section named in error messages. Default: `host.receive`. */
  configKey?: string;
}

const encoder = new TextEncoder();
/** What a quoted string may hold here: printable ASCII (quotes and backslashes get escaped). */
const QUOTABLE = /^[\x20-\x7e]*$/;

/**
 * Resolves `false` when the mailboxes certainly hold no mail whose subject contains `subject`,
 * `true` when one may, and `undefined` when the probe could not tell (take the full path).
 */
export async function probeImap(
  server: MailLogin,
  options: ProbeOptions,
): Promise<boolean | undefined> {
  // OAuth2 logins take the full path (the probe speaks LOGIN only).
  if (server.password === undefined) return undefined;
  const password = server.password;
  const texts = [server.user, password, ...options.mailboxes, options.subject];
  if (server.insecure || !texts.every((t) => QUOTABLE.test(t))) return undefined;
  let conn: Deno.Conn | undefined;
  const timer = setTimeout(() => conn?.close(), options.timeoutMs);
  const configKey = options.configKey ?? "host.receive";
  const connectMs = server.connectTimeoutMs ?? DEFAULT_MAIL_CONNECT_TIMEOUT_MS;
  const target: ConnectTarget = {
    protocol: "IMAP",
    host: server.host,
    port: server.port,
    configKey,
  };
  // A late greeting: a port that expects TLS first is said so (as the full path would say it);
  // a merely slow server is the full path's to wait for.
  let greeted = false;
  let implicitPort = false;
  const probing = new AbortController();
  const greetingTimer = setTimeout(async () => {
    if (greeted) return;
    if (server.tls !== "implicit") {
      implicitPort = await speaksImplicitTls(server.host, server.port, {
        ...(server.servername !== undefined ? { servername: server.servername } : {}),
        timeoutMs: Math.max(1, connectMs - TLS_PORT_PROBE_AFTER_MS),
        signal: probing.signal,
      });
    }
    if (!greeted) conn?.close();
  }, server.tls === "implicit" ? connectMs : TLS_PORT_PROBE_AFTER_MS);
  try {
    const deadline = AbortSignal.timeout(connectMs);
    const tcp = await Deno.connect({ hostname: server.host, port: server.port, signal: deadline })
      .catch((err) => {
        const cause = deadline.aborted
          ? Object.assign(new Error("timed out"), { code: "ETIMEDOUT" })
          : err;
        throw connectError(cause, target, { timeoutMs: connectMs });
      });
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
    greeted = true;
    if (server.tls === "starttls") {
      if (!(await command(conn, session, "STARTTLS")).ok) return undefined;
      conn = await Deno.startTls(tcp, tlsOptions);
      session = new LineReader(conn);
    }
    const login = await command(
      conn,
      session,
      `LOGIN ${imapQuote(server.user)} ${imapQuote(password)}`,
    );
    if (!login.ok) {
      const refusal = login.status.match(/^NO \[AUTHENTICATIONFAILED\]\s*(.*)$/i);
      if (refusal) {
        throw connectionError(
          { authenticationFailed: true, responseText: refusal[1] ?? "" },
          { server: `${server.host}:${server.port}`, user: server.user, configKey },
        );
      }
      return undefined;
    }
    const mailboxes = [...options.mailboxes];
    if (options.findJunk) {
      const junk = await junkFolder(conn, session);
      if (junk === undefined) return undefined;
      if (junk !== null && !mailboxes.includes(junk)) mailboxes.push(junk);
    }
    let hits = 0;
    for (const mailbox of mailboxes) {
      const examine = await command(conn, session, `EXAMINE ${imapQuote(mailbox)}`);
      if (!examine.ok) return undefined;
      const search = await command(conn, session, `SEARCH SUBJECT ${imapQuote(options.subject)}`);
      if (!search.ok) return undefined;
      hits += search.untagged.filter((l) => /^\* SEARCH\b/i.test(l))
        .flatMap((l) => l.slice(8).trim().split(/\s+/).filter(Boolean)).length;
      if (hits > 0) break;
    }
    await command(conn, session, "LOGOUT").catch(() => {});
    return hits > 0;
  } catch (err) {
    if (err instanceof MailError) throw err;
    if (implicitPort && !greeted) throw implicitPortError(target, server.tls, err);
    return undefined;
  } finally {
    clearTimeout(timer);
    clearTimeout(greetingTimer);
    probing.abort();
    try {
      conn?.close();
    } catch {
      // already closed
    }
  }
}

/** `* LIST (attributes) delimiter name`: the name a quoted string or an atom (no literal). */
const LIST_LINE =
  /^\* LIST \(([^)]*)\) (NIL|"(?:[^"\\]|\\.)*") (?:"((?:[^"\\]|\\.)*)"|([^\s"(){]+))$/i;

/** imapflow's own verdict on one mailbox (`lib/special-use.js`): the server's mark, else its name. */
type SpecialUseOf = (
  hasExtension: boolean,
  folder: { flags: Set<string>; name: string },
) => { flag: string | null; source?: string };

const unquote = (quoted: string) => quoted.slice(1, -1).replace(/\\(.)/g, "$1");

/**
 * The Junk folder as the full path would find it (`findJunkFolder`: the mailbox imapflow's
 * `list()` types `\Junk`, else one named Junk or Spam), where that is certain: its path, or null
 * when there is none; undefined when the probe cannot be sure (a server that lists with XLIST, a
 * name in another encoding, several candidates, which imapflow ranks by rules of its own).
 * imapflow's own classifier judges each mailbox, from a small module of its own, without its
 * IMAP machinery.
 */
async function junkFolder(
  conn: Deno.Conn,
  session: LineReader,
): Promise<string | null | undefined> {
  const caps = await command(conn, session, "CAPABILITY");
  const announced = caps.untagged.find((l) => /^\* CAPABILITY /i.test(l));
  if (!caps.ok || announced === undefined) return undefined;
  const capabilities = new Set(announced.slice(13).toUpperCase().split(/\s+/));
  // As imapflow: marks are trusted where SPECIAL-USE (or IMAP4rev2) is announced; XLIST alone
  // makes it list with XLIST, which the probe does not speak.
  const marks = capabilities.has("SPECIAL-USE") || capabilities.has("IMAP4REV2");
  if (!marks && capabilities.has("XLIST")) return undefined;
  const list = await command(conn, session, `LIST "" "*"${marks ? " RETURN (SPECIAL-USE)" : ""}`);
  if (!list.ok) return undefined;
  const { specialUse } = await import("imapflow/lib/special-use.js") as {
    specialUse: SpecialUseOf;
  };
  const candidates: string[] = [];
  const named: string[] = [];
  for (const line of list.untagged) {
    if (!/^\* LIST /i.test(line)) continue;
    const m = LIST_LINE.exec(line);
    if (!m) return undefined;
    let path = m[3] !== undefined ? unquote(`"${m[3]}"`) : m[4]!;
    // modified UTF-7 (or UTF-8) names: imapflow decodes them first; the probe does not
    if (!QUOTABLE.test(path) || path.includes("&")) return undefined;
    const delimiter = m[2] === "NIL" ? "" : unquote(m[2]!);
    if (delimiter && path.startsWith(delimiter)) path = path.slice(delimiter.length);
    const name = delimiter ? path.slice(path.lastIndexOf(delimiter) + delimiter.length) : path;
    const flags = new Set(m[1]!.split(/\s+/).filter(Boolean));
    const use = specialUse(marks, { flags, name });
    const nonexistent = [...flags].some((f) => f.toLowerCase() === "\\nonexistent");
    if (use.flag === "\\Junk" && (use.source === "extension" || !nonexistent)) {
      candidates.push(path);
    }
    if (/^(junk|spam)$/i.test(name)) named.push(path);
  }
  if (candidates.length === 1) return candidates[0]!;
  if (candidates.length > 1) return undefined;
  if (named.length === 0) return null;
  return named.length === 1 ? named[0]! : undefined;
}

let tagCounter = 0;

/** Sends one command and reads up to its tagged answer. */
async function command(
  conn: Deno.Conn,
  reader: LineReader,
  text: string,
): Promise<{ ok: boolean; status: string; untagged: string[] }> {
  const tag = `p${++tagCounter}`;
  await writeAll(conn, encoder.encode(`${tag} ${text}\r\n`));
  const untagged: string[] = [];
  for (;;) {
    const line = await reader.line();
    // A literal would need reading by length; the probe does not expect one and gives up.
    if (/\{\d+\+?\}$/.test(line)) throw new Error("literal in a response");
    if (line.startsWith(`${tag} `)) {
      const status = line.slice(tag.length + 1);
      return { ok: status.toUpperCase().startsWith("OK"), status, untagged };
    }
    if (untagged.length >= IMAP_PROBE_MAX_RESPONSES) throw new Error("too many responses");
    untagged.push(line);
  }
}
