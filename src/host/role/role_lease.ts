/**
 * The host role lease of a group with no standing host (docs/decisions.md "First receiver
 * becomes host"): who holds the role, since when, until when, in which epoch, signed with the
 * group's network host key. {@link signLease} and {@link openLease} put it on and take it off
 * the wire with every bound checked; {@link currentHolder} and {@link nextEpoch} are the pure
 * rules every member applies alike, so all settle on the same holder.
 *
 * @module
 */
import { MessageError } from "../../errors.ts";
import { MAX_CLOCK_SKEW_MS, MAX_ROLE_LEASE_BYTES, MAX_ROLE_LEASE_MS } from "../../limits.ts";
import { MAX_ROLE_EPOCH } from "../../protocol.ts";
import { fromBase64Url, toBase64Url } from "../../message/base64.ts";
import { userIdProblem } from "../../message/field_rules.ts";
import type { HostKeys } from "../../message/key_file.ts";
import { sign, verify } from "../../message/keys.ts";

/** One member's claim of the host role. */
export interface RoleLease {
  network: string;
  /** 1, 2, …: one more each time the role passes on after a lease expired. */
  epoch: number;
  /** The member's name (its terminal's user id). */
  holder: string;
  /** When the holder took the role (ms since the epoch): the tie-break within one epoch. */
  taken: number;
  /** When the holder last renewed the role (`taken` at first). */
  since: number;
  /** When the role is free again unless renewed. */
  until: number;
}

const utf8 = new TextEncoder();
/** What the signature covers: a fixed label, so no other signed mailpeer data passes as a lease. */
const LABEL = "mailpeer-role-lease\0";

function signedData(json: string): Uint8Array {
  return utf8.encode(LABEL + json);
}

/** The lease as one line `<base64url(json)>.<base64url(signature)>`, signed by the network key. */
export async function signLease(lease: RoleLease, keys: HostKeys): Promise<string> {
  const json = JSON.stringify({
    network: lease.network,
    epoch: lease.epoch,
    holder: lease.holder,
    taken: lease.taken,
    since: lease.since,
    until: lease.until,
  });
  const signature = await sign(keys.ed25519.privateKey, signedData(json));
  return `${toBase64Url(utf8.encode(json))}.${toBase64Url(signature)}`;
}

/**
 * Reads a lease line and checks it: the signature of the network key (a non-member cannot make
 * one), the network, every field's type and bound, a lease no longer than MAX_ROLE_LEASE_MS and
 * not dated in the future beyond the clock skew. Expired leases pass (they still say the epoch).
 *
 * @throws {MessageError} `ESIGNATURE` for a lease the network key did not sign, `EPAYLOAD` for
 * one that breaks a bound or names another network.
 */
export async function openLease(
  line: string,
  options: { keys: HostKeys; network: string; now: number },
): Promise<RoleLease> {
  const bad = (problem: string): never => {
    throw new MessageError("EPAYLOAD", `Cannot accept the role lease: ${problem}; ignore it`);
  };
  const parts = line.trim().split(".");
  if (parts.length !== 2) return bad("it is not <lease>.<signature>");
  let body: Uint8Array;
  let signature: Uint8Array;
  try {
    body = fromBase64Url(parts[0]!);
    signature = fromBase64Url(parts[1]!);
  } catch {
    return bad("it is not base64url text");
  }
  if (body.length > MAX_ROLE_LEASE_BYTES) bad(`it is over ${MAX_ROLE_LEASE_BYTES} bytes`);
  let json: string;
  try {
    json = new TextDecoder("utf-8", { fatal: true }).decode(body);
  } catch {
    return bad("it is not UTF-8 text");
  }
  if (!await verify(options.keys.ed25519.publicKey, signedData(json), signature)) {
    throw new MessageError(
      "ESIGNATURE",
      "Cannot accept the role lease: the network host key did not sign it (forged, or from " +
        "another group); ignore it",
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    return bad("it is not JSON");
  }
  const r = raw as Record<string, unknown>;
  if (typeof r !== "object" || r === null) return bad("it is not an object");
  if (r.network !== options.network) return bad(`it is for another network`);
  const int = (key: string, min: number, max: number): number => {
    const v = r[key];
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max) {
      return bad(`${key} is not an integer from ${min} to ${max}`);
    }
    return v;
  };
  const epoch = int("epoch", 1, MAX_ROLE_EPOCH);
  const taken = int("taken", 0, options.now + MAX_CLOCK_SKEW_MS);
  const since = int("since", taken, options.now + MAX_CLOCK_SKEW_MS);
  const until = int("until", since + 1, since + MAX_ROLE_LEASE_MS);
  const holder = r.holder;
  const problem = typeof holder === "string" ? userIdProblem(holder) : "is not text";
  if (problem !== undefined) bad(`the holder ${problem}`);
  return { network: options.network, epoch, holder: holder as string, taken, since, until };
}

/**
 * The holder all members agree on: of the unexpired leases, the highest epoch; in one epoch the
 * earliest `taken` (who took it first), then the smaller holder name. Undefined: the role is free.
 */
export function currentHolder(leases: readonly RoleLease[], now: number): RoleLease | undefined {
  let best: RoleLease | undefined;
  for (const l of leases) {
    if (l.until <= now) continue;
    if (best === undefined || before(l, best)) best = l;
  }
  return best;
}

function before(a: RoleLease, b: RoleLease): boolean {
  if (a.epoch !== b.epoch) return a.epoch > b.epoch;
  if (a.taken !== b.taken) return a.taken < b.taken;
  return a.holder < b.holder;
}

/**
 * The epoch of a member taking a free role: one above every lease seen, expired ones too
 * (`highestSeen`: the highest epoch of leases no longer at hand).
 */
export function nextEpoch(leases: readonly RoleLease[], highestSeen = 0): number {
  return Math.min(MAX_ROLE_EPOCH, Math.max(highestSeen, ...leases.map((l) => l.epoch)) + 1);
}
