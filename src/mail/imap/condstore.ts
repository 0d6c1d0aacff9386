/**
 * Conditional STORE (CONDSTORE, RFC 7162) and SAVEDATE (RFC 8514) through imapflow's command
 * channel: imapflow sends a conditional store but does not say which mails it left alone
 * (`OK [MODIFIED <uids>]`), and cannot fetch SAVEDATE. Used by the claims (`mail/imap/claim.ts`).
 *
 * @module
 */
import type { ImapFlow } from "imapflow";

/** imapflow's command channel, which its own commands use; not in its typings. */
interface RawImap {
  preCheck?: () => Promise<void>;
  exec(
    command: string,
    attributes: unknown[],
    options?: { untagged?: Record<string, (untagged: RawResponse) => Promise<void>> },
  ): Promise<{ response: RawResponse; next(): void }>;
}

interface RawAttribute {
  type?: string;
  value?: unknown;
  section?: RawAttribute[];
}

interface RawResponse {
  attributes?: (RawAttribute | RawAttribute[])[];
}

/** True when conditional stores work on the selected mailbox. */
export function canCondstore(client: ImapFlow): boolean {
  return client.enabled.has("CONDSTORE") && client.mailbox !== false &&
    !client.mailbox?.noModseq;
}

/**
 * `UID STORE uid (UNCHANGEDSINCE modseq) ±FLAGS.SILENT (flags)`: true when the server applied
 * it, false when the mail changed since `modseq` (`OK [MODIFIED]`) or was expunged meanwhile.
 */
export async function conditionalStore(
  client: ImapFlow,
  uid: number,
  modseq: bigint,
  sign: "+" | "-",
  flags: string[],
): Promise<boolean> {
  const stored = await storeUnchanged(client, String(uid), modseq, sign, flags);
  return stored !== "expunge-issued" && !stored(uid);
}

/**
 * `UID STORE <uids> (UNCHANGEDSINCE modseq) ±FLAGS.SILENT (flags)`. Resolves with a test for
 * the UIDs the server left alone because they changed since `modseq` (`OK [MODIFIED <uids>]`;
 * every UID when that set is unreadable), or `expunge-issued` when the server stopped at a mail
 * expunged meanwhile (`NO [EXPUNGEISSUED]`). Mail already gone is simply not stored.
 */
export async function storeUnchanged(
  client: ImapFlow,
  uids: string,
  modseq: bigint,
  sign: "+" | "-",
  flags: string[],
): Promise<((uid: number) => boolean) | "expunge-issued"> {
  const raw = client as unknown as RawImap;
  // as imapflow's own commands do: end a running IDLE first
  if (typeof raw.preCheck === "function") await raw.preCheck();
  let response: RawResponse;
  try {
    const result = await raw.exec("UID STORE", [
      { type: "SEQUENCE", value: uids },
      [{ type: "ATOM", value: "UNCHANGEDSINCE" }, { type: "ATOM", value: modseq.toString() }],
      { type: "ATOM", value: `${sign}FLAGS.SILENT` },
      flags.map((value) => ({ type: "ATOM", value })),
    ], { untagged: { FETCH: () => Promise.resolve() } });
    result.next();
    response = result.response;
  } catch (err) {
    const code = (err as { serverResponseCode?: unknown }).serverResponseCode;
    if (code === "EXPUNGEISSUED" && client.usable) return "expunge-issued";
    throw err;
  }
  const first = response.attributes?.[0];
  const section = Array.isArray(first) ? undefined : first?.section;
  if (section?.[0]?.value !== "MODIFIED") return () => false;
  const modified = section[1]?.value;
  return (typeof modified === "string" ? uidSetTest(modified) : undefined) ?? (() => true);
}

/**
 * A membership test for a UID set the server sent (`2,5:7`), or undefined when the text is
 * not one. Ranges are compared, never expanded: a hostile `1:4294967295` costs nothing.
 */
export function uidSetTest(text: string): ((uid: number) => boolean) | undefined {
  const ranges: [number, number][] = [];
  for (const part of text.split(",")) {
    const m = /^(\d{1,10})(?::(\d{1,10}))?$/.exec(part);
    if (m === null) return undefined;
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    ranges.push([Math.min(a, b), Math.max(a, b)]);
  }
  return (uid) => ranges.some(([low, high]) => uid >= low && uid <= high);
}

/** SAVEDATE (RFC 8514) of every mail in the selected folder, by UID, in ms. */
export async function saveDates(client: ImapFlow): Promise<Map<number, number>> {
  const raw = client as unknown as RawImap;
  if (typeof raw.preCheck === "function") await raw.preCheck();
  const dates = new Map<number, number>();
  const result = await raw.exec("UID FETCH", [
    { type: "SEQUENCE", value: "1:*" },
    [{ type: "ATOM", value: "UID" }, { type: "ATOM", value: "SAVEDATE" }],
  ], {
    untagged: {
      FETCH: (untagged) => {
        const items = untagged.attributes?.[1];
        if (Array.isArray(items)) {
          let uid: number | undefined;
          let saved: number | undefined;
          for (let i = 0; i + 1 < items.length; i += 2) {
            const key = String(items[i]?.value ?? "").toUpperCase();
            const value = items[i + 1]?.value;
            if (key === "UID") uid = Number(value);
            if (key === "SAVEDATE" && typeof value === "string") saved = parseImapDate(value);
          }
          if (uid !== undefined && saved !== undefined) dates.set(uid, saved);
        }
        return Promise.resolve();
      },
    },
  });
  result.next();
  return dates;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** Parses an IMAP date-time, `26-Nov-2026 06:39:15 +0000`, into ms since the epoch. */
export function parseImapDate(text: string): number | undefined {
  const m = /^\s*(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})$/
    .exec(text);
  if (m === null) return undefined;
  const month = MONTHS.findIndex((name) => name.toLowerCase() === m[2]!.toLowerCase());
  if (month < 0) return undefined;
  const utc = Date.UTC(+m[3]!, month, +m[1]!, +m[4]!, +m[5]!, +m[6]!);
  const offset = (m[7] === "-" ? -1 : 1) * (+m[8]! * 60 + +m[9]!) * 60_000;
  return utc - offset;
}
