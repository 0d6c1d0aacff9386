/**
 * Base64 and base64url helpers (RFC 4648) for keys and coded blocks. Encoding and decoding run
 * in node:buffer's native code (a host encodes every row's keys on each table update: the
 * string-building version was 3 % of a request's CPU); the checks on input are ours.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { MessageError } from "../errors.ts";

function nodeBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Encodes bytes as standard base64 with padding. */
export function toBase64(bytes: Uint8Array): string {
  return nodeBuffer(bytes).toString("base64");
}

/** Decodes standard base64; throws `MessageError` `EBLOCK` on anything else. */
export function fromBase64(text: string): Uint8Array {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) {
    throw new MessageError(
      "EBLOCK",
      "Cannot decode base64: invalid characters or length; the text was altered or truncated",
    );
  }
  return new Uint8Array(Buffer.from(text, "base64"));
}

/** Encodes bytes as base64url without padding. */
export function toBase64Url(bytes: Uint8Array): string {
  return nodeBuffer(bytes).toString("base64url");
}

/** Decodes base64url without padding; throws `MessageError` `EBLOCK` on anything else. */
export function fromBase64Url(text: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) {
    throw new MessageError(
      "EBLOCK",
      "Cannot decode base64url: invalid characters or length; the text was altered or truncated",
    );
  }
  const std = text.replace(/-/g, "+").replace(/_/g, "/");
  return fromBase64(std + "=".repeat((4 - (std.length % 4)) % 4));
}
