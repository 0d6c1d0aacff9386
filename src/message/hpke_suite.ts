/**
 * The HPKE cipher suite of mailpeer blocks (RFC 9180: DHKEM X25519, HKDF-SHA256, AES-128-GCM).
 *
 * The suite is @hpke/core's, with its KDF and AEAD (and the HKDF inside its KEM) swapped for
 * node:crypto's synchronous HKDF-SHA256 and AES-128-GCM. Over WebCrypto, each HMAC, HKDF and
 * AES-GCM call is a key import plus an operation that runs on another thread; HPKE makes about
 * fifteen such calls per block, which cost more than the X25519 and Ed25519 work itself. The
 * X25519 KEM's primitives (generate, import, export, agree) run on node:crypto too
 * ({@link NodeX25519Primitives}: ~0.2 ms of CPU less per block than WebCrypto's); keys that
 * arrive as WebCrypto `CryptoKey`s still work, through WebCrypto. The results are byte for
 * byte the same (the tests check them against the stock suite and the RFC 9180 A.1.1 test
 * vector).
 *
 * @module
 */
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  createSecretKey,
  hkdfSync,
  type KeyObject,
} from "node:crypto";
import { createPublicKey, generateKeyPairSync } from "node:crypto";
import {
  type AeadEncryptionContext,
  Aes128Gcm,
  CipherSuite,
  DhkemX25519HkdfSha256,
  HkdfSha256,
} from "@hpke/core";
import { publicKeyObject, rawPublicKey, x25519Agree, x25519KeyObjects } from "./keys.ts";

type Bytes = ArrayBufferLike | ArrayBufferView;

const HASH_BYTES = 32;
const TAG_BYTES = 16;
/** node:crypto's `hkdfSync` refuses a longer info. */
const MAX_HKDF_INFO_BYTES = 1024;

function view(input: Bytes): Uint8Array {
  return ArrayBuffer.isView(input)
    ? new Uint8Array(input.buffer, input.byteOffset, input.byteLength)
    : new Uint8Array(input);
}

function arrayBuffer(bytes: Uint8Array): ArrayBuffer {
  return bytes.slice().buffer as ArrayBuffer;
}

/** Runs synchronous `work` as the promise the @hpke/core interfaces want. */
function settle<T>(work: () => T): Promise<T> {
  try {
    return Promise.resolve(work());
  } catch (err) {
    return Promise.reject(err);
  }
}

/** HKDF-SHA256 for the HPKE key schedule, on node:crypto (falls back to WebCrypto off limits). */
export class NodeHkdfSha256 extends HkdfSha256 {
  override extract(salt: Bytes, ikm: Bytes): Promise<ArrayBuffer> {
    const key = view(salt);
    // An empty salt is HashLen zero bytes (RFC 5869); HMAC pads both to the same key.
    if (key.length !== 0 && key.length !== HASH_BYTES) return super.extract(salt, ikm);
    return settle(() => arrayBuffer(createHmac("sha256", key).update(view(ikm)).digest()));
  }

  override extractAndExpand(
    salt: Bytes,
    ikm: Bytes,
    info: Bytes,
    len: number,
  ): Promise<ArrayBuffer> {
    const infoBytes = view(info);
    if (infoBytes.length > MAX_HKDF_INFO_BYTES || len > 255 * HASH_BYTES) {
      return super.extractAndExpand(salt, ikm, info, len);
    }
    return settle(() => hkdfSync("sha256", view(ikm), view(salt), infoBytes, len));
  }
}

class NodeAes128GcmContext implements AeadEncryptionContext {
  readonly #key: KeyObject;

  constructor(key: KeyObject) {
    this.#key = key;
  }

  seal(iv: Bytes, data: Bytes, aad: Bytes): Promise<ArrayBuffer> {
    return settle(() => {
      const cipher = createCipheriv("aes-128-gcm", this.#key, view(iv), {
        authTagLength: TAG_BYTES,
      });
      cipher.setAAD(view(aad));
      const head = cipher.update(view(data));
      const tail = cipher.final();
      const tag = cipher.getAuthTag();
      const out = new Uint8Array(head.length + tail.length + tag.length);
      out.set(head);
      out.set(tail, head.length);
      out.set(tag, head.length + tail.length);
      return out.buffer;
    });
  }

  open(iv: Bytes, data: Bytes, aad: Bytes): Promise<ArrayBuffer> {
    return settle(() => {
      const sealed = view(data);
      if (sealed.length < TAG_BYTES) throw new Error("the ciphertext is shorter than its tag");
      const decipher = createDecipheriv("aes-128-gcm", this.#key, view(iv), {
        authTagLength: TAG_BYTES,
      });
      decipher.setAAD(view(aad));
      decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
      const head = decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES));
      const tail = decipher.final(); // throws unless the tag matches
      const out = new Uint8Array(head.length + tail.length);
      out.set(head);
      out.set(tail, head.length);
      return out.buffer;
    });
  }
}

/** AES-128-GCM for HPKE, on node:crypto. */
export class NodeAes128Gcm extends Aes128Gcm {
  override createEncryptionContext(key: Bytes): AeadEncryptionContext {
    const raw = view(key);
    if (raw.length !== this.keySize) {
      throw new RangeError(
        `Cannot use the AES-128-GCM key: it has ${raw.length} bytes, not ${this.keySize}; pass the HPKE key schedule's key`,
      );
    }
    const secret = createSecretKey(raw);
    raw.fill(0); // as @hpke/core's own AES-GCM does once the key is imported
    return new NodeAes128GcmContext(secret);
  }
}

/** "KEM" || I2OSP(0x0020, 2): the suite id DHKEM(X25519, HKDF-SHA256) labels its HKDF with. */
const KEM_SUITE_ID = new Uint8Array([0x4b, 0x45, 0x4d, 0x00, 0x20]);

/** The X25519 primitives a DHKEM uses (@hpke/core's `DhkemPrimitives`). */
interface X25519Primitives {
  serializePublicKey(key: CryptoKey): Promise<ArrayBuffer>;
  deserializePublicKey(key: Bytes): Promise<CryptoKey>;
  serializePrivateKey(key: CryptoKey): Promise<ArrayBuffer>;
  deserializePrivateKey(key: Bytes): Promise<CryptoKey>;
  importKey(
    format: "raw" | "jwk",
    key: ArrayBuffer | JsonWebKey,
    isPublic: boolean,
  ): Promise<CryptoKey>;
  generateKeyPair(): Promise<CryptoKeyPair>;
  deriveKeyPair(ikm: Bytes): Promise<CryptoKeyPair>;
  derivePublicKey(key: CryptoKey): Promise<CryptoKey>;
  dh(sk: CryptoKey, pk: CryptoKey): Promise<ArrayBuffer>;
}

/**
 * An X25519 key held by node:crypto, passed through @hpke/core where it expects a `CryptoKey`
 * (the KEM only hands keys back to its primitives). `raw` is the 32-byte public key, or the
 * private seed when known.
 */
export class NodeX25519Key {
  readonly algorithm = { name: "X25519" };
  constructor(
    readonly type: "public" | "private",
    readonly object: KeyObject,
    readonly raw?: Uint8Array,
  ) {}
}

function nodeKey(key: CryptoKey): NodeX25519Key | undefined {
  return key instanceof NodeX25519Key ? key : undefined;
}

function asCryptoKey(key: NodeX25519Key): CryptoKey {
  return key as unknown as CryptoKey;
}

/**
 * @hpke/core's X25519 primitives on node:crypto, byte for byte the same. Keys made elsewhere
 * (WebCrypto `CryptoKey`s) go to `web`, the stock primitives, after the other key of a pair is
 * imported there too.
 */
export class NodeX25519Primitives implements X25519Primitives {
  readonly #web: X25519Primitives;

  constructor(web: X25519Primitives) {
    this.#web = web;
  }

  serializePublicKey(key: CryptoKey): Promise<ArrayBuffer> {
    const node = nodeKey(key);
    if (node === undefined) return this.#web.serializePublicKey(key);
    return settle(() => arrayBuffer(node.raw ?? rawPublicKey(node.object)));
  }

  deserializePublicKey(key: Bytes): Promise<CryptoKey> {
    return settle(() => {
      const raw = view(key).slice();
      return asCryptoKey(new NodeX25519Key("public", publicKeyObject("X25519", raw), raw));
    });
  }

  serializePrivateKey(key: CryptoKey): Promise<ArrayBuffer> {
    const node = nodeKey(key);
    if (node?.raw !== undefined) return settle(() => arrayBuffer(node.raw!));
    return node === undefined
      ? this.#web.serializePrivateKey(key)
      : this.#toWeb(node).then((k) => this.#web.serializePrivateKey(k));
  }

  deserializePrivateKey(key: Bytes): Promise<CryptoKey> {
    return x25519KeyObjects(view(key).slice()).then(({ privateKey }) =>
      asCryptoKey(new NodeX25519Key("private", privateKey, view(key).slice()))
    );
  }

  importKey(
    format: "raw" | "jwk",
    key: ArrayBuffer | JsonWebKey,
    isPublic: boolean,
  ): Promise<CryptoKey> {
    if (format !== "raw") return this.#web.importKey(format, key, isPublic);
    const bytes = key as ArrayBuffer;
    return isPublic ? this.deserializePublicKey(bytes) : this.deserializePrivateKey(bytes);
  }

  generateKeyPair(): Promise<CryptoKeyPair> {
    return settle(() => {
      const pair = generateKeyPairSync("x25519");
      return {
        privateKey: asCryptoKey(new NodeX25519Key("private", pair.privateKey)),
        publicKey: asCryptoKey(
          new NodeX25519Key("public", pair.publicKey, rawPublicKey(pair.publicKey)),
        ),
      };
    });
  }

  deriveKeyPair(ikm: Bytes): Promise<CryptoKeyPair> {
    return this.#web.deriveKeyPair(ikm);
  }

  derivePublicKey(key: CryptoKey): Promise<CryptoKey> {
    const node = nodeKey(key);
    if (node === undefined) return this.#web.derivePublicKey(key);
    return settle(() => {
      const object = createPublicKey(node.object);
      return asCryptoKey(new NodeX25519Key("public", object, rawPublicKey(object)));
    });
  }

  async dh(sk: CryptoKey, pk: CryptoKey): Promise<ArrayBuffer> {
    const nodeSk = nodeKey(sk);
    if (nodeSk !== undefined) {
      // a WebCrypto public key is imported here (public keys can always be exported)
      const nodePk = nodeKey(pk) ??
        nodeKey(await this.deserializePublicKey(await this.#web.serializePublicKey(pk)))!;
      return arrayBuffer(x25519Agree(nodeSk.object, nodePk.object));
    }
    const nodePk = nodeKey(pk);
    const webPk = nodePk === undefined
      ? pk
      : await this.#web.deserializePublicKey(nodePk.raw ?? rawPublicKey(nodePk.object));
    return await this.#web.dh(sk, webPk);
  }

  /** A node private key as the stock primitives' key (a generated one has no seed: refused). */
  #toWeb(key: NodeX25519Key): Promise<CryptoKey> {
    if (key.raw === undefined) {
      return Promise.reject(new TypeError("Cannot export a generated X25519 private key"));
    }
    return this.#web.deserializePrivateKey(key.raw);
  }
}

/**
 * The X25519 key pair of a raw private seed for {@link hpkeSuite}'s KEM (node:crypto), cached
 * per seed like `x25519KeyPair` of keys.ts.
 */
export async function hpkeRecipientKeyPair(seed: Uint8Array): Promise<CryptoKeyPair> {
  const { privateKey, publicKey } = await x25519KeyObjects(seed);
  return {
    privateKey: asCryptoKey(new NodeX25519Key("private", privateKey)),
    publicKey: asCryptoKey(
      new NodeX25519Key("public", publicKeyObject("X25519", publicKey), publicKey),
    ),
  };
}

/**
 * DHKEM(X25519, HKDF-SHA256) whose shared-secret HKDF and X25519 primitives run on
 * node:crypto.
 */
export class NodeDhkemX25519HkdfSha256 extends DhkemX25519HkdfSha256 {
  constructor() {
    super();
    const kdf = new NodeHkdfSha256();
    kdf.init(KEM_SUITE_ID);
    this._kdf = kdf;
    this._prim = new NodeX25519Primitives(this._prim);
  }
}

/** The one suite every block is sealed and opened with. */
export const hpkeSuite: CipherSuite = new CipherSuite({
  kem: new NodeDhkemX25519HkdfSha256(),
  kdf: new NodeHkdfSha256(),
  aead: new NodeAes128Gcm(),
});
