/**
 * The host's status server (docs/status.md): `/` the status page, `/status.json` the
 * {@link HostStatus} snapshot, `/metrics` the Prometheus text format.
 *
 * Security (docs/status.md "Security"): loopback by default, and no other address without a
 * token; with a token every route wants `Authorization: Bearer <token>` or `?token=`, compared
 * in constant time; without one, only loopback `Host` names (DNS rebinding); GET and HEAD only,
 * a few requests at once; every string in the page escaped; a strict Content-Security-Policy (no
 * script, the one style block by hash); nothing cached.
 *
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { ConfigError } from "../errors.ts";
import {
  STATUS_DEFAULT_ADDRESS,
  STATUS_MAX_CONCURRENT,
  STATUS_MAX_URL_CHARS,
  STATUS_MIN_TOKEN_CHARS,
  STATUS_REFRESH_SECONDS,
} from "../limits.ts";
import type { HostStatus } from "./status.ts";
import { METRICS_CONTENT_TYPE, renderMetrics } from "./status_metrics.ts";
import { renderStatusPage, STATUS_PAGE_CSS } from "./status_page.ts";
import type { PeerRow } from "./types.ts";

/** Options of {@link serveStatus}. */
export interface StatusServerOptions {
  /** What the host reported. */
  status: HostStatus;
  /** Reads the control table (e.g. `() => store.read()`); omitted: the page shows no table. */
  table?: () => Promise<PeerRow[]>;
  /** Address to listen on (default `127.0.0.1`); any other than loopback needs a `token`. */
  hostname?: string;
  /** Port (default 8787; 0 picks a free one, see the returned `url`). */
  port?: number;
  /**
   * The operator's secret, at least 16 characters: every route then wants it, and the page shows
   * the peers' e-mail addresses. Without one, only loopback, and no e-mail address is shown.
   */
  token?: string;
  /** The network the host serves, for the page's title. */
  network?: string;
  /** The host's own address, for the page's title (default: the one its `host-ready` named). */
  email?: string;
  /** Seconds between the page's reloads (default 5). */
  refreshSeconds?: number;
  /** Stops the server when aborted. */
  signal?: AbortSignal;
}

/** A running status server. */
export interface StatusServer {
  /** Where it listens, e.g. `http://127.0.0.1:8787/`. */
  url: string;
  /** Stops listening and waits for requests in flight. */
  close(): Promise<void>;
}

/** The Content-Security-Policy of every answer: no script, no request out, the one style. */
export const STATUS_CSP = [
  "default-src 'none'",
  `style-src 'sha256-${createHash("sha256").update(STATUS_PAGE_CSS).digest("base64")}'`,
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy": STATUS_CSP,
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
  "cross-origin-resource-policy": "same-origin",
};

/** True for an address that only this machine reaches (127.0.0.0/8, ::1, `localhost`). */
export function isLoopback(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) ||
    /^::ffff:127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/**
 * Starts the status server. Rejects with a `ConfigError` (one line) for a non-loopback address
 * without a token, a short token, or an address it cannot listen on.
 *
 * @example A status server on a free loopback port
 * ```ts
 * import { HostStatus } from "./status.ts";
 * import { serveStatus } from "./status_server.ts";
 *
 * const status = new HostStatus();
 * const server = await serveStatus({ status, port: 0 });
 * const res = await fetch(new URL("status.json", server.url));
 * console.log((await res.json()).counters.repliesSent); // 0
 * await server.close();
 * ```
 */
export async function serveStatus(options: StatusServerOptions): Promise<StatusServer> {
  await Promise.resolve(); // errors below reject the promise rather than throw
  const hostname = options.hostname ?? "127.0.0.1";
  const port = options.port ?? 8787;
  const where = hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
  const { token } = options;
  if (token === undefined && !isLoopback(hostname)) {
    throw new ConfigError(
      "ECONFIG",
      `Cannot serve the status page on ${where} without a token: anyone who reaches that address could read the host's table; set a token (--status-token-env NAME) or listen on 127.0.0.1`,
    );
  }
  if (token !== undefined && (token.length < STATUS_MIN_TOKEN_CHARS || /\s/.test(token))) {
    throw new ConfigError(
      "ECONFIG",
      `Cannot serve the status page with this token: it must be at least ${STATUS_MIN_TOKEN_CHARS} characters without spaces; make one with: openssl rand -hex 24`,
    );
  }
  const refreshSeconds = options.refreshSeconds ?? STATUS_REFRESH_SECONDS;
  const handler = statusHandler({ ...options, refreshSeconds });
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname,
      port,
      signal: stop.signal,
      onListen: () => {},
      onError: () => new Response("internal error\n", { status: 500, headers: SECURITY_HEADERS }),
    }, handler);
  } catch (err) {
    options.signal?.removeEventListener("abort", onAbort);
    const why = err instanceof Deno.errors.AddrInUse
      ? "the address is in use"
      : err instanceof Error
      ? err.message
      : String(err);
    throw new ConfigError(
      "ECONFIG",
      `Cannot serve the status page on ${where}: ${why}; pick another address with --status HOST:PORT`,
      { cause: err },
    );
  }
  const addr = server.addr;
  const shown = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  if (options.signal?.aborted) stop.abort();
  return {
    url: `http://${shown}:${addr.port}/`,
    close: async () => {
      options.signal?.removeEventListener("abort", onAbort);
      stop.abort();
      await server.finished;
    },
  };
}

/**
 * What the CLI calls for `host --status [ADDR]` (docs/status.md "From the command line (to be
 * wired)"): `address` is `HOST:PORT`, `[IPv6]:PORT` or a bare port, default `127.0.0.1:8787`.
 */
export async function startStatus(
  options: Omit<StatusServerOptions, "hostname" | "port"> & { address?: string },
): Promise<StatusServer> {
  const { address = STATUS_DEFAULT_ADDRESS, ...rest } = options;
  return await serveStatus({ ...rest, ...parseStatusAddress(address) });
}

/** Splits `HOST:PORT`, `[IPv6]:PORT` or `PORT` (host then 127.0.0.1); one-line error otherwise. */
export function parseStatusAddress(address: string): { hostname: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(address) ??
    /^()()(\d{1,5})$/.exec(address);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65_535) {
    throw new ConfigError(
      "ECONFIG",
      `Cannot serve the status page on "${address}": not an address; write HOST:PORT, e.g. ${STATUS_DEFAULT_ADDRESS}`,
    );
  }
  return { hostname: m[1] || m[2] || "127.0.0.1", port };
}

/** The request handler, without the listening socket (tests may call it directly). */
export function statusHandler(
  options: StatusServerOptions & { refreshSeconds: number },
): (request: Request) => Promise<Response> {
  const expected = options.token === undefined ? undefined : digest(options.token);
  let inFlight = 0;
  const handle = async (request: Request): Promise<Response> => {
    if (request.url.length > STATUS_MAX_URL_CHARS + 64) {
      return answer(414, "request target too long\n");
    }
    const url = new URL(request.url);
    const presented = bearer(request.headers.get("authorization")) ??
      url.searchParams.get("token") ?? undefined;
    if (expected !== undefined) {
      if (presented === undefined || !timingSafeEqual(digest(presented), expected)) {
        return answer(401, "a token is required: Authorization: Bearer <token> or ?token=\n", {
          "www-authenticate": 'Bearer realm="mailpeer status"',
        });
      }
    } else if (!isLoopback(hostOf(request.headers.get("host")))) {
      // Without a token only loopback names may be asked for: a web page whose name an attacker
      // points at 127.0.0.1 (DNS rebinding) must not read the page from the operator's browser.
      return answer(421, "this status page answers only for 127.0.0.1, [::1] or localhost\n");
    }
    if (request.method !== "GET" && request.method !== "HEAD") {
      return answer(405, "only GET and HEAD\n", { allow: "GET, HEAD" });
    }
    const head = request.method === "HEAD";
    // Links and the reload keep the token only when it came in the query.
    const query = url.searchParams.has("token") && expected !== undefined
      ? `?token=${encodeURIComponent(url.searchParams.get("token")!)}`
      : "";
    switch (url.pathname) {
      case "/": {
        const table = await readTable(options.table);
        const html = renderStatusPage({
          snapshot: options.status.snapshot(),
          table: table ?? { error: "this server was given no table to read" },
          operator: expected !== undefined,
          query,
          refreshSeconds: options.refreshSeconds,
          ...(options.network ? { network: options.network } : {}),
          ...(options.email ? { email: options.email } : {}),
        });
        return answer(200, html, { "content-type": "text/html; charset=utf-8" }, head);
      }
      case "/status.json":
        return answer(200, JSON.stringify(options.status.snapshot(), null, 2) + "\n", {
          "content-type": "application/json; charset=utf-8",
        }, head);
      case "/metrics": {
        const table = await readTable(options.table);
        const rows = Array.isArray(table) ? table.length : undefined;
        return answer(200, renderMetrics(options.status.snapshot(), rows), {
          "content-type": METRICS_CONTENT_TYPE,
        }, head);
      }
      default:
        return answer(404, "not found: try /, /status.json or /metrics\n");
    }
  };
  return async (request) => {
    if (inFlight >= STATUS_MAX_CONCURRENT) {
      return answer(503, "busy: too many status requests at once\n", { "retry-after": "1" });
    }
    inFlight++;
    try {
      return await handle(request);
    } finally {
      inFlight--;
    }
  };
}

/** The host name of a `Host` header (`name`, `name:port`, `[v6]:port`), lower case. */
function hostOf(header: string | null): string {
  if (header === null) return "";
  const m = /^\[([^\]]*)\](?::\d*)?$/.exec(header) ?? /^([^:]*)(?::\d*)?$/.exec(header);
  return (m?.[1] ?? header).toLowerCase();
}

async function readTable(
  table: StatusServerOptions["table"],
): Promise<PeerRow[] | { error: string } | undefined> {
  if (!table) return undefined;
  try {
    return await table();
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
}

function answer(
  status: number,
  body: string,
  headers: Record<string, string> = {},
  head = false,
): Response {
  return new Response(head ? null : body, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", ...SECURITY_HEADERS, ...headers },
  });
}

function bearer(header: string | null): string | undefined {
  const m = header === null ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1] : undefined;
}

/** Fixed-length digest, so the comparison takes the same time whatever was presented. */
function digest(value: string): Uint8Array {
  return createHash("sha256").update(value).digest();
}
