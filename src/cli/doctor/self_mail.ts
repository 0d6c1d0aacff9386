/**
 * The round trip of `mailpeer doctor`: a mail from a role's address to itself, sent with its
 * configured sender and awaited in its configured mailbox, timed, and deleted. Its `Received:`
 * stamp gives the clock skew against the server (clock_skew.ts). The mail's subject,
 * `[mailpeer-doctor] <random>`, matches no mailpeer subject key, so a host reading the same
 * mailbox leaves it alone; the doctor deletes it once seen, and never leaves one it saw.
 *
 * @module
 */
import type { ReceiveConfig, SendConfig } from "../../config/config_schema.ts";
import { isMailpeerError } from "../../errors.ts";
import { DOCTOR_SELF_MAIL_TIMEOUT_MS } from "../../limits.ts";
import type { MailSource, SubjectMatch } from "../../mail/types.ts";
import { openSender, openSource } from "../wire.ts";
import { type CheckReport, resultOf } from "./check.ts";
import { deliveredAt, estimateSkew, skewResult } from "./clock_skew.ts";

/** The subject of every mail doctor sends itself; what follows is random. */
export const SUBJECT_PREFIX = "[mailpeer-doctor] ";

/** A role's mail: its address, how it sends, how it receives. */
export interface MailRole {
  /** `host` or `terminal`. */
  role: string;
  email: string;
  send: SendConfig;
  receive: ReceiveConfig;
}

/** Options of {@link checkSelfMail}. */
export interface SelfMailOptions {
  /** This machine's clock (ms since the epoch); tests skew it with `--clock-offset`. */
  now: () => number;
  report: CheckReport;
  /** How long to wait for the mail. Default: `DOCTOR_SELF_MAIL_TIMEOUT_MS`. */
  timeoutMs?: number;
  /** Stops the wait. */
  signal?: AbortSignal;
}

function describe(receive: ReceiveConfig): string {
  return receive.kind === "local"
    ? `the Maildir ${receive.maildir}`
    : `${receive.kind.toUpperCase()} ${receive.host}:${receive.port}`;
}

/**
 * Mails `role.email` to itself and waits for it; reports `self-mail` and `clock-skew`.
 */
export async function checkSelfMail(role: MailRole, options: SelfMailOptions): Promise<void> {
  const target = `${role.role}.receive`;
  const r = resultOf("self-mail", target);
  const match: SubjectMatch = {
    subject: `${SUBJECT_PREFIX}${crypto.randomUUID()}`,
    mode: "exact",
  };
  let source: MailSource | undefined;
  const sender = await openSender(role.send);
  try {
    source = await openSource(role.receive, { pollIntervalMs: 100, readAhead: false });
    let leftovers = 0;
    try {
      // Logs in (nothing is sent to a mailbox that cannot be read), and removes what an earlier
      // run left when its mail came after the wait ended.
      const earlier = await source.list({ subject: SUBJECT_PREFIX, mode: "prefix" });
      if (earlier.length > 0) await source.deleteMany(earlier);
      leftovers = earlier.length;
    } catch (err) {
      if (!isMailpeerError(err)) throw err;
      options.report(r.fail(`Cannot read the mailbox to await the mail: ${err.message}`));
      return;
    }
    const sentAt = options.now();
    const started = performance.now();
    try {
      await sender.send({
        from: role.email,
        to: [role.email],
        subject: match.subject,
        text: "mailpeer doctor checks that this mailbox receives its own mail. It deletes this " +
          "mail as soon as it arrives; if you read this, delete it.\n",
        date: new Date(sentAt),
      });
    } catch (err) {
      if (!isMailpeerError(err)) throw err;
      options.report(r.fail(`Cannot mail ${role.email} from ${role.email}: ${err.message}`));
      return;
    }
    const timeoutMs = options.timeoutMs ?? DOCTOR_SELF_MAIL_TIMEOUT_MS;
    const deadline = AbortSignal.timeout(timeoutMs);
    const signal = options.signal ? AbortSignal.any([deadline, options.signal]) : deadline;
    let refs = await source.list(match);
    while (refs.length === 0 && !signal.aborted) {
      await source.waitForMail({ signal });
      refs = await source.list(match);
    }
    if (refs.length === 0) {
      options.report(r.fail(
        `a mail from ${role.email} to itself did not arrive in ${describe(role.receive)} ` +
          `within ${Math.round(timeoutMs / 1000)} s: look for it in the Junk folder, the ` +
          `provider's spam filter or the server's mail log, and delete it when it comes`,
      ));
      return;
    }
    const seenAt = options.now();
    const ms = Math.round(performance.now() - started);
    let raw: Uint8Array;
    try {
      raw = await source.fetch(refs[0]!);
      await source.deleteMany(refs);
    } catch (err) {
      if (!isMailpeerError(err)) throw err;
      options.report(r.fail(
        `a mail to itself (${role.email}) arrived after ${ms} ms but could not be read or ` +
          `deleted: ${err.message}; delete the mail "${match.subject}" by hand`,
      ));
      return;
    }
    const earlier = leftovers === 0
      ? ""
      : ` (and ${leftovers} left by an earlier run, which came after its wait)`;
    options.report(r.pass(
      `a mail to itself (${role.email}) arrived in ${describe(role.receive)} after ${ms} ms ` +
        `and was deleted${earlier}`,
      { ms, ...(leftovers > 0 ? { leftovers } : {}) },
    ));
    const stamped = deliveredAt(raw);
    if (stamped === undefined) {
      options.report(
        resultOf("clock-skew", target).skip(
          "the mail carries no dated Received: header (a local Maildir): no server clock to compare",
        ),
      );
    } else {
      options.report(
        skewResult(target, describe(role.receive), estimateSkew(stamped, sentAt, seenAt)),
      );
    }
  } finally {
    await sender.close().catch(() => {});
    await source?.close().catch(() => {});
  }
}
