/**
 * Generates the hostile-mail corpus of tests/fixtures/hostile/ (see docs/hostile-mail.md).
 *
 *     deno run --no-prompt -A scripts/gen-hostile-fixtures.ts
 *
 * Every mail is built by hand as RFC 5322 bytes, so headers can be as broken as an attacker
 * likes. Blocks that must open at the test host are sealed to the committed TEST key
 * tests/fixtures/hostile/host.keys.json (created on first run from a fixed seed; it protects
 * nothing). Identity keys and HPKE ephemeral keys are derived from fixed seeds too, so running
 * the script again gives the same bytes.
 *
 * Also exports {@link sealRawBlock}, which seals any body (even one the codec would refuse to
 * encode) with the layout of src/message/block.ts, for the corpus and the fuzz tests.
 *
 * @module
 */
import { Aes128Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";
import { armor } from "../src/message/armor.ts";
import { toBase64, toBase64Url } from "../src/message/base64.ts";
import { concatBytes } from "../src/message/bytes.ts";
import { encodeReply } from "../src/message/codec.ts";
import { formatHostCard } from "../src/message/host_card.ts";
import {
  decodeHostKeys,
  encodeHostKeys,
  hostCardOf,
  type HostKeys,
  type IdentityKeys,
} from "../src/message/key_file.ts";
import { publicKeyOf, sign } from "../src/message/keys.ts";
import { bodyFor, subjectFor } from "../src/message/mail_text.ts";
import { BlockKind, type BlockKindName, type Endpoint } from "../src/message/types.ts";
import { MAX_MAIL_BYTES } from "../src/limits.ts";
import { MAX_HOST_CARDS, PROTOCOL_VERSION } from "../src/protocol.ts";

/** The network of every fixture. */
export const FIXTURE_NETWORK = "hostile-test";
/** The clock the corpus test runs at; fixture dates are relative to it. */
export const FIXTURE_NOW = Date.UTC(2026, 10, 26, 12);
/** Where the fixtures live. */
export const FIXTURE_DIR = new URL("../tests/fixtures/hostile/", import.meta.url);
/** The test host's mailbox. */
export const FIXTURE_HOST_EMAIL = "test-host@hostile.test";

const suite = new CipherSuite({
  kem: new DhkemX25519HkdfSha256(),
  kdf: new HkdfSha256(),
  aead: new Aes128Gcm(),
});
const utf8 = new TextEncoder();

function ab(bytes: Uint8Array): ArrayBuffer {
  return bytes.slice().buffer as ArrayBuffer;
}

/** What {@link sealRawBlock} seals. */
export interface RawBlockOptions {
  /** Kind used for the HPKE info and the signature context. */
  kind: BlockKindName;
  /** The body bytes, sealed as they are (no codec check). */
  body: Uint8Array;
  /** Ed25519 private key that signs. */
  signer: Uint8Array;
  /** X25519 public key the block is sealed to. */
  recipient: Uint8Array;
  /** Version byte; default the protocol's. */
  version?: number;
  /** Kind byte; default the kind's. */
  kindByte?: number;
  /** Input keying material for the HPKE ephemeral key (deterministic blocks); default random. */
  ekm?: Uint8Array;
}

/**
 * Seals `body` as src/message/block.ts does (header, HPKE enc, AES-GCM of length | body |
 * signature) but without checking the body, so tests can build blocks a correct sender never
 * would.
 */
export async function sealRawBlock(o: RawBlockOptions): Promise<Uint8Array> {
  const header = new Uint8Array([o.version ?? PROTOCOL_VERSION, o.kindByte ?? BlockKind[o.kind]]);
  const signed = concatBytes(
    utf8.encode(`mailpeer v1 ${o.kind} signature\0`),
    o.recipient,
    o.body,
  );
  const signature = await sign(o.signer, signed);
  const length = new Uint8Array(4);
  new DataView(length.buffer).setUint32(0, o.body.length);
  const sender = await suite.createSenderContext({
    recipientPublicKey: await suite.kem.deserializePublicKey(ab(o.recipient)),
    info: ab(utf8.encode(`mailpeer v1 ${o.kind}`)),
    ...(o.ekm ? { ekm: ab(o.ekm) } : {}),
  });
  const ciphertext = await sender.seal(ab(concatBytes(length, o.body, signature)), ab(header));
  return concatBytes(header, new Uint8Array(sender.enc), new Uint8Array(ciphertext));
}

/** 32 bytes derived from `label` (SHA-256), for deterministic keys. */
export async function seedOf(label: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", utf8.encode(label)));
}

/** An identity whose keys are derived from its user id (for reproducible fixtures). */
export async function fixtureIdentity(userId: string): Promise<IdentityKeys> {
  const privateKey = await seedOf(`mailpeer hostile fixture identity ${userId}`);
  return { userId, ed25519: { privateKey, publicKey: await publicKeyOf("Ed25519", privateKey) } };
}

async function derivedHostKeys(email: string, label: string): Promise<HostKeys> {
  const x = await seedOf(`mailpeer hostile fixture host x25519 ${label}`);
  const e = await seedOf(`mailpeer hostile fixture host ed25519 ${label}`);
  return {
    email,
    x25519: { privateKey: x, publicKey: await publicKeyOf("X25519", x) },
    ed25519: { privateKey: e, publicKey: await publicKeyOf("Ed25519", e) },
  };
}

/** Reads the committed test host keys (the file also carries a comment saying so). */
export async function loadFixtureHostKeys(): Promise<HostKeys> {
  return await decodeHostKeys(await Deno.readTextFile(new URL("host.keys.json", FIXTURE_DIR)));
}

/** The fields of a request payload as they go on the wire (JSON), before any tampering. */
export interface WireRequest {
  network: string;
  userId: string;
  identityKey: string;
  endpoints: Endpoint[];
  sessionId: string;
  createdAt: number;
  replyKey: string;
  hostCards: string[];
}

/** A well-formed wire request of `identity` to `host`. */
export async function wireRequest(
  identity: IdentityKeys,
  host: HostKeys,
  o: { createdAt: number; session: string; endpoints?: Endpoint[]; network?: string },
): Promise<WireRequest> {
  const reply = await seedOf(`mailpeer hostile fixture reply key ${o.session}`);
  return {
    network: o.network ?? FIXTURE_NETWORK,
    userId: identity.userId,
    identityKey: toBase64Url(identity.ed25519.publicKey),
    endpoints: o.endpoints ?? [{ transport: "tcp", address: "192.0.2.50", port: 4000 }],
    sessionId: toBase64Url((await seedOf(`session ${o.session}`)).subarray(0, 16)),
    createdAt: o.createdAt,
    replyKey: toBase64Url(await publicKeyOf("X25519", reply)),
    hostCards: [formatHostCard(hostCardOf(host))],
  };
}

/** Seals a wire request (JSON as given) signed by `identity` to `host`. */
export async function sealWireRequest(
  wire: WireRequest,
  o: { identity: IdentityKeys; host: HostKeys; label: string; version?: number },
): Promise<Uint8Array> {
  return await sealRawBlock({
    kind: "request",
    body: utf8.encode(JSON.stringify(wire)),
    signer: o.identity.ed25519.privateKey,
    recipient: o.host.x25519.publicKey,
    ekm: await seedOf(`ekm ${o.label}`),
    ...(o.version === undefined ? {} : { version: o.version }),
  });
}

/** Header lines and body of a hand-built mail; `null` leaves a header out. */
export interface RawMailParts {
  from?: string | null;
  to?: string;
  subject?: string | null;
  date?: string | null;
  messageId?: string;
  /** Extra header lines (without line ends), inserted after the standard ones. */
  extra?: string[];
  contentType?: string;
  /** Body text with `\n` line ends (turned into CRLF). */
  body: string;
}

/** Builds a raw CRLF mail; header and body strings may hold any code unit below 256 (bytes). */
export function rawMail(p: RawMailParts): Uint8Array {
  const lines: string[] = [];
  if (p.from !== null) lines.push(`From: ${p.from ?? "mallory@evil.test"}`);
  lines.push(`To: ${p.to ?? FIXTURE_HOST_EMAIL}`);
  if (p.subject !== null) {
    lines.push(`Subject: ${p.subject ?? subjectFor(FIXTURE_NETWORK, "request")}`);
  }
  if (p.date !== null) lines.push(`Date: ${p.date ?? new Date(FIXTURE_NOW).toUTCString()}`);
  lines.push(`Message-ID: ${p.messageId ?? "<fixture@evil.test>"}`);
  lines.push("MIME-Version: 1.0");
  lines.push(`Content-Type: ${p.contentType ?? "text/plain; charset=utf-8"}`);
  if (!p.contentType) lines.push("Content-Transfer-Encoding: 8bit");
  lines.push(...(p.extra ?? []));
  const text = lines.join("\r\n") + "\r\n\r\n" + p.body.replace(/\r?\n/g, "\r\n");
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0xff) throw new RangeError(`rawMail: code unit ${c} at ${i} is not a byte`);
    out[i] = c;
  }
  return out;
}

/** UTF-8 text as a string of byte-sized code units, for {@link rawMail}. */
export function utf8Bytes(text: string): string {
  return String.fromCharCode(...utf8.encode(text));
}

/** A mailpeer body around `block`, as bytes-in-a-string for {@link rawMail}. */
export function requestBody(block: Uint8Array, kind: "request" | "notice" = "request"): string {
  return bodyFor(FIXTURE_NETWORK, kind, block);
}

/** What the host must do with a fixture. */
export interface FixtureExpectation {
  /** File names delivered in this order (more than one for the replay case). */
  files: string[];
  /** Outcome of each file, in order. */
  outcomes: Outcome[];
  /** One line for docs/hostile-mail.md. */
  why: string;
}

/** The host's outcome for one mail. */
export type Outcome =
  | { action: "quarantine"; code: string }
  | { action: "delete"; code: "ESTALE" }
  | { action: "answer"; to: string };

const DAY = 24 * 60 * 60 * 1000;

function dateText(ms: number): string {
  return new Date(ms).toUTCString();
}

async function build(): Promise<Map<string, { raw: Uint8Array; spec?: FixtureExpectation }>> {
  const out = new Map<string, { raw: Uint8Array; spec?: FixtureExpectation }>();
  const add = (name: string, raw: Uint8Array, spec?: Omit<FixtureExpectation, "files">) => {
    out.set(name, { raw, ...(spec ? { spec: { files: [name], ...spec } } : {}) });
  };
  const host = await loadFixtureHostKeys();
  const other = await derivedHostKeys("other-host@hostile.test", "other");
  const q = (code: string): Outcome => ({ action: "quarantine", code });

  const mallory = await fixtureIdentity("mallory");
  const good = async (label: string, o: { createdAt?: number } = {}) =>
    await sealWireRequest(
      await wireRequest(mallory, host, { createdAt: o.createdAt ?? FIXTURE_NOW, session: label }),
      { identity: mallory, host, label },
    );

  // ---- armor ----
  {
    const text = requestBody(await good("bad-base64")).replace(/\n([A-Za-z0-9+/]{10})/, "\n!!$1");
    add("bad-base64.eml", rawMail({ body: text }), {
      outcomes: [q("EBLOCK")],
      why: "a base64 line holds characters outside the alphabet: the block cannot be decoded",
    });
  }
  {
    const text = requestBody(await good("truncated"));
    const cut = text.split("\n").slice(0, 5).join("\n") + "\n";
    add("truncated-block.eml", rawMail({ body: cut }), {
      outcomes: [q("EBLOCK")],
      why: "the body ends after two base64 lines, with no END line: a truncated mail",
    });
  }
  {
    const block = await good("too-many-blocks");
    const text = requestBody(block) + `\n${armor(block)}\n`.repeat(MAX_HOST_CARDS);
    add("too-many-blocks.eml", rawMail({ body: text }), {
      outcomes: [q("EBLOCK")],
      why: `${MAX_HOST_CARDS + 1} armored blocks: a request carries at most one per host card ` +
        `(${MAX_HOST_CARDS}), so this is a decryption-cost attack`,
    });
  }
  {
    const lines = requestBody(await good("nested")).split("\n");
    const begin = lines.indexOf("-----BEGIN MAILPEER BLOCK-----");
    lines.splice(begin + 2, 0, "-----BEGIN MAILPEER BLOCK-----");
    lines.push("-----END MAILPEER BLOCK-----");
    add("nested-blocks.eml", rawMail({ body: lines.join("\n") }), {
      outcomes: [q("EBLOCK")],
      why: "a BEGIN line inside a block (blocks may not nest or overlap)",
    });
  }
  // ---- block header ----
  {
    const wire = await wireRequest(mallory, host, { createdAt: FIXTURE_NOW, session: "v2" });
    const block = await sealWireRequest(wire, {
      identity: mallory,
      host,
      label: "unknown-version",
      version: 2,
    });
    add("unknown-version.eml", rawMail({ body: requestBody(block) }), {
      outcomes: [q("EBLOCK")],
      why: "version byte 2: this host reads version 1 only (refused before any decryption)",
    });
  }
  {
    const block = await sealRawBlock({
      kind: "request",
      kindByte: 9,
      body: utf8.encode("{}"),
      signer: mallory.ed25519.privateKey,
      recipient: host.x25519.publicKey,
      ekm: await seedOf("ekm unknown-kind"),
    });
    add("unknown-kind.eml", rawMail({ body: requestBody(block) }), {
      outcomes: [q("EBLOCK")],
      why: "kind byte 9 is no known kind",
    });
  }
  {
    const reply = await sealRawBlock({
      kind: "reply",
      body: encodeReply({
        network: FIXTURE_NETWORK,
        sessionId: new Uint8Array(16),
        hostId: host.ed25519.publicKey,
        createdAt: FIXTURE_NOW,
        peers: [],
      }),
      signer: host.ed25519.privateKey,
      recipient: host.x25519.publicKey,
      ekm: await seedOf("ekm reply-under-request"),
    });
    add("reply-under-request.eml", rawMail({ body: bodyFor(FIXTURE_NETWORK, "reply", reply) }), {
      outcomes: [q("EBLOCK")],
      why: "a reply block under the request subject (a reflected or looped reply)",
    });
  }
  // ---- sealing and signature ----
  {
    const wire = await wireRequest(mallory, other, { createdAt: FIXTURE_NOW, session: "other" });
    const block = await sealWireRequest(wire, {
      identity: mallory,
      host: other,
      label: "other-host",
    });
    add("other-host.eml", rawMail({ body: requestBody(block) }), {
      outcomes: [q("ESEAL")],
      why: "sealed to another host's key: it does not open here",
    });
  }
  {
    const victim = await fixtureIdentity("victim");
    const wire = await wireRequest(victim, host, { createdAt: FIXTURE_NOW, session: "forged" });
    const block = await sealWireRequest(wire, { identity: mallory, host, label: "forged" });
    add("forged-signature.eml", rawMail({ body: requestBody(block) }), {
      outcomes: [q("ESIGNATURE")],
      why: "claims the user id and identity key of victim but is signed by mallory's key",
    });
  }
  // ---- payload ----
  {
    const evil = { ...await fixtureIdentity("evil"), userId: "evil\r\nBcc: x@y" };
    const wire = await wireRequest(evil, host, { createdAt: FIXTURE_NOW, session: "crlf" });
    const block = await sealWireRequest(wire, { identity: evil, host, label: "crlf-user-id" });
    add("crlf-user-id.eml", rawMail({ body: requestBody(block) }), {
      outcomes: [q("EPAYLOAD")],
      why: 'a validly sealed and signed request whose user id is "evil\\r\\nBcc: x@y": header ' +
        "injection; the codec refuses control characters (encodeRequest refuses to seal it too)",
    });
  }
  {
    const wire = await wireRequest(mallory, host, {
      createdAt: FIXTURE_NOW,
      session: "net",
      network: "another-net",
    });
    add(
      "wrong-network.eml",
      rawMail({
        body: requestBody(await sealWireRequest(wire, { identity: mallory, host, label: "net" })),
      }),
      {
        outcomes: [q("EPAYLOAD")],
        why: "a valid request for another network under this network's subject",
      },
    );
  }
  {
    const wire = await wireRequest(mallory, host, {
      createdAt: FIXTURE_NOW,
      session: "multicast",
      endpoints: [{ transport: "udp", address: "224.0.0.1", port: 5353 }],
    });
    const block = await sealWireRequest(wire, { identity: mallory, host, label: "multicast" });
    add("multicast-endpoint.eml", rawMail({ body: requestBody(block) }), {
      outcomes: [q("EPOLICY")],
      why: "endpoint 224.0.0.1 is multicast: never handed out, even with allow_private_addresses",
    });
  }
  // ---- dates ----
  {
    const at = FIXTURE_NOW - 2 * DAY;
    add(
      "stale-date.eml",
      rawMail({ date: dateText(at), body: requestBody(await good("stale", { createdAt: at })) }),
      {
        outcomes: [{ action: "delete", code: "ESTALE" }],
        why:
          "Date (and signed creation time) 2 days old, older than the 12 h expiry: deleted unanswered",
      },
    );
  }
  {
    const at = FIXTURE_NOW - 2 * DAY;
    add(
      "stale-created.eml",
      rawMail({ body: requestBody(await good("stale-created", { createdAt: at })) }),
      {
        outcomes: [{ action: "delete", code: "ESTALE" }],
        why: "a fresh Date around a block signed 2 days ago (an old request re-mailed): deleted",
      },
    );
  }
  {
    add(
      "future-date.eml",
      rawMail({ date: dateText(FIXTURE_NOW + DAY), body: requestBody(await good("future")) }),
      {
        outcomes: [q("ESTALE")],
        why: "Date one day in the future, beyond the 10 min clock skew allowed",
      },
    );
  }
  // ---- replay ----
  {
    const replayer = await fixtureIdentity("replayer");
    const seal = async (label: string, createdAt: number) =>
      await sealWireRequest(
        await wireRequest(replayer, host, { createdAt, session: label }),
        { identity: replayer, host, label },
      );
    const first = rawMail({
      from: "replayer@player.test",
      date: dateText(FIXTURE_NOW - 60_000),
      messageId: "<replay-1@player.test>",
      body: requestBody(await seal("replay-a", FIXTURE_NOW - 60_000)),
    });
    const newer = rawMail({
      from: "replayer@player.test",
      date: dateText(FIXTURE_NOW - 30_000),
      messageId: "<replay-2@player.test>",
      body: requestBody(await seal("replay-b", FIXTURE_NOW - 30_000)),
    });
    out.set("replay-1-first.eml", { raw: first });
    out.set("replay-2-newer.eml", { raw: newer });
    out.set("replay-3-again.eml", {
      raw: first,
      spec: {
        files: ["replay-1-first.eml", "replay-2-newer.eml", "replay-3-again.eml"],
        outcomes: [
          { action: "answer", to: "replayer@player.test" },
          { action: "answer", to: "replayer@player.test" },
          q("EREPLAY"),
        ],
        why: "the first request of a user, a newer one, then the first again byte for byte: the " +
          "replay would roll the user back to an old address and session",
      },
    });
  }
  // ---- mail structure ----
  add("no-from.eml", rawMail({ from: null, body: requestBody(await good("no-from")) }), {
    outcomes: [q("EMAIL")],
    why: "no From header: nobody to answer",
  });
  const nested = async (depth: number, label: string) => {
    let head = "";
    let tail = "";
    for (let i = 1; i < depth; i++) {
      head += `--${i}\r\nContent-Type:multipart/mixed;boundary=${i + 1}\r\n\r\n`;
      tail = `\r\n--${i}--\r\n` + tail;
    }
    const inner = `--${depth}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n` +
      requestBody(await good(label)).replace(/\n/g, "\r\n") + `\r\n--${depth}--\r\n`;
    return rawMail({ contentType: "multipart/mixed;boundary=1", body: head + inner + tail });
  };
  add("deep-multipart.eml", await nested(200, "deep"), {
    outcomes: [{ action: "answer", to: "mallory@evil.test" }],
    why: "a valid request inside 200 nested multipart levels: within mailparser's limit of " +
      "child nodes, so the text is found and the signed request answered; it just costs parsing",
  });
  {
    const raw = await nested(1000, "deeper");
    if (raw.length > MAX_MAIL_BYTES) throw new RangeError("deep-multipart-1000 is too large");
    add("deep-multipart-1000.eml", raw, {
      outcomes: [q("EMAIL")],
      why: "1000 nested multipart levels in under 64 KiB: mailparser refuses (too many child " +
        "nodes) instead of recursing; quarantined",
    });
  }
  add(
    "from-no-domain.eml",
    rawMail({ from: "<mallory@>", body: requestBody(await good("no-domain")) }),
    {
      outcomes: [q("EMAIL")],
      why: "a valid request from `mallory@`: no address a mail server would send to; answering " +
        "fails on every pass and would block every mail behind it",
    },
  );
  add(
    "from-path.eml",
    rawMail({ from: "<../../x@evil.test>", body: requestBody(await good("from-path")) }),
    {
      outcomes: [q("EMAIL")],
      why: "a valid request from `../../x@evil.test`: a path, refused by the Maildir post " +
        "office and by strict servers; must not be answered (nor block the mailbox)",
    },
  );
  add(
    "nul-message-id.eml",
    rawMail({ messageId: "<abc\x00def@evil.test>", body: requestBody(await good("nul-id")) }),
    {
      outcomes: [{ action: "answer", to: "mallory@evil.test" }],
      why: "a valid request whose Message-ID holds a NUL byte: it cannot be echoed in " +
        "In-Reply-To, but the request is valid; answered without In-Reply-To (must never " +
        "crash the pass or stop the host)",
    },
  );
  {
    // ISO-8859-1 bytes (raw, unencoded) in the display name and in an extra header.
    const from = `"J\xf6rg M\xfcller \xff\xfe" <joerg@player.test>`;
    add(
      "latin1-headers.eml",
      rawMail({
        from,
        extra: ["X-Note: caf\xe9 \x80\x81\x9f \xc3\x28 invalid UTF-8"],
        body: requestBody(await good("latin1")),
      }),
      {
        outcomes: [{ action: "answer", to: "joerg@player.test" }],
        why: "raw latin-1 and invalid UTF-8 bytes in a display name and another header: " +
          "harmless; the request itself is valid and is answered at the bare address",
      },
    );
  }
  {
    add(
      "latin1-address.eml",
      rawMail({ from: "j\xf6rg\xff@player.test", body: requestBody(await good("latin1-addr")) }),
      {
        outcomes: [q("EMAIL")],
        why: "invalid bytes inside the sender address itself: the parser turns them into U+FFFD, " +
          "an address the sender never wrote; must not be answered",
      },
    );
  }
  {
    const noise = toBase64(await seedOf("garbage notice")).slice(0, 40);
    add(
      "garbage-notice.eml",
      rawMail({
        subject: subjectFor(FIXTURE_NETWORK, "notice"),
        body: `-----BEGIN MAILPEER BLOCK-----\n${noise}\n-----END MAILPEER BLOCK-----\n`,
      }),
      { outcomes: [q("EBLOCK")], why: "a notice whose block is 30 random bytes" },
    );
  }
  return out;
}

/** Writes every fixture and manifest.json; creates host.keys.json when missing. */
async function main(): Promise<void> {
  await Deno.mkdir(FIXTURE_DIR, { recursive: true });
  const keyFile = new URL("host.keys.json", FIXTURE_DIR);
  try {
    await Deno.stat(keyFile);
  } catch {
    const keys = await derivedHostKeys(FIXTURE_HOST_EMAIL, "test host");
    const json = JSON.parse(encodeHostKeys(keys));
    const text = JSON.stringify(
      {
        comment: "TEST KEY for tests/fixtures/hostile only. Not a secret; never use it for a host.",
        ...json,
      },
      null,
      2,
    );
    await Deno.writeTextFile(keyFile, text + "\n");
  }
  const fixtures = await build();
  const manifest: FixtureExpectation[] = [];
  for (const [name, { raw, spec }] of fixtures) {
    await Deno.writeFile(new URL(name, FIXTURE_DIR), raw);
    if (spec) manifest.push(spec);
  }
  await Deno.writeTextFile(
    new URL("manifest.json", FIXTURE_DIR),
    JSON.stringify({ network: FIXTURE_NETWORK, now: FIXTURE_NOW, fixtures: manifest }, null, 2) +
      "\n",
  );
}

if (import.meta.main) await main();
