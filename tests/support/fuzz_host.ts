/**
 * The host under fuzz and the valid material the hostile mails are made from (see
 * fuzz_check.ts): the host's keys, a pool of valid sealed requests and notices, a reply block,
 * a block for another host, and raw mail building.
 *
 * @module
 */
import { sealNotice, sealReply, sealRequest } from "../../src/message/block.ts";
import { toBase64Url } from "../../src/message/base64.ts";
import { concatBytes } from "../../src/message/bytes.ts";
import { formatHostCard } from "../../src/message/host_card.ts";
import {
  generateHostKeys,
  generateIdentityKeys,
  hostCardOf,
  type IdentityKeys,
} from "../../src/message/key_file.ts";
import { generateX25519 } from "../../src/message/keys.ts";
import { subjectFor } from "../../src/message/mail_text.ts";
import type { Endpoint } from "../../src/message/types.ts";

export const NETWORK = "fuzznet";
export const NOW = Date.UTC(2026, 10, 26, 12);
export const HOST_EMAIL = "host@host.test";
export const SEED = 20261126;
/** Runs per property; 6 properties × RUNS × ~50 mails ≥ 10,000. */
export const RUNS = 40;
export const MIN_TOTAL = 10_000;
export const SUBJECTS = {
  request: subjectFor(NETWORK, "request"),
  notice: subjectFor(NETWORK, "notice"),
} as const;
const utf8 = new TextEncoder();

// ---- the host and a pool of valid blocks to mutate -------------------------------------------

export const keys = await generateHostKeys(HOST_EMAIL);
export const card = hostCardOf(keys);
export const POOL_SIZE = 6;

export interface PoolEntry {
  identity: IdentityKeys;
  block: Uint8Array;
  replyPrivateKey: Uint8Array;
  /** The request's JSON body, to tamper with before sealing. */
  wire: Record<string, unknown>;
}

export async function requestOf(identity: IdentityKeys, endpoints: Endpoint[], to = card) {
  const reply = await generateX25519();
  const sessionId = crypto.getRandomValues(new Uint8Array(16));
  const payload = {
    network: NETWORK,
    userId: identity.userId,
    identityKey: identity.ed25519.publicKey,
    endpoints,
    sessionId,
    createdAt: NOW - 1000,
    replyKey: reply.publicKey,
    hostCards: [formatHostCard(card)],
  };
  const block = await sealRequest(payload, { identity, hostCard: to });
  return { block, payload, replyPrivateKey: reply.privateKey, sessionId };
}

export const pool: PoolEntry[] = [];
for (let i = 0; i < POOL_SIZE; i++) {
  const identity = await generateIdentityKeys(`pool-${i}`);
  const r = await requestOf(identity, [{ transport: "udp", address: "192.0.2.7", port: 7000 + i }]);
  const wire = JSON.parse(new TextDecoder().decode(encodeWire(r.payload)));
  pool.push({ identity, block: r.block, replyPrivateKey: r.replyPrivateKey, wire });
}
export const noticeBlocks = await Promise.all(
  pool.slice(0, 3).map((p, i) =>
    sealNotice({
      network: NETWORK,
      userId: p.identity.userId,
      identityKey: p.identity.ed25519.publicKey,
      sessionId: new Uint8Array(16).fill(i),
      createdAt: NOW,
      failed: [{ userId: "pool-5", reason: "ETIMEOUT" }],
    }, { identity: p.identity, hostCard: card })
  ),
);
export const replyBlock = await sealReply({
  network: NETWORK,
  sessionId: new Uint8Array(16),
  hostId: keys.ed25519.publicKey,
  createdAt: NOW,
  peers: [],
}, { hostKeys: keys, replyKey: (await generateX25519()).publicKey });
const otherHost = await generateHostKeys("other@host.test");
export const otherHostBlock = (await requestOf(pool[0]!.identity, [], hostCardOf(otherHost))).block;

function encodeWire(p: Awaited<ReturnType<typeof requestOf>>["payload"]): Uint8Array {
  const b64u = toBase64Url;
  return utf8.encode(JSON.stringify({
    network: p.network,
    userId: p.userId,
    identityKey: b64u(p.identityKey),
    endpoints: p.endpoints,
    sessionId: b64u(p.sessionId),
    createdAt: p.createdAt,
    replyKey: b64u(p.replyKey),
    hostCards: p.hostCards,
  }));
}

// ---- building raw mail -----------------------------------------------------------------------

export type Bytes = Uint8Array;
export const enc = (s: string): Bytes => utf8.encode(s);

export function concat(parts: Bytes[]): Bytes {
  return concatBytes(...parts);
}

/** Header lines (each without its line end) and a body, joined with CRLF. */
export function mailOf(headers: Bytes[], body: Bytes | string): Bytes {
  const lines = headers.flatMap((h) => [h, enc("\r\n")]);
  const text = typeof body === "string" ? enc(body.replace(/\r?\n/g, "\r\n")) : body;
  return concat([...lines, enc("\r\n"), text]);
}

export function standardHeaders(o: { from: string; subject: string; id: number }): Bytes[] {
  return [
    `From: ${o.from}`,
    `To: ${HOST_EMAIL}`,
    `Subject: ${o.subject}`,
    `Date: ${new Date(NOW).toUTCString()}`,
    `Message-ID: <hostile-${o.id}@evil.test>`,
    "MIME-Version: 1.0",
    "Content-Type: text/plain; charset=utf-8",
    "Content-Transfer-Encoding: 8bit",
  ].map(enc);
}
