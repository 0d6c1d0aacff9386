/**
 * Ed25519 and X25519 key pairs as raw 32-byte keys: generated, and used for signing, verifying
 * and X25519 agreement, on node:crypto's synchronous `KeyObject`s, which cost a third to a
 * fifth of the CPU of the same WebCrypto calls (each of those is a key handle and a promise
 * resolved from another thread; measured in docs/performance.md "Host: capacity, CPU per
 * request"; generating an X25519 pair: 27 µs against WebCrypto's 185 µs with its two exports,
 * which was an eighth of a peer handshake). The bytes are the same: Ed25519 is deterministic,
 * X25519 a function.
 *
 * Private keys are kept as their raw 32-byte seed; WebCrypto and node:crypto want PKCS#8, so
 * they are wrapped with the fixed RFC 8410 prefix on import.
 *
 * Imports are cached, so a host does not re-import its keys for every block:
 * - a private seed's keys (a non-extractable `CryptoKey`, a `KeyObject`, the derived public key)
 *   are cached per `Uint8Array` object in a `WeakMap`, with a copy of the bytes that must still
 *   match on every use, so a seed changed in place is imported afresh and the entry dies with
 *   the array;
 * - Ed25519 verification keys, which strangers choose, are kept in a least-recently-used map of
 *   at most `VERIFY_KEY_CACHE_SIZE` entries keyed by all 32 bytes (base64).
 *
 * @module
 */
import {
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  type KeyObject,
  sign as nodeSign,
  verify as nodeVerify,
} from "node:crypto";
import { MessageError } from "../errors.ts";
import { VERIFY_KEY_CACHE_SIZE } from "../limits.ts";
import { toBase64 } from "./base64.ts";
import { bytesEqual } from "./bytes.ts";

type Algorithm = "Ed25519" | "X25519";

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

// RFC 8410 SubjectPublicKeyInfo prefixes for a 32-byte public key.
const SPKI_PREFIX = {
  Ed25519: new Uint8Array([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]),
  X25519: new Uint8Array([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00]),
};

function wrapped(prefix: Uint8Array, key: Uint8Array): Uint8Array {
  const der = new Uint8Array(prefix.length + key.length);
  der.set(prefix);
  der.set(key, prefix.length);
  return der;
}

/** A raw 32-byte private seed as a node:crypto private key. */
function seedObject(name: Algorithm, seed: Uint8Array): KeyObject {
  const der = wrapped(PKCS8_PREFIX[name], seed);
  try {
    return createPrivateKey({ key: der as Buffer, format: "der", type: "pkcs8" });
  } finally {
    der.fill(0);
  }
}

/** A raw 32-byte public key as a node:crypto public key (checked for its length first). */
export function publicKeyObject(name: Algorithm, raw: Uint8Array): KeyObject {
  checkKeyLength(raw, `an ${name} public key`);
  return createPublicKey({
    key: wrapped(SPKI_PREFIX[name], raw) as Buffer,
    format: "der",
    type: "spki",
  });
}

/** The raw 32 bytes of a node:crypto public key (the end of its SubjectPublicKeyInfo). */
export function rawPublicKey(key: KeyObject): Uint8Array {
  const der = key.export({ format: "der", type: "spki" });
  return new Uint8Array(der.subarray(der.length - 32));
}

/**
 * X25519 agreement on node:crypto, refusing an all-zero result (a small-order public key), as
 * WebCrypto and RFC 9180 §7.1.4 do.
 */
export function x25519Agree(privateKey: KeyObject, publicKey: KeyObject): Uint8Array {
  const shared = new Uint8Array(diffieHellman({ privateKey, publicKey }));
  if (shared.every((b) => b === 0)) {
    throw new MessageError(
      "EKEY",
      "Cannot agree on an X25519 secret: the public key is of small order; the key is forged or damaged",
    );
  }
  return shared;
}

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

/**
 * A new key pair from node:crypto. Its private `KeyObject` goes into the seed cache, so the
 * first agreement or signature with the new seed (a handshake's ephemeral key) imports nothing.
 */
function generate(name: Algorithm): Promise<RawKeyPair> {
  try {
    const pair = name === "Ed25519"
      ? generateKeyPairSync("ed25519")
      : generateKeyPairSync("x25519");
    const publicKey = rawPublicKey(pair.publicKey);
    const pkcs8 = pair.privateKey.export({ format: "der", type: "pkcs8" });
    const privateKey = new Uint8Array(pkcs8.subarray(pkcs8.length - 32));
    pkcs8.fill(0);
    seedCache[name].set(privateKey, new SeedEntry(name, privateKey, pair.privateKey, publicKey));
    return Promise.resolve({ publicKey, privateKey });
  } catch (err) {
    return Promise.reject(err);
  }
}

/** Generates an Ed25519 key pair (identity keys, host signing keys). */
export function generateEd25519(): Promise<RawKeyPair> {
  return generate("Ed25519");
}

/** Generates an X25519 key pair (host sealing keys, reply keys, session keys). */
export function generateX25519(): Promise<RawKeyPair> {
  return generate("X25519");
}

function importSeed(name: Algorithm, seed: Uint8Array, extractable: boolean): Promise<CryptoKey> {
  checkKeyLength(seed, `an ${name} private key`);
  const usages: KeyUsage[] = name === "Ed25519" ? ["sign"] : ["deriveBits"];
  const pkcs8 = new Uint8Array(PKCS8_PREFIX[name].length + seed.length);
  pkcs8.set(PKCS8_PREFIX[name]);
  pkcs8.set(seed, PKCS8_PREFIX[name].length);
  return crypto.subtle.importKey("pkcs8", pkcs8.buffer, { name }, extractable, usages)
    .finally(() => pkcs8.fill(0));
}

/** Imports a raw 32-byte private seed as a WebCrypto private key (extractable). */
export function importPrivateKey(name: Algorithm, seed: Uint8Array): Promise<CryptoKey> {
  return importSeed(name, seed, true);
}

/** Imports a raw 32-byte public key as a WebCrypto public key. */
export function importPublicKey(name: Algorithm, raw: Uint8Array): Promise<CryptoKey> {
  checkKeyLength(raw, `an ${name} public key`);
  const usages: KeyUsage[] = name === "Ed25519" ? ["verify"] : [];
  return crypto.subtle.importKey("raw", buf(raw), { name }, true, usages);
}

/** Runs `make` once and keeps its promise, unless it fails: then the next call tries again. */
function memo<T>(make: () => Promise<T>): () => Promise<T> {
  let kept: Promise<T> | undefined;
  return () => {
    if (kept === undefined) {
      const made = make();
      kept = made;
      made.catch(() => {
        if (kept === made) kept = undefined;
      });
    }
    return kept;
  };
}

/** What is cached for one private seed: a copy of it and its lazily made keys. */
class SeedEntry {
  readonly seed: Uint8Array;
  /** The seed as a non-extractable WebCrypto private key. */
  readonly privateKey: () => Promise<CryptoKey>;
  /** The raw public key of the seed. */
  readonly publicKey: () => Promise<Uint8Array>;
  /** The seed as a node:crypto private key. */
  readonly keyObject: () => KeyObject;
  /** For X25519: the private key with its public key imported (extractable, for HPKE). */
  readonly keyPair: () => Promise<CryptoKeyPair>;

  /** `object` and `publicKey`, when given, are the seed's keys already made (a new pair). */
  constructor(name: Algorithm, seed: Uint8Array, object?: KeyObject, publicKey?: Uint8Array) {
    const copy = seed.slice();
    this.seed = copy;
    this.privateKey = memo(() => importSeed(name, copy, false));
    this.keyObject = () => object ??= seedObject(name, copy);
    const known = publicKey?.slice();
    this.publicKey = memo(() =>
      Promise.resolve().then(() => known ?? rawPublicKey(createPublicKey(this.keyObject())))
    );
    this.keyPair = memo(async () => ({
      privateKey: await this.privateKey(),
      publicKey: await importPublicKey(name, await this.publicKey()),
    }));
  }
}

const seedCache: Record<Algorithm, WeakMap<Uint8Array, SeedEntry>> = {
  Ed25519: new WeakMap(),
  X25519: new WeakMap(),
};

/** The cache entry of `seed`, made afresh when the array is new or its bytes have changed. */
function seedEntry(name: Algorithm, seed: Uint8Array): SeedEntry {
  checkKeyLength(seed, `an ${name} private key`);
  const cache = seedCache[name];
  let entry = cache.get(seed);
  if (entry === undefined || !bytesEqual(entry.seed, seed)) {
    entry = new SeedEntry(name, seed);
    cache.set(seed, entry);
  }
  return entry;
}

const verifyKeys = new Map<string, KeyObject>();

/** The verification key of `raw`, from the cache or imported (throws when it cannot be). */
function verifyKey(raw: Uint8Array): KeyObject {
  const id = toBase64(raw);
  let key = verifyKeys.get(id);
  if (key !== undefined) {
    verifyKeys.delete(id);
  } else {
    key = publicKeyObject("Ed25519", raw);
    if (verifyKeys.size >= VERIFY_KEY_CACHE_SIZE) {
      verifyKeys.delete(verifyKeys.keys().next().value!);
    }
  }
  verifyKeys.set(id, key);
  return key;
}

/** How many Ed25519 verification keys are cached now (for tests). */
export function verifyKeyCacheSize(): number {
  return verifyKeys.size;
}

/** Derives the public key of a raw private seed. */
export async function publicKeyOf(name: Algorithm, seed: Uint8Array): Promise<Uint8Array> {
  return (await seedEntry(name, seed).publicKey()).slice();
}

/**
 * The X25519 key pair of a raw private seed as WebCrypto keys, cached: the private key is not
 * extractable, the public key is derived from the seed.
 */
export async function x25519KeyPair(seed: Uint8Array): Promise<CryptoKeyPair> {
  return await seedEntry("X25519", seed).keyPair();
}

/** Signs `data` with a raw Ed25519 private seed; returns the 64-byte signature. */
export function sign(privateKey: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
  try {
    const key = seedEntry("Ed25519", privateKey).keyObject();
    return Promise.resolve(new Uint8Array(nodeSign(null, data, key)));
  } catch (err) {
    return Promise.reject(err);
  }
}

/** Verifies a 64-byte Ed25519 signature; false on any mismatch or malformed input. */
export async function verify(
  publicKey: Uint8Array,
  data: Uint8Array,
  signature: Uint8Array,
): Promise<boolean> {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  try {
    return await Promise.resolve(nodeVerify(null, data, verifyKey(publicKey), signature));
  } catch {
    return false;
  }
}

/** X25519 shared secret (32 bytes) of a raw private seed and a raw public key. */
export function x25519(privateKey: Uint8Array, publicKey: Uint8Array): Promise<Uint8Array> {
  try {
    const priv = seedEntry("X25519", privateKey).keyObject();
    return Promise.resolve(x25519Agree(priv, publicKeyObject("X25519", publicKey)));
  } catch (err) {
    return Promise.reject(err);
  }
}

/**
 * The X25519 private key of a raw seed as a node:crypto key, and its raw public key; cached
 * like {@link x25519KeyPair} (for the HPKE suite's node:crypto KEM).
 */
export async function x25519KeyObjects(
  seed: Uint8Array,
): Promise<{ privateKey: KeyObject; publicKey: Uint8Array }> {
  const entry = seedEntry("X25519", seed);
  return { privateKey: entry.keyObject(), publicKey: await entry.publicKey() };
}
