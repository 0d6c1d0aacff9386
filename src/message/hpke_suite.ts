/**
 * The HPKE cipher suite of mailpeer blocks (RFC 9180: DHKEM X25519, HKDF-SHA256, AES-128-GCM).
 *
 * The suite is @hpke/core's, with its KDF and AEAD (and the HKDF inside its KEM) swapped for
 * node:crypto's synchronous HKDF-SHA256 and AES-128-GCM. Over WebCrypto, each HMAC, HKDF and
 * AES-GCM call is a key import plus an operation that runs on another thread; HPKE makes about
 * fifteen such calls per block, which cost more than the X25519 and Ed25519 work itself. The
 * X25519 KEM stays on WebCrypto. The results are byte for byte the same (the tests check them
 * against the stock suite and the RFC 9180 A.1.1 test vector).
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
import {
  type AeadEncryptionContext,
  Aes128Gcm,
  CipherSuite,
  DhkemX25519HkdfSha256,
  HkdfSha256,
} from "@hpke/core";

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

/** DHKEM(X25519, HKDF-SHA256) whose shared-secret HKDF runs on node:crypto. */
export class NodeDhkemX25519HkdfSha256 extends DhkemX25519HkdfSha256 {
  constructor() {
    super();
    const kdf = new NodeHkdfSha256();
    kdf.init(KEM_SUITE_ID);
    this._kdf = kdf;
  }
}

/** The one suite every block is sealed and opened with. */
export const hpkeSuite: CipherSuite = new CipherSuite({
  kem: new NodeDhkemX25519HkdfSha256(),
  kdf: new NodeHkdfSha256(),
  aead: new NodeAes128Gcm(),
});
