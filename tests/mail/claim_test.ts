/**
 * Claims: several host processes reading one mailbox never take the same mail twice, and a
 * claim whose process died is put back. Maildir (atomic rename) and IMAP on the real Dovecot
 * (CONDSTORE-locked UID MOVE; mailbox host2@host.test, in folders of its own).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { ImapFlow } from "imapflow";
import { type Logger, silentLogger } from "../../src/log.ts";
import { composeMail } from "../../src/mail/rfc5322/compose.ts";
import { CLAIMED, CLAIMER_PREFIX, ImapClaims } from "../../src/mail/imap/claim.ts";
import { uidSetTest } from "../../src/mail/imap/condstore.ts";
import { ImapSource } from "../../src/mail/imap/source.ts";
import type { ImapSourceOptions } from "../../src/mail/imap/source.ts";
import { deliverToMaildir } from "../../src/mail/maildir/sender.ts";
import { MaildirSource } from "../../src/mail/maildir/source.ts";
import type { MailRef, MailSource, SubjectMatch } from "../../src/mail/types.ts";
import type { Clock } from "../../src/runtime.ts";
import { ManualClock } from "../support/manual_clock.ts";
import {
  commandLog,
  flagsBySubject,
  imapFoldersTest,
  imapServer,
  mailClient,
  sourcesOf,
} from "../support/imap_mailbox.ts";

const REQUEST: SubjectMatch = { subject: "[mailpeer] lan request", mode: "exact" };
const decoder = new TextDecoder();

async function mail(n: number, subject = REQUEST.subject): Promise<Uint8Array> {
  const { raw } = await composeMail({
    from: `user${n}@a.test`,
    to: ["host2@host.test"],
    subject,
    text: `claim test mail ${n}\r\n`,
  });
  return raw;
}

/** The number a claimed mail carries in its body. */
async function numberOf(source: MailSource, ref: MailRef): Promise<number> {
  const text = decoder.decode(await source.fetch(ref));
  const m = /claim test mail (\d+)/.exec(text);
  assert.ok(m !== null, "a claimed mail is readable through its new ref");
  return Number(m[1]);
}

/** Each source claims every listed mail (all in the same order, for the most contention). */
async function race(sources: MailSource[]): Promise<MailRef[][]> {
  const listed = await Promise.all(sources.map((s) => s.list(REQUEST)));
  return await Promise.all(sources.map(async (source, i) => {
    const mine: MailRef[] = [];
    for (const ref of listed[i]!) {
      const claimed = await source.claim!(ref);
      if (claimed !== undefined) mine.push(claimed);
    }
    return mine;
  }));
}

/** Each source claims every listed mail with one claimMany (all in the same order). */
async function raceMany(sources: MailSource[]): Promise<MailRef[][]> {
  const listed = await Promise.all(sources.map((s) => s.list(REQUEST)));
  return await Promise.all(sources.map((source, i) => source.claimMany!(listed[i]!)));
}

/** Asserts that `count` mails were claimed, each by exactly one source. */
async function assertEachOnce(
  sources: MailSource[],
  claimed: MailRef[][],
  count: number,
): Promise<void> {
  const numbers: number[] = [];
  for (const [i, refs] of claimed.entries()) {
    for (const ref of refs) numbers.push(await numberOf(sources[i]!, ref));
  }
  assert.equal(numbers.length, count, `claims: ${claimed.map((c) => c.length).join(" + ")}`);
  assert.equal(new Set(numbers).size, count, "no mail was claimed twice");
}

/**
 * A clock that stands an hour after the mail server's claims. IMAP claim times are the server's
 * own, so the clock starts from the real time once; it never moves by itself.
 */
function anHourLater(): ManualClock {
  return new ManualClock(Date.now() + 3_600_000);
}

Deno.test("maildir: two hosts racing for 50 mails claim each exactly once", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mpclaim" });
  try {
    for (let n = 0; n < 50; n++) await deliverToMaildir(dir, await mail(n));
    await deliverToMaildir(dir, await mail(99, "Lunch on Friday?"));
    const sources = [new MaildirSource(dir), new MaildirSource(dir)];
    const claimed = await race(sources);
    await assertEachOnce(sources, claimed, 50);
    assert.deepEqual(await sources[0]!.list(REQUEST), [], "nothing left to claim");
    for (const [i, refs] of claimed.entries()) {
      for (const ref of refs) await sources[i]!.delete(ref);
    }
    assert.deepEqual(await Array.fromAsync(Deno.readDir(join(dir, ".Processing", "cur"))), []);
    const [ordinary] = await Array.fromAsync(Deno.readDir(join(dir, "new")));
    assert.ok(ordinary !== undefined, "ordinary mail stays unread in new/");
    await Promise.all(sources.map((s) => s.close()));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("maildir: hosts that take turns share the mail, and a claimed mail is refused to the other", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mpclaim" });
  try {
    for (let n = 0; n < 10; n++) await deliverToMaildir(dir, await mail(n));
    const sources = [new MaildirSource(dir), new MaildirSource(dir)];
    const listed = await Promise.all(sources.map((s) => s.list(REQUEST)));
    assert.equal(listed[0]!.length, 10);
    const claimed: MailRef[][] = [[], []];
    // The interleaving is driven: for each mail one host claims first, then the other tries.
    for (const [k, ref] of listed[0]!.entries()) {
      const first = k % 2, second = 1 - first;
      const won = await sources[first]!.claim!(ref);
      assert.ok(won !== undefined, `mail ${k}: the first host gets it`);
      claimed[first]!.push(won);
      const other = listed[second]!.find((r) => r.id === ref.id)!;
      assert.equal(await sources[second]!.claim!(other), undefined, `mail ${k}: not twice`);
    }
    assert.deepEqual(claimed.map((c) => c.length), [5, 5]);
    await assertEachOnce(sources, claimed, 10);
    assert.deepEqual(await sources[1]!.list(REQUEST), [], "nothing left to claim");
    await Promise.all(sources.map((s) => s.close()));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("maildir: a claim whose host died is put back once it is stale", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mpclaim" });
  try {
    for (let n = 0; n < 2; n++) await deliverToMaildir(dir, await mail(n));
    const clock = new ManualClock();
    const crashed = new MaildirSource(dir, { clock });
    const [ref] = await crashed.list(REQUEST);
    const claimed = await crashed.claim(ref!);
    assert.ok(claimed !== undefined);
    assert.equal(await numberOf(crashed, claimed), 0);
    await crashed.close(); // dies without deleting it

    const live = new MaildirSource(dir, { clock });
    assert.equal((await live.list(REQUEST)).length, 1, "the claimed mail is not listed");
    clock.advance(59_999);
    assert.equal(await live.recoverClaims(60_000), 0, "a claim younger than the limit stays");
    clock.advance(1);
    assert.equal(await live.recoverClaims(60_000), 1, "a stale claim is put back");
    const refs = await live.list(REQUEST);
    assert.equal(refs.length, 2);
    const again = await live.claim(refs.find((r) => r.id === ref!.id)!);
    assert.ok(again !== undefined, "the put-back mail can be claimed again");
    await live.delete(again);
    await live.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a UID set from the server is read as ranges, never expanded", () => {
  const modified = uidSetTest("2,5:7,9:8,1:4294967295")!;
  assert.deepEqual([1, 2, 3, 7, 8, 4294967295].map(modified), [true, true, true, true, true, true]);
  const some = uidSetTest("2,5:7")!;
  assert.deepEqual([1, 2, 4, 5, 7, 8].map(some), [false, true, false, true, true, false]);
  for (const bad of ["", "1:", "a", "1,,2", "*", "1:*"]) assert.equal(uidSetTest(bad), undefined);
});

// ---- IMAP on the real stack -------------------------------------------------------------

const MAILBOX = "mailpeer-claim";
const PROCESSING = "mailpeer-claim-processing";
const QUARANTINE = "mailpeer-claim-quarantine";
/** Where mails wait before one MOVE puts them all into MAILBOX (one MODSEQ for all). */
const ARRIVALS = "mailpeer-claim-arrivals";
const FOLDERS = [MAILBOX, PROCESSING, QUARANTINE, ARRIVALS] as const;

function imapSource(
  claimer: string,
  clock?: Clock,
  logger?: Logger,
  options: ImapSourceOptions = {},
): ImapSource {
  return new ImapSource(imapServer(), {
    mailbox: MAILBOX,
    processing: PROCESSING,
    quarantine: QUARANTINE,
    claimer,
    backoff: () => 50,
    ...(clock ? { clock } : {}),
    ...(logger ? { logger } : {}),
    ...options,
  });
}

/** How many mails the processing folder holds. */
async function count(client: ImapFlow): Promise<number | undefined> {
  const status = await client.status(PROCESSING, { messages: true });
  return status === false ? undefined : status.messages;
}

/** Runs `fn` with fresh, empty test folders and a mail client; removes them afterwards. */
function imapTest(name: string, fn: (client: ImapFlow) => Promise<void>): void {
  imapFoldersTest(name, FOLDERS, fn);
}

imapTest("imap: two hosts racing for 30 mails claim each exactly once", async (client) => {
  for (let n = 0; n < 30; n++) await client.append(MAILBOX, await mail(n));
  const sources = [imapSource("A"), imapSource("B")];
  try {
    const claimed = await race(sources);
    await assertEachOnce(sources, claimed, 30);
    assert.equal(await count(client), 30);
    assert.deepEqual(await sources[1]!.list(REQUEST), []);
    for (const [i, refs] of claimed.entries()) {
      for (const ref of refs) await sources[i]!.delete(ref);
    }
    assert.equal(await count(client), 0);
  } finally {
    await Promise.all(sources.map((s) => s.close()));
  }
});

imapTest("imap: claims of a host that died are put back, fresh ones stay", async (client) => {
  for (let n = 0; n < 3; n++) await client.append(MAILBOX, await mail(n));
  const crashed = imapSource("C");
  const refs = await crashed.list(REQUEST);
  assert.equal(refs.length, 3);
  for (const ref of refs.slice(0, 2)) assert.ok(await crashed.claim(ref) !== undefined);
  await crashed.close(); // dies with two claims in the processing folder
  // and a third host died between locking a mail and moving it
  await client.mailboxOpen(MAILBOX);
  const [, , third] = refs;
  await client.messageFlagsAdd(third!.id.split(":")[1]!, ["$MailpeerClaimed", "$MailpeerClaim-D"], {
    uid: true,
  });

  const live = imapSource("E");
  const later = imapSource("F", anHourLater());
  try {
    assert.deepEqual(await live.list(REQUEST), [], "claimed and locked mail is not listed");
    assert.equal(await live.recoverClaims(60_000), 0, "fresh claims stay");
    assert.equal(await count(client), 2);
    assert.equal(await later.recoverClaims(60_000), 2, "stale claims are put back");
    assert.equal(await later.recoverClaims(0), 1, "a lock seen for long enough is released");
    const back = await live.list(REQUEST);
    assert.equal(back.length, 3, "every mail can be listed again");
    const claimed = await race([live]);
    await assertEachOnce([live], claimed, 3);
    for (const ref of claimed[0]!) await live.delete(ref);
    assert.equal(await count(client), 0);
  } finally {
    await Promise.all([live.close(), later.close()]);
  }
});

imapTest(
  "imap: a claimed mail is fetched from the listing's read-ahead, and deleteMany takes claimed and listed mail at once",
  async (client) => {
    for (let n = 0; n < 4; n++) await client.append(MAILBOX, await mail(n));
    await client.append(MAILBOX, await mail(98, "Lunch on Friday?"));
    await client.append(MAILBOX, await mail(99, `Re: ${REQUEST.subject}`));
    const delivered = await sourcesOf(client, MAILBOX);
    const log = commandLog();
    const source = imapSource("G", undefined, log);
    try {
      const refs = await source.list(REQUEST);
      assert.equal(refs.length, 4);
      log.commands.length = 0;
      const claimed = [await source.claim(refs[0]!), await source.claim(refs[1]!)];
      assert.ok(claimed.every((ref) => ref !== undefined));
      assert.deepEqual(
        log.commands.filter((c) => c.startsWith("UID")).map((c) => c.split(" ").slice(0, 2)),
        [["UID", "STORE"], ["UID", "MOVE"], ["UID", "STORE"], ["UID", "MOVE"]],
        "a claim locks on the MODSEQ of the listing, without reading the flags again",
      );
      log.commands.length = 0;
      for (const [n, ref] of claimed.entries()) {
        assert.deepEqual(await source.fetch(ref!), delivered[n], "the bytes of the listing");
      }
      // (the processing folder's connection opens now; it sends no command for the bodies)
      const sent = log.commands.filter((c) => /^(UID|NOOP|FETCH)/.test(c));
      assert.equal(sent.join("; "), "", "no round trip for the read-ahead bodies");
      await source.deleteMany([claimed[0]!, refs[2]!, claimed[1]!]);
      assert.ok(
        log.commands.filter((c) => c.startsWith("UID EXPUNGE")).length === 2,
        `one EXPUNGE per folder: ${log.commands.join("; ")}`,
      );
      assert.equal(await count(client), 0, "the claimed mails are gone");
      assert.deepEqual((await source.list(REQUEST)).map((r) => r.id), [refs[3]!.id]);
      const flags = await flagsBySubject(client, MAILBOX);
      assert.deepEqual(
        [...flags.keys()].sort(),
        [
          REQUEST.subject,
          "Lunch on Friday?",
          `Re: ${REQUEST.subject}`,
        ].sort(),
      );
      for (const [subject, set] of flags) assert.deepEqual(set, [], `${subject} was marked`);
    } finally {
      await source.close();
    }
  },
);

/** Flags of every mail in `folder`, by UID. */
async function flagsByUid(client: ImapFlow, folder: string): Promise<Map<number, string[]>> {
  await client.mailboxOpen(folder);
  const out = new Map<number, string[]>();
  for (const msg of await client.fetchAll("1:*", { uid: true, flags: true })) {
    out.set(msg.uid, [...(msg.flags ?? [])].filter((f) => f !== "\\Recent").sort());
  }
  return out;
}

for (const hosts of [2, 3]) {
  imapTest(
    `imap: ${hosts} hosts racing claimMany for 20 mails win each exactly once, ordinary mail untouched`,
    async (client) => {
      const sources = Array.from({ length: hosts }, (_, i) => imapSource(`R${i}`));
      try {
        for (let round = 0; round < 3; round++) {
          for (let n = 0; n < 20; n++) await client.append(MAILBOX, await mail(n));
          await client.append(MAILBOX, await mail(99, "Lunch on Friday?"));
          const claimed = await raceMany(sources);
          await assertEachOnce(sources, claimed, 20);
          assert.equal(await count(client), 20, "every mail is in the processing folder once");
          assert.deepEqual(await sources[0]!.list(REQUEST), [], "none left behind");
          const ordinary = await flagsBySubject(client, MAILBOX);
          assert.deepEqual([...ordinary], [["Lunch on Friday?", []]], "unread and unflagged");
          await Promise.all(claimed.map((refs, i) => sources[i]!.deleteMany(refs)));
          assert.equal(await count(client), 0);
          await client.mailboxOpen(MAILBOX);
          await client.messageDelete("1:*");
        }
      } finally {
        await Promise.all(sources.map((s) => s.close()));
      }
    },
  );
}

/** Appends `n` mails to ARRIVALS and moves them into MAILBOX at once: they share one MODSEQ. */
async function arriveTogether(client: ImapFlow, n: number): Promise<void> {
  await client.mailboxCreate(ARRIVALS).catch(() => {});
  for (let i = 0; i < n; i++) await client.append(ARRIVALS, await mail(i));
  await client.mailboxOpen(ARRIVALS);
  await client.messageMove("1:*", MAILBOX);
}

for (const hosts of [2, 3]) {
  imapTest(
    `imap: ${hosts} hosts racing claimMany for 20 mails that arrived in one MOVE (one MODSEQ) win each exactly once`,
    async (client) => {
      const sources = Array.from({ length: hosts }, (_, i) => imapSource(`T${i}`));
      try {
        for (let round = 0; round < 3; round++) {
          await arriveTogether(client, 20);
          const claimed = await raceMany(sources);
          await assertEachOnce(sources, claimed, 20);
          assert.equal(await count(client), 20, "every mail is in the processing folder once");
          assert.deepEqual(await sources[0]!.list(REQUEST), [], "none left behind");
          await Promise.all(claimed.map((refs, i) => sources[i]!.deleteMany(refs)));
          assert.equal(await count(client), 0);
        }
      } finally {
        await Promise.all(sources.map((s) => s.close()));
      }
    },
  );
}

imapTest(
  "imap: mails of one MODSEQ are claimed with one STORE, one read-back FETCH and one MOVE",
  async (client) => {
    await arriveTogether(client, 10);
    const log = commandLog();
    const source = imapSource("S", undefined, log, { prefetchBytes: 0 });
    try {
      const refs = await source.list(REQUEST);
      assert.equal(refs.length, 10);
      log.commands.length = 0;
      const claimed = await source.claimMany(refs);
      // not one STORE, FETCH and MOVE per mail, as before
      assert.deepEqual(verbs(log), ["UID STORE", "UID FETCH", "UID MOVE", "NOOP", "UID FETCH"]);
      assert.deepEqual(
        (await Promise.all(claimed.map((ref) => numberOf(source, ref)))).sort((a, b) => a - b),
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      );
      await source.deleteMany(claimed);
    } finally {
      await source.close();
    }
  },
);

/** The IMAP commands in `log`, by their first two words. */
function verbs(log: { commands: string[] }): string[] {
  return log.commands.filter((c) => /^(UID|NOOP|FETCH)/.test(c))
    .map((c) => c.split(" ").slice(0, 2).join(" ").replace(/^NOOP.*/, "NOOP"));
}

imapTest(
  "imap: claimMany takes what is left of a batch in a few round trips and reads the bodies in one",
  async (client) => {
    for (let n = 0; n < 12; n++) await client.append(MAILBOX, await mail(n));
    const log = commandLog();
    // as a host on a shared mailbox: no bodies read with the listing
    const source = imapSource("M", undefined, log, { prefetchBytes: 0 });
    const rival = imapSource("N");
    try {
      const refs = await source.list(REQUEST);
      assert.equal(refs.length, 12);
      // another process takes two, and two are deleted, after the listing
      assert.ok(await rival.claim((await rival.list(REQUEST))[0]!) !== undefined);
      assert.ok(await rival.claim((await rival.list(REQUEST))[0]!) !== undefined);
      await client.mailboxOpen(MAILBOX);
      await client.messageDelete(refs.slice(2, 4).map((r) => r.id.split(":")[1]).join(","), {
        uid: true,
      });
      log.commands.length = 0;
      const gone = { id: `1:${refs[7]!.id.split(":")[1]}`, subject: REQUEST.subject };
      // the last mail is the listing's newest: a batch without it is one STORE, one MOVE
      const first = await source.claimMany([...refs.slice(0, 8), gone]);
      assert.deepEqual(verbs(log), ["UID STORE", "UID MOVE", "NOOP", "UID FETCH"]);
      log.commands.length = 0;
      // with it: the older ones are locked first, then the newest (see mail/imap/claim.ts)
      const second = await source.claimMany(refs.slice(8));
      assert.deepEqual(verbs(log), ["UID STORE", "UID STORE", "UID MOVE", "NOOP", "UID FETCH"]);
      const claimed = [...first, ...second];
      assert.deepEqual(
        (await Promise.all(claimed.map((ref) => numberOf(source, ref)))).sort((a, b) => a - b),
        [4, 5, 6, 7, 8, 9, 10, 11],
      );
      log.commands.length = 0;
      assert.deepEqual(await source.claimMany(refs), [], "nothing left to win");
      await source.deleteMany(claimed);
      assert.equal(await count(client), 2, "the rival's two");
    } finally {
      await Promise.all([source.close(), rival.close()]);
    }
  },
);

imapTest(
  "imap: a lone claim of the newest mail reads its lock back before moving it",
  async (client) => {
    for (let n = 0; n < 3; n++) await client.append(MAILBOX, await mail(n));
    const log = commandLog();
    const source = imapSource("L", undefined, log);
    try {
      const refs = await source.list(REQUEST);
      log.commands.length = 0;
      const older = await source.claim(refs[1]!);
      assert.deepEqual(verbs(log), ["UID STORE", "UID MOVE"], "below the newest: no read-back");
      log.commands.length = 0;
      const newest = await source.claim(refs[2]!);
      assert.deepEqual(verbs(log), ["UID STORE", "UID FETCH", "UID MOVE"]);
      assert.deepEqual([await numberOf(source, older!), await numberOf(source, newest!)], [1, 2]);
      await source.deleteMany([older!, newest!]);
    } finally {
      await source.close();
    }
  },
);

imapTest(
  "imap: mails locked by a claimMany that failed before its MOVE are put back",
  async (client) => {
    for (let n = 0; n < 5; n++) await client.append(MAILBOX, await mail(n));
    const crashed = imapSource("C");
    const refs = await crashed.list(REQUEST);
    await crashed.recoverClaims(60_000); // makes (and remembers) the processing folder
    await client.mailboxDelete(PROCESSING); // so the MOVE after the lock fails
    await assert.rejects(crashed.claimMany(refs));
    await crashed.close(); // dies with the five mails locked in the mailbox
    const locked = await flagsByUid(client, MAILBOX);
    assert.equal(locked.size, 5);
    for (const flags of locked.values()) {
      assert.deepEqual(flags, ["$MailpeerClaim-C", "$MailpeerClaimed"]);
    }

    const live = imapSource("E");
    const later = imapSource("F", anHourLater());
    try {
      assert.deepEqual(await live.list(REQUEST), [], "locked mail is not listed");
      assert.deepEqual(await live.claimMany(refs), [], "nor claimed");
      assert.equal(await later.recoverClaims(60_000), 0, "a lock first seen now stays");
      assert.equal(await later.recoverClaims(0), 5, "a lock seen for long enough is released");
      for (const flags of (await flagsByUid(client, MAILBOX)).values()) {
        assert.deepEqual(flags, [], "unlocked and unread");
      }
      const claimed = await raceMany([live]);
      await assertEachOnce([live], claimed, 5);
      await live.deleteMany(claimed[0]!);
      assert.equal(await count(client), 0);
    } finally {
      await Promise.all([live.close(), later.close()]);
    }
  },
);

/**
 * A mail in MAILBOX locked by claimers A and B at once (as two conditional stores whose
 * conflict check Dovecot skipped leave it), the claims of A and B on sessions of their own with
 * MAILBOX selected, and a manual clock for the lowest claimer's waits. Resolves with the mail's
 * UID.
 */
async function contested(
  client: ImapFlow,
  fn: (
    uid: number,
    a: ImapClaims,
    b: ImapClaims,
    sessions: ImapFlow[],
    clock: ManualClock,
  ) => Promise<void>,
): Promise<void> {
  await client.append(MAILBOX, await mail(0));
  await client.mailboxOpen(MAILBOX);
  const [uid] = (await client.search({ all: true }, { uid: true })) || [];
  assert.ok(uid !== undefined);
  await client.messageFlagsAdd(String(uid), [CLAIMED, `${CLAIMER_PREFIX}A`, `${CLAIMER_PREFIX}B`], {
    uid: true,
  });
  const clock = new ManualClock();
  const claims = (claimer: string) =>
    new ImapClaims({ processing: PROCESSING, claimer, clock, logger: silentLogger });
  const sessions = [await mailClient(), await mailClient()];
  try {
    for (const s of sessions) await s.mailboxOpen(MAILBOX);
    await fn(uid, claims("A"), claims("B"), sessions, clock);
  } finally {
    await Promise.all(sessions.map((s) => s.logout().catch(() => s.close())));
  }
}

imapTest(
  "imap: a contested claim goes to the lowest claimer, who waits until the other steps back",
  async (client) => {
    await contested(client, async (uid, a, b, [sa, sb], clock) => {
      let settled: number[] | undefined;
      const lowest = a.settle(sa!, [uid]).then((won) => settled = won);
      // one that did not wait (settled at once) fails here instead of hanging
      await Promise.race([clock.sleeping(1), lowest]);
      assert.equal(settled, undefined, "A waits while B holds the mail too");
      assert.deepEqual(
        (await flagsByUid(client, MAILBOX)).get(uid),
        [`${CLAIMER_PREFIX}A`, `${CLAIMER_PREFIX}B`, CLAIMED],
      );
      assert.deepEqual(await b.settle(sb!, [uid]), [], "B steps back at once");
      assert.equal(clock.sleepers, 1, "B did not wait");
      clock.advance(clock.nextWakeIn!);
      await lowest;
      assert.deepEqual(settled, [uid], "A reads again and finds its keyword alone");
      assert.deepEqual(
        (await flagsByUid(client, MAILBOX)).get(uid),
        [`${CLAIMER_PREFIX}A`, CLAIMED],
      );
    });
  },
);

imapTest(
  "imap: a contested claim whose other holder never steps back is left locked for recovery after 4 s",
  async (client) => {
    await contested(client, async (uid, a, _b, [sa], clock) => {
      const start = clock.now();
      let settled: number[] | undefined;
      const lowest = a.settle(sa!, [uid]).then((won) => settled = won);
      while (settled === undefined) {
        await Promise.race([clock.sleeping(1), lowest]);
        if (clock.nextWakeIn !== undefined) clock.advance(clock.nextWakeIn);
      }
      assert.deepEqual(settled, [], "A never moves a mail B still holds");
      assert.equal(clock.now() - start, 4_000, "A gave B 4 s in all");
      assert.deepEqual(
        (await flagsByUid(client, MAILBOX)).get(uid),
        [`${CLAIMER_PREFIX}A`, `${CLAIMER_PREFIX}B`, CLAIMED],
        "the lock is left as it was, for recovery",
      );
    });
  },
);
