/**
 * Finding the home router for `terminal.port_mapping = "auto"` (docs/port-mapping.md): the
 * default IPv4 gateway from the kernel's routing table (`/proc/net/route`, Linux; else guessed from
 * the interfaces, since Deno reads /proc only with `--allow-all`), and the
 * router's UPnP description URL by an SSDP search (UPnP Device Architecture 1.1 §1.3.2) sent to
 * that gateway by unicast and to the multicast group. Answers are untrusted: they are read only
 * from the gateway's address and up to {@link SSDP_MAX_ANSWER_BYTES}, and a LOCATION whose host
 * is not the gateway is refused, so another machine on the LAN cannot redirect the mapping
 * requests to itself.
 *
 * @module
 */
import {
  SSDP_MAX_ANSWER_BYTES,
  SSDP_MULTICAST_ADDRESS,
  SSDP_MX_S,
  SSDP_PORT,
  SSDP_SEARCH_REQUESTS,
  SSDP_SEARCH_WAIT_MS,
} from "../../limits.ts";
import { type Logger, silentLogger } from "../../log.ts";
import { classifyAddress } from "../../net/address_class.ts";
import type { Clock } from "../../runtime.ts";
import { GatewaySocket, ipv4ToNumber, localAddressFor, NoAnswer } from "./gateway_socket.ts";
import type { SocketAddress } from "./types.ts";

/** The device types an SSDP search asks for: an Internet Gateway Device, v1 or v2. */
export const IGD_SEARCH_TARGETS = [
  "urn:schemas-upnp-org:device:InternetGatewayDevice:1",
  "urn:schemas-upnp-org:device:InternetGatewayDevice:2",
] as const;

const RTF_UP = 0x1;
const RTF_GATEWAY = 0x2;

/** True on little-endian machines, where /proc/net/route prints addresses byte-reversed. */
function hostIsLittleEndian(): boolean {
  return new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
}

/**
 * The default IPv4 gateway in the text of Linux's `/proc/net/route`: the `UP` + `GATEWAY` route
 * to 0.0.0.0/0 with the lowest metric, or undefined when there is none. The kernel prints each
 * address as the hex of its 32-bit value in host byte order (`0101A8C0` is 192.168.1.1 on a
 * little-endian machine); lines that do not parse are skipped.
 *
 * @example
 * ```ts
 * const text = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
 *   "eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n";
 * parseDefaultGateway(text, { littleEndian: true }); // "192.168.1.1"
 * ```
 */
export function parseDefaultGateway(
  text: string,
  options: { littleEndian?: boolean } = {},
): string | undefined {
  const littleEndian = options.littleEndian ?? hostIsLittleEndian();
  let best: { address: string; metric: number } | undefined;
  for (const line of text.split("\n")) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 8) continue;
    const [, destination, gateway, flags, , , metric, mask] = fields as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    if (![destination, gateway, mask].every((f) => /^[0-9A-Fa-f]{8}$/.test(f))) continue;
    if (!/^[0-9A-Fa-f]{1,4}$/.test(flags) || !/^\d{1,10}$/.test(metric)) continue;
    const bits = parseInt(flags, 16);
    if ((bits & RTF_UP) === 0 || (bits & RTF_GATEWAY) === 0) continue;
    if (parseInt(destination, 16) !== 0 || parseInt(mask, 16) !== 0) continue;
    const n = parseInt(gateway, 16);
    if (n === 0) continue;
    const bytes = [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
    if (littleEndian) bytes.reverse();
    const candidate = { address: bytes.join("."), metric: Number(metric) };
    if (!best || candidate.metric < best.metric) best = candidate;
  }
  return best?.address;
}

/** An interface address as `Deno.networkInterfaces()` lists it. */
export interface InterfaceAddress {
  name: string;
  family: "IPv4" | "IPv6";
  address: string;
  netmask: string;
}

/**
 * The usual router address of this machine's LAN, for when the routing table cannot be read:
 * the first host of the subnet of the first IPv4 interface that is neither loopback, link-local
 * nor global (a LAN behind a router), e.g. 192.168.1.1 for 192.168.1.23/24. A guess: a wrong one
 * only makes PCP and NAT-PMP wait for their timeout, and SSDP answers are still taken only from
 * it. Undefined when no interface qualifies or its subnet has no room for a router (/31, /32).
 *
 * @example
 * ```ts
 * guessGateway([{ name: "eth0", family: "IPv4", address: "192.168.1.23", netmask: "255.255.255.0" }]);
 * // "192.168.1.1"
 * ```
 */
export function guessGateway(interfaces: readonly InterfaceAddress[]): string | undefined {
  for (const i of interfaces) {
    if (i.family !== "IPv4") continue;
    const cls = classifyAddress(i.address);
    if (cls !== "private" && cls !== "reserved") continue;
    const address = ipv4ToNumber(i.address);
    const mask = ipv4ToNumber(i.netmask);
    if (address === undefined || mask === undefined || ((~mask) >>> 0) < 3) continue;
    const first = (((address & mask) >>> 0) + 1) >>> 0;
    if (first === address) continue; // this machine is the router
    return [first >>> 24, (first >>> 16) & 0xff, (first >>> 8) & 0xff, first & 0xff].join(".");
  }
  return undefined;
}

/** Options of {@link defaultGateway}. */
export interface DefaultGatewayOptions {
  /** Reads the routing table; default `/proc/net/route` (Linux only). */
  readRoutes?: () => Promise<string>;
  /** Lists the interfaces for {@link guessGateway}; default `Deno.networkInterfaces()`. */
  interfaces?: () => readonly InterfaceAddress[];
  /** Default `Deno.build.os`: other systems than Linux have no /proc/net/route. */
  os?: string;
  /** Default: silent. Says why no gateway was found, or that it was guessed. */
  logger?: Logger;
}

/**
 * The default IPv4 gateway of this machine: from the routing table when it can be read, else
 * guessed from the interfaces ({@link guessGateway}). Deno lets a program read `/proc` only with
 * `--allow-all`, which mailpeer does not ask for, so the guess is the usual way. Undefined
 * (logged) when neither works. Never rejects.
 */
export async function defaultGateway(
  options: DefaultGatewayOptions = {},
): Promise<string | undefined> {
  const logger = options.logger ?? silentLogger;
  const os = options.os ?? Deno.build.os;
  let why: string;
  if (!options.readRoutes && os !== "linux") {
    why = `it is read from /proc/net/route, which ${os} does not have`;
  } else {
    try {
      const text = await (options.readRoutes ?? (() => Deno.readTextFile("/proc/net/route")))();
      const gateway = parseDefaultGateway(text);
      if (gateway === undefined) {
        logger.log("info", "no default gateway: the routing table has no IPv4 default route");
      } else {
        logger.log("debug", "default gateway found", { gateway });
      }
      return gateway;
    } catch (err) {
      why = `cannot read the routing table (${err instanceof Error ? err.message : String(err)})`;
    }
  }
  let interfaces: readonly InterfaceAddress[] = [];
  try {
    interfaces = (options.interfaces ?? (() => Deno.networkInterfaces()))();
  } catch (err) {
    why += `, nor list the interfaces (${err instanceof Error ? err.message : String(err)})`;
  }
  const guessed = guessGateway(interfaces);
  if (guessed === undefined) {
    logger.log("info", `no default gateway: ${why}; set terminal.port_mapping.gateway`);
  } else {
    logger.log("info", `guessed the gateway ${guessed} from the interfaces: ${why}`);
  }
  return guessed;
}

/** The text of an SSDP M-SEARCH for `st` sent to `target` (UDA 1.1 §1.3.2). */
export function ssdpSearchRequest(st: string, target: SocketAddress): string {
  const multicast = target.address === SSDP_MULTICAST_ADDRESS;
  return [
    "M-SEARCH * HTTP/1.1",
    `HOST: ${target.address}:${target.port}`,
    'MAN: "ssdp:discover"',
    ...(multicast ? [`MX: ${SSDP_MX_S}`] : []),
    `ST: ${st}`,
    "",
    "",
  ].join("\r\n");
}

/** Why an SSDP answer was not used, or its description URL. */
export type SsdpAnswer = { location: string } | { refused: string } | undefined;

/**
 * Reads an SSDP search answer: an `HTTP/1.1 200` with the searched ST (when it names one) and a
 * LOCATION that is an `http:` URL on the gateway's address. Returns undefined for what is not an
 * answer to the search, `refused` (with the reason) for an answer whose LOCATION points elsewhere.
 */
export function parseSsdpAnswer(text: string, st: string, gateway: string): SsdpAnswer {
  const lines = text.split(/\r?\n/);
  if (!/^HTTP\/1\.[01] 200\b/.test(lines[0] ?? "")) return undefined;
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const answeredSt = headers.get("st");
  if (answeredSt !== undefined && answeredSt !== st) return undefined;
  const location = headers.get("location");
  if (location === undefined) return undefined;
  const shown = JSON.stringify(location.replace(/[^\x20-\x7e]/g, "?").slice(0, 80));
  if (!URL.canParse(location)) return { refused: `LOCATION ${shown} is not a URL` };
  const url = new URL(location);
  if (url.protocol !== "http:") return { refused: `LOCATION ${shown} is not http:` };
  if (url.hostname !== gateway) {
    return { refused: `LOCATION ${shown} is not on the gateway ${gateway}` };
  }
  return { location: url.href };
}

/** Options of {@link discoverUpnpUrl}. */
export interface SsdpSearchOptions {
  /**
   * Where the search goes; default the gateway's SSDP port (unicast) and the multicast group
   * 239.255.255.250:1900. Answers are taken from the gateway's address only, from any port.
   */
  targets?: readonly SocketAddress[];
  /** Local address to search from; default the interface on the gateway's network. */
  localAddress?: string;
  /** Requests per target and device type; default {@link SSDP_SEARCH_REQUESTS}. */
  requests?: number;
  /** Wait after each request, in ms; default {@link SSDP_SEARCH_WAIT_MS}. */
  waitMs?: number;
  /** Timers; default `systemClock`. */
  clock?: Clock;
  /** Default: silent. Says why no URL was found, and which answers were refused. */
  logger?: Logger;
  /** Cancels the search; it then rejects with the signal's reason. */
  signal?: AbortSignal;
}

/**
 * The UPnP description URL of the Internet Gateway Device at `gateway`, found by SSDP, or
 * undefined (logged) when none answered with a LOCATION on the gateway within the search
 * ({@link SSDP_SEARCH_REQUESTS} × {@link SSDP_SEARCH_WAIT_MS}). Rejects only when aborted.
 *
 * @example
 * ```ts ignore
 * const url = await discoverUpnpUrl("192.168.1.1");
 * // "http://192.168.1.1:5000/rootDesc.xml"
 * ```
 */
export async function discoverUpnpUrl(
  gateway: string,
  options: SsdpSearchOptions = {},
): Promise<string | undefined> {
  if (ipv4ToNumber(gateway) === undefined) {
    throw new TypeError(`Not an IPv4 gateway address: ${JSON.stringify(gateway)}`);
  }
  const logger = options.logger ?? silentLogger;
  const targets = options.targets ?? [
    { address: gateway, port: SSDP_PORT },
    { address: SSDP_MULTICAST_ADDRESS, port: SSDP_PORT },
  ];
  const localAddress = options.localAddress ?? localAddressFor(gateway);
  if (!localAddress) {
    logger.log("info", `no UPnP URL: no local interface is on the network of ${gateway}`);
    return undefined;
  }
  const stop = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  const searches = targets.flatMap((target) => IGD_SEARCH_TARGETS.map((st) => ({ target, st })));
  const opened = await Promise.allSettled(
    searches.map(({ target }) =>
      GatewaySocket.open(target.address, target.port, {
        localAddress,
        answersFrom: { address: gateway },
        maxAnswerBytes: SSDP_MAX_ANSWER_BYTES,
      })
    ),
  );
  const sockets = opened.flatMap((o) => o.status === "fulfilled" ? [o.value] : []);
  // Each refusal is said once: a LAN host repeating its answer cannot flood the log.
  const refusals = new Set<string>();
  const search = (i: number): Promise<string> => {
    const { target, st } = searches[i]!;
    const o = opened[i]!;
    if (o.status === "rejected") return Promise.reject(o.reason);
    const request = new TextEncoder().encode(ssdpSearchRequest(st, target));
    return o.value.exchange(request, (bytes) => {
      const answer = parseSsdpAnswer(new TextDecoder().decode(bytes), st, gateway);
      if (answer && "refused" in answer) {
        if (!refusals.has(answer.refused)) {
          refusals.add(answer.refused);
          logger.log("warn", `SSDP answer refused: ${answer.refused}`, { gateway });
        }
        return undefined;
      }
      return answer?.location;
    }, {
      requests: options.requests ?? SSDP_SEARCH_REQUESTS,
      schedule: () => options.waitMs ?? SSDP_SEARCH_WAIT_MS,
      ...(options.clock ? { clock: options.clock } : {}),
      signal,
    });
  };
  try {
    const url = await Promise.any(searches.map((_, i) => search(i)));
    logger.log("debug", "UPnP URL found by SSDP", { gateway, url });
    return url;
  } catch (err) {
    options.signal?.throwIfAborted();
    const errors = err instanceof AggregateError ? err.errors : [err];
    const silent = errors.every((e) => e instanceof NoAnswer);
    logger.log(
      "info",
      silent
        ? `no UPnP URL: no Internet Gateway Device at ${gateway} answered the SSDP search`
        : `no UPnP URL: the SSDP search at ${gateway} failed (${
          errors.map((e) => e instanceof Error ? e.message : String(e)).join(", ")
        })`,
    );
    return undefined;
  } finally {
    stop.abort();
    await Promise.all(sockets.map((s) => s.close()));
  }
}
