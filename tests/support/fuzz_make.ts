/**
 * Turning a hostile mail description (fuzz_arbitraries.ts) into raw mail, with what the host
 * must do with it.
 *
 * @module
 */
import { readSubject } from "../../src/mail/rfc5322/parse.ts";
import { matchesSubject } from "../../src/mail/types.ts";
import { MAX_HOST_CARDS } from "../../src/protocol.ts";
import { armor, dearmorAll } from "../../src/message/armor.ts";
import { bytesEqual } from "../../src/message/bytes.ts";
import { decodeRequest } from "../../src/message/codec.ts";
import { bodyFor } from "../../src/message/mail_text.ts";
import { sealRawBlock } from "../../scripts/gen-hostile-fixtures.ts";
import type {
  ArmorEdit,
  HeaderEdit,
  Hostile,
  Kind,
  Mutation,
  PayloadEdit,
} from "./fuzz_arbitraries.ts";
import {
  type Bytes,
  concat,
  enc,
  keys,
  mailOf,
  NETWORK,
  noticeBlocks,
  otherHostBlock,
  pool,
  type PoolEntry,
  replyBlock,
  standardHeaders,
  SUBJECTS,
} from "./fuzz_host.ts";

export interface Made {
  raw: Bytes;
  /**
   * `untouched`: not a mailpeer subject, must stay as it is. `rejected`: must be quarantined or
   * deleted, never answered. `maybe`: still carries the valid signed request of pool entry
   * `pool`, so it may be answered (once), else quarantined or deleted.
   */
  expect: "untouched" | "rejected" | "maybe";
  pool?: number;
}

function mutate(block: Bytes, mutations: Mutation[]): Bytes {
  let b: Bytes = block.slice();
  for (const m of mutations) {
    const at = (n: number) => (b.length === 0 ? 0 : n % (b.length + 1));
    if (m.op === "flip" && b.length > 0) b[m.at % b.length]! ^= 1 << m.bit;
    else if (m.op === "truncate") b = b.slice(0, at(m.at) % Math.max(1, b.length));
    else if (m.op === "extend") b = concat([b, m.bytes]);
    else if (m.op === "insert") b = concat([b.slice(0, at(m.at)), m.bytes, b.slice(at(m.at))]);
    else if (m.op === "remove") b = concat([b.slice(0, at(m.at)), b.slice(at(m.at) + m.length)]);
    else if (m.op === "set" && b.length > 0) b[m.at % b.length] = m.value;
  }
  if (bytesEqual(b, block)) b[b.length - 1]! ^= 0x80; // a mutation that changed nothing
  return b;
}

function editArmor(text: string, edits: ArmorEdit[]): string {
  let lines = text.split("\n");
  let ending = "\n";
  for (const e of edits) {
    const n = lines.length;
    if (e.op === "char") {
      const flat = lines.join("\n");
      const at = e.at % (flat.length + 1);
      lines = (flat.slice(0, at) + e.ch + flat.slice(at + 1)).split("\n");
    } else if (e.op === "dropLine") lines.splice(e.line % n, 1);
    else if (e.op === "dupLine") lines.splice(e.line % n, 0, lines[e.line % n]!);
    else if (e.op === "splitLine") {
      const l = lines[e.line % n]!;
      const at = e.at % (l.length + 1);
      lines.splice(e.line % n, 1, l.slice(0, at), l.slice(at));
    } else if (e.op === "joinLines" && n > 1) {
      const i = e.line % (n - 1);
      lines.splice(i, 2, lines[i]! + lines[i + 1]!);
    } else if (e.op === "indent") lines[e.line % n] = e.ws + lines[e.line % n]! + e.ws;
    else if (e.op === "quote") lines[e.line % n] = "> " + lines[e.line % n]!;
    else if (e.op === "insertLine") lines.splice(e.line % (n + 1), 0, e.text);
    else if (e.op === "lineEnds") ending = e.to;
    else if (e.op === "addBlock") {
      const more = Array.from({ length: e.copies }, () => armor(e.bytes).split("\n")).flat();
      lines = e.first ? [...more, ...lines] : [...lines, ...more];
    }
  }
  return lines.join(ending);
}

function editHeaders(headers: Bytes[], edits: HeaderEdit[]): Bytes[] {
  let h = headers.slice();
  const named = (name: string) =>
    h.findIndex((line) =>
      new TextDecoder().decode(line).toLowerCase().startsWith(`${name.toLowerCase()}:`)
    );
  const replace = (name: string, value: Bytes) => {
    const i = named(name);
    const line = concat([enc(`${name}: `), value]);
    if (i < 0) h.push(line);
    else h[i] = line;
  };
  for (const e of edits) {
    if (e.op === "date") replace("Date", latin1(e.value));
    else if (e.op === "dropHeader") h = h.filter((_, i) => i !== named(e.name));
    else if (e.op === "from") replace("From", latin1(e.value));
    else if (e.op === "subjectFirst") h.unshift(concat([enc("Subject: "), latin1(e.value)]));
    else if (e.op === "subjectAfter") h.push(concat([enc("Subject: "), latin1(e.value)]));
    else if (e.op === "rawBytes") {
      const i = e.header % h.length;
      const line = h[i]!;
      const at = Math.max(line.indexOf(0x3a) + 1, e.at % (line.length + 1));
      h[i] = concat([line.slice(0, at), e.bytes, line.slice(at)]);
    } else if (e.op === "messageId") replace("Message-ID", concat([enc("<"), e.bytes, enc(">")]));
    else if (e.op === "fold") {
      const i = e.header % h.length;
      const line = h[i]!;
      const at = Math.max(line.indexOf(0x3a) + 1, e.at % (line.length + 1));
      h[i] = concat([line.slice(0, at), enc("\r\n "), line.slice(at)]);
    } else if (e.op === "junkLine") h.push(e.bytes.filter((b) => b !== 0x0a && b !== 0x0d));
    else if (e.op === "contentType") replace("Content-Type", latin1(e.value));
    else if (e.op === "longHeader") h.push(enc(`X-Long: ${"x".repeat(e.length)}`));
  }
  return h;
}

/** A string's code units as bytes (units above 0xff keep their low byte: any byte can occur). */
function latin1(s: string): Bytes {
  return Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff).filter((b) => b !== 0x0a && b !== 0x0d);
}

function payloadBody(entry: PoolEntry, edits: PayloadEdit[]): Bytes {
  const wire: Record<string, unknown> = structuredClone(entry.wire);
  let body: Bytes | undefined;
  for (const e of edits) {
    if (e.op === "set") {
      Object.defineProperty(wire, e.field, {
        value: e.value,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    } else if (e.op === "drop") delete wire[e.field];
    else if (e.op === "userId") wire.userId = e.value;
    else if (e.op === "endpoints") wire.endpoints = e.value;
    else if (e.op === "createdAt") wire.createdAt = e.value;
    else if (e.op === "text") body = enc(e.text);
    else if (e.op === "bytes") body = e.bytes;
  }
  return body ?? enc(JSON.stringify(wire));
}

async function subjectExpect(
  raw: Bytes,
  expect: "rejected" | "maybe",
  pool?: number,
): Promise<Made> {
  const subject = await readSubject(raw);
  const ours = matchesSubject(subject, { subject: SUBJECTS.request, mode: "exact" }) ||
    matchesSubject(subject, { subject: SUBJECTS.notice, mode: "exact" });
  if (!ours) return { raw, expect: "untouched" };
  return pool === undefined ? { raw, expect } : { raw, expect, pool };
}

export async function make(h: Hostile, id: number): Promise<Made> {
  const from = `h${id}@evil.test`;
  const headers = (kind: Kind) => standardHeaders({ from, subject: SUBJECTS[kind], id });
  switch (h.f) {
    case "bytes": {
      const prefix = h.prefix === "none"
        ? new Uint8Array()
        : enc(`Subject: ${SUBJECTS[h.prefix]}\r\n`);
      return await subjectExpect(concat([prefix, h.bytes]), "rejected");
    }
    case "body":
      return await subjectExpect(mailOf(headers(h.kind), h.body), "rejected");
    case "armored": {
      const bytes = h.bytes.slice();
      if (h.header && bytes.length >= 2) bytes.set(h.header);
      const text = bytes.length === 0
        ? "-----BEGIN MAILPEER BLOCK-----\n-----END MAILPEER BLOCK-----\n"
        : bodyFor(NETWORK, h.kind, bytes);
      return await subjectExpect(mailOf(headers(h.kind), text), "rejected");
    }
    case "mutated": {
      const src = h.src === "request"
        ? pool[h.pool]!.block
        : noticeBlocks[h.pool % noticeBlocks.length]!;
      const block = mutate(src, h.mutations);
      return await subjectExpect(
        mailOf(headers(h.kind), bodyFor(NETWORK, h.kind, block)),
        "rejected",
      );
    }
    case "wrongKind": {
      const block = h.block === "reply"
        ? replyBlock
        : h.block === "request"
        ? pool[0]!.block
        : h.block === "notice"
        ? noticeBlocks[0]!
        : otherHostBlock;
      return await subjectExpect(
        mailOf(headers(h.kind), bodyFor(NETWORK, h.kind, block)),
        "rejected",
      );
    }
    case "armor": {
      const entry = pool[h.pool]!;
      const text = editArmor(bodyFor(NETWORK, "request", entry.block), h.edits);
      let same = false;
      try {
        same = dearmorAll(text, { max: MAX_HOST_CARDS }).some((b) => bytesEqual(b, entry.block));
      } catch {
        same = false;
      }
      return await subjectExpect(
        mailOf(headers("request"), text),
        same ? "maybe" : "rejected",
        same ? h.pool : undefined,
      );
    }
    case "headers": {
      const entry = pool[h.pool]!;
      const raw = mailOf(
        editHeaders(headers("request"), h.edits),
        bodyFor(NETWORK, "request", entry.block),
      );
      return await subjectExpect(raw, "maybe", h.pool);
    }
    case "payload": {
      const entry = pool[h.pool]!;
      const body = payloadBody(entry, h.edits);
      const block = await sealRawBlock({
        kind: "request",
        body,
        signer: entry.identity.ed25519.privateKey,
        recipient: keys.x25519.publicKey,
      });
      let decodes = false;
      try {
        decodeRequest(body);
        decodes = true;
      } catch {
        decodes = false;
      }
      const raw = mailOf(headers("request"), bodyFor(NETWORK, "request", block));
      return await subjectExpect(raw, decodes ? "maybe" : "rejected", decodes ? h.pool : undefined);
    }
  }
}
