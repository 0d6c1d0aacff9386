/**
 * The embedded local post office (Maildir): {@link MaildirPostOffice} (one Maildir per
 * address), {@link MaildirSender} (delivers into it) and {@link MaildirSource} (reads one).
 *
 * @module
 */
export { ensureMaildir, mailboxName, MaildirPostOffice } from "./maildir_post_office.ts";
export {
  type DeliverOptions,
  deliverToMaildir,
  MaildirSender,
  type MaildirSenderOptions,
} from "./maildir_sender.ts";
export { MaildirSource, type MaildirSourceOptions, QUARANTINE_FOLDER } from "./maildir_source.ts";
