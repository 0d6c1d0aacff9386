/**
 * The network checks of one mail server for `mailpeer doctor`: the name resolves (DNS), the
 * port accepts a connection (TCP), and TLS: the handshake (after STARTTLS when configured), the
 * certificate's chain against `ca_file` or the system roots, its name, its expiry, and the
 * protocol version. It uses node:tls with certificate checks deferred, so that an untrusted or
 * expired certificate is named as such instead of a failed handshake.
 *
 * @module
 */
import { lookup } from "node:dns/promises";
import net from "node:net";
import tls from "node:tls";
import type { ServerConfig } from "../../config/config_schema.ts";
import {
  connectError,
  type ConnectTarget,
  implicitPortError,
  isPlainTextAnswer,
  type MailProtocol,
  plainPortError,
  silentServerError,
  USUAL_PORTS,
} from "../../mail/connect_failure.ts";
import { speaksImplicitTls } from "../../mail/tls_port_probe.ts";
import { TLS_PORT_PROBE_AFTER_MS } from "../../mail/tuning.ts";
import { MailError } from "../../errors.ts";
import { type CheckReport, resultOf } from "./check.ts";

/** Fewer days than this before the certificate expires is a warning. */
export const CERT_EXPIRY_WARN_DAYS = 14;

/** What the TLS check learnt, for the checks after it. */
export interface ConnectionOutcome {
  /** True when DNS, TCP and TLS passed (or warned): logging in is worth trying. */
  usable: boolean;
}

/** Options of {@link checkConnection}. */
export interface ConnectionCheckOptions {
  /** The local clock (ms since the epoch), for the certificate's dates. */
  now: () => number;
  report: CheckReport;
}

/** A connected socket and the lines it has received. */
class LineSocket {
  #buffer = "";
  #waiter: (() => void) | undefined;
  #ended: Error | undefined;
  constructor(readonly socket: net.Socket) {
    socket.setEncoding("latin1");
    socket.on("data", (chunk: string) => {
      this.#buffer += chunk;
      this.#waiter?.();
    });
    const end = (err?: Error) => {
      this.#ended ??= err ?? new Error("the server closed the connection");
      this.#waiter?.();
    };
    socket.on("error", end);
    socket.on("close", () => end());
  }

  /** The next line, without its CRLF. */
  async line(): Promise<string> {
    for (;;) {
      const nl = this.#buffer.indexOf("\n");
      if (nl >= 0) {
        const line = this.#buffer.slice(0, nl).replace(/\r$/, "");
        this.#buffer = this.#buffer.slice(nl + 1);
        return line;
      }
      if (this.#ended) throw this.#ended;
      if (this.#buffer.length > 65_536) throw new Error("line too long");
      await new Promise<void>((resolve) => (this.#waiter = resolve));
      this.#waiter = undefined;
    }
  }

  /** Lines up to the one `last` accepts; that one. */
  async until(last: (line: string) => boolean): Promise<string> {
    for (;;) {
      const line = await this.line();
      if (last(line)) return line;
    }
  }

  write(text: string): void {
    this.socket.write(text + "\r\n");
  }

  /** Stops reading, so that TLS can take the socket over. */
  detach(): void {
    this.socket.removeAllListeners("data");
    this.socket.removeAllListeners("close");
    this.socket.removeAllListeners("error");
    this.socket.setEncoding(undefined as unknown as BufferEncoding);
  }
}

function isIp(host: string): boolean {
  return net.isIP(host.replace(/^\[|\]$/g, "")) !== 0;
}

/** Reads the greeting and asks for STARTTLS in `protocol`'s words; throws when refused. */
async function startTls(
  lines: LineSocket,
  protocol: MailProtocol,
  first: string,
): Promise<void> {
  switch (protocol) {
    case "IMAP": {
      const greeting = first;
      if (!greeting.startsWith("* OK")) throw new Error(`greeting ${greeting}`);
      lines.write("d1 STARTTLS");
      const answer = await lines.until((l) => l.startsWith("d1 "));
      if (!/^d1 OK/i.test(answer)) throw new Error(`STARTTLS refused: ${answer}`);
      return;
    }
    case "POP3": {
      const greeting = first;
      if (!greeting.startsWith("+OK")) throw new Error(`greeting ${greeting}`);
      lines.write("STLS");
      const answer = await lines.line();
      if (!answer.startsWith("+OK")) throw new Error(`STLS refused: ${answer}`);
      return;
    }
    case "SMTP": {
      const greeting = /^\d{3} /.test(first) ? first : await lines.until((l) => /^\d{3} /.test(l));
      if (!greeting.startsWith("220")) throw new Error(`greeting ${greeting}`);
      lines.write("EHLO mailpeer-doctor");
      await lines.until((l) => /^\d{3} /.test(l));
      lines.write("STARTTLS");
      const answer = await lines.until((l) => /^\d{3} /.test(l));
      if (!answer.startsWith("220")) throw new Error(`STARTTLS refused: ${answer}`);
      return;
    }
  }
}

/** "CN=mail.example.org" of a certificate's subject or issuer. */
function nameOf(part: unknown): string {
  const p = (part ?? {}) as Record<string, unknown>;
  return typeof p.CN === "string" ? `CN=${p.CN}` : typeof p.O === "string" ? `O=${p.O}` : "?";
}

/** Why node:tls did not trust a chain, in words. */
const TRUST_CODES: Record<string, string> = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "no trusted CA signed it",
  UNABLE_TO_GET_ISSUER_CERT: "its issuer is unknown",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "its issuer is not a trusted CA",
  SELF_SIGNED_CERT_IN_CHAIN: "its chain ends in an untrusted self-signed CA",
  DEPTH_ZERO_SELF_SIGNED_CERT: "it is self-signed",
  CERT_SIGNATURE_FAILURE: "its signature does not verify",
  CERT_UNTRUSTED: "it is not trusted",
};

/**
 * Checks DNS, TCP and TLS of `server` (its configuration section), reporting one result each,
 * and says whether logging in is worth trying.
 */
export async function checkConnection(
  server: ServerConfig,
  protocol: MailProtocol,
  options: ConnectionCheckOptions,
): Promise<ConnectionOutcome> {
  const key = server.section;
  const where = `${server.host}:${server.port}`;
  const { report } = options;
  const target: ConnectTarget = { protocol, host: server.host, port: server.port, configKey: key };

  // DNS
  const dns = resultOf("dns", key);
  if (isIp(server.host)) {
    report(dns.pass(`${server.host} is an IP address: nothing to look up`));
  } else {
    try {
      const found = await lookup(server.host, { all: true });
      report(dns.pass(`${server.host} is ${found.map((a) => a.address).join(", ")}`));
    } catch (err) {
      report(dns.fail(connectError(err, target).message));
      return { usable: false };
    }
  }

  // TCP
  const tcp = resultOf("tcp", key);
  const started = performance.now();
  let socket: net.Socket;
  try {
    socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: server.host, port: server.port });
      const timer = setTimeout(() => {
        s.destroy();
        reject(Object.assign(new Error("timed out"), { code: "ETIMEDOUT" }));
      }, server.connectTimeoutMs);
      s.once("connect", () => {
        clearTimeout(timer);
        s.removeAllListeners("error");
        resolve(s);
      });
      s.once("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  } catch (err) {
    report(tcp.fail(connectError(err, target, { timeoutMs: server.connectTimeoutMs }).message));
    return { usable: false };
  }
  const tcpMs = Math.round(performance.now() - started);
  report(tcp.pass(`${where} accepts connections (${tcpMs} ms)`, { ms: tcpMs }));

  const check = resultOf("tls", key);
  if (server.tls === "none") {
    socket.destroy();
    report(check.warn(
      `${protocol} ${where} is used without TLS: the password and the mail travel in clear; ` +
        `set ${key}.tls = "starttls" (port ${USUAL_PORTS[protocol].starttls}) or "implicit" ` +
        `(port ${USUAL_PORTS[protocol].implicit})`,
    ));
    return { usable: true };
  }
  try {
    return await checkTls(socket, server, protocol, options);
  } finally {
    socket.destroy();
  }
}

async function checkTls(
  socket: net.Socket,
  server: ServerConfig,
  protocol: MailProtocol,
  options: ConnectionCheckOptions,
): Promise<ConnectionOutcome> {
  const key = server.section;
  const where = `${server.host}:${server.port}`;
  const check = resultOf("tls", key);
  const { report } = options;
  const target: ConnectTarget = { protocol, host: server.host, port: server.port, configKey: key };
  const timeoutMs = server.connectTimeoutMs;
  let ca: string[] | undefined;
  if (server.caFile !== undefined) {
    try {
      ca = [await Deno.readTextFile(server.caFile)];
    } catch (err) {
      report(check.fail(
        `Cannot read the CA file ${server.caFile}: ${(err as Error).message}; check ` +
          `${key}.ca_file`,
      ));
      return { usable: false };
    }
  }
  const name = server.servername ?? server.host;
  let secure: tls.TLSSocket;
  let greeted = false;
  // A STARTTLS port that keeps quiet may expect TLS first (465, 993, 995): asked on a
  // connection of its own after a moment, as the mail clients do (tls_port_probe.ts).
  const probing = new AbortController();
  const implicitPort = server.tls !== "starttls" ? undefined : new Promise<never>((_, reject) => {
    const timer = setTimeout(async () => {
      if (greeted) return;
      const tls = await speaksImplicitTls(server.host, server.port, {
        ...(server.servername ? { servername: server.servername } : {}),
        timeoutMs: Math.max(1, timeoutMs - TLS_PORT_PROBE_AFTER_MS),
        signal: probing.signal,
      });
      if (tls && !greeted) reject(implicitPortError(target, server.tls));
    }, TLS_PORT_PROBE_AFTER_MS);
    probing.signal.addEventListener("abort", () => clearTimeout(timer));
  });
  implicitPort?.catch(() => {});
  try {
    secure = await withTimeout(timeoutMs, socket, async () => {
      if (server.tls === "starttls") {
        const lines = new LineSocket(socket);
        await Promise.race([
          lines.line().then((first) => {
            greeted = true;
            return startTls(lines, protocol, first);
          }),
          ...(implicitPort ? [implicitPort] : []),
        ]);
        lines.detach();
      }
      return await new Promise<tls.TLSSocket>((resolve, reject) => {
        const s = tls.connect({
          socket,
          ...(isIp(name) ? {} : { servername: name }),
          ...(ca ? { ca } : {}),
          rejectUnauthorized: false,
          ...(server.tlsMaxVersion ? { maxVersion: `TLSv${server.tlsMaxVersion}` as const } : {}),
        }, () => resolve(s));
        s.once("error", reject);
      });
    });
  } catch (err) {
    if (err instanceof MailError) {
      report(check.fail(err.message));
    } else if (err instanceof TimedOut) {
      report(check.fail(silentServerError(target, timeoutMs).message));
    } else if (server.tls === "implicit" && isPlainTextAnswer(err)) {
      report(check.fail(plainPortError(target, err).message));
    } else {
      report(check.fail(
        `Cannot start TLS with ${protocol} server ${where}: ${(err as Error).message}; check ` +
          `${key}.tls and ${key}.port (${USUAL_PORTS[protocol].starttls} for STARTTLS, ` +
          `${USUAL_PORTS[protocol].implicit} for implicit TLS)`,
      ));
    }
    return { usable: false };
  } finally {
    probing.abort();
  }
  try {
    const cert = secure.getPeerCertificate();
    const version = secure.getProtocol() ?? "unknown";
    const validTo = Date.parse(cert.valid_to);
    const validFrom = Date.parse(cert.valid_from);
    const now = options.now();
    const days = Math.floor((validTo - now) / 86_400_000);
    const details = {
      version,
      subject: nameOf(cert.subject),
      issuer: nameOf(cert.issuer),
      validTo: new Date(validTo).toISOString(),
      daysLeft: days,
    };
    const who = `the certificate of ${where} (${details.subject}, issued by ${details.issuer})`;
    const renew = "renew it on the server (or ask the mail provider to)";
    if (validTo < now) {
      report(check.fail(
        `${who} expired on ${details.validTo.slice(0, 10)} (${-days} days ago): clients ` +
          `refuse it; ${renew}`,
        details,
      ));
      return { usable: false };
    }
    if (validFrom > now) {
      report(check.fail(
        `${who} is valid only from ${new Date(validFrom).toISOString()}: this machine's clock ` +
          "may be behind, or the certificate was dated wrongly; check the clock (NTP), else " +
          renew,
        details,
      ));
      return { usable: false };
    }
    const code = String(secure.authorizationError ?? "");
    // A name mismatch is reported once the chain verified (the name is checked below, against
    // servername or the IP address, which node:tls under Deno does not take as the name).
    const nameOnly = code === "ERR_TLS_CERT_ALTNAME_INVALID";
    if (!secure.authorized && code !== "" && !nameOnly && !server.insecure) {
      const why = TRUST_CODES[code] ?? code;
      const fix = server.caFile
        ? `it is not signed by the CA in ${server.caFile}; set ${key}.ca_file to the PEM of the ` +
          "CA that signed it"
        : `set ${key}.ca_file to the PEM of the CA that signed it (a private CA), or install ` +
          "a certificate from a public CA on the server";
      report(check.fail(`${who} is not trusted (${why}): ${fix}`, { ...details, code }));
      return { usable: false };
    }
    const mismatch = tls.checkServerIdentity(name, cert);
    if (mismatch && !server.insecure) {
      report(check.fail(
        `${who} is not valid for the name ${name} (${mismatch.message.split(":")[0]}); set ` +
          `${key}.servername to a name it lists (${cert.subjectaltname ?? "none"})`,
        details,
      ));
      return { usable: false };
    }
    if (server.insecure) {
      report(check.warn(
        `${protocol} ${where}: ${version}, but certificate checks are off (insecure = true), so ` +
          `anyone on the path can read the password; remove ${key}.insecure and set ` +
          `${key}.ca_file if the CA is private`,
        details,
      ));
      return { usable: true };
    }
    if (version === "TLSv1" || version === "TLSv1.1") {
      report(check.warn(
        `${protocol} ${where} speaks only ${version}, which is obsolete; ask the provider to ` +
          "enable TLS 1.2 or 1.3",
        details,
      ));
      return { usable: true };
    }
    if (days < CERT_EXPIRY_WARN_DAYS) {
      report(check.warn(
        `${who} expires in ${days} days (${details.validTo.slice(0, 10)}); ${renew} soon`,
        details,
      ));
      return { usable: true };
    }
    report(check.pass(
      `${version}, certificate ${details.subject} by ${details.issuer} trusted, valid for ` +
        `${days} more days`,
      details,
    ));
    return { usable: true };
  } finally {
    secure.destroy();
  }
}

class TimedOut extends Error {}

/** Runs `work`, destroying `socket` and throwing {@link TimedOut} after `ms`. */
async function withTimeout<T>(ms: number, socket: net.Socket, work: () => Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new TimedOut("timed out"));
      socket.destroy();
    }, ms);
  });
  try {
    return await Promise.race([work(), late]);
  } finally {
    clearTimeout(timer);
  }
}
