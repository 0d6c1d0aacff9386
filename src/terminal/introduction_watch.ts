/**
 * A terminal on standby watches its mailbox for introductions (docs/design.md "Reachability", issue
 * 13), from the same source as its replies (IMAP IDLE, polling, a Maildir watch). Each mail under
 * the introduction subject is size-checked before it is fetched, opened and checked whole
 * (`openIntroduction`: our introduction key, one of our hosts' signature, our network, our current
 * request, a punch window not over); only then is it handed on. Anything else is quarantined with
 * an `error` event and never acted on; a valid introduction's mail is deleted.
 *
 * @module
 */
import { isMailpeerError, MailError } from "../errors.ts";
import type { EventSink } from "../events.ts";
import { MAX_TERMINAL_MAIL_BYTES } from "../limits.ts";
import type { Logger } from "../log.ts";
import { parseMail } from "../mail/rfc5322/parse.ts";
import type { MailRef, MailSource, SubjectMatch } from "../mail/types.ts";
import { dearmor } from "../message/armor.ts";
import type { HostCard } from "../message/host_card.ts";
import { openIntroduction } from "../message/introduction.ts";
import type { IntroductionPayload } from "../message/types.ts";
import type { Clock } from "../runtime.ts";

/** What {@link watchIntroductions} needs. */
export interface IntroductionWatchOptions {
  source: MailSource;
  match: SubjectMatch;
  hosts: readonly HostCard[];
  network: string;
  /** The session id of the request on standby. */
  sessionId: Uint8Array;
  introductionPrivateKey: Uint8Array;
  clock: Clock;
  onEvent: EventSink;
  logger: Logger;
  /** Called with each valid introduction, in arrival order (awaited before the next). */
  onIntroduction: (introduction: IntroductionPayload) => Promise<void>;
  signal: AbortSignal;
}

/**
 * Watches until `signal` aborts. A mail source that fails ends the watch (logged): standby goes
 * on accepting connections without introductions.
 */
export async function watchIntroductions(o: IntroductionWatchOptions): Promise<void> {
  try {
    while (!o.signal.aborted) {
      for (const ref of await o.source.list(o.match, { signal: o.signal })) {
        if (o.signal.aborted) return;
        const introduction = await take(ref, o);
        if (introduction) await o.onIntroduction(introduction);
      }
      await o.source.waitForMail({ signal: o.signal });
    }
  } catch (err) {
    if (o.signal.aborted) return;
    if (!isMailpeerError(err)) throw err;
    o.logger.log("warn", `stopped watching for introductions: ${err.message}`, {
      code: err.code,
    });
  }
}

/** The introduction in `ref` when it is valid (its mail then deleted); else quarantines it. */
async function take(
  ref: MailRef,
  o: IntroductionWatchOptions,
): Promise<IntroductionPayload | undefined> {
  let problem: unknown;
  try {
    if (ref.size !== undefined && ref.size > MAX_TERMINAL_MAIL_BYTES) {
      throw oversize(ref, ref.size);
    }
    const raw = await o.source.fetch(ref);
    if (raw.length > MAX_TERMINAL_MAIL_BYTES) throw oversize(ref, raw.length);
    const mail = await parseMail(raw);
    const { introduction } = await openIntroduction(dearmor(mail.text), {
      introductionPrivateKey: o.introductionPrivateKey,
      hosts: o.hosts,
      network: o.network,
      sessionId: o.sessionId,
      now: o.clock.now(),
    });
    await o.source.delete(ref);
    return introduction;
  } catch (err) {
    if (!isMailpeerError(err)) throw err;
    problem = err;
  }
  const code = isMailpeerError(problem) ? problem.code : "EBLOCK";
  const message = `refused an introduction: ${(problem as Error).message}`;
  o.logger.log("warn", message, { code });
  o.onEvent({ event: "error", code, message });
  await o.source.quarantine(ref, message);
  return undefined;
}

function oversize(ref: MailRef, size: number): MailError {
  return new MailError(
    "EMAIL",
    `Cannot read mail ${ref.id} as an introduction: it has ${size} bytes, over the limit of ${MAX_TERMINAL_MAIL_BYTES}; it is quarantined unread`,
  );
}
