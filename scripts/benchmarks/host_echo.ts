/**
 * The stack's own request/reply capacity: `n` mails wait in host@host.test's INBOX; `workers`
 * echo sessions (each a warm imapflow session + its own pooled {@link SmtpSender} without the
 * fast lane, i.e. nodemailer as a plain client uses it) take every
 * `workers`-th of them and, for each: fetch it (`BODY.PEEK[]`), submit a reply to alice, delete
 * it (STORE \Deleted + UID EXPUNGE) — the IMAP and SMTP work of a host without any mailpeer
 * code. Runs in this process; its CPU time is this process's.
 *
 * @module
 */
import process from "node:process";
import { SmtpSender } from "../../src/mail/smtp/sender.ts";
import { ALICE, cpuByCommand, cpuOfAll, HOST, machineCpuMs } from "./host_site.ts";
import { now, RawBox, smtpFor } from "./rendezvous_stack.ts";

/** What one echo drain measured. */
export interface DrainResult {
  /** Mails answered. */
  answered: number;
  /** Monotonic times at which each reply's SMTP submission was accepted, in order. */
  replyTimes: number[];
  /** CPU ms spent (of the answering process) between the first and the last reply. */
  cpuMs: number;
  /** CPU ms of the whole machine (stack, Redis, this process) over the same span. */
  machineCpuMs: number;
  /** CPU ms per request by command name over the same span (see {@link cpuByCommand}). */
  cpuByCommand: Record<string, number>;
}

/** CPU of this process in ms (user + system). */
export function selfCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/**
 * Answers the `n` mails whose subject contains `token` with `workers` concurrent echo
 * sessions. Replies carry `replyTag` in their subject.
 */
export async function echoDrain(
  o: { token: string; replyTag: string; n: number; workers: number; timeoutMs: number },
): Promise<DrainResult> {
  const sessions = await Promise.all(
    Array.from({ length: o.workers }, async () => ({
      box: await RawBox.open(HOST, "poll"),
      // a plain nodemailer client, as the baseline was measured: no fast lane
      sender: new SmtpSender(smtpFor(HOST), { lanes: false }),
    })),
  );
  const replyTimes: number[] = [];
  let cpuAtFirst = 0;
  let machineAtFirst: Promise<number> | undefined;
  let processesAtFirst: ReturnType<typeof cpuOfAll> | undefined;
  try {
    // warm the SMTP pools (one throwaway mail each, to alice, swept later)
    await Promise.all(sessions.map((s) =>
      s.sender.send({
        from: HOST,
        to: [ALICE],
        subject: `${o.replyTag} warm-up`,
        text: "warm-up\n",
      })
    ));
    const deadline = now() + o.timeoutMs;
    // one listing, shared out: sessions that each listed for themselves saw the mailbox at
    // different moments (another session's deletes in between), so every-k-th of their own
    // listings skipped some mails and doubled others (echo-3 once answered 136 of 150)
    await Promise.all(sessions.map(({ box }) => box.client.noop()));
    const found = await sessions[0]!.box.client.search({ subject: o.token, deleted: false }, {
      uid: true,
    });
    const listed = (found || []).sort((a, b) => a - b);
    await Promise.all(sessions.map(async ({ box, sender }, k) => {
      const c = box.client;
      const mine = listed.filter((_, i) => i % o.workers === k);
      for (const uid of mine) {
        if (now() > deadline) throw new Error(`echo drain over ${o.timeoutMs} ms`);
        const msg = await c.fetchOne(String(uid), { uid: true, source: true }, { uid: true });
        if (!msg || !msg.source) continue;
        await sender.send({
          from: HOST,
          to: [ALICE],
          subject: `${o.replyTag} echo reply ${uid}`,
          text: `echo of ${msg.source.length} bytes\n`,
        });
        if (replyTimes.length === 0) {
          cpuAtFirst = selfCpuMs();
          // not awaited: the session goes on
          machineAtFirst = machineCpuMs();
          processesAtFirst = cpuOfAll();
        }
        replyTimes.push(now());
        await c.messageDelete(String(uid), { uid: true });
      }
    }));
    const processes = await cpuOfAll();
    const requests = Math.max(1, replyTimes.length - 1);
    return {
      cpuByCommand: processesAtFirst
        ? cpuByCommand(await processesAtFirst, processes, requests)
        : {},
      answered: replyTimes.length,
      replyTimes,
      cpuMs: selfCpuMs() - cpuAtFirst,
      machineCpuMs: (await machineCpuMs()) - (await machineAtFirst ?? NaN),
    };
  } finally {
    await Promise.allSettled(sessions.flatMap((s) => [s.box.close(), s.sender.close()]));
  }
}

/** Answered per second between the first and the last reply: (n − 1) / span. */
export function ratePerSecond(replyTimes: number[]): number {
  if (replyTimes.length < 2) return NaN;
  const sorted = [...replyTimes].sort((a, b) => a - b);
  return (sorted.length - 1) / ((sorted.at(-1)! - sorted[0]!) / 1000);
}

/**
 * Answered per second between the replies at quantiles `from` and `to` of the drain (the
 * middle of it: without the start, where the first batch is claimed and checked, nor the tail,
 * where the last batches of the processes end unevenly).
 */
export function steadyRatePerSecond(replyTimes: number[], from = 0.1, to = 0.9): number {
  const sorted = [...replyTimes].sort((a, b) => a - b);
  const i = Math.floor(from * (sorted.length - 1));
  const j = Math.ceil(to * (sorted.length - 1));
  if (j - i < 1) return NaN;
  return (j - i) / ((sorted[j]! - sorted[i]!) / 1000);
}

/** When each tenth of the replies had arrived, in ms after the first (11 figures: 0 % … 100 %). */
export function replyDecilesMs(replyTimes: number[]): number[] {
  const sorted = [...replyTimes].sort((a, b) => a - b);
  if (sorted.length === 0) return [];
  return Array.from(
    { length: 11 },
    (_, k) => Math.round(sorted[Math.round(k / 10 * (sorted.length - 1))]! - sorted[0]!),
  );
}
