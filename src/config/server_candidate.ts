/**
 * A mail server that discovery found for an address (docs/discovery.md): protocol, host name,
 * port, TLS mode and the login name, with where it came from. Everything here was read from
 * the outside world (an autoconfig document, DNS), so {@link serverCandidate} checks it before
 * anything connects to it: a host name must be a plain DNS name or IP literal, a port 1 to 65535.
 *
 * @module
 */
import { isIP } from "node:net";

/** The kinds of mail server `mailpeer init` looks for. */
export type ServerProtocol = "imap" | "pop3" | "smtp";

/** Where a candidate came from, in the order discovery asks (docs/discovery.md). */
export type DiscoverySource =
  | "autoconfig"
  | "well-known"
  | "ispdb"
  | "srv"
  | "mx"
  | "guess";

/** Every discovery source, in the order they are asked. */
export const DISCOVERY_SOURCES: readonly DiscoverySource[] = [
  "autoconfig",
  "well-known",
  "ispdb",
  "srv",
  "mx",
  "guess",
];

/** One server to try. */
export interface ServerCandidate {
  protocol: ServerProtocol;
  /** A DNS name (lower case, no trailing dot) or an IP literal. */
  hostname: string;
  port: number;
  tls: "implicit" | "starttls";
  /** The login name, when the source said (autoconfig); otherwise the e-mail address. */
  username?: string;
  source: DiscoverySource;
}

/** A DNS name: labels of letters, digits and hyphens, 1 to 63 each, 253 in all. */
const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/**
 * Why `name` cannot be a mail server's host name, or undefined when it can: a DNS name of
 * letters, digits, hyphens and dots (an underscore, a space, a slash, a control character or
 * an empty label is refused), or an IPv4 or IPv6 literal.
 *
 * @example
 * ```ts
 * hostnameProblem("imap.example.org"); // undefined
 * hostnameProblem("evil.test/../x");   // "it is not a DNS name or an IP address"
 * ```
 */
export function hostnameProblem(name: string): string | undefined {
  if (name.length === 0) return "it is empty";
  if (name.length > 253) return "it is longer than 253 characters";
  if (isIP(name) !== 0) return undefined;
  const labels = name.split(".");
  if (labels.length < 2 || !labels.every((l) => LABEL.test(l))) {
    return "it is not a DNS name or an IP address";
  }
  if (/^[0-9]+$/.test(labels[labels.length - 1]!)) return "its last label is all digits";
  return undefined;
}

/** A host name as found (trimmed, lower case, no trailing dot), or undefined when unusable. */
export function normalHostname(raw: string): string | undefined {
  const name = raw.trim().toLowerCase().replace(/\.$/, "");
  return hostnameProblem(name) === undefined ? name : undefined;
}

/** True for a TCP port, 1 to 65535. */
export function isPort(port: number): boolean {
  return Number.isInteger(port) && port >= 1 && port <= 65_535;
}

/**
 * A checked candidate, or a string saying why the found values cannot be one (for the
 * discovery's notes).
 */
export function serverCandidate(found: ServerCandidate): ServerCandidate | string {
  const hostname = normalHostname(found.hostname);
  if (hostname === undefined) {
    return `${found.source}: ${JSON.stringify(found.hostname.slice(0, 80))} is no host name (${
      hostnameProblem(found.hostname.trim().toLowerCase().replace(/\.$/, ""))
    })`;
  }
  if (!isPort(found.port)) {
    return `${found.source}: port ${found.port} of ${hostname} is not 1 to 65535`;
  }
  return { ...found, hostname };
}

/** `imap mail.example.org:993 (implicit TLS)`. */
export function describeCandidate(c: ServerCandidate): string {
  return `${c.protocol.toUpperCase()} ${c.hostname}:${c.port} (${
    c.tls === "implicit" ? "implicit TLS" : "STARTTLS"
  }, from ${c.source})`;
}
