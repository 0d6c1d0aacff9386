/**
 * The IMAP test mailbox of the ImapSource and claim tests: host2@host.test on the real stack,
 * reached the way the source under test reaches it, and a plain imapflow session of the same
 * user that looks at the mailbox as a person's mail client would.
 */
import type { MailLogin } from "../../src/mail/types.ts";
import { ImapFlow } from "imapflow";

import type { Logger } from "../../src/log.ts";
import { account, NO_STACK } from "./mailstack.ts";

/** The test user: no other test reads its mailbox (apart from resend_test's INBOX mail). */
export const IMAP_TEST_ADDRESS = "host2@host.test";

/** STARTTLS on 143 with the test CA, verified by name. */
export function imapServer(overrides: Partial<MailLogin> = {}): MailLogin {
  const { provider, user } = account(IMAP_TEST_ADDRESS);
  return {
    host: provider.ip,
    port: provider.ports.imap,
    tls: "starttls",
    user: user.user,
    password: user.password,
    caFile: provider.caFile,
    servername: provider.hostname,
    ...overrides,
  };
}

/** A plain imapflow session of the test user, as a person's mail client would have. */
export async function mailClient(): Promise<ImapFlow> {
  const s = imapServer();
  const client = new ImapFlow({
    host: s.host,
    port: s.port,
    secure: false,
    doSTARTTLS: true,
    servername: s.servername!,
    tls: { ca: [await Deno.readTextFile(s.caFile!)], servername: s.servername! },
    auth: { user: s.user, pass: s.password },
    logger: false,
    disableAutoIdle: true,
  });
  client.on("error", () => {});
  await client.connect();
  return client;
}

/** Deletes those of `folders` that exist. */
export async function removeFolders(client: ImapFlow, folders: string[]): Promise<void> {
  const existing = new Set((await client.list()).map((f) => f.path));
  for (const folder of folders) {
    if (existing.has(folder)) await client.mailboxDelete(folder);
  }
}

/**
 * A test on fresh, empty `folders` of the test user (the first one created, the others left
 * to the code under test) with a mail client; the folders are removed afterwards. Ignored
 * when the stack is not running.
 */
export function imapFoldersTest(
  name: string,
  folders: readonly [string, ...string[]],
  fn: (client: ImapFlow) => Promise<void>,
): void {
  Deno.test({
    name,
    ignore: NO_STACK,
    fn: async () => {
      const client = await mailClient();
      try {
        await removeFolders(client, [...folders]);
        await client.mailboxCreate(folders[0]);
        await fn(client);
      } finally {
        await removeFolders(client, [...folders]).catch(() => {});
        await client.logout().catch(() => client.close());
      }
    },
  });
}

/** The flags of every message in `folder`, by subject. */
export async function flagsBySubject(
  client: ImapFlow,
  folder: string,
): Promise<Map<string, string[]>> {
  await client.mailboxOpen(folder);
  const out = new Map<string, string[]>();
  for (const msg of await client.fetchAll("1:*", { envelope: true, flags: true })) {
    out.set(msg.envelope?.subject ?? "", [...(msg.flags ?? [])].sort());
  }
  return out;
}

/** The raw bytes of every message in `folder`, oldest first, read without marking them. */
export async function sourcesOf(client: ImapFlow, folder: string): Promise<Uint8Array[]> {
  await client.mailboxOpen(folder);
  const messages = await client.fetchAll("1:*", { uid: true, source: true });
  return messages.sort((a, b) => a.uid - b.uid).map((m) => new Uint8Array(m.source!));
}

/**
 * A logger that records the IMAP commands an ImapSource sends (imapflow logs each at debug),
 * e.g. `UID STORE 3:5 +FLAGS.SILENT (\Deleted)`, without their tags and without the MODSEQ item
 * imapflow adds to each FETCH when CONDSTORE is on.
 */
export function commandLog(): Logger & { commands: string[] } {
  const commands: string[] = [];
  return {
    commands,
    log: (_level, message, fields) => {
      if (fields?.src !== "c") return;
      commands.push(message.replace(/^\S+ /, "").replace(/ MODSEQ\)$/, ")"));
    },
  };
}
