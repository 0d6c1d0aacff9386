/**
 * Fetches one autoconfig document over HTTPS, as hostile input: only `https:` (plain `http:`
 * only when the caller allows it for a loopback test server), a time limit, a size limit read
 * as the bytes come (a body that grows past it is cut off, whatever Content-Length claimed),
 * and redirects followed only within the same host and scheme (at most
 * `DISCOVERY_MAX_REDIRECTS`): a redirect to another host is reported, never followed
 * silently, since it would hand the choice of mail server to whoever that host is.
 *
 * @module
 */
import { isIP } from "node:net";
import {
  AUTOCONFIG_MAX_BYTES,
  DISCOVERY_MAX_REDIRECTS,
  DISCOVERY_STEP_TIMEOUT_MS,
} from "../limits.ts";

/** Options of {@link fetchAutoconfig}. */
export interface AutoconfigFetchOptions {
  /** PEM of a CA to trust besides the system roots (a test CA). */
  caCerts?: string[];
  /** Allow `http:` for a loopback address (127.0.0.0/8, ::1, localhost); for tests. Default: false. */
  allowLoopbackHttp?: boolean;
  /** Time limit of the whole fetch, redirects included, in ms. Default: `DISCOVERY_STEP_TIMEOUT_MS`. */
  timeoutMs?: number;
  /** Largest body, in bytes. Default: `AUTOCONFIG_MAX_BYTES`. */
  maxBytes?: number;
  signal?: AbortSignal;
}

/** The document, or why there is none (one phrase, for the discovery's notes). */
export type AutoconfigFetchResult = { ok: true; text: string; url: string } | {
  ok: false;
  why: string;
};

function isLoopback(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, "");
  return h === "localhost" || h === "::1" || (isIP(h) === 4 && h.startsWith("127."));
}

/** Why `url` may not be fetched, or undefined. */
function urlProblem(url: URL, options: AutoconfigFetchOptions): string | undefined {
  if (url.protocol === "https:") return undefined;
  if (url.protocol === "http:" && options.allowLoopbackHttp && isLoopback(url.hostname)) {
    return undefined;
  }
  return `${url.protocol}// is not fetched (only https://)`;
}

/** Reads at most `max` bytes of a body; undefined when it is longer. */
async function readLimited(
  body: ReadableStream<Uint8Array>,
  max: number,
): Promise<Uint8Array | undefined> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > max) return undefined;
      chunks.push(value);
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  return all;
}

/**
 * Fetches `address` within the limits; resolves `{ ok: false, why }` for every failure (no
 * answer, a status other than 200, too large, a redirect elsewhere, not UTF-8), never throws
 * for what the server did.
 */
export async function fetchAutoconfig(
  address: string,
  options: AutoconfigFetchOptions = {},
): Promise<AutoconfigFetchResult> {
  const max = options.maxBytes ?? AUTOCONFIG_MAX_BYTES;
  const limit = AbortSignal.timeout(options.timeoutMs ?? DISCOVERY_STEP_TIMEOUT_MS);
  const signal = options.signal ? AbortSignal.any([limit, options.signal]) : limit;
  const client = options.caCerts ? Deno.createHttpClient({ caCerts: options.caCerts }) : undefined;
  let url: URL;
  try {
    url = new URL(address);
  } catch {
    return { ok: false, why: `${JSON.stringify(address.slice(0, 100))} is not a URL` };
  }
  try {
    for (let hop = 0;; hop++) {
      const problem = urlProblem(url, options);
      if (problem) return { ok: false, why: `${url.href}: ${problem}` };
      let response: Response;
      try {
        response = await fetch(url, {
          redirect: "manual",
          signal,
          headers: { accept: "application/xml, text/xml" },
          ...(client ? { client } : {}),
        });
      } catch (err) {
        const why = limit.aborted
          ? "no answer in time"
          : (err instanceof Error ? err.message : String(err)).split("\n")[0]!.slice(0, 200);
        return { ok: false, why: `${url.href}: ${why}` };
      }
      if (response.status >= 300 && response.status < 400) {
        await response.body?.cancel();
        const location = response.headers.get("location");
        let next: URL | undefined;
        try {
          next = location ? new URL(location, url) : undefined;
        } catch {
          next = undefined;
        }
        if (!next) return { ok: false, why: `${url.href}: a redirect without a usable Location` };
        if (next.host !== url.host || next.protocol !== url.protocol) {
          return {
            ok: false,
            why: `${url.href} redirects to ${next.origin}, another host: not followed`,
          };
        }
        if (hop >= DISCOVERY_MAX_REDIRECTS) {
          return { ok: false, why: `${url.href}: more than ${DISCOVERY_MAX_REDIRECTS} redirects` };
        }
        url = next;
        continue;
      }
      if (response.status !== 200 || !response.body) {
        await response.body?.cancel();
        return { ok: false, why: `${url.href}: HTTP status ${response.status}` };
      }
      const declared = Number(response.headers.get("content-length") ?? "0");
      if (declared > max) {
        await response.body.cancel();
        return { ok: false, why: `${url.href}: the document is larger than ${max} bytes` };
      }
      let bytes: Uint8Array | undefined;
      try {
        bytes = await readLimited(response.body, max);
      } catch {
        return { ok: false, why: `${url.href}: the answer broke off or took too long` };
      }
      if (!bytes) {
        return { ok: false, why: `${url.href}: the document is larger than ${max} bytes` };
      }
      try {
        return {
          ok: true,
          text: new TextDecoder("utf-8", { fatal: true }).decode(bytes),
          url: url.href,
        };
      } catch {
        return { ok: false, why: `${url.href}: the document is not UTF-8 text` };
      }
    }
  } finally {
    client?.close();
  }
}
