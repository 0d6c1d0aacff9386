/**
 * Folder names in the server's personal namespace (RFC 2342). The folders a source creates
 * (quarantine, processing) are named without a prefix in the configuration (`Quarantine`); on
 * a server whose personal namespace has one they live below it: Courier IMAP's is `INBOX.`
 * (`INBOX.Quarantine`), Dovecot's and Cyrus's are empty here (docs/providers.md). imapflow
 * adds the prefix itself to every path it sends (SELECT, CREATE, MOVE, COPY), but LIST answers
 * with full names: a source that looked for the bare name never found the folder it had
 * created, and from the second run on tried to CREATE it again, which Courier refuses.
 *
 * @module
 */

/** The personal namespace as imapflow reports it after login (`client.namespace`). */
export interface PersonalNamespace {
  prefix?: string | null;
  delimiter?: string | null;
}

/**
 * The full name of folder `name` in namespace `ns`, as imapflow sends it: `INBOX` (any case)
 * and names that already start with the prefix stay as given; any other name gets the prefix.
 *
 * @example
 * ```ts
 * personalFolder("Quarantine", { prefix: "INBOX.", delimiter: "." }); // "INBOX.Quarantine"
 * personalFolder("Quarantine", { prefix: "", delimiter: "/" }); // "Quarantine"
 * ```
 */
export function personalFolder(name: string, ns: PersonalNamespace | undefined): string {
  if (name.toUpperCase() === "INBOX") return "INBOX";
  const prefix = ns?.prefix ?? "";
  return prefix === "" || name.startsWith(prefix) ? name : prefix + name;
}
