/**
 * Key files: a host's or a terminal's key pairs on disk, as JSON text.
 *
 * ```json
 * {"kind":"mailpeer-host-keys","version":1,"email":"host@example.org",
 *  "x25519":{"public":"<base64url>","private":"<base64url>"},
 *  "ed25519":{"public":"<base64url>","private":"<base64url>"}}
 * ```
 *
 * Reading checks that every public key belongs to its private key, so a file edited by hand
 * or mixed from two hosts is refused instead of producing blocks nobody can open.
 *
 * @module
 */
import { MessageError } from "../errors.ts";
import { fromBase64Url, toBase64Url } from "./base64.ts";
import { userIdProblem } from "./field_rules.ts";
import { emailProblem, type HostCard } from "./host_card.ts";
import { generateEd25519, generateX25519, publicKeyOf, type RawKeyPair } from "./keys.ts";

/** A host's keys: X25519 to open requests and notices, Ed25519 to sign replies. */
export interface HostKeys {
  /** The host mailbox's e-mail address. */
  email: string;
  x25519: RawKeyPair;
  ed25519: RawKeyPair;
}

/** A terminal's identity: its user id and the Ed25519 key pair that proves it. */
export interface IdentityKeys {
  userId: string;
  ed25519: RawKeyPair;
}

const HOST_KIND = "mailpeer-host-keys";
const IDENTITY_KIND = "mailpeer-identity-keys";
const VERSION = 1;

type Algorithm = "X25519" | "Ed25519";

function keyError(what: string, problem: string, cause?: unknown): MessageError {
  return new MessageError(
    "EKEY",
    `Cannot read ${what}: ${problem}; regenerate them with \`mailpeer keygen\``,
    cause === undefined ? {} : { cause },
  );
}

/**
 * Refuses a private key file that group or others may read or write (mode bits 0o077), as ssh
 * refuses such an identity file. `mode` is the file's `stat` mode; `null` (a system without
 * POSIX modes) passes.
 *
 * @example
 * ```ts
 * import { checkKeyFileMode } from "./key_file.ts";
 * checkKeyFileMode("alice.identity.json", 0o100600); // fine
 * // checkKeyFileMode("alice.identity.json", 0o100644) throws: ... chmod 600 alice.identity.json
 * ```
 * @throws {MessageError} `EKEY`: "Cannot use the key file FILE: its mode is 0644, …; run `chmod 600 FILE`".
 */
export function checkKeyFileMode(path: string, mode: number | null): void {
  if (mode === null || (mode & 0o077) === 0) return;
  const octal = (mode & 0o7777).toString(8).padStart(4, "0");
  throw new MessageError(
    "EKEY",
    `Cannot use the key file ${path}: it has mode ${octal}, so other users of this machine can ` +
      `read or replace its private keys; run chmod 600 ${path}`,
    { cause: `mode ${octal}` },
  );
}

/**
 * Generates fresh host keys for the mailbox `email`.
 *
 * @example
 * ```ts
 * const keys = await generateHostKeys("host@example.org");
 * await Deno.writeTextFile("host.keys.json", encodeHostKeys(keys), { mode: 0o600 });
 * ```
 * @throws {MessageError} `ECARD` when `email` is not a plausible address.
 */
export async function generateHostKeys(email: string): Promise<HostKeys> {
  const problem = emailProblem(email);
  if (problem !== undefined) {
    throw new MessageError(
      "ECARD",
      `Cannot make host keys: the e-mail address "${email}" ${problem}; give the host mailbox's address`,
    );
  }
  return { email, x25519: await generateX25519(), ed25519: await generateEd25519() };
}

/**
 * Generates a fresh identity for the terminal user `userId`.
 *
 * @throws {MessageError} `EKEY` when `userId` is empty, too long or has control characters.
 */
export async function generateIdentityKeys(userId: string): Promise<IdentityKeys> {
  const problem = userIdProblem(userId);
  if (problem !== undefined) {
    throw new MessageError(
      "EKEY",
      `Cannot make identity keys: the user id ${problem}; choose another user id`,
    );
  }
  return { userId, ed25519: await generateEd25519() };
}

/** The host card (address and public keys) that terminals are configured with. */
export function hostCardOf(keys: HostKeys): HostCard {
  return { email: keys.email, x25519: keys.x25519.publicKey, ed25519: keys.ed25519.publicKey };
}

function pairToJson(pair: RawKeyPair): Record<string, string> {
  return { public: toBase64Url(pair.publicKey), private: toBase64Url(pair.privateKey) };
}

/** Encodes host keys as JSON text (contains private keys: store it with mode 0600). */
export function encodeHostKeys(keys: HostKeys): string {
  return JSON.stringify(
    {
      kind: HOST_KIND,
      version: VERSION,
      email: keys.email,
      x25519: pairToJson(keys.x25519),
      ed25519: pairToJson(keys.ed25519),
    },
    null,
    2,
  ) + "\n";
}

/** Encodes identity keys as JSON text (contains a private key: store it with mode 0600). */
export function encodeIdentityKeys(keys: IdentityKeys): string {
  return JSON.stringify(
    {
      kind: IDENTITY_KIND,
      version: VERSION,
      userId: keys.userId,
      ed25519: pairToJson(keys.ed25519),
    },
    null,
    2,
  ) + "\n";
}

function parseFile(what: string, text: string, kind: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw keyError(what, "the file is not JSON", err);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw keyError(what, "the file is not a JSON object");
  }
  const obj = value as Record<string, unknown>;
  if (obj.kind !== kind) throw keyError(what, `its "kind" is not "${kind}"`);
  if (obj.version !== VERSION) throw keyError(what, `its "version" is not ${VERSION}`);
  return obj;
}

function readKey(what: string, text: unknown, name: string): Uint8Array {
  if (typeof text !== "string") throw keyError(what, `${name} is missing`);
  let key: Uint8Array;
  try {
    key = fromBase64Url(text);
  } catch (err) {
    throw keyError(what, `${name} is not base64url`, err);
  }
  if (key.length !== 32) throw keyError(what, `${name} has ${key.length} bytes, not 32`);
  return key;
}

async function readPair(
  what: string,
  obj: Record<string, unknown>,
  field: string,
  algorithm: Algorithm,
): Promise<RawKeyPair> {
  const pair = obj[field];
  if (typeof pair !== "object" || pair === null) throw keyError(what, `"${field}" is missing`);
  const raw = pair as Record<string, unknown>;
  const publicKey = readKey(what, raw.public, `the ${algorithm} public key`);
  const privateKey = readKey(what, raw.private, `the ${algorithm} private key`);
  let derived: Uint8Array;
  try {
    derived = await publicKeyOf(algorithm, privateKey);
  } catch (err) {
    throw keyError(what, `the ${algorithm} private key is not usable`, err);
  }
  if (toBase64Url(derived) !== toBase64Url(publicKey)) {
    throw keyError(what, `the ${algorithm} public key does not belong to its private key`);
  }
  return { publicKey, privateKey };
}

/**
 * Reads host keys written by {@link encodeHostKeys}.
 *
 * @throws {MessageError} `EKEY` naming what is wrong.
 */
export async function decodeHostKeys(text: string): Promise<HostKeys> {
  const what = "host keys";
  const obj = parseFile(what, text, HOST_KIND);
  const email = obj.email;
  if (typeof email !== "string") throw keyError(what, `"email" is missing`);
  const problem = emailProblem(email);
  if (problem !== undefined) throw keyError(what, `the e-mail address ${problem}`);
  return {
    email,
    x25519: await readPair(what, obj, "x25519", "X25519"),
    ed25519: await readPair(what, obj, "ed25519", "Ed25519"),
  };
}

/**
 * Reads identity keys written by {@link encodeIdentityKeys}.
 *
 * @throws {MessageError} `EKEY` naming what is wrong.
 */
export async function decodeIdentityKeys(text: string): Promise<IdentityKeys> {
  const what = "identity keys";
  const obj = parseFile(what, text, IDENTITY_KIND);
  const userId = obj.userId;
  if (typeof userId !== "string") throw keyError(what, `"userId" is missing`);
  const problem = userIdProblem(userId);
  if (problem !== undefined) throw keyError(what, `the user id ${problem}`);
  return { userId, ed25519: await readPair(what, obj, "ed25519", "Ed25519") };
}
