/**
 * Ed25519 and X25519 key pairs over WebCrypto, as raw 32-byte keys.
 *
 * Private keys are kept as their raw 32-byte seed; WebCrypto wants PKCS#8, so they are wrapped
 * with the fixed RFC 8410 prefix on import.
 *
 * @module
 */
import { MessageError } from "../errors.ts";
import { concatBytes } from "./base64.ts";

/** A raw key pair: 32-byte public key and 32-byte private seed. */
export interface RawKeyPair {
  publicKey: Uint8Array;
  privateKey: Uint8Array;
}

// RFC 8410 PKCS#8 prefixes for a 32-byte private key.
const PKCS8_PREFIX = {
  Ed25519: new Uint8Array([
    0x30,
    0x2e,
    0x02,
    0x01,
    0x00,
    0x30,
    0x05,
    0x06,
    0x03,
    0x2b,
    0x65,
    0x70,
    0x04,
    0x22,
    0x04,
    0x20,
  ]),
  X25519: new Uint8Array([
    0x30,
    0x2e,
    0x02,
    0x01,
    0x00,
    0x30,
    0x05,
    0x06,
    0x03,
    0x2b,
    0x65,
    0x6e,
    0x04,
    0x22,
    0x04,
    0x20,
  ]),
};

function buf(bytes: Uint8Array): ArrayBuffer {
  return bytes.slice().buffer as ArrayBuffer;
}

function checkKeyLength(bytes: Uint8Array, what: string): void {
  if (bytes.length !== 32) {
    throw new MessageError(
      "EKEY",
      `Cannot use ${what}: it has ${bytes.length} bytes, not 32; check the key file or card`,
    );
  }
}

async function generate(name: "Ed25519" | "X25519"): Promise<RawKeyPair> {
  const usages: KeyUsage[] = name === "Ed25519" ? ["sign", "verify"] : ["deriveBits"];
  const pair = await crypto.subtle.generateKey({ name }, true, usages) as CryptoKeyPair;
  const publicKey = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
  return { publicKey, privateKey: pkcs8.slice(pkcs8.length - 32) };
}

/** Generates an Ed25519 key pair (identity keys, host signing keys). */
export function generateEd25519(): Promise<RawKeyPair> {
  return generate("Ed25519");
}

/** Generates an X25519 key pair (host sealing keys, reply keys, session keys). */
export function generateX25519(): Promise<RawKeyPair> {
  return generate("X25519");
}

/** Imports a raw 32-byte private seed as a WebCrypto private key. */
export function importPrivateKey(
  name: "Ed25519" | "X25519",
  seed: Uint8Array,
): Promise<CryptoKey> {
  checkKeyLength(seed, `an ${name} private key`);
  const usages: KeyUsage[] = name === "Ed25519" ? ["sign"] : ["deriveBits"];
  return crypto.subtle.importKey(
    "pkcs8",
    buf(concatBytes(PKCS8_PREFIX[name], seed)),
    { name },
    true,
    usages,
  );
}

/** Imports a raw 32-byte public key as a WebCrypto public key. */
export function importPublicKey(name: "Ed25519" | "X25519", raw: Uint8Array): Promise<CryptoKey> {
  checkKeyLength(raw, `an ${name} public key`);
  const usages: KeyUsage[] = name === "Ed25519" ? ["verify"] : [];
  return crypto.subtle.importKey("raw", buf(raw), { name }, true, usages);
}

/** Derives the public key of a raw private seed. */
export async function publicKeyOf(
  name: "Ed25519" | "X25519",
  seed: Uint8Array,
): Promise<Uint8Array> {
  const key = await importPrivateKey(name, seed);
  const jwk = await crypto.subtle.exportKey("jwk", key);
  const x = jwk.x ?? "";
  const std = x.replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(std + "=".repeat((4 - (std.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/** Signs `data` with a raw Ed25519 private seed; returns the 64-byte signature. */
export async function sign(privateKey: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
  const key = await importPrivateKey("Ed25519", privateKey);
  return new Uint8Array(await crypto.subtle.sign("Ed25519", key, buf(data)));
}

/** Verifies a 64-byte Ed25519 signature; false on any mismatch or malformed input. */
export async function verify(
  publicKey: Uint8Array,
  data: Uint8Array,
  signature: Uint8Array,
): Promise<boolean> {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  try {
    const key = await importPublicKey("Ed25519", publicKey);
    return await crypto.subtle.verify("Ed25519", key, buf(signature), buf(data));
  } catch {
    return false;
  }
}

/** X25519 shared secret (32 bytes) of a raw private seed and a raw public key. */
export async function x25519(privateKey: Uint8Array, publicKey: Uint8Array): Promise<Uint8Array> {
  const priv = await importPrivateKey("X25519", privateKey);
  const pub = await importPublicKey("X25519", publicKey);
  return new Uint8Array(await crypto.subtle.deriveBits({ name: "X25519", public: pub }, priv, 256));
}
