/**
 * The raw floor of the mail stack: alice@a.test mails host@host.test through SMTP submission
 * (our pooled {@link SmtpSender}, warm), a tiny echo host waiting on a warm imapflow session
 * (NOOP poll or IDLE) answers, and alice waits for the answer the same way. Everything runs in
 * this process on connections opened once; no crypto, no parsing, no mailpeer code on the path.
 *
 * @module
 */
import { SmtpSender } from "../../src/mail/smtp/sender.ts";
import { now, RawBox, sleep, smtpFor } from "./rendezvous_stack.ts";

const ALICE = "alice@a.test";
const HOST = "host@host.test";

/** Timestamps of one raw round trip (ms on the monotonic clock, relative to its start). */
export interface RawRun {
  /** alice's SMTP submission accepted the request. */
  sent: number;
  /** The echo host's SEARCH found it. */
  hostSeen: number;
  /** The host's SMTP submission accepted the reply. */
  replySent: number;
  /** alice's SEARCH found the reply. */
  aliceSeen: number;
  /** The reply's bytes were fetched: the end of the round trip. */
  total: number;
}

export interface RawOptions {
  mode: "poll" | "idle";
  runs: number;
  warmup: number;
  pollMs: number;
  timeoutMs: number;
  /** Unique per bench run; in every subject, so the sweep finds what is left. */
  tag: string;
}

/** What {@link rawRoundTrips} measured. */
export interface RawResult {
  runs: RawRun[];
  /** Round trips that failed (e.g. the stack restarted under us) and were done again. */
  disturbed: string[];
}

/**
 * Runs `warmup + runs` round trips; returns the timed ones. The echo host starts waiting
 * (warm session, NOOP poll or IDLE) before alice sends, as an always-waiting host would.
 * A failed round trip (connection lost) reopens the sessions and is done again, at most
 * `runs` times.
 */
export async function rawRoundTrips(o: RawOptions): Promise<RawResult> {
  const aliceSender = new SmtpSender(smtpFor(ALICE));
  const hostSender = new SmtpSender(smtpFor(HOST));
  let boxes: [RawBox, RawBox] | undefined;
  const open = async () =>
    boxes ??= await Promise.all([RawBox.open(ALICE, o.mode), RawBox.open(HOST, o.mode)]);
  const wait = { timeoutMs: o.timeoutMs, pollMs: o.pollMs };
  const result: RawResult = { runs: [], disturbed: [] };
  try {
    // the first `warmup` round trips open the SMTP pools and are not timed
    for (let i = 0; i < o.warmup + o.runs;) {
      const [aliceBox, hostBox] = await open();
      const token = crypto.randomUUID();
      const t0 = now();
      try {
        // the echo host: waiting already, answers, deletes the request
        const echo = (async () => {
          const got = await hostBox.waitFor(`req ${token}`, wait);
          await hostSender.send({
            from: HOST,
            to: [ALICE],
            subject: `${o.tag} raw-${o.mode} rep ${token}`,
            text: `echo ${token}\n`,
          });
          const replySent = now();
          await hostBox.delete(got.uid);
          return { hostSeen: got.seenAt, replySent };
        })();
        echo.catch(() => {}); // awaited below; never an unhandled rejection meanwhile
        await aliceSender.send({
          from: ALICE,
          to: [HOST],
          subject: `${o.tag} raw-${o.mode} req ${token}`,
          text: `ping ${token}\n`,
        });
        const sent = now();
        const got = await aliceBox.waitFor(`rep ${token}`, wait);
        const end = now();
        const host = await echo;
        await aliceBox.delete(got.uid);
        if (i++ >= o.warmup) {
          result.runs.push({
            sent: sent - t0,
            hostSeen: host.hostSeen - t0,
            replySent: host.replySent - t0,
            aliceSeen: got.seenAt - t0,
            total: end - t0,
          });
        }
      } catch (err) {
        result.disturbed.push(String((err as Error)?.message ?? err));
        if (result.disturbed.length > o.runs) throw err;
        const old = boxes;
        boxes = undefined;
        await Promise.allSettled((old ?? []).map((b) => b.close()));
        await sleep(1_000);
      }
    }
  } finally {
    await Promise.allSettled([aliceSender.close(), hostSender.close()]);
    await Promise.allSettled((boxes ?? []).map((b) => b.close()));
  }
  return result;
}
