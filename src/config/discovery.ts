/**
 * Finds the mail servers of an e-mail address for `mailpeer init` (docs/discovery.md), asking
 * in this order, each source configurable (and each can be left out):
 *
 * 1. `autoconfig`: `https://autoconfig.<domain>/mail/config-v1.1.xml` (Thunderbird's format);
 * 2. `well-known`: `https://<domain>/.well-known/autoconfig/mail/config-v1.1.xml`;
 * 3. `ispdb`: Mozilla's database, `https://autoconfig.thunderbird.net/v1.1/<domain>`;
 * 4. `srv`: RFC 6186 SRV records (`_imaps._tcp`, `_imap._tcp`, `_pop3s._tcp`, `_pop3._tcp`,
 *    `_submissions._tcp`, `_submission._tcp`);
 * 5. `mx`: the provider that runs the domain's mail exchanger, looked up in the ISPDB;
 * 6. `guess`: the usual names, `imap.<domain>`, `pop.<domain>`, `smtp.<domain>`,
 *    `mail.<domain>`, on the usual ports.
 *
 * Every candidate is handed to the caller's `probe` (connect, TLS, greeting, and the login
 * once a password is known) before it is offered; the first incoming server (IMAP before
 * POP3) and the first SMTP server that pass win, and discovery stops asking once it has both.
 * What was skipped and why is kept in `notes`. A probe may throw to stop everything (a refused
 * password is the answer for every server of the provider).
 *
 * @module
 */
import { ConfigError } from "../errors.ts";
import { type AutoconfigFetchOptions, fetchAutoconfig } from "./autoconfig_fetch.ts";
import { parseAutoconfig } from "./autoconfig_xml.ts";
import type { DnsLookup } from "./dns_lookup.ts";
import {
  describeCandidate,
  DISCOVERY_SOURCES,
  type DiscoverySource,
  normalHostname,
  type ServerCandidate,
  serverCandidate,
  type ServerProtocol,
} from "./server_candidate.ts";

/** Default URL templates; `%EMAILADDRESS%` and `%EMAILDOMAIN%` are filled in. */
export const DEFAULT_AUTOCONFIG_URLS = {
  autoconfig: "https://autoconfig.%EMAILDOMAIN%/mail/config-v1.1.xml?emailaddress=%EMAILADDRESS%",
  wellKnown: "https://%EMAILDOMAIN%/.well-known/autoconfig/mail/config-v1.1.xml",
  ispdb: "https://autoconfig.thunderbird.net/v1.1/%EMAILDOMAIN%",
} as const;

/** What a probe of one candidate says. */
export type ProbeVerdict = { ok: true } | { ok: false; why: string };

/** A candidate as it will be connected to: `address` set when a DNS server of its own resolved it. */
export interface FoundServer extends ServerCandidate {
  /** The IP address to connect to (the TLS name stays `hostname`). */
  address?: string;
}

/** Options of {@link discoverServers}. */
export interface DiscoveryOptions {
  /** Sources to ask, in {@link DISCOVERY_SOURCES} order. Default: all. */
  sources?: readonly DiscoverySource[];
  /** URL templates of the autoconfig sources. Default: {@link DEFAULT_AUTOCONFIG_URLS}. */
  urls?: Partial<Record<"autoconfig" | "wellKnown" | "ispdb", string>>;
  /** How autoconfig documents are fetched (test CA, loopback http). */
  fetch?: AutoconfigFetchOptions;
  /** DNS for the `srv` and `mx` sources (and for host names, with `resolveHosts`). */
  dns: DnsLookup;
  /**
   * Resolve every candidate's host name through `dns` and connect to the address (for a DNS
   * server of its own, which the system's resolver does not ask). Default: false.
   */
  resolveHosts?: boolean;
  /** Probes one server; throws to stop discovery. */
  probe: (server: FoundServer) => Promise<ProbeVerdict>;
  /** Which servers are wanted. Default: incoming and outgoing. */
  want?: { incoming: boolean; outgoing: boolean };
  /** Told about each step as it happens (for narration). */
  onNote?: (note: string) => void;
  signal?: AbortSignal;
}

/** What discovery found. */
export interface DiscoveryResult {
  /** IMAP (preferred) or POP3, probed. */
  incoming?: FoundServer;
  /** SMTP submission, probed. */
  outgoing?: FoundServer;
  /** What was asked, skipped or refused, in order. */
  notes: string[];
}

function fill(template: string, email: string): string {
  const domain = email.slice(email.lastIndexOf("@") + 1);
  return template
    .replaceAll("%EMAILADDRESS%", encodeURIComponent(email))
    .replaceAll("%EMAILDOMAIN%", domain);
}

const SRV_SERVICES: { name: string; protocol: ServerProtocol; tls: "implicit" | "starttls" }[] = [
  { name: "_imaps._tcp", protocol: "imap", tls: "implicit" },
  { name: "_imap._tcp", protocol: "imap", tls: "starttls" },
  { name: "_pop3s._tcp", protocol: "pop3", tls: "implicit" },
  { name: "_pop3._tcp", protocol: "pop3", tls: "starttls" },
  { name: "_submissions._tcp", protocol: "smtp", tls: "implicit" },
  { name: "_submission._tcp", protocol: "smtp", tls: "starttls" },
];

const GUESSES: {
  prefix: string;
  protocol: ServerProtocol;
  port: number;
  tls: "implicit" | "starttls";
}[] = [
  { prefix: "imap", protocol: "imap", port: 993, tls: "implicit" },
  { prefix: "imap", protocol: "imap", port: 143, tls: "starttls" },
  { prefix: "mail", protocol: "imap", port: 993, tls: "implicit" },
  { prefix: "mail", protocol: "imap", port: 143, tls: "starttls" },
  { prefix: "pop", protocol: "pop3", port: 995, tls: "implicit" },
  { prefix: "pop3", protocol: "pop3", port: 995, tls: "implicit" },
  { prefix: "mail", protocol: "pop3", port: 995, tls: "implicit" },
  { prefix: "smtp", protocol: "smtp", port: 465, tls: "implicit" },
  { prefix: "smtp", protocol: "smtp", port: 587, tls: "starttls" },
  { prefix: "mail", protocol: "smtp", port: 465, tls: "implicit" },
  { prefix: "mail", protocol: "smtp", port: 587, tls: "starttls" },
];

/**
 * Second-level labels that, under a two-letter country code, are a registry's suffix rather than
 * a provider's name (`co.uk`, `com.au`, `ne.jp`): the provider is the label before them. A short
 * list, not the Public Suffix List: a wrong guess only costs an ISPDB lookup that finds nothing.
 */
const COUNTRY_SECOND_LEVELS = new Set([
  "ac",
  "co",
  "com",
  "edu",
  "gov",
  "ltd",
  "ne",
  "net",
  "or",
  "org",
  "plc",
]);

/**
 * The domain that runs a mail exchanger: its last two labels (`aspmx.l.google.com` →
 * `google.com`), or three under a country's second level (`mx1.mail.yahoo.co.jp` →
 * `yahoo.co.jp`).
 */
export function providerDomain(mx: string): string | undefined {
  const name = normalHostname(mx);
  if (name === undefined) return undefined;
  const labels = name.split(".");
  const [second, top] = labels.slice(-2);
  const registry = top !== undefined && top.length === 2 && second !== undefined &&
    COUNTRY_SECOND_LEVELS.has(second);
  return labels.slice(registry ? -3 : -2).join(".");
}

/**
 * Finds and probes the mail servers of `email`. Throws `EDISCOVER` when `email` has no usable
 * domain; resolves with what it found (possibly nothing, with notes saying why).
 */
export async function discoverServers(
  email: string,
  options: DiscoveryOptions,
): Promise<DiscoveryResult> {
  const at = email.lastIndexOf("@");
  const domain = at > 0 ? normalHostname(email.slice(at + 1)) : undefined;
  if (domain === undefined) {
    throw new ConfigError(
      "EDISCOVER",
      `Cannot discover the mail servers of ${
        JSON.stringify(email.slice(0, 100))
      }: it has no usable domain after its @; give an address like alice@example.org`,
    );
  }
  const sources = options.sources ?? DISCOVERY_SOURCES;
  const want = options.want ?? { incoming: true, outgoing: true };
  const urls = { ...DEFAULT_AUTOCONFIG_URLS, ...options.urls };
  const result: DiscoveryResult = { notes: [] };
  const note = (text: string) => {
    result.notes.push(text);
    options.onNote?.(text);
  };
  const probed = new Set<string>();
  const done = () =>
    (!want.incoming || result.incoming !== undefined) &&
    (!want.outgoing || result.outgoing !== undefined);

  const autoconfig = async (template: string, source: DiscoverySource, forEmail = email) => {
    const url = fill(template, forEmail);
    const fetched = await fetchAutoconfig(url, {
      ...options.fetch,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    if (!fetched.ok) {
      note(`${source}: nothing (${fetched.why})`);
      return [];
    }
    try {
      const parsed = parseAutoconfig(fetched.text, { email, source });
      for (const n of parsed.notes) note(n);
      note(`${source}: ${parsed.candidates.length} server(s) from ${fetched.url}`);
      return parsed.candidates;
    } catch (err) {
      note(`${source}: ${fetched.url} refused (${(err as Error).message})`);
      return [];
    }
  };

  const srv = async () => {
    const found: ServerCandidate[] = [];
    for (const service of SRV_SERVICES) {
      const answers = await options.dns.srv(`${service.name}.${domain}`).catch((err) => {
        note(`srv: ${service.name}.${domain} not answered (${(err as Error).message})`);
        return [];
      });
      answers.sort((a, b) => a.priority - b.priority || b.weight - a.weight);
      for (const a of answers) {
        if (a.target === "." || a.target === "") continue; // RFC 6186: not offered
        const c = serverCandidate({ ...service, hostname: a.target, port: a.port, source: "srv" });
        if (typeof c === "string") note(c);
        else found.push(c);
      }
    }
    note(`srv: ${found.length} server(s) in the SRV records of ${domain}`);
    return found;
  };

  const mx = async () => {
    const exchangers = await options.dns.mx(domain).catch(() => []);
    const provider = exchangers.map(providerDomain).find((d) => d !== undefined);
    if (provider === undefined) {
      note(`mx: ${domain} has no usable MX record`);
      return [];
    }
    if (provider === domain) {
      note(`mx: the mail exchanger of ${domain} is in the domain itself; nothing new to ask`);
      return [];
    }
    return await autoconfig(urls.ispdb, "mx", `${email.slice(0, at)}@${provider}`);
  };

  const guess = () =>
    GUESSES.map((g) =>
      serverCandidate({ ...g, hostname: `${g.prefix}.${domain}`, source: "guess" })
    )
      .filter((c): c is ServerCandidate => typeof c !== "string");

  const ask: Record<DiscoverySource, () => Promise<ServerCandidate[]>> = {
    autoconfig: () => autoconfig(urls.autoconfig, "autoconfig"),
    "well-known": () => autoconfig(urls.wellKnown, "well-known"),
    ispdb: () => autoconfig(urls.ispdb, "ispdb"),
    srv,
    mx,
    guess: () => Promise.resolve(guess()),
  };

  for (const source of DISCOVERY_SOURCES) {
    if (!sources.includes(source) || done()) continue;
    options.signal?.throwIfAborted();
    const candidates = await ask[source]();
    // IMAP before POP3 for the incoming server, whatever order the source listed them in.
    const ordered = [
      ...candidates.filter((c) => c.protocol === "imap"),
      ...candidates.filter((c) => c.protocol === "pop3"),
      ...candidates.filter((c) => c.protocol === "smtp"),
    ];
    for (const c of ordered) {
      const incoming = c.protocol !== "smtp";
      if (incoming ? !want.incoming || result.incoming : !want.outgoing || result.outgoing) {
        continue;
      }
      const key = `${c.protocol} ${c.hostname}:${c.port} ${c.tls}`;
      if (probed.has(key)) continue;
      probed.add(key);
      const server = await located(c, options, note);
      if (!server) continue;
      const verdict = await options.probe(server);
      if (!verdict.ok) {
        note(`${describeCandidate(c)}: not offered (${verdict.why})`);
        continue;
      }
      note(`${describeCandidate(c)}: answers`);
      if (incoming) result.incoming = server;
      else result.outgoing = server;
    }
  }
  return result;
}

/** The candidate with the address to connect to, when host names go through our own DNS. */
async function located(
  c: ServerCandidate,
  options: DiscoveryOptions,
  note: (text: string) => void,
): Promise<FoundServer | undefined> {
  if (!options.resolveHosts || /^[0-9.]+$|:/.test(c.hostname)) return c;
  const addresses = await options.dns.addresses(c.hostname).catch(() => []);
  if (addresses.length === 0) {
    note(`${describeCandidate(c)}: not offered (${c.hostname} does not resolve)`);
    return undefined;
  }
  return { ...c, address: addresses[0]! };
}
