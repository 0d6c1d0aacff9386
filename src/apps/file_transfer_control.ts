/**
 * The messages of a file transfer (protocol in `docs/apps.md`, flow in file_transfer.ts): the
 * tag byte that starts every message, the JSON control messages and their strict reading, and
 * the sanitising of a received file name.
 *
 * @module
 */
import { PeerError } from "../errors.ts";
import { MAX_FRAGMENT_BYTES } from "../peer/session_link.ts";
import type { PeerLink } from "../peer/types.ts";

/** Tag byte of a JSON control message. */
export const CONTROL_TAG = 1;
/** Tag byte of a message carrying file bytes. */
export const CHUNK_TAG = 2;
/** Default chunk size: the largest that still fits one DATA frame with its tag byte. */
export const DEFAULT_CHUNK_BYTES = MAX_FRAGMENT_BYTES - 1;
const MAX_CONTROL_BYTES = 64 * 1024;
const MAX_NAME_CHARS = 4096;
const MAX_NAME_BYTES = 200;
const FALLBACK_NAME = "received-file";

/** A control message (tag {@link CONTROL_TAG}). */
export type Control =
  /** No `size`: a stream of unknown length (docs/apps.md "Streams of unknown length"). */
  | { kind: "file"; name: string; size?: number; sha256?: string }
  | { kind: "ready" }
  | { kind: "end"; size: number; sha256: string }
  | { kind: "ack"; ok: boolean; reason?: string }
  | { kind: "cancel"; reason?: string };

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** A control message as sent: its tag byte, then its JSON. */
export function encodeControl(control: Control): Uint8Array {
  const json = encoder.encode(JSON.stringify(control));
  const out = new Uint8Array(1 + json.length);
  out[0] = CONTROL_TAG;
  out.set(json, 1);
  return out;
}

/** The `EFRAME` error of a message that breaks the protocol. */
export function malformed(what: string): PeerError {
  return new PeerError(
    "EFRAME",
    `Cannot read a file transfer message: ${what}; the peer is not a compatible mailpeer peer`,
  );
}

const isSize = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;
const isHex = (s: unknown): s is string => typeof s === "string" && /^[0-9a-f]{64}$/.test(s);

/** Parses a control message strictly; anything unexpected is `EFRAME`. */
export function decodeControl(message: Uint8Array): Control {
  if (message[0] !== CONTROL_TAG) throw malformed("file bytes where a control message belongs");
  if (message.length > MAX_CONTROL_BYTES) throw malformed("an oversized control message");
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(decoder.decode(message.subarray(1)));
  } catch (err) {
    throw new PeerError(
      "EFRAME",
      "Cannot read a file transfer message: it is not JSON; the peer is not compatible",
      { cause: err },
    );
  }
  if (typeof value !== "object" || value === null) {
    throw malformed("a control message not an object");
  }
  switch (value.kind) {
    case "file":
      if (typeof value.name !== "string" || value.name.length > MAX_NAME_CHARS) {
        throw malformed("a file header without a usable name");
      }
      if (value.size !== undefined && !isSize(value.size)) {
        throw malformed("a file header without a usable size");
      }
      if (value.sha256 !== undefined && !isHex(value.sha256)) throw malformed("a bad sha256");
      return value as Control;
    case "end":
      if (!isSize(value.size) || !isHex(value.sha256)) throw malformed("a bad end message");
      return value as Control;
    case "ack":
      if (typeof value.ok !== "boolean") throw malformed("an ack without ok");
      return { kind: "ack", ok: value.ok, reason: String(value.reason ?? "").slice(0, 200) };
    case "ready":
      return { kind: "ready" };
    case "cancel":
      return { kind: "cancel", reason: String(value.reason ?? "").slice(0, 200) };
    default:
      throw malformed(`an unknown control message kind`);
  }
}

/** Receives the next message, which must be a control message; a disconnect is `EPEER`. */
export async function receiveControl(link: PeerLink, what: string, signal?: AbortSignal) {
  const message = await link.receive({ signal });
  if (message === null) {
    throw new PeerError(
      "EPEER",
      `Cannot ${what}: the peer disconnected; connect again and retry`,
    );
  }
  return decodeControl(message);
}

/**
 * Makes a received file name safe to create inside the target directory: the last path
 * component only, without control or bidi characters, without leading dots or spaces, with
 * `<>:"|?*` replaced by `_`, at most 200 UTF-8 bytes. An empty result becomes "received-file".
 *
 * @example
 * ```ts
 * sanitizeFileName("../../etc/passwd"); // "passwd"
 * sanitizeFileName(".bashrc"); // "bashrc"
 * ```
 */
export function sanitizeFileName(name: string): string {
  const last = name.split(/[/\\]/).filter((part) => part !== "").pop() ?? "";
  let clean = last
    // deno-lint-ignore no-control-regex
    .replace(/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, "")
    .replace(/[<>:"|?*]/g, "_")
    .replace(/^[.\s]+/, "")
    .replace(/[.\s]+$/, "");
  while (encoder.encode(clean).length > MAX_NAME_BYTES) clean = [...clean].slice(0, -1).join("");
  return clean === "" ? FALLBACK_NAME : clean;
}
