/**
 * The peer benchmark's AES-256-GCM figures: single-core seal and open rates per frame (WebCrypto,
 * node:crypto, and the session's own implementations from `src/peer/aes_gcm.ts`), and the best
 * session/raw ratio that per-byte encryption allows next to a raw TCP rate.
 *
 * @module
 */
import { createCipheriv, createDecipheriv } from "node:crypto";
import { aesGcmKey } from "../../src/peer/aes_gcm.ts";

const MiB = 1024 * 1024;
const round = (x: number, digits = 1) => Number(x.toFixed(digits));
const mbps = (bytes: number, ms: number) => bytes / MiB / (ms / 1000);

const payload = new Uint8Array(MiB);
for (let at = 0; at < MiB; at += 65536) crypto.getRandomValues(payload.subarray(at, at + 65536));

/** AES-256-GCM seal of one frame's worth via WebCrypto, sequentially as the session does. */
export async function aesGcm(frameBytes: number): Promise<number> {
  const key = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, [
    "encrypt",
  ]);
  const plain = payload.slice(0, frameBytes);
  const iv = new Uint8Array(12);
  const count = Math.ceil((64 * MiB) / frameBytes);
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    new DataView(iv.buffer).setUint32(8, i);
    await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: iv }, key, plain);
  }
  return mbps(count * frameBytes, performance.now() - started);
}

export interface SealOpen {
  seal_mb_s: number;
  open_mb_s: number;
}

/** Single-core AES-256-GCM seal and open of `frameBytes` buffers with node:crypto. */
export function nodeAesGcm(frameBytes: number): SealOpen {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const iv = new Uint8Array(12);
  const aad = new Uint8Array(10);
  const plain = payload.subarray(0, frameBytes);
  const count = Math.ceil((64 * MiB) / frameBytes);
  let sealed: Uint8Array = new Uint8Array(0);
  let tag: Uint8Array = new Uint8Array(0);
  let started = performance.now();
  for (let i = 0; i < count; i++) {
    const c = createCipheriv("aes-256-gcm", key, iv);
    c.setAAD(aad);
    sealed = c.update(plain);
    c.final();
    tag = c.getAuthTag();
  }
  const seal = mbps(count * frameBytes, performance.now() - started);
  started = performance.now();
  for (let i = 0; i < count; i++) {
    const d = createDecipheriv("aes-256-gcm", key, iv);
    d.setAAD(aad);
    d.setAuthTag(tag);
    d.update(sealed);
    d.final();
  }
  return {
    seal_mb_s: round(seal),
    open_mb_s: round(mbps(count * frameBytes, performance.now() - started)),
  };
}

/** Single-core AES-256-GCM seal and open through the session's implementation (aes_gcm.ts). */
export async function sessionAesGcm(
  implementation: "webcrypto" | "openssl" | "ipsec-mb",
  frameBytes: number,
): Promise<SealOpen> {
  const raw = crypto.getRandomValues(new Uint8Array(32));
  const key = await crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
  const aead = aesGcmKey({ key, raw }, { implementation });
  const nonce = new Uint8Array(12);
  const aad = new Uint8Array(10);
  const plain = payload.subarray(0, frameBytes);
  const out = new Uint8Array(frameBytes + 16);
  const count = Math.ceil((64 * MiB) / frameBytes);
  let started = performance.now();
  for (let i = 0; i < count; i++) await aead.seal(nonce, aad, [plain], out);
  const seal = mbps(count * frameBytes, performance.now() - started);
  started = performance.now();
  const scratch = new Uint8Array(out.length); // in place, as the TCP session opens
  for (let i = 0; i < count; i++) {
    scratch.set(out);
    if (!(await aead.open(nonce, aad, scratch, { inPlace: true }))) {
      throw new Error("AES-GCM open failed");
    }
  }
  return {
    seal_mb_s: round(seal),
    open_mb_s: round(mbps(count * frameBytes, performance.now() - started)),
  };
}

/**
 * Best session/raw ratio per-byte AES-GCM allows. One process: one thread seals,
 * writes, reads and opens every byte, so time adds up. Two hosts: each end pays only one of
 * seal or open, so the slowest stage bounds the rate.
 */
export function ceiling(aes: SealOpen, rawMbS: number) {
  const oneProcess = 1 / (1 / rawMbS + 1 / aes.seal_mb_s + 1 / aes.open_mb_s);
  const twoHosts = Math.min(rawMbS, aes.seal_mb_s, aes.open_mb_s);
  return {
    one_process_mb_s: round(oneProcess),
    one_process_ratio: round(oneProcess / rawMbS, 3),
    two_hosts_ratio: round(twoHosts / rawMbS, 3),
  };
}
