/**
 * Files of a Maildir as {@link MaildirSource} (mail/maildir/source.ts) sees them: unique names,
 * the `:2,<flags>` info, and the subject of a mail read from its header section alone.
 *
 * @module
 */
import { MAX_MAIL_BYTES } from "../../limits.ts";
import { headerEnd, readSubject } from "../rfc5322/parse.ts";

/** True for a unique name that stays inside its directory. */
export function safeName(id: string): boolean {
  return id !== "" && !id.includes("/") && !id.includes("\\") && !id.startsWith(".");
}

/** The Maildir unique name of a file name: everything before the `:2,` info. */
export function idOf(name: string): string {
  const colon = name.indexOf(":");
  return colon < 0 ? name : name.slice(0, colon);
}

/** The subject of the mail at `path`, reading no more than its header section. */
export async function subjectOf(path: string): Promise<string | undefined> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch {
    return undefined;
  }
  try {
    const chunks: Uint8Array[] = [];
    let total = 0;
    const buffer = new Uint8Array(4096);
    while (total < MAX_MAIL_BYTES) {
      const n = await file.read(buffer);
      if (n === null) break;
      chunks.push(buffer.slice(0, n));
      total += n;
      // a header section ends at the first blank line: stop reading there
      if (headerEnd(concat(chunks, total)).complete) break;
    }
    return await readSubject(concat(chunks, total));
  } catch {
    return undefined;
  } finally {
    file.close();
  }
}

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1 && chunks[0] !== undefined) return chunks[0];
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/** True when something (file, directory or link) is at `path`. */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** The message of an error, or the thrown value as text. */
export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
