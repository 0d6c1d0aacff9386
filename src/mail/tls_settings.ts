/**
 * How a mail server's TLS settings (docs/config.md: `tls`, `ca_file`, `servername`, `insecure`,
 * `tls_max_version`) become the options of the libraries that connect: node:tls, nodemailer
 * (SMTP) and imapflow (IMAP). One place, so that `mailpeer doctor` connects exactly as the sender
 * and the receivers do (its login checks once left out `tls_max_version`).
 *
 * @module
 */
import type { MailServerOptions } from "./types.ts";

/** The node:tls options of a connection to `server` (nodemailer's and imapflow's `tls`). */
export interface NodeTlsSettings {
  /** The PEM of `ca_file`, when there is one: it replaces the system roots. */
  ca?: string[];
  servername?: string;
  maxVersion?: "TLSv1.2" | "TLSv1.3";
  rejectUnauthorized: boolean;
}

/** The node:tls options for `server`, given its `ca_file`'s text (read by the caller). */
export function nodeTlsSettings(
  server: Pick<MailServerOptions, "servername" | "tlsMaxVersion" | "insecure">,
  ca?: string,
): NodeTlsSettings {
  return {
    ...(ca !== undefined ? { ca: [ca] } : {}),
    ...(server.servername ? { servername: server.servername } : {}),
    ...(server.tlsMaxVersion ? { maxVersion: `TLSv${server.tlsMaxVersion}` as const } : {}),
    rejectUnauthorized: !server.insecure,
  };
}

/** nodemailer's three switches for `tls`: implicit TLS, STARTTLS required, or never TLS. */
export function nodemailerTlsMode(tls: MailServerOptions["tls"]): {
  secure: boolean;
  requireTLS: boolean;
  ignoreTLS: boolean;
} {
  return { secure: tls === "implicit", requireTLS: tls === "starttls", ignoreTLS: tls === "none" };
}

/**
 * imapflow's two switches for `tls`: `doSTARTTLS` true requires the upgrade, false never asks
 * for it, and is left unset on implicit TLS (imapflow's own default there).
 */
export function imapflowTlsMode(tls: MailServerOptions["tls"]): {
  secure: boolean;
  doSTARTTLS: boolean | undefined;
} {
  return {
    secure: tls === "implicit",
    doSTARTTLS: tls === "implicit" ? undefined : tls === "starttls",
  };
}
