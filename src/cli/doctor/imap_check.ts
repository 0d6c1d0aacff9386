/**
 * The IMAP checks of `mailpeer doctor`: logging in, the capabilities mailpeer uses (and what it
 * does without each), and the folders: the mailbox it reads, the quarantine folder, and the
 * Junk folder, where a provider's spam filter may hide mailpeer mail from it.
 *
 * @module
 */
import { ImapFlow, type ListResponse } from "imapflow";
import type { ReceiveConfig } from "../../config/config_schema.ts";
import { commandError, connectionError } from "../../mail/imap/errors.ts";
import { type CheckReport, resultOf } from "./check.ts";
import { imapflowTlsMode, nodeTlsSettings } from "../../mail/tls_settings.ts";

/** An IMAP receive section. */
export type ImapReceive = Extract<ReceiveConfig, { kind: "imap" }>;

/** The capabilities mailpeer uses, and what it does without each. */
export const IMAP_CAPABILITIES: readonly {
  name: string;
  use: string;
  without: string;
  /** Doing without it costs nothing a user would notice: a pass, not a warning. */
  harmless?: boolean;
}[] = [
  {
    name: "IDLE",
    use: "new mail is pushed",
    without: "mailpeer polls with NOOP every poll_interval: replies come later",
  },
  {
    name: "MOVE",
    use: "quarantine and claims are one UID MOVE",
    without: "imapflow moves by COPY, then flag and expunge: not atomic, so keep one host " +
      "process per mailbox",
  },
  {
    name: "UIDPLUS",
    use: "deletes expunge exactly mailpeer's own mails",
    without: "deleted mails are only flagged \\Deleted (a plain EXPUNGE would remove other " +
      "deleted mail too); expunge the mailbox now and then",
  },
  {
    name: "CONDSTORE",
    use: "claims are locked, safe for several host processes",
    without: "claims are plain MOVEs, safe for one host process per mailbox only",
    harmless: true,
  },
  {
    name: "SPECIAL-USE",
    use: "the Junk folder is found by its \\Junk flag",
    without: "the Junk folder is looked for by its usual names (Junk, Spam)",
    harmless: true,
  },
];

/** Folder names a Junk folder usually has when the server does not flag it. */
const JUNK_NAMES = /^(junk|spam|junk e-?mail|bulk mail|courrier ind[ée]sirable)$/i;

/** Options of {@link checkImap}. */
export interface ImapCheckOptions {
  /** The subject prefix of this network's mail, to look for in the Junk folder. */
  subject: string;
  report: CheckReport;
  /** Resolved password (or, for OAuth2, `accessToken`). */
  password?: string;
  /** An OAuth2 access token from the section's `token_command` (XOAUTH2). */
  accessToken?: string;
}

/**
 * Logs in to the IMAP server of `config`, reports login, capabilities and folders; resolves
 * true when the login worked (the self-mail can follow).
 */
export async function checkImap(config: ImapReceive, options: ImapCheckOptions): Promise<boolean> {
  const key = config.section;
  const { report } = options;
  const ctx = { server: `${config.host}:${config.port}`, user: config.user, configKey: key };
  let ca: string | undefined;
  // Unreadable: the tls check said so (with tls = "none" it is not used).
  if (config.caFile) ca = await Deno.readTextFile(config.caFile).catch(() => undefined);
  const client = new ImapFlow({
    host: config.host,
    port: config.port,
    ...imapflowTlsMode(config.tls),
    ...(config.servername ? { servername: config.servername } : {}),
    tls: nodeTlsSettings(config, ca),
    auth: options.accessToken !== undefined
      ? { user: config.user, accessToken: options.accessToken }
      : { user: config.user, pass: options.password ?? "" },
    logger: false,
    disableAutoIdle: true,
    connectionTimeout: config.connectTimeoutMs,
    greetingTimeout: config.connectTimeoutMs,
    clientInfo: { name: "mailpeer-doctor" },
  });
  client.on("error", () => {});
  const login = resultOf("login", key);
  try {
    const started = performance.now();
    await client.connect();
    const ms = Math.round(performance.now() - started);
    report(login.pass(`logged in to IMAP ${ctx.server} as ${config.user} (${ms} ms)`, { ms }));
  } catch (err) {
    client.close();
    report(login.fail(connectionError(err, ctx).message));
    return false;
  }
  try {
    checkCapabilities(client, config, report);
    const folders = await client.list();
    checkFolders(folders, config, report);
    await checkJunk(client, folders, config, options);
  } catch (err) {
    // A server that refuses LIST or EXAMINE after the login: said, and the run goes on.
    report(resultOf("folders", key).fail(commandError(err, "look at the folders of", ctx).message));
  } finally {
    await client.logout().catch(() => client.close());
  }
  return true;
}

function checkCapabilities(client: ImapFlow, config: ImapReceive, report: CheckReport): void {
  for (const cap of IMAP_CAPABILITIES) {
    const r = resultOf(`imap-${cap.name.toLowerCase()}`, config.section);
    if (client.capabilities.has(cap.name)) {
      report(r.pass(`${cap.name}: ${cap.use}`));
    } else if (cap.name === "IDLE" && !config.idle) {
      report(r.pass(`${cap.name} is missing, and ${config.section}.idle = false: ${cap.without}`));
    } else if (cap.harmless) {
      report(r.pass(`${cap.name} is missing (mailpeer does without): ${cap.without}`));
    } else {
      report(r.warn(`${cap.name} is missing: ${cap.without}`));
    }
  }
}

function checkFolders(folders: ListResponse[], config: ImapReceive, report: CheckReport): void {
  const key = config.section;
  const has = (path: string) =>
    folders.some((f) =>
      f.path === path || (path.toUpperCase() === "INBOX" && f.specialUse === "\\Inbox")
    );
  const mailbox = resultOf("mailbox", key);
  report(
    has(config.mailbox) ? mailbox.pass(`the mailbox ${config.mailbox} exists`) : mailbox.fail(
      `the mailbox ${config.mailbox} does not exist on the server; set ${key}.mailbox to one ` +
        `that does (${folders.map((f) => f.path).slice(0, 8).join(", ")})`,
    ),
  );
  const quarantine = resultOf("quarantine-folder", key);
  report(
    has(config.quarantine)
      ? quarantine.pass(`the quarantine folder ${config.quarantine} exists`)
      : quarantine.pass(
        `the quarantine folder ${config.quarantine} does not exist yet: mailpeer creates it ` +
          "when it first sets a mail aside",
      ),
  );
}

async function checkJunk(
  client: ImapFlow,
  folders: ListResponse[],
  config: ImapReceive,
  options: ImapCheckOptions,
): Promise<void> {
  const r = resultOf("junk-folder", config.section);
  const junk = folders.find((f) => f.specialUse === "\\Junk") ??
    folders.find((f) => JUNK_NAMES.test(f.name));
  if (!junk) {
    options.report(r.warn(
      `no Junk folder (none flagged \\Junk, none named Junk or Spam): if the provider's spam ` +
        "filter sets mail aside elsewhere, mailpeer cannot see it; check that the filter " +
        "delivers to INBOX, or create a Junk folder so that doctor can look into it",
    ));
    return;
  }
  const how = junk.specialUse === "\\Junk" ? "flagged \\Junk" : "by its name";
  const lock = await client.getMailboxLock(junk.path, { readOnly: true });
  let hits: number[] = [];
  try {
    hits = (await client.search({ subject: options.subject }, { uid: true })) || [];
  } finally {
    lock.release();
  }
  if (hits.length > 0) {
    const them = hits.length === 1 ? "it" : "them";
    options.report(r.warn(
      `${hits.length === 1 ? "1 mailpeer mail sits" : `${hits.length} mailpeer mails sit`} in ` +
        `the Junk folder ` +
        `${junk.path}: the provider's spam filter took ${them}, and mailpeer never reads ${them}; ` +
        `mark ${them} "not spam" and add a filter rule for subjects "${options.subject}"`,
      { folder: junk.path, mails: hits.length },
    ));
  } else {
    options.report(r.pass(`the Junk folder ${junk.path} (${how}) holds no mailpeer mail`, {
      folder: junk.path,
    }));
  }
}
