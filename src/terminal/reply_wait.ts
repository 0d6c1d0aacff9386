/**
 * Waiting for the host's reply: list matching mail, open each with the reply key, accept the
 * first one signed by a configured host for this session. Replies to older sessions are
 * deleted; forged or broken ones are quarantined, and so is any mail over
 * `MAX_TERMINAL_MAIL_BYTES`, by the size the listing gives, before it is downloaded. Progress is
 * reported as `waiting` events.
 *
 * @module
 */
import { isMailpeerError, MailError, MessageError, PeerError } from "../errors.ts";
import type { EventSink } from "../events.ts";
import { formatDuration } from "../duration.ts";
import { MAX_TERMINAL_MAIL_BYTES, WAITING_REPORT_MS } from "../limits.ts";
import type { Logger } from "../log.ts";
import { parseMail } from "../mail/rfc5322/parse.ts";
import type { MailRef, MailSource, SubjectMatch } from "../mail/types.ts";
import { dearmor } from "../message/armor.ts";
import { openReply } from "../message/block.ts";
import type { HostCard } from "../message/host_card.ts";
import type { ReplyPayload } from "../message/types.ts";
import type { Clock } from "../runtime.ts";

/** What {@link waitForReply} needs. */
export interface ReplyWaitOptions {
  source: MailSource;
  match: SubjectMatch;
  hosts: HostCard[];
  sessionId: Uint8Array;
  replyPrivateKey: Uint8Array;
  /** Replies dated before this (ms since the epoch) that do not open are obsolete and deleted. */
  notBefore: number;
  timeoutMs: number;
  clock: Clock;
  onEvent: EventSink;
  logger: Logger;
  signal?: AbortSignal;
  /**
   * A listing of the reply subject already under way (the terminal lists while its request
   * is sent, to open its mailbox connection early); used instead of the first `list()`.
   */
  firstListing?: Promise<MailRef[]>;
}

/** The accepted reply and the host that signed it. */
export interface ReceivedReply {
  reply: ReplyPayload;
  host: HostCard;
  ms: number;
  /** Deletes the reply mail; done by the caller once the time-critical connect is over. */
  consume: () => Promise<void>;
}

/** Waits until a valid reply to `sessionId` arrives, or throws `PeerError` `ETIMEOUT`. */
export async function waitForReply(o: ReplyWaitOptions): Promise<ReceivedReply> {
  const started = o.clock.now();
  const until = started + o.timeoutMs;
  const timer = new AbortController();
  const sleeping = o.clock.sleep(o.timeoutMs, timer.signal).then(() => timer.abort(), () => {});
  const signal = o.signal ? AbortSignal.any([o.signal, timer.signal]) : timer.signal;
  o.onEvent({ event: "waiting", for: "reply", sinceMs: started, untilMs: until });
  let lastReport = started;
  try {
    let listing = o.firstListing;
    while (true) {
      const refs = await (listing ?? o.source.list(o.match, { signal }));
      listing = undefined;
      for (const ref of refs) {
        const found = await tryReply(ref, o);
        if (found) {
          const ms = o.clock.now() - started;
          o.onEvent({
            event: "reply-received",
            from: found.host.email,
            ms,
            peers: found.reply.peers.map((p) => ({
              userId: p.userId,
              endpoints: p.endpoints,
              ...(p.candidates ? { candidates: p.candidates } : {}),
              lastSeen: p.lastSeen,
              failures: p.failures,
            })),
            ...(found.reply.role ? { role: { ...found.reply.role } } : {}),
          });
          return { ...found, ms };
        }
      }
      if (signal.aborted) break;
      await o.source.waitForMail({ signal });
      if (signal.aborted && !timer.signal.aborted) break;
      if (!signal.aborted && o.clock.now() - lastReport >= WAITING_REPORT_MS) {
        lastReport = o.clock.now();
        o.onEvent({ event: "waiting", for: "reply", sinceMs: started, untilMs: until });
      }
      if (timer.signal.aborted) {
        // One last look: the reply may have landed just as the time ran out.
        for (const ref of await o.source.list(o.match)) {
          const found = await tryReply(ref, o);
          if (found) return { ...found, ms: o.clock.now() - started };
        }
        break;
      }
    }
    o.signal?.throwIfAborted();
    const hosts = o.hosts.map((h) => h.email).join(", ");
    throw new PeerError(
      "ETIMEOUT",
      `Cannot get a reply from ${hosts}: none arrived within ${
        formatDuration(o.timeoutMs)
      }; check that the host runs and reads that mailbox, or raise terminal.reply_timeout`,
    );
  } finally {
    timer.abort();
    await sleeping;
  }
}

async function tryReply(
  ref: MailRef,
  o: ReplyWaitOptions,
): Promise<{ reply: ReplyPayload; host: HostCard; consume: () => Promise<void> } | undefined> {
  if (ref.size !== undefined && ref.size > MAX_TERMINAL_MAIL_BYTES) {
    await refuse(ref, oversize(ref, ref.size), o);
    return undefined;
  }
  let raw: Uint8Array;
  try {
    raw = await o.source.fetch(ref);
  } catch (err) {
    // The mail vanished (another reader took it): just look again.
    if (isMailpeerError(err)) return undefined;
    throw err;
  }
  if (raw.length > MAX_TERMINAL_MAIL_BYTES) {
    // A source that could not tell the size up front.
    await refuse(ref, oversize(ref, raw.length), o);
    return undefined;
  }
  let lastError: unknown;
  let sentAt: number | undefined;
  try {
    const mail = await parseMail(raw);
    sentAt = mail.date?.getTime();
    const block = dearmor(mail.text);
    const cards = [...o.hosts].sort((a, b) =>
      Number(b.email === mail.from) - Number(a.email === mail.from)
    );
    for (const host of cards) {
      try {
        const reply = await openReply(block, {
          replyPrivateKey: o.replyPrivateKey,
          hostCard: host,
          sessionId: o.sessionId,
        });
        return { reply, host, consume: () => o.source.delete(ref) };
      } catch (err) {
        if (!(err instanceof MessageError)) throw err;
        lastError = err;
        if (err.code === "ESESSION" || err.code === "ESEAL") break;
      }
    }
  } catch (err) {
    if (!isMailpeerError(err)) throw err;
    lastError = err;
  }
  const code = isMailpeerError(lastError) ? lastError.code : "EBLOCK";
  if (code === "ESESSION" || code === "ESEAL") {
    // Not sealed to this request's reply key. Older than the request: a reply to an earlier
    // request of ours, obsolete. Newer: maybe another terminal's on a shared mailbox; leave it.
    if (sentAt !== undefined && sentAt < o.notBefore) {
      o.logger.log("info", "deleted a reply to an earlier request", { subject: ref.subject, code });
      await o.source.delete(ref);
    }
    return undefined;
  }
  await refuse(ref, lastError, o);
  return undefined;
}

function oversize(ref: MailRef, size: number): MailError {
  return new MailError(
    "EMAIL",
    `Cannot read mail ${ref.id} as a reply: it has ${size} bytes, over the limit of ` +
      `${MAX_TERMINAL_MAIL_BYTES}; it is quarantined unread (a real reply is far smaller)`,
  );
}

/** Logs, reports and quarantines a mail that is not a valid reply. */
async function refuse(ref: MailRef, error: unknown, o: ReplyWaitOptions): Promise<void> {
  const code = isMailpeerError(error) ? error.code : "EBLOCK";
  const message = isMailpeerError(error) ? error.message : String(error);
  o.logger.log("warn", `refused a reply: ${message}`, { code });
  o.onEvent({ event: "error", code, message });
  await o.source.quarantine(ref, message);
}
