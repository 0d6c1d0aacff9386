/**
 * Reads `Authentication-Results` header fields (RFC 8601) and decides whether the sender of
 * a mail is verified, so that a host replies only to From addresses that really sent the
 * request and cannot be made to mail a third party.
 *
 * Trust comes from the host's own mail server: only header fields whose authserv-id is the
 * one of that server count (RFC 8601 §5). The server must remove incoming
 * `Authentication-Results` fields that carry its authserv-id, or a sender could forge one.
 *
 * @module
 */

/** One `method=result` statement of an `Authentication-Results` field. */
export interface AuthResult {
  /** The method in lower case, e.g. `"spf"`, `"dkim"`, `"dmarc"`. */
  method: string;
  /** The result in lower case, e.g. `"pass"`, `"fail"`, `"none"`. */
  result: string;
  /** The `reason=` value, when given. */
  reason?: string;
  /** Properties keyed `ptype.property` in lower case, e.g. `"smtp.mailfrom"`, `"header.d"`. */
  props: Record<string, string>;
}

/** A parsed `Authentication-Results` field value. */
export interface AuthResultsHeader {
  /** Who made the checks, e.g. `"mx.example.org"`, as written. */
  authservId: string;
  /** The version number after the authserv-id, when given. */
  version?: number;
  /** The statements; empty for `none`. */
  results: AuthResult[];
}

/** Longest field value parsed; longer ones are garbage for our purposes. */
const MAX_VALUE_LENGTH = 64 * 1024;
const WSP = /[ \t\r\n]/;
const KEYWORD = /[A-Za-z0-9_-]/;
/** Characters that end a token or an unquoted value (besides white space and controls). */
const DELIMITERS = new Set([";", "(", ")", '"', "="]);

/** A cursor over a field value. Every read returns undefined on malformed input. */
class Scanner {
  pos = 0;
  constructor(readonly text: string) {}

  get done(): boolean {
    return this.pos >= this.text.length;
  }

  peek(): string | undefined {
    return this.text[this.pos];
  }

  /** Skips white space and (nested) comments; false on an unterminated comment. */
  skipCFWS(): boolean {
    while (!this.done) {
      const c = this.text[this.pos]!;
      if (WSP.test(c)) {
        this.pos++;
      } else if (c === "(") {
        let depth = 0;
        do {
          const d = this.text[this.pos++];
          if (d === undefined) return false;
          if (d === "\\") this.pos++;
          else if (d === "(") depth++;
          else if (d === ")") depth--;
        } while (depth > 0);
      } else {
        break;
      }
    }
    return true;
  }

  /** Reads `[CFWS] char [CFWS]`; false when `char` is not next. */
  expect(char: string): boolean {
    if (!this.skipCFWS() || this.peek() !== char) return false;
    this.pos++;
    return this.skipCFWS();
  }

  keyword(): string | undefined {
    const start = this.pos;
    while (!this.done && KEYWORD.test(this.text[this.pos]!)) this.pos++;
    return this.pos > start ? this.text.slice(start, this.pos).toLowerCase() : undefined;
  }

  digits(): number | undefined {
    const match = /^\d{1,9}/.exec(this.text.slice(this.pos, this.pos + 10));
    if (match === null) return undefined;
    this.pos += match[0].length;
    return Number(match[0]);
  }

  quoted(): string | undefined {
    let out = "";
    for (this.pos++; !this.done; this.pos++) {
      const c = this.text[this.pos]!;
      if (c === '"') {
        this.pos++;
        return out;
      }
      if (c === "\\") this.pos++;
      out += this.text[this.pos] ?? "";
    }
    return undefined;
  }

  /** Reads a token; `extra` lists delimiters it may contain anyway. */
  token(extra = ""): string | undefined {
    const start = this.pos;
    while (!this.done) {
      const c = this.text[this.pos]!;
      if (WSP.test(c) || c < " " || c === "\x7f") break;
      if (DELIMITERS.has(c) && !extra.includes(c)) break;
      this.pos++;
    }
    return this.pos > start ? this.text.slice(start, this.pos) : undefined;
  }

  /** A `value` (token or quoted-string); a quoted local-part may be followed by `@domain`. */
  value(extra = ""): string | undefined {
    if (this.peek() !== '"') return this.token(extra);
    const quoted = this.quoted();
    if (quoted === undefined || this.peek() !== "@") return quoted;
    const rest = this.token(extra);
    return rest === undefined ? undefined : `${quoted}${rest}`;
  }
}

/** Reads `method[/version]=result [reason=...] *(ptype.property=value)` after a `;`. */
function parseResinfo(s: Scanner): AuthResult | "none" | undefined {
  const method = s.keyword();
  if (method === undefined || !s.skipCFWS()) return undefined;
  if (method === "none" && (s.done || s.peek() === ";")) return "none";
  if (s.peek() === "/") {
    if (!s.expect("/") || s.digits() === undefined) return undefined;
  }
  if (!s.expect("=")) return undefined;
  const result = s.keyword();
  if (result === undefined) return undefined;
  const out: AuthResult = { method, result, props: {} };
  for (;;) {
    if (!s.skipCFWS()) return undefined;
    if (s.done || s.peek() === ";") return out;
    const name = s.keyword();
    if (name === undefined || !s.skipCFWS()) return undefined;
    if (name === "reason" && s.peek() === "=") {
      if (!s.expect("=")) return undefined;
      const reason = s.value();
      if (reason === undefined) return undefined;
      out.reason = reason;
      continue;
    }
    if (!s.expect(".")) return undefined;
    const property = s.keyword();
    if (property === undefined || !s.expect("=")) return undefined;
    // Lenient: a header.b value is base64 and may hold "=" padding.
    const value = s.value("=");
    if (value === undefined) return undefined;
    out.props[`${name}.${property}`] = value;
  }
}

/**
 * Parses the value of one `Authentication-Results` header field (RFC 8601 §2.2).
 *
 * Handles comments (nested), quoted strings, folding white space, a version number, `none`,
 * and any case of method, result and property type names (returned in lower case).
 * Returns `undefined` for anything it cannot read completely; it never throws.
 *
 * @example Read an SPF result
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseAuthenticationResults } from "./auth_results.ts";
 *
 * const header = parseAuthenticationResults(
 *   "mx.example.org; SPF=pass (sender IP is 192.0.2.1) smtp.mailfrom=alice@example.net",
 * );
 * assert.deepEqual(header, {
 *   authservId: "mx.example.org",
 *   results: [{ method: "spf", result: "pass", props: { "smtp.mailfrom": "alice@example.net" } }],
 * });
 * ```
 *
 * @param value The field value, with or without folding.
 * @returns The parsed field, or `undefined` when the value is malformed.
 */
export function parseAuthenticationResults(value: string): AuthResultsHeader | undefined {
  if (typeof value !== "string" || value.length > MAX_VALUE_LENGTH) return undefined;
  const s = new Scanner(value);
  if (!s.skipCFWS()) return undefined;
  const authservId = s.value();
  if (authservId === undefined || authservId === "" || !s.skipCFWS()) return undefined;
  const header: AuthResultsHeader = { authservId, results: [] };
  if (!s.done && s.peek() !== ";") {
    const version = s.digits();
    if (version === undefined || !s.skipCFWS()) return undefined;
    header.version = version;
  }
  let sawNone = false;
  while (!s.done) {
    if (!s.expect(";")) return undefined;
    if (s.done) break; // a trailing ";" is common and harmless
    const resinfo = parseResinfo(s);
    if (resinfo === undefined) return undefined;
    if (resinfo === "none") sawNone = true;
    else header.results.push(resinfo);
  }
  if (!sawNone && header.results.length === 0) return undefined;
  return header;
}

/** Options of {@linkcode senderVerified}. */
export interface SenderVerifiedOptions {
  /** The authserv-id of the host's own mail server; matched case-insensitively. */
  authservId: string;
  /** The From address (`alice@example.net` or `Alice <alice@example.net>`). */
  from: string;
}

/** The domain of an address or bare domain, lower case without a trailing dot. */
function domainOf(address: string): string {
  const angle = /<([^<>]*)>/.exec(address);
  const bare = (angle?.[1] ?? address).trim();
  return bare.slice(bare.lastIndexOf("@") + 1).trim().toLowerCase().replace(/\.$/, "");
}

/** Equal domains, or one a subdomain of the other; the shorter needs two labels or more. */
function aligned(a: string | undefined, b: string): boolean {
  if (a === undefined || a === "" || b === "") return false;
  if (a === b) return true;
  const [short, long] = a.length < b.length ? [a, b] : [b, a];
  return short.includes(".") && long.endsWith(`.${short}`);
}

/** Methods whose pass can verify the From domain. */
const VOUCHING: ReadonlySet<string> = new Set(["spf", "dkim", "dmarc"]);

/** The domain a result vouches for, or undefined when it names none. */
function vouchedDomain(r: AuthResult): string | undefined {
  const raw = r.method === "spf"
    ? r.props["smtp.mailfrom"]
    : r.method === "dkim"
    ? r.props["header.d"] ?? r.props["header.i"]
    : r.method === "dmarc"
    ? r.props["header.from"]
    : undefined;
  return raw === undefined ? undefined : domainOf(raw);
}

/**
 * Decides whether a mail's sender is verified by the host's own mail server.
 *
 * Only fields whose authserv-id equals `options.authservId` count; others may be forged by
 * anyone and are ignored (RFC 8601 §5). The sender is verified when such a field has
 * `spf=pass` whose `smtp.mailfrom` domain, or `dkim=pass` whose `header.d` (or `header.i`)
 * domain, or `dmarc=pass` whose `header.from` domain, is aligned with the From domain: equal,
 * or one a subdomain of the other (the shorter having at least two labels).
 *
 * @example Accept an aligned SPF pass, ignore a forged field
 * ```ts
 * import assert from "node:assert/strict";
 * import { senderVerified } from "./auth_results.ts";
 *
 * const fields = [
 *   "evil.test; dkim=pass header.d=b.test",
 *   "mx.host.test; spf=pass smtp.mailfrom=bob@a.test",
 * ];
 * const authservId = "mx.host.test";
 * assert.deepEqual(senderVerified(fields, { authservId, from: "Bob <bob@a.test>" }), {
 *   ok: true,
 *   reason: "spf=pass for a.test, aligned with From a.test",
 * });
 * assert.equal(senderVerified(fields, { authservId, from: "eve@b.test" }).ok, false);
 * ```
 *
 * @param headerValues All `Authentication-Results` field values of the mail, topmost first.
 * @param options Whose results to trust and the From address to check.
 * @returns `ok` and a one-line reason either way.
 */
export function senderVerified(
  headerValues: readonly string[],
  options: SenderVerifiedOptions,
): { ok: boolean; reason: string } {
  const id = options.authservId.toLowerCase();
  const fromDomain = domainOf(options.from);
  if (!options.from.includes("@") || fromDomain === "") {
    return { ok: false, reason: `From address ${JSON.stringify(options.from)} has no domain` };
  }
  const ours = headerValues
    .map(parseAuthenticationResults)
    .filter((h) => h !== undefined && h.authservId.toLowerCase() === id);
  if (ours.length === 0) {
    const others = headerValues.length === 0 ? "" : ` (${headerValues.length} other(s) ignored)`;
    return { ok: false, reason: `no Authentication-Results from ${options.authservId}${others}` };
  }
  const results = ours.flatMap((h) => h!.results).filter((r) => VOUCHING.has(r.method));
  const named = (r: AuthResult) => vouchedDomain(r) ?? "no domain";
  const pass = results.find((r) => r.result === "pass" && aligned(vouchedDomain(r), fromDomain));
  if (pass !== undefined) {
    const reason = `${pass.method}=pass for ${named(pass)}, aligned with From ${fromDomain}`;
    return { ok: true, reason };
  }
  const spf = results.filter((r) => r.method === "spf").map((r) => {
    const note = r.result === "pass" ? ` (not aligned with ${fromDomain})` : "";
    return `spf=${r.result} for ${named(r)}${note}`;
  });
  const dkim = results.filter((r) => r.method === "dkim" && r.result === "pass")
    .map((r) => ` (dkim=pass for ${named(r)} is not aligned)`);
  const spfText = spf.length > 0 ? spf.join(", ") : "no spf result";
  return { ok: false, reason: `${spfText} and no aligned dkim=pass${dkim.join("")}` };
}
