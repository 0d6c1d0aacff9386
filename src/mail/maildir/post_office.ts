/**
 * The embedded local post office: one Maildir per address under a root directory, so a host
 * and terminals on one machine exchange real mails through directories, with no accounts.
 *
 * Layout: `<root>/<address lower-cased>/{tmp,new,cur}`.
 *
 * @module
 */
import { join } from "node:path";
import { MailError } from "../../errors.ts";

// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/;

/** A directory of Maildirs, one per address. */
export class MaildirPostOffice {
  /** The post office root directory. */
  readonly root: string;

  constructor(root: string) {
    if (root === "") {
      throw new TypeError("Cannot open the post office: the root path is empty; give a directory");
    }
    this.root = root;
  }

  /**
   * The Maildir path of `address` (bare `local@domain` or `Name <local@domain>`). Throws
   * `MailError` `EMAILDIR` when the address cannot safely name a directory.
   */
  maildirOf(address: string): string {
    return join(this.root, mailboxName(address));
  }

  /** Creates the Maildir of `address` (tmp/, new/, cur/) when missing; resolves with its path. */
  async ensureMailbox(address: string): Promise<string> {
    const dir = this.maildirOf(address);
    await ensureMaildir(dir);
    return dir;
  }
}

/**
 * The directory name of `address`: its bare form, lower-cased. Rejects (MailError `EMAILDIR`)
 * anything that is not `local@domain` or that contains `/`, `\`, `..` or control characters.
 */
export function mailboxName(address: string): string {
  const bare = (/<([^>]*)>/.exec(address)?.[1] ?? address).trim().toLowerCase();
  const at = bare.lastIndexOf("@");
  const problem = bare === ""
    ? "it is empty"
    : CONTROL.test(bare)
    ? "it contains control characters"
    : bare.includes("/") || bare.includes("\\")
    ? "it contains a slash"
    : bare.includes("..")
    ? 'it contains ".."'
    : bare.startsWith(".")
    ? "it starts with a dot"
    : at <= 0 || at === bare.length - 1
    ? "it is not of the form local@domain"
    : undefined;
  if (problem !== undefined) {
    throw new MailError(
      "EMAILDIR",
      `Cannot use a mailbox for ${JSON.stringify(address)}: ${problem}; ` +
        "use a plain address such as alice@example.org",
    );
  }
  return bare;
}

/** Creates `dir/tmp`, `dir/new` and `dir/cur` when missing. Throws `MailError` `EMAILDIR`. */
export async function ensureMaildir(dir: string): Promise<void> {
  try {
    for (const sub of ["tmp", "new", "cur"]) {
      await Deno.mkdir(join(dir, sub), { recursive: true, mode: 0o700 });
    }
  } catch (err) {
    throw new MailError(
      "EMAILDIR",
      `Cannot create the Maildir ${dir}: ${err instanceof Error ? err.message : String(err)}; ` +
        "check that the directory is writable",
      { cause: err },
    );
  }
}
