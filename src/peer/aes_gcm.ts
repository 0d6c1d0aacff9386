/**
 * AES-256-GCM for the session (docs/design.md "Peer connection"): four implementations that
 * produce the same bytes. Figures are MB/s per CPU-second on 64 KiB – 1 MiB frames (docs/apps.md,
 * benchmark).
 *
 * - `ipsec-mb`: Intel's Multi-Buffer Crypto library (libIPSec_MB 1.3–2.0, "intel-ipsec-mb")
 *   through Deno FFI, synchronous, on CPUs with VAES and AVX-512 only (Intel Ice Lake and later,
 *   AMD Zen 4 and later), whose GCM works on four blocks per instruction: 12,000–17,000 to seal a
 *   256 KiB frame here, where OpenSSL 3.0 does 3,600–4,500 (docs/performance.md "Stop 22"). Used
 *   only when the process already holds the `ffi` permission for the library.
 * - `openssl`: the system's OpenSSL 3 libcrypto through Deno FFI, synchronous, with AES-NI and
 *   carry-less multiply: 3,500–4,600. It is used only when the process already holds the `ffi`
 *   permission (this module never asks for it) and libcrypto loads.
 * - `node`: `node:crypto` (`createCipheriv("aes-256-gcm")`), synchronous, needs no permission.
 *   No promise or thread hop per frame, but in Deno its AES and GHASH are portable Rust code,
 *   as WebCrypto's: 140–190, and `update()` returns new buffers that are copied into place.
 * - `webcrypto`: `crypto.subtle`, needs no permission: 190–300, on a worker thread behind a
 *   promise, so a session's sealing and opening overlap with its I/O on another core; a TCP
 *   session keeps up to four seals and four opens in flight (`session_link.ts`).
 *
 * `auto` picks `ipsec-mb` when the library loads and runs its VAES AVX-512 code on this CPU
 * (elsewhere its GCM is no faster than OpenSSL's), else `openssl` when it can, else `webcrypto`:
 * `node` costs as much CPU per byte and, being synchronous, keeps it all on the event-loop thread
 * (a TCP session ran 30–50 % slower than with WebCrypto). All seal `ciphertext || 16-byte tag`
 * with a 12-byte nonce and the same additional data, so the two ends of a link may use different
 * implementations (docs/decisions.md "The fastest AES-GCM the system has").
 *
 * @module
 */
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from "node:crypto";
import { concatBytes } from "../message/bytes.ts";

/** Bytes of the GCM authentication tag. */
export const TAG_BYTES = 16;

/** One concrete implementation. */
export type AesGcmEngine = "webcrypto" | "openssl" | "ipsec-mb" | "node";
/** Which implementation to use; `auto` picks the fastest available (see the module comment). */
export type AesGcmImplementation = "auto" | AesGcmEngine;

/** Where {@link AesGcmKey.open} puts the plaintext. */
export interface OpenOptions {
  /** Over the start of `sealed` (which the caller gives up). */
  inPlace?: boolean;
  /**
   * Into this buffer, which must hold at least the plaintext (`sealed.length - TAG_BYTES`,
   * less `head.length`); the result is a view of its start. On failure it is zeroed. Wins over
   * `inPlace`.
   */
  into?: Uint8Array;
  /**
   * With `into`: the first `head.length` plaintext bytes go here, the rest into `into` (a
   * message's flag byte apart from its data, so the data can start at `into[0]`). Zeroed on
   * failure too.
   */
  head?: Uint8Array;
}

/**
 * One direction's AES-256-GCM key: its raw bytes (a session's, and all that OpenSSL and node
 * need), a WebCrypto key, or both. WebCrypto imports the raw bytes on its first use when it has
 * no key, so a session that seals with OpenSSL never makes one.
 */
export type AesGcmKeyMaterial =
  | { key: CryptoKey; raw?: Uint8Array }
  | { key?: CryptoKey; raw: Uint8Array };

/** Seals and opens with one key. Results may be synchronous (FFI, node) or promises. */
export interface AesGcmKey {
  readonly implementation: AesGcmEngine;
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
   * Decrypts `ciphertext || tag`; null when it does not authenticate, and no unauthenticated
   * plaintext is left behind. Where the plaintext goes: see {@link OpenOptions}; by default a
   * new buffer (OpenSSL decrypts straight into `into` or in place, the others copy there).
   */
  open(
    nonce: Uint8Array,
    aad: Uint8Array,
    sealed: Uint8Array,
    options?: OpenOptions,
  ): Uint8Array | null | Promise<Uint8Array | null>;
}

function checkSeal(nonce: Uint8Array, parts: readonly Uint8Array[], out: Uint8Array): number {
  const total = parts.reduce((n, p) => n + p.length, 0);
  if (nonce.length !== 12) throw new RangeError("An AES-GCM nonce must have 12 bytes");
  if (out.length !== total + TAG_BYTES) {
    throw new RangeError(`Sealed output needs ${total + TAG_BYTES} bytes, not ${out.length}`);
  }
  return total;
}

/** Where `open()` writes `size` plaintext bytes (past `head`), or null for a new buffer. */
function target(sealed: Uint8Array, size: number, options: OpenOptions): Uint8Array | null {
  if (options.into) {
    const rest = size - (options.head?.length ?? 0);
    if (rest < 0 || options.into.length < rest) {
      throw new RangeError(`Plaintext needs ${size} bytes, not ${options.into.length}`);
    }
    return options.into.subarray(0, rest);
  }
  return options.inPlace ? sealed.subarray(0, size) : null;
}

/**
 * Where an FFI engine's `open()` decrypts `sealed` (after checking the nonce): the plaintext's
 * size, its buffer, and the separate head (`into` with `head`) and its length; null when `sealed`
 * is shorter than a tag.
 */
function openPlan(
  nonce: Uint8Array,
  sealed: Uint8Array,
  options: OpenOptions,
): { size: number; out: Uint8Array; head: Uint8Array | null; skip: number } | null {
  if (nonce.length !== 12) throw new RangeError("An AES-GCM nonce must have 12 bytes");
  if (sealed.length < TAG_BYTES) return null;
  const size = sealed.length - TAG_BYTES;
  const out = target(sealed, size, options) ?? new Uint8Array(size);
  const head = options.into && options.head?.length ? options.head : null;
  return { size, out, head, skip: head?.length ?? 0 };
}

/** Puts a whole `plain` where `options` says (`out` from {@link target}); returns `out`. */
function place(plain: Uint8Array, out: Uint8Array, options: OpenOptions): Uint8Array {
  const head = options.into ? options.head : undefined;
  if (!head) {
    out.set(plain);
    return out;
  }
  head.set(plain.subarray(0, head.length));
  out.set(plain.subarray(head.length));
  return out;
}

type Bytes = Uint8Array<ArrayBuffer>;
const bytes = (b: Uint8Array) => b as Bytes;

/**
 * WebCrypto: `encrypt()` and `decrypt()` copy their inputs when called, so the caller may reuse
 * its buffers once `seal()` or `open()` returned. Until a key made from raw bytes is imported
 * (one promise, at the session's start), the inputs are copied here and the call waits for it.
 */
class WebCryptoAesGcm implements AesGcmKey {
  readonly implementation = "webcrypto" as const;
  /** Where several parts are joined: `encrypt()` copies its input when called, so it is reused. */
  #joined = new Uint8Array(0);
  #key: CryptoKey | null = null;
  #importing: Promise<CryptoKey> | null = null;

  constructor(material: AesGcmKeyMaterial) {
    if (material.key) {
      this.#key = material.key;
      return;
    }
    const raw = material.raw!.slice();
    if (raw.length !== 32) throw new RangeError("An AES-256 key must have 32 bytes");
    this.#importing = crypto.subtle.importKey("raw", raw, "AES-GCM", false, [
      "encrypt",
      "decrypt",
    ]).then((key) => this.#key = key).finally(() => raw.fill(0));
    this.#importing.catch(() => {}); // reported by the first seal or open
  }

  seal(
    nonce: Uint8Array,
    aad: Uint8Array,
    parts: readonly Uint8Array[],
    out: Uint8Array,
  ): Promise<void> {
    if (this.#key) return this.#seal(this.#key, nonce, aad, parts, out);
    const copies = [nonce.slice(), aad.slice(), parts.map((p) => p.slice())] as const;
    return this.#importing!.then((key) => this.#seal(key, ...copies, out));
  }

  async #seal(
    key: CryptoKey,
    nonce: Uint8Array,
    aad: Uint8Array,
    parts: readonly Uint8Array[],
    out: Uint8Array,
  ): Promise<void> {
    const sealed = await crypto.subtle.encrypt(
      { name: "AES-GCM", iv: bytes(nonce), additionalData: bytes(aad) },
      key,
      bytes(parts.length === 1 ? parts[0]! : this.#join(parts)),
    );
    out.set(new Uint8Array(sealed));
  }

  /** The parts one after the other in the reused buffer (no new 256 KiB array per frame). */
  #join(parts: readonly Uint8Array[]): Uint8Array {
    const total = parts.reduce((n, p) => n + p.length, 0);
    if (this.#joined.length < total) this.#joined = new Uint8Array(total);
    let at = 0;
    for (const part of parts) {
      this.#joined.set(part, at);
      at += part.length;
    }
    return this.#joined.subarray(0, total);
  }

  open(
    nonce: Uint8Array,
    aad: Uint8Array,
    sealed: Uint8Array,
    options: OpenOptions = {},
  ): Promise<Uint8Array | null> {
    if (this.#key) return this.#open(this.#key, nonce, aad, sealed, sealed, options);
    const copies = [nonce.slice(), aad.slice(), sealed.slice()] as const;
    return this.#importing!.then((key) => this.#open(key, ...copies, sealed, options));
  }

  /** Decrypts `input` (`sealed` or a copy of it); `sealed` is where `inPlace` writes. */
  async #open(
    key: CryptoKey,
    nonce: Uint8Array,
    aad: Uint8Array,
    input: Uint8Array,
    sealed: Uint8Array,
    options: OpenOptions,
  ): Promise<Uint8Array | null> {
    let plain: Uint8Array;
    try {
      plain = new Uint8Array(
        await crypto.subtle.decrypt(
          { name: "AES-GCM", iv: bytes(nonce), additionalData: bytes(aad) },
          key,
          bytes(input),
        ),
      );
    } catch {
      return null;
    }
    const out = target(sealed, plain.length, options);
    return out ? place(plain, out, options) : plain;
  }
}

/** node:crypto, synchronous. `update()` returns new buffers, copied into place. */
class NodeAesGcm implements AesGcmKey {
  readonly implementation = "node" as const;
  #key: KeyObject;

  constructor(raw: Uint8Array) {
    if (raw.length !== 32) throw new RangeError("An AES-256 key must have 32 bytes");
    this.#key = createSecretKey(raw.slice());
  }

  seal(
    nonce: Uint8Array,
    aad: Uint8Array,
    parts: readonly Uint8Array[],
    out: Uint8Array,
  ): void {
    const total = checkSeal(nonce, parts, out);
    const cipher = createCipheriv("aes-256-gcm", this.#key, nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(aad);
    let at = 0;
    for (const part of parts) {
      if (part.length === 0) continue;
      const chunk = cipher.update(part);
      out.set(chunk, at);
      at += chunk.length;
    }
    const tail = cipher.final();
    out.set(tail, at);
    at += tail.length;
    if (at !== total) throw new Error("node:crypto AES-256-GCM encryption failed");
    out.set(cipher.getAuthTag(), total);
  }

  open(
    nonce: Uint8Array,
    aad: Uint8Array,
    sealed: Uint8Array,
    options: OpenOptions = {},
  ): Uint8Array | null {
    if (nonce.length !== 12) throw new RangeError("An AES-GCM nonce must have 12 bytes");
    if (sealed.length < TAG_BYTES) return null;
    const size = sealed.length - TAG_BYTES;
    const out = target(sealed, size, options);
    const decipher = createDecipheriv("aes-256-gcm", this.#key, nonce, {
      authTagLength: TAG_BYTES,
    });
    decipher.setAAD(aad);
    decipher.setAuthTag(sealed.subarray(size));
    const head: Uint8Array = decipher.update(sealed.subarray(0, size));
    let tail: Uint8Array;
    try {
      tail = decipher.final(); // throws unless the tag matches
    } catch {
      head.fill(0); // never leave unauthenticated plaintext behind
      return null;
    }
    if (head.length + tail.length !== size) throw new Error("node:crypto AES-256-GCM failed");
    if (out) return place(tail.length ? concatBytes(head, tail) : head, out, options);
    const plain = new Uint8Array(size); // a plain Uint8Array, not a pooled Buffer
    plain.set(head);
    plain.set(tail, head.length);
    return plain;
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
/**
 * Where libcrypto 3 is looked for, absolute paths first: the CLI holds the `ffi` permission for
 * exactly these paths (deno.json's `mailpeer` task, docs/security.md), so that "fast by default"
 * opens no other library. A process with the whole `ffi` permission also tries the bare names.
 */
export const LIBCRYPTO_PATHS: Partial<Record<typeof Deno.build.os, string[]>> = {
  linux: [
    "/usr/lib/x86_64-linux-gnu/libcrypto.so.3",
    "/usr/lib/aarch64-linux-gnu/libcrypto.so.3",
    "/usr/lib64/libcrypto.so.3",
    "/usr/lib/libcrypto.so.3",
  ],
  darwin: [
    "/opt/homebrew/opt/openssl@3/lib/libcrypto.3.dylib",
    "/usr/local/opt/openssl@3/lib/libcrypto.3.dylib",
  ],
};
const LIBRARY_NAMES: Partial<Record<typeof Deno.build.os, string[]>> = {
  linux: ["libcrypto.so.3", "libcrypto.so"],
  darwin: [
    "libcrypto.3.dylib",
    "/opt/homebrew/opt/openssl@3/lib/libcrypto.3.dylib",
    "/usr/local/opt/openssl@3/lib/libcrypto.3.dylib",
  ],
};

/**
 * The first of `names` that loads with `symbols`, trying only those this process already holds
 * the `ffi` permission for (this module never asks for it); null when none does.
 */
function openGranted<S extends Deno.ForeignLibraryInterface>(
  names: readonly string[],
  symbols: S,
): Deno.DynamicLibrary<S>["symbols"] | null {
  for (const name of names) {
    try {
      const query = name.startsWith("/")
        ? { name: "ffi" as const, path: name }
        : { name: "ffi" as const };
      if (Deno.permissions.querySync(query).state !== "granted") continue;
      return Deno.dlopen(name, symbols).symbols;
    } catch {
      // not this name (missing, or not the library asked for): try the next one
    }
  }
  return null;
}

let libcrypto: LibCrypto | null | undefined;

/** OpenSSL's libcrypto when the `ffi` permission is held and it loads; otherwise null. */
function loadLibCrypto(): LibCrypto | null {
  if (libcrypto !== undefined) return libcrypto;
  const os = Deno.build.os;
  libcrypto = openGranted([...(LIBCRYPTO_PATHS[os] ?? []), ...(LIBRARY_NAMES[os] ?? [])], SYMBOLS);
  return libcrypto;
}

/** True when the `openssl` implementation can be used in this process. */
export function opensslAvailable(): boolean {
  return loadLibCrypto() !== null;
}

/** Frees the cipher contexts of OpenSSL keys that were garbage-collected. */
const contexts = new FinalizationRegistry<{ lib: LibCrypto; ctx: Deno.PointerObject }>(
  ({ lib, ctx }) => lib.EVP_CIPHER_CTX_free(ctx),
);

/**
 * OpenSSL, synchronous. One cipher context per direction of use, keyed once: each frame only
 * sets its nonce (no key schedule or cipher lookup per frame).
 */
class OpenSslAesGcm implements AesGcmKey {
  readonly implementation = "openssl" as const;
  #lib: LibCrypto;
  #raw: Uint8Array;
  #encrypt: Deno.PointerObject | null = null;
  #decrypt: Deno.PointerObject | null = null;
  #length = new Int32Array(1);
  #scratch = new Uint8Array(TAG_BYTES);

  constructor(lib: LibCrypto, raw: Uint8Array) {
    if (raw.length !== 32) throw new RangeError("An AES-256 key must have 32 bytes");
    this.#lib = lib;
    this.#raw = raw.slice();
  }

  /** A context of this key, set to `nonce`. */
  #context(encrypt: boolean, nonce: Uint8Array): Deno.PointerObject {
    const lib = this.#lib;
    const init = encrypt ? lib.EVP_EncryptInit_ex : lib.EVP_DecryptInit_ex;
    let ctx = encrypt ? this.#encrypt : this.#decrypt;
    if (ctx) {
      if (init(ctx, null, null, null, nonce) !== 1) throw new Error("OpenSSL cannot set a nonce");
      return ctx;
    }
    ctx = lib.EVP_CIPHER_CTX_new();
    if (ctx === null) throw new Error("OpenSSL cannot allocate a cipher context");
    contexts.register(this, { lib, ctx });
    if (encrypt) this.#encrypt = ctx;
    else this.#decrypt = ctx;
    if (init(ctx, lib.EVP_aes_256_gcm(), null, this.#raw, nonce) !== 1) {
      throw new Error("OpenSSL cannot set up AES-256-GCM");
    }
    return ctx;
  }

  seal(
    nonce: Uint8Array,
    aad: Uint8Array,
    parts: readonly Uint8Array[],
    out: Uint8Array,
  ): void {
    const total = checkSeal(nonce, parts, out);
    const lib = this.#lib;
    const length = this.#length;
    const ctx = this.#context(true, nonce);
    let ok = lib.EVP_EncryptUpdate(ctx, null, length, aad, aad.length) === 1;
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
  }

  open(
    nonce: Uint8Array,
    aad: Uint8Array,
    sealed: Uint8Array,
    options: OpenOptions = {},
  ): Uint8Array | null {
    // In place, OpenSSL reads each block before it writes it back (input and output equal).
    const plan = openPlan(nonce, sealed, options);
    if (plan === null) return null;
    const { size, out, head, skip } = plan;
    const lib = this.#lib;
    const length = this.#length;
    const ctx = this.#context(false, nonce);
    let ok = lib.EVP_DecryptUpdate(ctx, null, length, aad, aad.length) === 1;
    if (ok && head) { // GCM streams: the head, then the rest, each straight into place
      ok = lib.EVP_DecryptUpdate(ctx, head, length, sealed, skip) === 1 && length[0] === skip;
    }
    if (ok && size > skip) {
      ok = lib.EVP_DecryptUpdate(ctx, out, length, sealed.subarray(skip, size), size - skip) ===
          1 && length[0] === size - skip;
    }
    const tag = sealed.subarray(size); // checked by the final call
    ok = ok && lib.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_BYTES, tag) === 1 &&
      lib.EVP_DecryptFinal_ex(ctx, this.#scratch, length) === 1;
    if (ok) return out;
    out.fill(0); // never hand out unauthenticated plaintext
    head?.fill(0);
    return null;
  }
}

/**
 * Where libIPSec_MB is looked for (x86-64 Linux only; soname 2 for 2.0, 1 for 1.x). As with
 * libcrypto, the CLI holds the `ffi` permission for exactly these paths (deno.json).
 */
export const IPSEC_MB_PATHS: Partial<Record<typeof Deno.build.os, string[]>> = {
  linux: Deno.build.arch === "x86_64"
    ? [
      "/usr/lib/x86_64-linux-gnu/libIPSec_MB.so.2",
      "/usr/lib/x86_64-linux-gnu/libIPSec_MB.so.1",
      "/usr/lib64/libIPSec_MB.so.2",
      "/usr/lib64/libIPSec_MB.so.1",
      "/usr/lib/libIPSec_MB.so.2",
      "/usr/lib/libIPSec_MB.so.1",
    ]
    : [],
};

/**
 * What this module calls in libIPSec_MB: the version and CPU-feature queries of
 * `intel-ipsec-mb.h`, and the AES-256-GCM functions of its VAES AVX-512 code, which the library
 * exports by name (`libIPSec_MB.def`, 1.1 to today) beside reaching them through its manager
 * (`IMB_MGR`). Reading the manager's function table would take Deno's pointer APIs, which need
 * the whole `ffi` permission; these calls need only the permission for the library's path.
 */
const IPSEC_MB_SYMBOLS = {
  imb_get_version: { parameters: [], result: "u32" },
  imb_get_feature_flags: { parameters: [], result: "u64" },
  imb_get_errno: { parameters: ["pointer"], result: "i32" },
  aes_gcm_pre_256_vaes_avx512: { parameters: ["buffer", "buffer"], result: "void" },
  aes_gcm_init_256_vaes_avx512: {
    parameters: ["buffer", "buffer", "buffer", "buffer", "u64"],
    result: "void",
  },
  aes_gcm_enc_256_update_vaes_avx512: {
    parameters: ["buffer", "buffer", "buffer", "buffer", "u64"],
    result: "void",
  },
  aes_gcm_dec_256_update_vaes_avx512: {
    parameters: ["buffer", "buffer", "buffer", "buffer", "u64"],
    result: "void",
  },
  aes_gcm_enc_256_finalize_vaes_avx512: {
    parameters: ["buffer", "buffer", "buffer", "u64"],
    result: "void",
  },
  aes_gcm_dec_256_finalize_vaes_avx512: {
    parameters: ["buffer", "buffer", "buffer", "u64"],
    result: "void",
  },
} as const;
type IpsecMbLib = Deno.DynamicLibrary<typeof IPSEC_MB_SYMBOLS>["symbols"];

/**
 * The versions used: 1.3 (the first with `imb_get_feature_flags`) to 2.0.x, whose
 * `gcm_key_data` (at most 1,264 bytes) and `gcm_context_data` (88) fit the buffers below and
 * need them aligned to 16 bytes only. 3.0 declares its key data aligned to 64 and is not used.
 */
const IPSEC_MB_VERSIONS = { from: 0x010300, below: 0x020100 };
/**
 * `IMB_CPUFLAGS_AVX512_T2` of 1.3–2.0: the CPU features for which the library runs its VAES +
 * VPCLMULQDQ AVX-512 code (SSE4.2, CMOV, AES-NI, PCLMULQDQ, AVX, AVX2, BMI2, AVX-512
 * F/DQ/CD/BW/VL, VAES, VPCLMULQDQ, GFNI, AVX-512 IFMA, SHA-NI). Without them those functions
 * would stop the process on an illegal instruction, so they are never called.
 */
export const IMB_AVX512_T2_FEATURES = 0x7_3fffn;
/** Room for `gcm_key_data`: 1,008 bytes in 1.3, 1,264 in 2.0. */
const IMB_KEY_DATA_BYTES = 2048;
/** Room for `gcm_context_data`: 88 bytes in 1.3–2.0. */
const IMB_CONTEXT_BYTES = 256;
const TAG_BYTE_COUNT = BigInt(TAG_BYTES);

/** True when `version` (`imb_get_version()`) is one this module uses. */
export function ipsecMbVersionSupported(version: number): boolean {
  return version >= IPSEC_MB_VERSIONS.from && version < IPSEC_MB_VERSIONS.below;
}

/** True when `features` (`imb_get_feature_flags()`) let the VAES AVX-512 code run. */
export function ipsecMbHasVaes(features: bigint): boolean {
  return (features & IMB_AVX512_T2_FEATURES) === IMB_AVX512_T2_FEATURES;
}

/**
 * A new key-data and context pair for the library. Each is an ArrayBuffer of its own, never a
 * view at an offset: Deno's backing stores start on a 16-byte boundary (every one of 20,000
 * measured, as malloc's are), which is what the library's code needs (it faults at an 8-byte
 * offset). This module cannot check an address with only a path-scoped `ffi` permission, so
 * tests/peer/aes_gcm_test.ts does, for these very buffers.
 */
export function ipsecMbBuffers(): { keyData: Uint8Array; context: Uint8Array } {
  return {
    keyData: new Uint8Array(IMB_KEY_DATA_BYTES),
    context: new Uint8Array(IMB_CONTEXT_BYTES),
  };
}

let ipsecMb: IpsecMbLib | null | undefined;

/**
 * libIPSec_MB when the `ffi` permission for one of {@link IPSEC_MB_PATHS} is held, it loads
 * with every symbol above, its version is one this module uses and the CPU runs its VAES
 * AVX-512 code; otherwise null.
 */
function loadIpsecMb(): IpsecMbLib | null {
  if (ipsecMb !== undefined) return ipsecMb;
  const lib = openGranted(IPSEC_MB_PATHS[Deno.build.os] ?? [], IPSEC_MB_SYMBOLS);
  ipsecMb = lib && ipsecMbVersionSupported(lib.imb_get_version()) &&
      ipsecMbHasVaes(BigInt(lib.imb_get_feature_flags()))
    ? lib
    : null;
  return ipsecMb;
}

/** True when the `ipsec-mb` implementation can be used in this process. */
export function ipsecMbAvailable(): boolean {
  return loadIpsecMb() !== null;
}

/** The implementation `auto` gives a raw key in this process (what a session seals with). */
export function autoAesGcmEngine(): AesGcmEngine {
  return ipsecMbAvailable() ? "ipsec-mb" : opensslAvailable() ? "openssl" : "webcrypto";
}

/** `a` and `b` (16-byte tags) are equal, in time that does not depend on where they differ. */
function tagsEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/**
 * libIPSec_MB's VAES AVX-512 code, synchronous. The key is expanded once (`gcm_key_data`: round
 * keys and the GHASH key's powers); each frame runs init (nonce, additional data), one update
 * per part and finalize, each checked with `imb_get_errno`: the library checks its arguments
 * and, on a bad one, sets the error and does nothing. Opening compares the computed tag with the frame's
 * itself, in constant time, and zeroes the plaintext when they differ.
 */
class IpsecMbAesGcm implements AesGcmKey {
  readonly implementation = "ipsec-mb" as const;
  #lib: IpsecMbLib;
  #keyData: Uint8Array;
  #context: Uint8Array;
  #tag = new Uint8Array(TAG_BYTES);
  /** Stands in for empty additional data (the library wants a pointer either way). */
  #noAad = new Uint8Array(1);

  constructor(lib: IpsecMbLib, raw: Uint8Array) {
    if (raw.length !== 32) throw new RangeError("An AES-256 key must have 32 bytes");
    this.#lib = lib;
    ({ keyData: this.#keyData, context: this.#context } = ipsecMbBuffers());
    lib.aes_gcm_pre_256_vaes_avx512(raw, this.#keyData);
    this.#check("expand the key");
  }

  #check(what: string): void {
    const code = this.#lib.imb_get_errno(null);
    if (code !== 0) throw new Error(`libIPSec_MB cannot ${what} (error ${code})`);
  }

  #init(nonce: Uint8Array, aad: Uint8Array): void {
    this.#lib.aes_gcm_init_256_vaes_avx512(
      this.#keyData,
      this.#context,
      nonce,
      aad.length ? aad : this.#noAad,
      BigInt(aad.length),
    );
    this.#check("start an AES-256-GCM frame");
  }

  seal(
    nonce: Uint8Array,
    aad: Uint8Array,
    parts: readonly Uint8Array[],
    out: Uint8Array,
  ): void {
    const total = checkSeal(nonce, parts, out);
    const lib = this.#lib;
    this.#init(nonce, aad);
    let at = 0;
    for (const part of parts) {
      if (part.length === 0) continue;
      lib.aes_gcm_enc_256_update_vaes_avx512(
        this.#keyData,
        this.#context,
        out.subarray(at),
        part,
        BigInt(part.length),
      );
      this.#check("encrypt");
      at += part.length;
    }
    lib.aes_gcm_enc_256_finalize_vaes_avx512(
      this.#keyData,
      this.#context,
      out.subarray(total),
      TAG_BYTE_COUNT,
    );
    this.#check("compute an AES-256-GCM tag");
  }

  open(
    nonce: Uint8Array,
    aad: Uint8Array,
    sealed: Uint8Array,
    options: OpenOptions = {},
  ): Uint8Array | null {
    // In place, the library hashes each block of ciphertext before it writes the plaintext over it.
    const plan = openPlan(nonce, sealed, options);
    if (plan === null) return null;
    const { size, out, head, skip } = plan;
    const lib = this.#lib;
    this.#init(nonce, aad);
    if (head) { // GCM streams: the head, then the rest, each straight into place
      lib.aes_gcm_dec_256_update_vaes_avx512(
        this.#keyData,
        this.#context,
        head,
        sealed,
        BigInt(skip),
      );
      this.#check("decrypt");
    }
    if (size > skip) {
      lib.aes_gcm_dec_256_update_vaes_avx512(
        this.#keyData,
        this.#context,
        out,
        sealed.subarray(skip, size),
        BigInt(size - skip),
      );
      this.#check("decrypt");
    }
    lib.aes_gcm_dec_256_finalize_vaes_avx512(
      this.#keyData,
      this.#context,
      this.#tag,
      TAG_BYTE_COUNT,
    );
    this.#check("compute an AES-256-GCM tag");
    if (tagsEqual(this.#tag, sealed.subarray(size))) return out;
    out.fill(0); // never hand out unauthenticated plaintext
    head?.fill(0);
    return null;
  }
}

/**
 * Returns the AES-256-GCM implementation for one key. `auto` (the default) uses libIPSec_MB, else
 * OpenSSL, when the `ffi` permission for the library is granted, it loads (libIPSec_MB: on a CPU
 * with VAES and AVX-512) and the raw key is known; else WebCrypto. `ipsec-mb`, `openssl` and
 * `node` throw when they cannot be used (all three need the raw key).
 */
export function aesGcmKey(
  material: AesGcmKeyMaterial,
  options: { implementation?: AesGcmImplementation } = {},
): AesGcmKey {
  const wanted = options.implementation ?? "auto";
  if ((wanted === "auto" || wanted === "ipsec-mb") && material.raw) {
    const lib = loadIpsecMb();
    if (lib) return new IpsecMbAesGcm(lib, material.raw);
  }
  if (wanted === "ipsec-mb") {
    throw new TypeError(
      "libIPSec_MB AES-GCM is not available: it needs the ffi permission, libIPSec_MB 1.3–2.0, a CPU with VAES and AVX-512, and a raw key",
    );
  }
  if ((wanted === "auto" || wanted === "openssl") && material.raw) {
    const lib = loadLibCrypto();
    if (lib) return new OpenSslAesGcm(lib, material.raw);
  }
  if (wanted === "openssl") {
    throw new TypeError(
      "OpenSSL AES-GCM is not available: it needs the ffi permission, libcrypto 3 and a raw key",
    );
  }
  if (wanted === "node") {
    if (!material.raw) throw new TypeError("node:crypto AES-GCM needs the raw key");
    return new NodeAesGcm(material.raw);
  }
  return new WebCryptoAesGcm(material);
}
