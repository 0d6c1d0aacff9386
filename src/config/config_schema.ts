/**
 * The shape of a validated configuration (docs/config.md): what `configFromObject`
 * (config_validate.ts) returns and the CLI wires up. Types only.
 *
 * @module
 */
import type { MailServerOptions } from "../mail/types.ts";
import type { TransportKind } from "../message/types.ts";
import type { PortMappingProtocol } from "../terminal/port_mapping/types.ts";
import type { SecretRef } from "./secret.ts";

/** A mail server connection. */
export type ServerConfig =
  & Omit<MailServerOptions, "password" | "insecure" | "connectTimeoutMs">
  & {
    /** Where the password comes from (`password_env`, `password_file`, `password_command`). */
    password?: SecretRef;
    /** Accept any certificate. Only for tests; says so in every log line. */
    insecure: boolean;
    /** `connect_timeout`: connect, TLS handshake and greeting together, in ms. */
    connectTimeoutMs: number;
    /** `token_command`: OAuth2 instead of a password; prints an access token (IMAP, SMTP). */
    tokenCommand?: string[];
    /** The section these settings came from, e.g. `terminal.receive`, for error messages. */
    section: string;
  };

/** A TURN server for the relay fallback (RFC 8656, long-term credentials, UDP). */
export interface TurnServerConfig {
  /** As written: `turn:host[:port]`. */
  url: string;
  host: string;
  port: number;
  user: string;
  /** Where the password comes from (`password_env` or `password_file`). */
  password: SecretRef;
  /** The realm the server must name; default: whatever it names. */
  realm?: string;
}

/** How a role reads its mailbox. */
export type ReceiveConfig =
  | { kind: "local"; maildir: string }
  | (
    & {
      kind: "imap";
      mailbox: string;
      quarantine: string;
      idle: boolean;
      /**
       * `junk`: also read the Junk folder: `auto` (the one the server marks `\Junk`), `off`,
       * or a folder's name (docs/config.md "Junk folders").
       */
      junk: string;
    }
    & ServerConfig
  )
  | ({ kind: "pop3" } & ServerConfig);

/** How a role sends mail; a host's accounts may carry caps (docs/providers.md "Sending limits"). */
export type SendConfig =
  & ({ kind: "local"; postOffice: string } | ({ kind: "smtp" } & ServerConfig))
  & {
    /** `max_per_hour`: mails this account may send per rolling hour (host only). */
    maxPerHour?: number;
    /** `max_per_day`: mails this account may send per rolling 24 hours (host only). */
    maxPerDay?: number;
  };

/** The host role. */
export interface HostConfig {
  email: string;
  keys: string;
  table: string;
  peersPerReply: number;
  tableCapacity: number;
  expiryMs: number;
  pollIntervalMs: number;
  maxMailBytes: number;
  maxBlockBytes: number;
  requestsPerUserPerHour: number;
  requestsPerSenderPerHour: number;
  /** Requests the host answers per hour over all users and senders. */
  requestsPerHour: number;
  /** New user ids (rows) the network may gain per hour. */
  newRowsPerHour: number;
  allowPrivateAddresses: boolean;
  /** authserv-id whose SPF/DKIM verdict must pass (RFC 8601); unset: not required. */
  requireVerifiedSender?: string;
  /** Where the control table lives: the JSON file `table`, or a shared Redis. */
  store: { kind: "file" } | { kind: "redis"; url: string; key: string };
  /** Several host processes read this mailbox (claim each mail first). */
  sharedMailbox: boolean;
  /**
   * Where processes sharing the mailbox keep their claims: `store` (the Redis store, when the
   * table is there; else the mailbox) or `mailbox` (IMAP keywords and a processing folder).
   */
  claims: "store" | "mailbox";
  /** Representative mode: forward every request round-robin to these worker addresses. */
  forwardTo: string[];
  /** Host cards of the pool this host syncs its table with (trusted). */
  pool: string[];
  /** Answer (and trust) table requests of hosts not in the pool. */
  acceptUnknownHosts: boolean;
  /** How often a long-running host pushes its table to the pool. */
  syncIntervalMs: number;
  /** Host cards of linked hosts: tables travel along links, hop by hop (not a full pool). */
  links: string[];
  /** Most hops a synced row travels from its first host; rows that came further are refused. */
  maxHops: number;
  /** Forwarding mails per sync partner per hour, beyond the periodic push; 0: none. */
  forwardsPerHour: number;
  /** File of the hosts this host knows (the pool and hosts learned from requests). */
  hostsFile: string;
  /**
   * `"auto"`: this is a member of a group with no standing host: the mailbox is the group's
   * shared one and `keys` its network host key; the first member to claim a request takes the
   * host role (docs/decisions.md "First receiver becomes host"). `"off"`: an ordinary host.
   */
  role: "off" | "auto";
  /** How long a member's host role lasts unless renewed (role "auto"). */
  roleLeaseMs: number;
  receive: ReceiveConfig;
  send: SendConfig;
  /** `[[host.send_also]]`: further accounts, used in order when those before are at their cap. */
  sendAlso: SendConfig[];
}

/**
 * Whether and how a terminal asks its router for a port mapping (docs/port-mapping.md): `off`
 * (the default: opening a port on the user's router is opt-in), or the protocols to try, with the
 * gateway and UPnP URL when configured (else found: the default route's gateway, SSDP).
 */
export type PortMappingConfig = "off" | {
  /** The router's IPv4 address for PCP and NAT-PMP (and SSDP); unset: the default gateway. */
  gateway?: string;
  /** The router's UPnP description URL; unset: asked for by SSDP at the gateway. */
  upnpUrl?: string;
  /** Protocols to try, in order. */
  protocols: PortMappingProtocol[];
};

/** The terminal role. */
export interface TerminalConfig {
  userId: string;
  email: string;
  identity: string;
  hosts: string[];
  /** `auto` or an IP literal to advertise. */
  address: string;
  /** Address to listen on for peers (default: all interfaces of the advertised family). */
  listen?: string;
  port: number;
  transport: TransportKind;
  replyTimeoutMs: number;
  connectTimeoutMs: number;
  standbyTimeoutMs: number;
  pollIntervalMs: number;
  allow: string[];
  deny: string[];
  /** STUN servers (`host:port`) asked for the reflexive address when no global one is found. */
  stunServers: string[];
  /** TURN servers for the relay fallback (UDP: a `relay` candidate, docs/relay.md). */
  turnServers: TurnServerConfig[];
  /** Router port mapping for a `mapped` candidate; `off` by default. */
  portMapping: PortMappingConfig;
  /** How long to punch towards one peer after the reply, ms (covers the introduction's trip). */
  punchWindowMs: number;
  /** How often a relayed session looks for a direct path again, ms (docs/nat.md). */
  upgradeIntervalMs: number;
  receive: ReceiveConfig;
  send: SendConfig;
}

/** A whole configuration file. */
export interface Config {
  /** The file it was read from, if any. */
  path?: string;
  /**
   * Settings that work but weaken security (e.g. a password over `tls = "none"`), one line each
   * starting with the section; the CLI reports each as a `warning` event.
   */
  warnings?: string[];
  network: string;
  subjectMatch: "exact" | "prefix";
  postOffice?: string;
  host?: HostConfig;
  terminal?: TerminalConfig;
}
