/**
 * AES-256-GCM for the session (DESIGN §6): two implementations that produce the same bytes.
 *
 * - `webcrypto` (the default): `crypto.subtle`, needs no permission. In Deno it is a portable
 *   Rust implementation that runs at roughly 100–200 MB/s per core.
 * - `openssl`: the system's OpenSSL 3 libcrypto through Deno FFI, synchronous, with AES-NI and
 *   carry-less multiply (about 1–4 GB/s per core). It is used only when the process already
 *   holds the `ffi` permission (this module never asks for it) and libcrypto loads; otherwise
 *   `webcrypto` is used. Both seal `ciphertext || 16-byte tag` with a 12-byte nonce and the
 *   same additional data, so the two ends of a link may use different implementations.
 *
 * @module
 */

/** Bytes of the GCM authentication tag. */
export const TAG_BYTES = 16;

/** Which implementation to use; `auto` picks `openssl` when it is available. */
export type AesGcmImplementation = "auto" | "webcrypto" | "openssl";

/** One direction's AES-256-GCM key, as a WebCrypto key and (for OpenSSL) its raw bytes. */
export interface AesGcmKeyMaterial {
  key: CryptoKey;
  raw?: Uint8Array;
}

/** Seals and opens with one key. Results may be synchronous (OpenSSL) or promises. */
export interface AesGcmKey {
  readonly implementation: "webcrypto" | "openssl";
  /**
   * Encrypts the concatenation of `parts` into `out`, which must hold exactly the plaintext
   * length plus {@link TAG_BYTES}: the ciphertext, then the tag.
   */
  seal(
    nonce: Uint8Array,
    aad: Uint8Array,
    parts: readonly Uint8Array[],
    out: Uint8Array,
  ): void | Promise<void>;
  /**
   * Decrypts `ciphertext || tag`; null when it does not authenticate. With `inPlace` the
   * plaintext may overwrite the start of `sealed` (OpenSSL does; WebCrypto cannot).
   */
  open(
    nonce: Uint8Array,
    aad: Uint8Array,
    sealed: Uint8Array,
    options?: { inPlace?: boolean },
  ): Uint8Array | null | Promise<Uint8Array | null>;
}

function join(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

type Bytes = Uint8Array<ArrayBuffer>;
const bytes = (b: Uint8Array) => b as Bytes;

class WebCryptoAesGcm implements AesGcmKey {
  readonly implementation = "webcrypto" as const;
  constructor(readonly key: CryptoKey) {}

  async seal(
    nonce: Uint8Array,
    aad: Uint8Array,
    parts: readonly Uint8Array[],
    out: Uint8Array,
  ): Promise<void> {
    const sealed = await crypto.subtle.encrypt(
      { name: "AES-GCM", iv: bytes(nonce), additionalData: bytes(aad) },
      this.key,
      bytes(join(parts)),
    );
    out.set(new Uint8Array(sealed));
  }

  async open(nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Promise<Uint8Array | null> {
    try {
      return new Uint8Array(
        await crypto.subtle.decrypt(
          { name: "AES-GCM", iv: bytes(nonce), additionalData: bytes(aad) },
          this.key,
          bytes(sealed),
        ),
      );
    } catch {
      return null;
    }
  }
}

const SYMBOLS = {
  EVP_aes_256_gcm: { parameters: [], result: "pointer" },
  EVP_CIPHER_CTX_new: { parameters: [], result: "pointer" },
  EVP_CIPHER_CTX_free: { parameters: ["pointer"], result: "void" },
  EVP_EncryptInit_ex: {
    parameters: ["pointer", "pointer", "pointer", "buffer", "buffer"],
    result: "i32",
  },
  EVP_EncryptUpdate: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  EVP_EncryptFinal_ex: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  EVP_DecryptInit_ex: {
    parameters: ["pointer", "pointer", "pointer", "buffer", "buffer"],
    result: "i32",
  },
  EVP_DecryptUpdate: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  EVP_DecryptFinal_ex: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  EVP_CIPHER_CTX_ctrl: { parameters: ["pointer", "i32", "i32", "buffer"], result: "i32" },
} as const;
type LibCrypto = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

const EVP_CTRL_GCM_GET_TAG = 0x10;
const EVP_CTRL_GCM_SET_TAG = 0x11;
const LIBRARY_NAMES: Partial<Record<typeof Deno.build.os, string[]>> = {
  linux: ["libcrypto.so.3", "libcrypto.so"],
  darwin: [
    "libcrypto.3.dylib",
    "/opt/homebrew/opt/openssl@3/lib/libcrypto.3.dylib",
    "/usr/local/opt/openssl@3/lib/libcrypto.3.dylib",
  ],
};

let libcrypto: LibCrypto | null | undefined;

/** OpenSSL's libcrypto when the `ffi` permission is held and it loads; otherwise null. */
function loadLibCrypto(): LibCrypto | null {
  try {
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return null;
  } catch {
    return null;
  }
  if (libcrypto !== undefined) return libcrypto;
  libcrypto = null;
  for (const name of LIBRARY_NAMES[Deno.build.os] ?? []) {
    try {
      libcrypto = Deno.dlopen(name, SYMBOLS).symbols;
      break;
    } catch {
      // not this name: try the next one
    }
  }
  return libcrypto;
}

/** True when the `openssl` implementation can be used in this process. */
export function opensslAvailable(): boolean {
  return loadLibCrypto() !== null;
}

class OpenSslAesGcm implements AesGcmKey {
  readonly implementation = "openssl" as const;
  #lib: LibCrypto;
  #raw: Uint8Array;
  #length = new Int32Array(1);
  #scratch = new Uint8Array(TAG_BYTES);

  constructor(lib: LibCrypto, raw: Uint8Array) {
    if (raw.length !== 32) throw new RangeError("An AES-256 key must have 32 bytes");
    this.#lib = lib;
    this.#raw = raw.slice();
  }

  seal(
    nonce: Uint8Array,
    aad: Uint8Array,
    parts: readonly Uint8Array[],
    out: Uint8Array,
  ): void {
    const total = parts.reduce((n, p) => n + p.length, 0);
    if (nonce.length !== 12) throw new RangeError("An AES-GCM nonce must have 12 bytes");
    if (out.length !== total + TAG_BYTES) {
      throw new RangeError(`Sealed output needs ${total + TAG_BYTES} bytes, not ${out.length}`);
    }
    const lib = this.#lib;
    const length = this.#length;
    const ctx = lib.EVP_CIPHER_CTX_new();
    if (ctx === null) throw new Error("OpenSSL cannot allocate a cipher context");
    try {
      let ok = lib.EVP_EncryptInit_ex(ctx, lib.EVP_aes_256_gcm(), null, this.#raw, nonce) === 1 &&
        lib.EVP_EncryptUpdate(ctx, null, length, aad, aad.length) === 1;
      let at = 0;
      for (const part of parts) {
        if (!ok) break;
        if (part.length === 0) continue;
        ok = lib.EVP_EncryptUpdate(ctx, out.subarray(at), length, part, part.length) === 1;
        at += length[0]!;
      }
      ok = ok && lib.EVP_EncryptFinal_ex(ctx, this.#scratch, length) === 1 && length[0] === 0 &&
        at === total &&
        lib.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_BYTES, out.subarray(total)) === 1;
      if (!ok) throw new Error("OpenSSL AES-256-GCM encryption failed");
    } finally {
      lib.EVP_CIPHER_CTX_free(ctx);
    }
  }

  open(
    nonce: Uint8Array,
    aad: Uint8Array,
    sealed: Uint8Array,
    options: { inPlace?: boolean } = {},
  ): Uint8Array | null {
    if (nonce.length !== 12) throw new RangeError("An AES-GCM nonce must have 12 bytes");
    if (sealed.length < TAG_BYTES) return null;
    const lib = this.#lib;
    const length = this.#length;
    const size = sealed.length - TAG_BYTES;
    // In place, OpenSSL reads each block before it writes it back (input and output equal).
    const out = options.inPlace ? sealed.subarray(0, size) : new Uint8Array(size);
    const ctx = lib.EVP_CIPHER_CTX_new();
    if (ctx === null) throw new Error("OpenSSL cannot allocate a cipher context");
    try {
      let ok = lib.EVP_DecryptInit_ex(ctx, lib.EVP_aes_256_gcm(), null, this.#raw, nonce) === 1 &&
        lib.EVP_DecryptUpdate(ctx, null, length, aad, aad.length) === 1;
      if (ok && size > 0) {
        ok = lib.EVP_DecryptUpdate(ctx, out, length, sealed.subarray(0, size), size) === 1 &&
          length[0] === size;
      }
      const tag = sealed.subarray(size); // checked by the final call
      ok = ok && lib.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_BYTES, tag) === 1 &&
        lib.EVP_DecryptFinal_ex(ctx, this.#scratch, length) === 1;
      if (ok) return out;
      out.fill(0); // never hand out unauthenticated plaintext
      return null;
    } finally {
      lib.EVP_CIPHER_CTX_free(ctx);
    }
  }
}

/**
 * Returns the AES-256-GCM implementation for one key. `auto` (the default) uses OpenSSL when
 * the `ffi` permission is granted, libcrypto loads and the raw key is known; `openssl` throws
 * when it cannot be used.
 */
export function aesGcmKey(
  material: AesGcmKeyMaterial,
  options: { implementation?: AesGcmImplementation } = {},
): AesGcmKey {
  const wanted = options.implementation ?? "auto";
  if (wanted !== "webcrypto" && material.raw) {
    const lib = loadLibCrypto();
    if (lib) return new OpenSslAesGcm(lib, material.raw);
  }
  if (wanted === "openssl") {
    throw new TypeError(
      "OpenSSL AES-GCM is not available: it needs the ffi permission, libcrypto 3 and a raw key",
    );
  }
  return new WebCryptoAesGcm(material.key);
}
