/**
 * Every value of one header field in a raw mail, topmost first (mailparser keeps only one).
 *
 * @module
 */

const decoder = new TextDecoder("utf-8", { fatal: false });

/**
 * Returns the unfolded values of every `name:` header line of `raw`, topmost first.
 *
 * @example
 * ```ts
 * const results = headerValues(raw, "Authentication-Results");
 * ```
 */
export function headerValues(raw: Uint8Array, name: string): string[] {
  const text = decoder.decode(raw.subarray(0, Math.min(raw.length, 256 * 1024)));
  const end = text.search(/\r?\n\r?\n/);
  const header = end < 0 ? text : text.slice(0, end);
  const unfolded = header.replace(/\r?\n[ \t]+/g, " ");
  const wanted = name.toLowerCase();
  const out: string[] = [];
  for (const line of unfolded.split(/\r?\n/)) {
    const colon = line.indexOf(":");
    if (colon > 0 && line.slice(0, colon).trim().toLowerCase() === wanted) {
      out.push(line.slice(colon + 1).trim());
    }
  }
  return out;
}
