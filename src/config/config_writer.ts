/**
 * Writes a configuration (`mailpeer.toml`, docs/config.md) for the servers discovery found:
 * what `mailpeer init` saves. The password is never in it: each server section names the
 * environment variable or the file that holds it. Every string is written as a TOML basic
 * string (JSON's escapes are TOML's), so nothing a server name or login carries can add a key.
 *
 * @module
 */
import type { FoundServer } from "./discovery.ts";

/** The roles a written configuration serves. */
export type WrittenRole = "host" | "terminal" | "both";

/** What {@link renderConfig} writes. */
export interface WrittenConfig {
  role: WrittenRole;
  email: string;
  network: string;
  incoming: FoundServer;
  outgoing: FoundServer;
  /** Where the password is: an environment variable, or a file (relative to the configuration). */
  password: { env: string } | { file: string };
  /** CA file for the mail servers (absolute), when not the system roots. */
  caFile?: string;
  /** Host: the key file (relative to the configuration). */
  hostKeys?: string;
  /** Terminal: user id, identity file (relative) and host cards. */
  terminal?: { userId: string; identity: string; hosts: string[] };
}

/** A TOML basic string. */
function str(text: string): string {
  return JSON.stringify(text);
}

function serverSection(server: FoundServer, c: WrittenConfig): string[] {
  const lines = [
    `kind = ${str(server.protocol)}`,
    `host = ${str(server.address ?? server.hostname)}`,
    `port = ${server.port}`,
    `tls = ${str(server.tls)}`,
    `user = ${str(server.username ?? c.email)}`,
    "env" in c.password
      ? `password_env = ${str(c.password.env)}`
      : `password_file = ${str(c.password.file)}`,
  ];
  if (c.caFile !== undefined) lines.push(`ca_file = ${str(c.caFile)}`);
  if (server.address !== undefined) lines.push(`servername = ${str(server.hostname)}`);
  return lines;
}

/**
 * The configuration's text.
 *
 * @example
 * ```ts
 * const text = renderConfig({
 *   role: "host",
 *   email: "host@example.org",
 *   network: "mailpeer",
 *   incoming: { protocol: "imap", hostname: "imap.example.org", port: 993, tls: "implicit", source: "autoconfig" },
 *   outgoing: { protocol: "smtp", hostname: "smtp.example.org", port: 587, tls: "starttls", source: "autoconfig" },
 *   password: { env: "MAILPEER_PASSWORD" },
 *   hostKeys: "host.keys.json",
 * });
 * ```
 */
export function renderConfig(c: WrittenConfig): string {
  const lines = [
    `# Written by mailpeer init for ${c.email} (role: ${c.role}); every key: docs/config.md`,
    `network = ${str(c.network)}`,
  ];
  if (c.role !== "terminal") {
    if (c.hostKeys === undefined) throw new TypeError("a host configuration needs hostKeys");
    lines.push(
      "",
      "[host]",
      `email = ${str(c.email)}`,
      `keys = ${str(c.hostKeys)}`,
      "",
      "[host.receive]",
      ...serverSection(c.incoming, c),
      "",
      "[host.send]",
      ...serverSection(c.outgoing, c),
    );
  }
  if (c.role !== "host") {
    const t = c.terminal;
    if (t === undefined) throw new TypeError("a terminal configuration needs terminal");
    lines.push(
      "",
      "[terminal]",
      `user_id = ${str(t.userId)}`,
      `email = ${str(c.email)}`,
      `identity = ${str(t.identity)}`,
      `hosts = [${t.hosts.map(str).join(", ")}]`,
      'address = "auto"',
      "",
      "[terminal.receive]",
      ...serverSection(c.incoming, c),
      "",
      "[terminal.send]",
      ...serverSection(c.outgoing, c),
    );
  }
  return lines.join("\n") + "\n";
}
