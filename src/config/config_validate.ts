/**
 * Validation of a parsed configuration document: every key of docs/config.md is read with its
 * type, range and default, relative paths are resolved, and the first problem is a
 * `ConfigError` `ECONFIG` naming the key ({@link configFromObject}).
 *
 * @module
 */
import { isAbsolute, resolve } from "node:path";
import { ConfigError } from "../errors.ts";
import {
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_EXPIRY_MS,
  DEFAULT_FORWARDS_PER_HOUR,
  DEFAULT_MAIL_CONNECT_TIMEOUT_MS,
  DEFAULT_MAX_HOPS,
  DEFAULT_NEW_ROWS_PER_HOUR,
  DEFAULT_PEERS_PER_REPLY,
  DEFAULT_POLL_INTERVAL_MS,
  DEFAULT_REPLY_TIMEOUT_MS,
  DEFAULT_REQUESTS_PER_HOUR,
  DEFAULT_REQUESTS_PER_SENDER_PER_HOUR,
  DEFAULT_REQUESTS_PER_USER_PER_HOUR,
  DEFAULT_ROLE_LEASE_MS,
  DEFAULT_STANDBY_TIMEOUT_MS,
  DEFAULT_SYNC_INTERVAL_MS,
  DEFAULT_TABLE_CAPACITY,
  DEFAULT_TERMINAL_POLL_INTERVAL_MS,
  DEFAULT_TERMINAL_PUNCH_WINDOW_MS,
  DEFAULT_UPGRADE_INTERVAL_MS,
  MAX_LINK_HOPS,
  MAX_LINKS,
  MAX_MAIL_BYTES,
  MAX_MAIL_CONNECT_TIMEOUT_MS,
  MAX_ROLE_LEASE_MS,
  MAX_UPGRADE_INTERVAL_MS,
  MIN_MAIL_CONNECT_TIMEOUT_MS,
  MIN_ROLE_LEASE_MS,
  MIN_TERMINAL_PUNCH_WINDOW_MS,
  MIN_UPGRADE_INTERVAL_MS,
  PUNCH_MAX_WINDOW_MS,
} from "../limits.ts";
import { MAX_BLOCK_BYTES } from "../protocol.ts";
import type {
  Config,
  HostConfig,
  PortMappingConfig,
  ReceiveConfig,
  SendConfig,
  ServerConfig,
  TerminalConfig,
  TurnServerConfig,
} from "./config_schema.ts";
import { MAX_SEND_CAP, MAX_TURN_SERVERS } from "../limits.ts";
import { parseTurnUrl } from "../peer/turn_client.ts";
import { isIPv4, userIdProblem } from "../message/field_rules.ts";
import { emailProblem } from "../message/host_card.ts";
import { classifyAddress } from "../net/address_class.ts";
import { parsePeerRef } from "../message/key_fingerprint.ts";
import type { PortMappingProtocol } from "../terminal/port_mapping/types.ts";
import { parseDuration } from "../duration.ts";
import { nearestKey } from "./nearest_key.ts";
import { secretRef } from "./secret.ts";

type Table = Record<string, unknown>;

/** Keys that belong to another kind or section, and what to say when one is found here. */
interface Elsewhere {
  keys: readonly string[];
  problem: string;
  fix: string;
}

class Reader {
  constructor(
    readonly base: string,
    readonly prefix: string,
    /** Problems that do not stop the configuration, shared by every sub-reader. */
    readonly warnings: string[] = [],
    /** The file being read, named in every problem when known. */
    readonly file?: string,
  ) {}

  warn(problem: string): void {
    this.warnings.push(`${this.prefix.replace(/\.$/, "")}: ${problem}`);
  }

  /** The key's path, and the file when known: `host.expiry in /etc/mailpeer.toml`. */
  where(key: string): string {
    // A key is the file's text: quoted (and cut short) unless it is a plain TOML bare key, so
    // that no key can break the one line or drive the terminal.
    const shown = /^[A-Za-z0-9_-]{1,64}(?:\[\d+\])?$/.test(key)
      ? key
      : JSON.stringify(key.length > 64 ? `${key.slice(0, 64)}…` : key);
    return `${this.prefix}${shown}${this.file === undefined ? "" : ` in ${this.file}`}`;
  }

  fail(key: string, problem: string, fix: string): never {
    throw new ConfigError("ECONFIG", `Cannot read ${this.where(key)}: ${problem}; ${fix}`);
  }

  /**
   * Refuses a key of `t` that is not in `keys`: a key that belongs elsewhere (another `kind`
   * of this section, the other role) is named as such, any other gets the nearest known key
   * ("did you mean …?").
   */
  known(t: Table, keys: readonly string[], elsewhere: readonly Elsewhere[] = []): void {
    for (const key of Object.keys(t)) {
      if (keys.includes(key)) continue;
      const there = elsewhere.find((e) => e.keys.includes(key));
      if (there) this.fail(key, there.problem, there.fix);
      const near = nearestKey(key, keys);
      if (near !== undefined) {
        this.fail(key, "it is not a known setting", `did you mean ${near}? (see docs/config.md)`);
      }
      // A typo of a key that belongs elsewhere: say both.
      for (const e of elsewhere) {
        const there = nearestKey(key, e.keys);
        if (there !== undefined) {
          this.fail(
            key,
            "it is not a known setting",
            `did you mean ${there}? ${there} ${e.problem.replace(/^it /, "")}; ${e.fix}`,
          );
        }
      }
      this.fail(
        key,
        "it is not a known setting",
        keys.length <= 4
          ? `use ${keys.join(", ")} (see docs/config.md)`
          : "remove it or check its spelling in docs/config.md",
      );
    }
  }

  string(t: Table, key: string, fallback?: string): string {
    const v = t[key];
    if (v === undefined && fallback !== undefined) return fallback;
    if (typeof v !== "string" || v.trim() === "") {
      this.fail(
        key,
        v === undefined ? "it is missing" : "it must be a non-empty string",
        "see docs/config.md",
      );
    }
    return v;
  }

  optionalString(t: Table, key: string): string | undefined {
    return t[key] === undefined ? undefined : this.string(t, key);
  }

  path(t: Table, key: string, fallback?: string): string {
    const p = this.string(t, key, fallback);
    return isAbsolute(p) ? p : resolve(this.base, p);
  }

  int(t: Table, key: string, fallback: number, min: number, max: number): number {
    const v = t[key] ?? fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      this.fail(
        key,
        `${JSON.stringify(v)} is not a whole number from ${min} to ${max}`,
        "fix the value",
      );
    }
    return v;
  }

  bool(t: Table, key: string, fallback: boolean): boolean {
    const v = t[key] ?? fallback;
    if (typeof v !== "boolean") {
      this.fail(key, `${JSON.stringify(v)} is not true or false`, "fix the value");
    }
    return v;
  }

  duration(t: Table, key: string, fallbackMs: number): number {
    return t[key] === undefined ? fallbackMs : parseDuration(t[key], this.where(key));
  }

  /** A duration from `minMs` to `maxMs`, e.g. a window that must cover a mail's trip. */
  durationWithin(t: Table, key: string, fallbackMs: number, minMs: number, maxMs: number): number {
    const ms = this.duration(t, key, fallbackMs);
    if (ms < minMs || ms > maxMs) {
      this.fail(
        key,
        `${JSON.stringify(t[key])} is not from ${minMs / 1000}s to ${maxMs / 1000}s`,
        "fix the value",
      );
    }
    return ms;
  }

  oneOf<T extends string>(t: Table, key: string, choices: readonly T[], fallback: T): T {
    const v = t[key] ?? fallback;
    if (typeof v !== "string" || !choices.includes(v as T)) {
      this.fail(
        key,
        `${JSON.stringify(v)} is not one of ${choices.join(", ")}`,
        "pick one of them",
      );
    }
    return v as T;
  }

  strings(t: Table, key: string): string[] {
    const v = t[key] ?? [];
    if (!Array.isArray(v) || v.some((s) => typeof s !== "string")) {
      this.fail(key, "it must be a list of strings", 'write e.g. ["a", "b"]');
    }
    return v as string[];
  }

  table(t: Table, key: string): Table {
    const v = t[key] ?? {};
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      this.fail(key, "it must be a table", `write it as a [${this.prefix}${key}] section`);
    }
    return v as Table;
  }

  /** An e-mail address (`local@domain`, one recipient). */
  email(t: Table, key: string): string {
    const address = this.string(t, key);
    const problem = emailProblem(address);
    if (problem !== undefined) {
      this.fail(key, `${JSON.stringify(address)} is not an e-mail address (${problem})`, "fix it");
    }
    return address;
  }

  sub(key: string): Reader {
    return new Reader(this.base, `${this.prefix}${key}.`, this.warnings, this.file);
  }
}

const DEFAULT_PORTS = {
  imap: { starttls: 143, implicit: 993, none: 143 },
  pop3: { starttls: 110, implicit: 995, none: 110 },
  smtp: { starttls: 587, implicit: 465, none: 25 },
} as const;

// The keys of each section (docs/config.md). "password" is known only to be refused with the
// way to do it (secretRef).
const SERVER_KEYS = [
  "kind",
  "host",
  "port",
  "tls",
  "user",
  "password",
  "password_env",
  "password_file",
  "ca_file",
  "servername",
  "insecure",
  "tls_max_version",
  "connect_timeout",
] as const;
const RECEIVE_KEYS = {
  local: ["kind", "maildir"],
  imap: [...SERVER_KEYS, "token_command", "mailbox", "quarantine", "idle", "junk"],
  pop3: SERVER_KEYS,
} as const;
const SEND_KEYS = {
  local: ["kind", "post_office"],
  smtp: [...SERVER_KEYS, "token_command"],
} as const;
const STORE_KEYS = { file: ["kind"], redis: ["kind", "url", "key"] } as const;
const HOST_KEYS = [
  "email",
  "keys",
  "table",
  "peers_per_reply",
  "table_capacity",
  "expiry",
  "poll_interval",
  "max_mail_bytes",
  "max_block_bytes",
  "requests_per_user_per_hour",
  "requests_per_sender_per_hour",
  "requests_per_hour",
  "new_rows_per_hour",
  "allow_private_addresses",
  "require_verified_sender",
  "store",
  "shared_mailbox",
  "claims",
  "forward_to",
  "pool",
  "accept_unknown_hosts",
  "sync_interval",
  "links",
  "max_hops",
  "forwards_per_hour",
  "hosts_file",
  "role",
  "role_lease",
  "receive",
  "send",
  "send_also",
] as const;
const CAP_KEYS = ["max_per_hour", "max_per_day"] as const;
/** Most sending accounts of one host: `[host.send]` and its `[[host.send_also]]`. */
const MAX_SEND_ACCOUNTS = 8;
const TERMINAL_KEYS = [
  "user_id",
  "email",
  "identity",
  "hosts",
  "address",
  "listen",
  "port",
  "transport",
  "reply_timeout",
  "connect_timeout",
  "standby_timeout",
  "poll_interval",
  "allow",
  "deny",
  "stun_servers",
  "turn_servers",
  "port_mapping",
  "punch_window",
  "upgrade_interval",
  "receive",
  "send",
] as const;
const TOP_KEYS = ["network", "subject_match", "post_office", "host", "terminal"] as const;

/** The keys of `kinds` other than `kind`, refused as not used with `kind`. */
function otherKinds(kinds: Record<string, readonly string[]>, kind: string): Elsewhere[] {
  return [{
    keys: Object.values(kinds).flat(),
    problem: `it is not used with kind = ${JSON.stringify(kind)}`,
    fix: "remove it, or set the kind that takes it (see docs/config.md)",
  }];
}

/**
 * Keys of the other role's section, refused as belonging there, and top-level keys written
 * below a section header (which TOML puts into that section).
 */
function otherRole(role: "host" | "terminal"): Elsewhere[] {
  return [{
    keys: role === "host" ? HOST_KEYS : TERMINAL_KEYS,
    problem: `it is a [${role}] setting`,
    fix: `move it to the [${role}] section`,
  }, {
    keys: ["network", "subject_match", "post_office"],
    problem: "it is a top-level setting, and TOML puts every line below a [section] header into it",
    fix: "move it above the first [section]",
  }];
}

function readServer(
  r: Reader,
  t: Table,
  kind: "imap" | "pop3" | "smtp",
  email: string,
): ServerConfig {
  const tls = r.oneOf(t, "tls", ["starttls", "implicit", "none"] as const, "starttls");
  const server: ServerConfig = {
    host: r.string(t, "host"),
    port: r.int(t, "port", DEFAULT_PORTS[kind][tls], 1, 65535),
    tls,
    user: r.string(t, "user", email),
    insecure: r.bool(t, "insecure", false),
    connectTimeoutMs: r.durationWithin(
      t,
      "connect_timeout",
      DEFAULT_MAIL_CONNECT_TIMEOUT_MS,
      MIN_MAIL_CONNECT_TIMEOUT_MS,
      MAX_MAIL_CONNECT_TIMEOUT_MS,
    ),
    section: r.prefix.replace(/\.$/, ""),
  };
  const password = secretRef(t, r.prefix, r.base);
  if (password) server.password = password;
  if (t["token_command"] !== undefined) {
    const command = t["token_command"];
    if (
      !Array.isArray(command) || command.length === 0 || command.length > 64 ||
      command.some((a) => typeof a !== "string" || a === "")
    ) {
      r.fail(
        "token_command",
        "it is not a command as a list",
        'write it as a list of the program and its arguments, e.g. ["oauth2-token", "--account", "me"]',
      );
    }
    if (password) {
      r.fail(
        "token_command",
        "it is set together with a password",
        "keep one: token_command for OAuth2, password_env or password_file for a password",
      );
    }
    server.tokenCommand = command as string[];
  }
  if (password && tls === "none") {
    r.warn(
      `tls = "none" sends the password of ${server.user} in clear text; ` +
        `use tls = "starttls" or "implicit" unless the server is on this machine`,
    );
  }
  const ca = r.optionalString(t, "ca_file");
  if (ca !== undefined) server.caFile = r.path(t, "ca_file");
  const servername = r.optionalString(t, "servername");
  if (servername !== undefined) server.servername = servername;
  if (t["tls_max_version"] !== undefined) {
    server.tlsMaxVersion = r.oneOf(t, "tls_max_version", ["1.2", "1.3"] as const, "1.3");
  }
  return server;
}

function readReceive(
  r: Reader,
  t: Table,
  email: string,
  postOffice: string | undefined,
  idleDefault = true,
): ReceiveConfig {
  const kind = r.oneOf(t, "kind", ["local", "imap", "pop3"] as const, "local");
  r.known(t, RECEIVE_KEYS[kind], otherKinds(RECEIVE_KEYS, kind));
  if (kind === "local") {
    if (t["maildir"] === undefined && postOffice === undefined) {
      r.fail("maildir", "it is missing and no top-level post_office is set", "set one of them");
    }
    const maildir = t["maildir"] === undefined
      ? resolve(postOffice!, email.toLowerCase())
      : r.path(t, "maildir");
    return { kind, maildir };
  }
  const server = readServer(r, t, kind, email);
  if (kind === "pop3") return { kind, ...server };
  return {
    kind,
    ...server,
    mailbox: r.string(t, "mailbox", "INBOX"),
    quarantine: r.string(t, "quarantine", "Quarantine"),
    idle: r.bool(t, "idle", idleDefault),
    junk: r.string(t, "junk", "auto"),
  };
}

function readSend(
  r: Reader,
  t: Table,
  email: string,
  postOffice: string | undefined,
  caps = false,
): SendConfig {
  const kind = r.oneOf(t, "kind", ["local", "smtp"] as const, "local");
  r.known(t, [...SEND_KEYS[kind], ...(caps ? CAP_KEYS : [])], [
    ...otherKinds(SEND_KEYS, kind),
    {
      keys: CAP_KEYS,
      problem: "only a host's sending accounts take caps",
      fix: "remove it (a terminal sends a few mails per connection)",
    },
  ]);
  const capped = {
    ...(t["max_per_hour"] !== undefined
      ? { maxPerHour: r.int(t, "max_per_hour", 0, 1, MAX_SEND_CAP) }
      : {}),
    ...(t["max_per_day"] !== undefined
      ? { maxPerDay: r.int(t, "max_per_day", 0, 1, MAX_SEND_CAP) }
      : {}),
  };
  if (kind === "local") {
    const po = t["post_office"] === undefined ? postOffice : r.path(t, "post_office");
    if (po === undefined) {
      r.fail("post_office", "it is missing and no top-level post_office is set", "set one of them");
    }
    return { kind, postOffice: po, ...capped };
  }
  return { kind, ...readServer(r, t, "smtp", email), ...capped };
}

/** `[[host.send_also]]`: more sending accounts, each a `[host.send]` of its own. */
function readSendAlso(
  r: Reader,
  t: Table,
  email: string,
  postOffice: string | undefined,
): SendConfig[] {
  const list = t["send_also"];
  if (list === undefined) return [];
  if (
    !Array.isArray(list) ||
    list.some((e) => typeof e !== "object" || e === null || Array.isArray(e))
  ) {
    r.fail("send_also", "it is not a list of tables", "write [[host.send_also]] sections");
  }
  if (list.length > MAX_SEND_ACCOUNTS - 1) {
    r.fail(
      "send_also",
      `${list.length} accounts are listed`,
      `list at most ${MAX_SEND_ACCOUNTS - 1}`,
    );
  }
  return list.map((entry: Table, i: number) =>
    readSend(r.sub(`send_also[${i}]`), entry, email, postOffice, true)
  );
}

function readStore(r: Reader, t: Table): HostConfig["store"] {
  const kind = r.oneOf(t, "kind", ["file", "redis"] as const, "file");
  r.known(t, STORE_KEYS[kind], otherKinds(STORE_KEYS, kind));
  if (kind === "file") return { kind };
  const url = r.string(t, "url");
  if (!URL.canParse(url) || !["redis:", "rediss:"].includes(new URL(url).protocol)) {
    r.fail(
      "url",
      `${JSON.stringify(url)} is not a redis:// or rediss:// URL`,
      'write e.g. "redis://127.0.0.1:6379"',
    );
  }
  return { kind, url, key: r.string(t, "key", "mailpeer:table") };
}

function readHost(r: Reader, t: Table, postOffice: string | undefined): HostConfig {
  r.known(t, HOST_KEYS, otherRole("terminal"));
  const email = r.email(t, "email");
  const host = {
    email,
    keys: r.path(t, "keys", "host.keys.json"),
    table: r.path(t, "table", "table.json"),
    peersPerReply: r.int(t, "peers_per_reply", DEFAULT_PEERS_PER_REPLY, 0, 64),
    tableCapacity: r.int(t, "table_capacity", DEFAULT_TABLE_CAPACITY, 1, 1_000_000),
    expiryMs: r.duration(t, "expiry", DEFAULT_EXPIRY_MS),
    pollIntervalMs: r.duration(t, "poll_interval", DEFAULT_POLL_INTERVAL_MS),
    maxMailBytes: r.int(t, "max_mail_bytes", MAX_MAIL_BYTES, 1024, 16 * 1024 * 1024),
    maxBlockBytes: r.int(t, "max_block_bytes", MAX_BLOCK_BYTES, 256, MAX_BLOCK_BYTES),
    requestsPerUserPerHour: r.int(
      t,
      "requests_per_user_per_hour",
      DEFAULT_REQUESTS_PER_USER_PER_HOUR,
      1,
      1_000_000,
    ),
    requestsPerSenderPerHour: r.int(
      t,
      "requests_per_sender_per_hour",
      DEFAULT_REQUESTS_PER_SENDER_PER_HOUR,
      1,
      1_000_000,
    ),
    requestsPerHour: r.int(t, "requests_per_hour", DEFAULT_REQUESTS_PER_HOUR, 1, 10_000_000),
    newRowsPerHour: r.int(t, "new_rows_per_hour", DEFAULT_NEW_ROWS_PER_HOUR, 1, 1_000_000),
    allowPrivateAddresses: r.bool(t, "allow_private_addresses", false),
    store: readStore(r.sub("store"), r.table(t, "store")),
    sharedMailbox: r.bool(t, "shared_mailbox", false),
    claims: r.oneOf(t, "claims", ["store", "mailbox"] as const, "store"),
    forwardTo: emails(r, t, "forward_to"),
    pool: r.strings(t, "pool"),
    acceptUnknownHosts: r.bool(t, "accept_unknown_hosts", false),
    syncIntervalMs: r.duration(t, "sync_interval", DEFAULT_SYNC_INTERVAL_MS),
    links: r.strings(t, "links"),
    maxHops: r.int(t, "max_hops", DEFAULT_MAX_HOPS, 1, MAX_LINK_HOPS),
    forwardsPerHour: r.int(t, "forwards_per_hour", DEFAULT_FORWARDS_PER_HOUR, 0, 3600),
    hostsFile: r.path(t, "hosts_file", "hosts.json"),
    role: readRole(r, t),
    roleLeaseMs: r.durationWithin(
      t,
      "role_lease",
      DEFAULT_ROLE_LEASE_MS,
      MIN_ROLE_LEASE_MS,
      MAX_ROLE_LEASE_MS,
    ),
    ...(t["require_verified_sender"] !== undefined
      ? { requireVerifiedSender: r.string(t, "require_verified_sender") }
      : {}),
    receive: readReceive(r.sub("receive"), r.table(t, "receive"), email, postOffice),
    send: readSend(r.sub("send"), r.table(t, "send"), email, postOffice, true),
    sendAlso: readSendAlso(r, t, email, postOffice),
  };
  if (host.links.length > MAX_LINKS) {
    r.fail(
      "links",
      `it lists ${host.links.length} hosts, more than ${MAX_LINKS}`,
      'link to a few hosts; rows travel on from them (docs/config.md "Several hosts")',
    );
  }
  // POP3 has no folders to claim a mail into (MailSource.claims): two readers would answer
  // the same requests.
  if (host.sharedMailbox && host.receive.kind === "pop3") {
    r.fail(
      "shared_mailbox",
      "several processes cannot share a POP3 mailbox (POP3 cannot claim a mail)",
      'read it over IMAP ([host.receive] kind = "imap"), or run one host process',
    );
  }
  if (host.role === "auto" && host.receive.kind === "pop3") {
    r.fail(
      "role",
      "members of a group share one mailbox, and a POP3 mailbox cannot be shared (no claims)",
      'read the shared mailbox over IMAP ([host.receive] kind = "imap")',
    );
  }
  if (host.role === "auto" && host.forwardTo.length > 0) {
    r.fail(
      "role",
      "a member answers requests itself; it cannot also forward them (forward_to)",
      'remove forward_to, or set role = "off"',
    );
  }
  return host;
}

/** `host.role`: "off" (default) or "auto" (docs/config.md "A group with no standing host"). */
function readRole(r: Reader, t: Table): "off" | "auto" {
  const role = r.string(t, "role", "off");
  if (role !== "off" && role !== "auto") {
    r.fail("role", `"${role}" is not a role`, 'write role = "auto" or role = "off"');
  }
  return role;
}

/** A list of e-mail addresses, the bad one named by its index. */
function emails(r: Reader, t: Table, key: string): string[] {
  const list = r.strings(t, key);
  list.forEach((address, i) => r.email({ [`${key}[${i}]`]: address }, `${key}[${i}]`));
  return list;
}

/** Allow- and deny-list entries name keys: `fingerprint` or `user@fingerprint`. */
function peerRefs(r: Reader, t: Table, key: string): string[] {
  const entries = r.strings(t, key);
  for (const entry of entries) {
    if (parsePeerRef(entry) === undefined) {
      const user = entry.includes("@") ? entry.slice(0, entry.lastIndexOf("@")) : entry;
      r.fail(
        key,
        `${JSON.stringify(entry)} names no key`,
        `write "${user}@<fingerprint>" with the fingerprint that \`mailpeer keygen --user\` ` +
          "or `mailpeer table` prints",
      );
    }
  }
  return entries;
}

const PORT_MAPPING_PROTOCOLS: readonly PortMappingProtocol[] = ["pcp", "nat-pmp", "upnp"];

/**
 * `terminal.port_mapping`: "off" (default), "auto", or a table whose fields (all optional) name
 * the gateway, the UPnP URL and the protocols; what is left out is found as with "auto".
 */
function readPortMapping(r: Reader, t: Table): PortMappingConfig {
  const v = t["port_mapping"] ?? "off";
  if (v === "off") return "off";
  if (v === "auto") return { protocols: [...PORT_MAPPING_PROTOCOLS] };
  if (typeof v !== "object" || v === null || Array.isArray(v) || v instanceof Date) {
    r.fail(
      "port_mapping",
      `${JSON.stringify(v)} is not "off", "auto" or a table`,
      'write "off", "auto" or { gateway = "192.168.1.1" } (see docs/port-mapping.md)',
    );
  }
  const table = v as Table;
  const s = r.sub("port_mapping");
  s.known(table, ["gateway", "upnp_url", "protocols"]);
  const config: Exclude<PortMappingConfig, "off"> = { protocols: [...PORT_MAPPING_PROTOCOLS] };
  const gateway = s.optionalString(table, "gateway");
  if (gateway !== undefined) {
    if (!isIPv4(gateway)) {
      s.fail(
        "gateway",
        `${JSON.stringify(gateway)} is not an IPv4 address`,
        `write the router's LAN address, e.g. "192.168.1.1", or leave it out to use the default route's gateway`,
      );
    }
    config.gateway = gateway;
  }
  const upnpUrl = s.optionalString(table, "upnp_url");
  if (upnpUrl !== undefined) {
    if (!URL.canParse(upnpUrl) || new URL(upnpUrl).protocol !== "http:") {
      s.fail(
        "upnp_url",
        `${JSON.stringify(upnpUrl)} is not an http:// URL`,
        `write the router's UPnP description URL, e.g. "http://192.168.1.1:5000/rootDesc.xml", or leave it out to find it by SSDP`,
      );
    }
    config.upnpUrl = upnpUrl;
  }
  if (table["protocols"] !== undefined) {
    const protocols = s.strings(table, "protocols");
    if (protocols.length === 0) {
      s.fail(
        "protocols",
        "no protocol is listed",
        'list some of "pcp", "nat-pmp", "upnp", or set port_mapping = "off"',
      );
    }
    protocols.forEach((p, i) => {
      if (!PORT_MAPPING_PROTOCOLS.includes(p as PortMappingProtocol)) {
        s.fail(
          "protocols",
          `${JSON.stringify(p)} is not one of ${PORT_MAPPING_PROTOCOLS.join(", ")}`,
          "pick among them",
        );
      }
      if (protocols.indexOf(p) !== i) {
        s.fail("protocols", `${JSON.stringify(p)} is listed twice`, "list each protocol once");
      }
    });
    config.protocols = protocols as PortMappingProtocol[];
  }
  return config;
}

const TURN_SERVER_KEYS = [
  "url",
  "user",
  "realm",
  "password",
  "password_env",
  "password_file",
] as const;

/** `[[terminal.turn_servers]]`: url, user, realm and the password's env variable or file. */
function readTurnServers(r: Reader, t: Table): TurnServerConfig[] {
  const list = t["turn_servers"];
  if (list === undefined) return [];
  if (
    !Array.isArray(list) ||
    list.some((e) => typeof e !== "object" || e === null || Array.isArray(e))
  ) {
    r.fail(
      "turn_servers",
      "it is not a list of tables",
      'write [[terminal.turn_servers]] sections or turn_servers = [{ url = "turn:host:3478", user = "…", password_env = "…" }]',
    );
  }
  if (list.length > MAX_TURN_SERVERS) {
    r.fail("turn_servers", `${list.length} servers are listed`, `list at most ${MAX_TURN_SERVERS}`);
  }
  return list.map((entry: Table, i: number) => {
    const s = r.sub(`turn_servers[${i}]`);
    s.known(entry, TURN_SERVER_KEYS);
    const url = s.string(entry, "url");
    let at: { host: string; port: number };
    try {
      at = parseTurnUrl(url);
    } catch (err) {
      return s.fail("url", (err as Error).message, 'write "turn:host:port" (UDP)');
    }
    const password = secretRef(entry, s.prefix, s.base);
    if (!password) {
      return s.fail(
        "password_env",
        "a TURN server needs a password",
        "set password_env (an environment variable) or password_file",
      );
    }
    const server: TurnServerConfig = { url, ...at, user: s.string(entry, "user"), password };
    const realm = s.optionalString(entry, "realm");
    if (realm !== undefined) server.realm = realm;
    return server;
  });
}

/** `terminal.user_id`: what peers see, 1 to 64 bytes without control characters. */
function userIdOf(r: Reader, t: Table): string {
  const userId = r.string(t, "user_id");
  const problem = userIdProblem(userId);
  if (problem !== undefined) r.fail("user_id", `the user id ${problem}`, "choose another user id");
  return userId;
}

function readTerminal(r: Reader, t: Table, postOffice: string | undefined): TerminalConfig {
  r.known(t, TERMINAL_KEYS, otherRole("host"));
  const email = r.email(t, "email");
  const listen = r.optionalString(t, "listen");
  const config: TerminalConfig = {
    userId: userIdOf(r, t),
    email,
    identity: r.path(t, "identity", "identity.json"),
    hosts: r.strings(t, "hosts"),
    address: r.string(t, "address", "auto"),
    port: r.int(t, "port", 0, 0, 65535),
    transport: r.oneOf(t, "transport", ["tcp", "udp"] as const, "tcp"),
    replyTimeoutMs: r.duration(t, "reply_timeout", DEFAULT_REPLY_TIMEOUT_MS),
    connectTimeoutMs: r.duration(t, "connect_timeout", DEFAULT_CONNECT_TIMEOUT_MS),
    standbyTimeoutMs: r.duration(t, "standby_timeout", DEFAULT_STANDBY_TIMEOUT_MS),
    pollIntervalMs: r.duration(t, "poll_interval", DEFAULT_TERMINAL_POLL_INTERVAL_MS),
    allow: peerRefs(r, t, "allow"),
    deny: peerRefs(r, t, "deny"),
    stunServers: r.strings(t, "stun_servers"),
    turnServers: readTurnServers(r, t),
    portMapping: readPortMapping(r, t),
    punchWindowMs: r.durationWithin(
      t,
      "punch_window",
      DEFAULT_TERMINAL_PUNCH_WINDOW_MS,
      MIN_TERMINAL_PUNCH_WINDOW_MS,
      PUNCH_MAX_WINDOW_MS,
    ),
    upgradeIntervalMs: r.durationWithin(
      t,
      "upgrade_interval",
      DEFAULT_UPGRADE_INTERVAL_MS,
      MIN_UPGRADE_INTERVAL_MS,
      MAX_UPGRADE_INTERVAL_MS,
    ),
    receive: readReceive(r.sub("receive"), r.table(t, "receive"), email, postOffice, false),
    send: readSend(r.sub("send"), r.table(t, "send"), email, postOffice),
  };
  if (listen !== undefined) config.listen = listen;
  for (const [key, value] of [["address", config.address], ["listen", listen]] as const) {
    if (value === undefined || (key === "address" && value === "auto")) continue;
    try {
      classifyAddress(value);
    } catch {
      r.fail(
        key,
        `${JSON.stringify(value)} is not an IP address`,
        key === "address"
          ? 'write an IP literal such as "203.0.113.7", or "auto" to detect it'
          : 'write an IP literal such as "0.0.0.0", or leave it out',
      );
    }
  }
  if (config.hosts.length === 0) {
    r.fail("hosts", "no host card is listed", "add the card that `mailpeer keygen --host` printed");
  }
  return config;
}

/** Validates a parsed TOML document. `base` is the directory relative paths start from. */
export function configFromObject(
  doc: Table,
  options: { base?: string; path?: string } = {},
): Config {
  const r = new Reader(options.base ?? Deno.cwd(), "", [], options.path);
  r.known(doc, TOP_KEYS);
  const network = r.string(doc, "network");
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(network)) {
    r.fail(
      "network",
      `${JSON.stringify(network)} is not a network id`,
      "use letters, digits, '.', '_' or '-' (at most 64)",
    );
  }
  const postOffice = doc["post_office"] === undefined ? undefined : r.path(doc, "post_office");
  const config: Config = {
    network,
    subjectMatch: r.oneOf(doc, "subject_match", ["exact", "prefix"] as const, "exact"),
  };
  if (options.path) config.path = options.path;
  if (postOffice !== undefined) config.postOffice = postOffice;
  if (doc["host"] !== undefined) {
    config.host = readHost(r.sub("host"), r.table(doc, "host"), postOffice);
  }
  if (doc["terminal"] !== undefined) {
    config.terminal = readTerminal(r.sub("terminal"), r.table(doc, "terminal"), postOffice);
  }
  if (r.warnings.length > 0) config.warnings = r.warnings;
  return config;
}
