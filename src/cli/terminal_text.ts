/**
 * Text from peers and mail made safe for the user's terminal. A peer controls its chat lines
 * (and its user id, disconnect reasons, file names); printed raw, an escape sequence could
 * retitle the window, clear or rewrite the screen, fake earlier output with a carriage return,
 * or reorder what is shown with a bidi override.
 *
 * - {@link printable}: for narration and chat on a terminal. Escape sequences (CSI, OSC, DCS,
 *   SOS, PM, APC and two-byte ESC sequences, in their 7-bit and C1 forms) are removed; any other
 *   C0 control but tab and newline, DEL, C1 control and bidi embedding/override/isolate
 *   (U+202A–U+202E, U+2066–U+2069) becomes U+FFFD, so the reader sees that something was there.
 * - {@link jsonLine}: for `--json`. The value is unchanged (a program gets the exact text), but
 *   every such character is written as a `\uXXXX` escape, so the line itself is inert too.
 *
 * @module
 */

const SEQUENCE = new RegExp(
  [
    "\\x1b\\[[0-?]*[ -/]*[@-~]", // CSI
    "\\x9b[0-?]*[ -/]*[@-~]", // C1 CSI
    "(?:\\x1b\\]|\\x9d)[^\\x07\\x1b\\x9c]*(?:\\x07|\\x1b\\\\|\\x9c)?", // OSC … BEL or ST
    "(?:\\x1b[PX^_]|[\\x90\\x98\\x9e\\x9f])[^\\x07\\x1b\\x9c]*(?:\\x07|\\x1b\\\\|\\x9c)?", // DCS SOS PM APC
    "\\x1b[ -/]*[0-~]", // other ESC sequences
  ].join("|"),
  "g",
);
// deno-lint-ignore no-control-regex
const ACTIVE = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g;
const JSON_ACTIVE = /[\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]/g;

/**
 * `text` without escape sequences, with other control characters (but tab and newline) and bidi
 * overrides replaced by U+FFFD.
 *
 * @example
 * ```ts
 * import { printable } from "./terminal_text.ts";
 * printable("\x1b[2Jhi\rthere"); // "hi\uFFFDthere"
 * ```
 */
export function printable(text: string): string {
  return text.replace(SEQUENCE, "").replace(ACTIVE, "\uFFFD");
}

/** `JSON.stringify(value)` with DEL, C1, bidi controls and line separators as `\uXXXX`. */
export function jsonLine(value: unknown): string {
  return JSON.stringify(value).replace(
    JSON_ACTIVE,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}
