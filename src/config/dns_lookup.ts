/**
 * The DNS questions discovery asks (SRV, MX, and A/AAAA when a name server of its own is
 * given), behind one small seam: {@link DnsLookup}. The real one, {@link dnsLookup}, asks
 * `Deno.resolveDns`, by default through the system's resolver, or through the name server a
 * test (or `mailpeer init --dns-server`) names. Every answer is bounded in time
 * (`DISCOVERY_STEP_TIMEOUT_MS`) and count (`DISCOVERY_MAX_CANDIDATES`); a name that does not
 * exist is an empty answer, not an error.
 *
 * @module
 */
import { isIP } from "node:net";
import { ConfigError } from "../errors.ts";
import { DISCOVERY_MAX_CANDIDATES, DISCOVERY_STEP_TIMEOUT_MS } from "../limits.ts";

/** One SRV record (RFC 2782). */
export interface SrvAnswer {
  priority: number;
  weight: number;
  port: number;
  target: string;
}

/** The DNS questions of discovery. */
export interface DnsLookup {
  srv(name: string): Promise<SrvAnswer[]>;
  /** Mail exchangers, most preferred first. */
  mx(name: string): Promise<string[]>;
  /** IPv4 and IPv6 addresses. */
  addresses(name: string): Promise<string[]>;
}

/** A name server as `ipAddr` and `port`, from `127.0.0.1:5353`, `[::1]:53` or `127.0.0.1`. */
export function parseNameServer(text: string): { ipAddr: string; port: number } {
  const m = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(text) ?? /^([^:]+)(?::(\d{1,5}))?$/.exec(text);
  const ipAddr = m?.[1] ?? "";
  const port = m?.[2] === undefined ? 53 : Number(m[2]);
  if (!m || isIP(ipAddr) === 0 || port < 1 || port > 65_535) {
    throw new ConfigError(
      "ECONFIG",
      `Cannot use the DNS server ${
        JSON.stringify(text.slice(0, 100))
      }: it is not an IP address with an optional port; write e.g. 127.0.0.1:5353 or [::1]:53`,
    );
  }
  return { ipAddr, port };
}

function isNoAnswer(err: unknown): boolean {
  return err instanceof Deno.errors.NotFound ||
    (err instanceof Error && /no record|not found|NXDOMAIN|no data/i.test(err.message));
}

/** Options of {@link dnsLookup}. */
export interface DnsLookupOptions {
  /** Ask this name server instead of the system's resolver. */
  nameServer?: { ipAddr: string; port: number };
  /** Time limit of one question, in ms. Default: `DISCOVERY_STEP_TIMEOUT_MS`. */
  timeoutMs?: number;
}

/** The real {@link DnsLookup}, through `Deno.resolveDns`. */
export function dnsLookup(options: DnsLookupOptions = {}): DnsLookup {
  const dnsOptions = (): Deno.ResolveDnsOptions => ({
    ...(options.nameServer ? { nameServer: options.nameServer } : {}),
    signal: AbortSignal.timeout(options.timeoutMs ?? DISCOVERY_STEP_TIMEOUT_MS),
  });
  const empty = <T>(err: unknown): T[] => {
    if (isNoAnswer(err)) return [];
    throw err;
  };
  const srv = (name: string) =>
    Deno.resolveDns(name, "SRV", dnsOptions()).catch(empty<Deno.SrvRecord>);
  const mx = (name: string) =>
    Deno.resolveDns(name, "MX", dnsOptions()).catch(empty<Deno.MxRecord>);
  const ip = (name: string, type: "A" | "AAAA") =>
    Deno.resolveDns(name, type, dnsOptions()).catch(empty<string>);
  return {
    srv: async (name) =>
      (await srv(name)).slice(0, DISCOVERY_MAX_CANDIDATES).map((r) => ({
        priority: r.priority,
        weight: r.weight,
        port: r.port,
        target: r.target,
      })),
    mx: async (name) =>
      (await mx(name)).slice(0, DISCOVERY_MAX_CANDIDATES)
        .sort((a, b) => a.preference - b.preference).map((r) => r.exchange),
    addresses: async (name) => {
      const v4 = await ip(name, "A");
      const v6 = v4.length > 0 ? [] : await ip(name, "AAAA");
      return [...v4, ...v6].slice(0, DISCOVERY_MAX_CANDIDATES);
    },
  };
}
