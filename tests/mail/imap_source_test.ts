/**
 * ImapSource against the real Dovecot of the test mail stack (host2@host.test on
 * 127.0.0.13): the MailSource conformance suite over STARTTLS + IDLE and over implicit TLS +
 * NOOP polling, unread ordinary mail, certificate and TLS failures (the rest of the ways a
 * connection fails are in connect_failure_test.ts), a Dovecot restart in the middle of a
 * run, and reading won mails ahead (`prefetch`) with fetch reading each mail itself where
 * that failed. Skipped when the stack is not running.
 */
import assert from "node:assert/strict";
import type { Clock } from "../../src/runtime.ts";
import { join } from "node:path";
import type { ImapFlow } from "imapflow";
import nodemailer from "nodemailer";
import { MailError } from "../../src/errors.ts";
import { composeMail } from "../../src/mail/rfc5322/compose.ts";

import { ImapSource } from "../../src/mail/imap/source.ts";
import type { ImapSourceOptions } from "../../src/mail/imap/source.ts";
import { BodyCache, bodyKey, choosePrefetch } from "../../src/mail/imap/prefetch.ts";
import type { MailLogin, SubjectMatch } from "../../src/mail/types.ts";
import { mailSourceConformance } from "../conformance/mail_source.ts";
import { Host } from "../../src/host/host.ts";
import { HostService } from "../../src/host/host_service.ts";
import { MemoryStore } from "../../src/host/store/memory_store.ts";
import { MaildirPostOffice } from "../../src/mail/maildir/post_office.ts";
import { MaildirSender } from "../../src/mail/maildir/sender.ts";
import { MaildirSource } from "../../src/mail/maildir/source.ts";
import { sealRequest } from "../../src/message/block.ts";
import { generateHostKeys, generateIdentityKeys, hostCardOf } from "../../src/message/key_file.ts";
import { generateX25519 } from "../../src/message/keys.ts";
import { bodyFor, subjectFor } from "../../src/message/mail_text.ts";
import {
  commandLog,
  flagsBySubject,
  IMAP_TEST_ADDRESS as ADDRESS,
  imapServer as server,
  mailClient,
  sourcesOf,
} from "../support/imap_mailbox.ts";
import { account, NO_STACK, STACK } from "../support/mailstack.ts";
import type { Logger } from "../../src/log.ts";
import { MAX_MAIL_BYTES } from "../../src/limits.ts";

const REQUEST: SubjectMatch = { subject: "[mailpeer] lan request", mode: "exact" };
/**
 * Most tests read this folder, not INBOX: mail that Postfix delivers late (a deferred mail of
 * an earlier run) lands in INBOX and cannot disturb them.
 */
const FOLDER = "mailpeer-test";
/** Guards against a hang (a guard, not a wait): a test that needs it has failed. */
const HANG_GUARD_MS = 20_000;
/** Reconnect fast in tests. */
const FAST: ImapSourceOptions = { backoff: () => 50, connectAttempts: 100 };

/** Empties INBOX, removes every other folder of the test user and creates {@link FOLDER}. */
async function emptyMailbox(client: ImapFlow): Promise<void> {
  const box = await client.mailboxOpen("INBOX");
  if (box.exists > 0) await client.messageDelete("1:*");
  for (const folder of await client.list()) {
    if (folder.path !== "INBOX") await client.mailboxDelete(folder.path);
  }
  await client.mailboxCreate(FOLDER);
}

let counter = 0;

/** A mail with a unique body (and `padding` bytes more of it). */
async function mail(subject: string, padding = 0): Promise<Uint8Array> {
  const { raw } = await composeMail({
    from: "alice@a.test",
    to: [ADDRESS],
    subject,
    text: `IMAP test mail ${counter++}\r\n` + "x".repeat(padding),
  });
  return raw;
}

function fixture(options: ImapSourceOptions, overrides: Partial<MailLogin> = {}) {
  return async () => {
    const client = await mailClient();
    await emptyMailbox(client);
    const source = new ImapSource(server(overrides), { ...FAST, mailbox: FOLDER, ...options });
    return {
      source,
      deliver: async (raw: Uint8Array) => {
        await client.append(FOLDER, raw);
      },
      cleanup: async () => {
        await source.close();
        await client.logout();
      },
    };
  };
}

if (!NO_STACK) {
  mailSourceConformance("imap (STARTTLS, IDLE)", fixture({ idle: true }));
  const { provider } = account(ADDRESS);
  mailSourceConformance(
    "imap (implicit TLS, NOOP polling)",
    fixture({ idle: false, pollIntervalMs: 25 }, { tls: "implicit", port: provider.ports.imaps }),
  );
}

/** A test with a fresh mailbox, a mail client of the same user and a source. */
function imapTest(
  name: string,
  fn: (client: ImapFlow, source: ImapSource) => Promise<void>,
  options: ImapSourceOptions = {},
): void {
  Deno.test({
    name,
    ignore: NO_STACK,
    fn: async () => {
      const client = await mailClient();
      await emptyMailbox(client);
      const source = new ImapSource(server(), { ...FAST, mailbox: FOLDER, ...options });
      try {
        await fn(client, source);
      } finally {
        await source.close();
        await client.logout().catch(() => client.close());
      }
    },
  });
}

imapTest(
  "ordinary mail stays unread and untouched while mailpeer mail is processed",
  async (client, source) => {
    await client.append(FOLDER, await mail("Lunch on Friday?"));
    await client.append(FOLDER, await mail("Re: [mailpeer] lan request"));
    await client.append(FOLDER, await mail("[mailpeer] lan request"));
    await client.append(FOLDER, await mail("[mailpeer] lan request (hostile)"));
    const [processed] = await source.list(REQUEST);
    assert.ok(processed !== undefined);
    await source.fetch(processed);
    await source.delete(processed);
    const [hostile] = await source.list({ subject: "[mailpeer] lan request (", mode: "prefix" });
    assert.ok(hostile !== undefined);
    await source.fetch(hostile);
    await source.quarantine(hostile, "bad coded block");

    const inbox = await flagsBySubject(client, FOLDER);
    assert.deepEqual(
      inbox,
      new Map([["Lunch on Friday?", []], ["Re: [mailpeer] lan request", []]]),
    );
    const quarantined = await flagsBySubject(client, "Quarantine");
    assert.deepEqual([...quarantined.keys()], ["[mailpeer] lan request (hostile)"]);
  },
);

imapTest(
  "deleting a processed mail leaves mail another client marked deleted alone",
  async (client, source) => {
    await client.append(FOLDER, await mail("Old newsletter"), ["\\Deleted"]);
    await client.append(FOLDER, await mail("[mailpeer] lan request"));
    const [ref] = await source.list(REQUEST);
    assert.ok(ref !== undefined);
    await source.delete(ref);
    assert.deepEqual(await source.list(REQUEST), []);
    const inbox = await flagsBySubject(client, FOLDER);
    assert.deepEqual(inbox, new Map([["Old newsletter", ["\\Deleted"]]]));
  },
);

imapTest(
  "a mail listed before its mailbox was recreated counts as gone",
  async (client) => {
    await client.mailboxCreate("Scratch");
    await client.append("Scratch", await mail("[mailpeer] lan request"));
    const scratch = new ImapSource(server(), { ...FAST, mailbox: "Scratch", prefetchBytes: 0 });
    try {
      const [old] = await scratch.list(REQUEST);
      assert.ok(old !== undefined);
      await client.mailboxDelete("Scratch");
      await client.mailboxCreate("Scratch");
      await client.append("Scratch", await mail("[mailpeer] lan request"));
      await assert.rejects(scratch.fetch(old), (err: unknown) => {
        assert.ok(err instanceof MailError);
        assert.equal(err.code, "EMAIL");
        assert.match(err.message, /no longer in the mailbox; list the mailbox again$/);
        return true;
      });
      await scratch.delete(old); // gone: nothing to do
      const [fresh] = await scratch.list(REQUEST);
      assert.ok(fresh !== undefined && fresh.id !== old.id);
    } finally {
      await scratch.close();
    }
  },
);

imapTest(
  "a body read ahead is never served for the mail that took its UID in a recreated mailbox",
  async (client) => {
    await client.mailboxCreate("Scratch");
    const first = await mail("[mailpeer] lan request");
    await client.append("Scratch", first);
    const scratch = new ImapSource(server(), {
      ...FAST,
      mailbox: "Scratch",
      prefetchBytes: 4_096,
    });
    try {
      const [old] = await scratch.list(REQUEST); // reads the body of `first` ahead
      assert.ok(old !== undefined);
      await client.mailboxDelete("Scratch");
      await client.mailboxCreate("Scratch");
      const second = await mail("[mailpeer] lan request", 5_000); // too big to read ahead
      await client.append("Scratch", second);
      const [fresh] = await scratch.list(REQUEST);
      assert.ok(fresh !== undefined && fresh.id !== old.id);
      assert.equal(fresh.id.split(":")[1], old.id.split(":")[1], "the UID was used again");
      assert.deepEqual(await scratch.fetch(fresh), second);
      await assert.rejects(scratch.fetch(old), /no longer in the mailbox/);
      await scratch.delete(old); // gone: nothing to do
      assert.deepEqual((await scratch.list(REQUEST)).map((r) => r.id), [fresh.id]);
    } finally {
      await scratch.close();
    }
  },
);

imapTest(
  "a mail replaced between list and fetch is never served in place of the other",
  async (client, source) => {
    const first = await mail("[mailpeer] lan request");
    await client.append(FOLDER, first);
    const [old] = await source.list(REQUEST); // reads the body of `first` ahead
    assert.ok(old !== undefined);
    await client.mailboxOpen(FOLDER);
    await client.messageDelete("1:*");
    const second = await mail("[mailpeer] lan request", 5_000); // too big to read ahead
    await client.append(FOLDER, second); // now the first mail of the folder
    const [now] = await source.list(REQUEST);
    assert.ok(now !== undefined && now.id !== old.id);
    assert.deepEqual(await source.fetch(now), second);
    const got = await source.fetch(old).catch((err) => err);
    if (got instanceof Uint8Array) assert.deepEqual(got, first);
    else assert.match(String(got), /no longer in the mailbox/);
    await source.delete(old); // gone: nothing to do
    assert.deepEqual((await source.list(REQUEST)).map((r) => r.id), [now.id]);
  },
  { prefetchBytes: 4_096 },
);

Deno.test("the read-ahead cache stays within its budget and serves each body once", () => {
  const cache = new BodyCache(100);
  const key = (uid: number) => bodyKey("INBOX", 7n, uid);
  assert.equal(cache.put(key(1), new Uint8Array(60)), true);
  assert.equal(cache.put(key(2), new Uint8Array(30)), true);
  assert.equal(cache.put(key(3), new Uint8Array(101)), false, "larger than the budget");
  assert.equal(cache.put(key(4), new Uint8Array(50)), true, "evicts the oldest");
  assert.deepEqual([cache.size, cache.bytes], [2, 80]);
  assert.equal(cache.take(key(1)), undefined);
  assert.equal(cache.take(bodyKey("INBOX", 8n, 2)), undefined, "another UIDVALIDITY");
  assert.equal(cache.take(bodyKey("Other", 7n, 2)), undefined, "another mailbox");
  assert.equal(cache.take(key(2))?.length, 30);
  assert.equal(cache.take(key(2)), undefined, "served once");
  const listed = [{ uid: 1, size: 10 }, { uid: 2, size: 500 }, { uid: 3 }, { uid: 4, size: 20 }];
  assert.deepEqual(choosePrefetch(listed, { maxBytes: 100, budgetBytes: 1000 }), [1, 4]);
  assert.deepEqual(choosePrefetch(listed, { maxBytes: 100, budgetBytes: 15 }), [1]);
  assert.deepEqual(choosePrefetch(listed, { maxBytes: 0, budgetBytes: 1000 }), []);
});

imapTest(
  "closing the source finishes a delete that was started and not awaited",
  async (client) => {
    for (let i = 0; i < 2; i++) await client.append(FOLDER, await mail(REQUEST.subject));
    const source = new ImapSource(server(), { ...FAST, mailbox: FOLDER });
    const [first, second] = await source.list(REQUEST);
    // What the terminal does with its reply: delete in the background, close when done.
    const deleting = source.delete(first!);
    await source.close();
    await deleting;
    await client.mailboxOpen(FOLDER);
    const left = await client.fetchAll("1:*", { uid: true });
    assert.deepEqual(left.map((m) => m.uid), [Number(second!.id.split(":")[1])]);
  },
);

imapTest(
  "deleteMany removes exactly the given mails with one STORE and one EXPUNGE",
  async (client) => {
    await client.append(FOLDER, await mail("Lunch on Friday?"));
    await client.append(FOLDER, await mail("Old newsletter"), ["\\Deleted"]);
    await client.append(FOLDER, await mail("Re: [mailpeer] lan request"));
    for (let i = 0; i < 5; i++) await client.append(FOLDER, await mail(REQUEST.subject));
    const log = commandLog();
    const source = new ImapSource(server(), { ...FAST, mailbox: FOLDER, logger: log });
    try {
      const refs = await source.list(REQUEST);
      assert.equal(refs.length, 5);
      const [kept1, kept2] = [refs[1]!, refs[3]!];
      const gone = refs.filter((r) => r !== kept1 && r !== kept2);
      const uid = (id: string) => Number(id.split(":")[1]);
      log.commands.length = 0;
      await source.deleteMany(gone);
      assert.deepEqual(log.commands, [
        `UID STORE ${gone.map((r) => uid(r.id)).join(",")} +FLAGS.SILENT (\\Deleted)`,
        `UID EXPUNGE ${gone.map((r) => uid(r.id)).join(",")}`,
      ]);
      assert.deepEqual((await source.list(REQUEST)).map((r) => r.id), [kept1.id, kept2.id]);
      await client.mailboxOpen(FOLDER);
      const left = await client.fetchAll("1:*", { uid: true, envelope: true, flags: true });
      assert.deepEqual(
        left.map((m) => [m.uid, m.envelope?.subject, [...(m.flags ?? [])]]),
        [
          [1, "Lunch on Friday?", []],
          [2, "Old newsletter", ["\\Deleted"]],
          [3, "Re: [mailpeer] lan request", []],
          [uid(kept1.id), REQUEST.subject, []],
          [uid(kept2.id), REQUEST.subject, []],
        ],
      );
      await source.deleteMany([]); // nothing to do, no command
      await source.deleteMany(gone); // already gone: not an error
    } finally {
      await source.close();
    }
  },
);

imapTest(
  "the IMAP conversation reaches a logger that keeps debug records, and is not even built for one that keeps none",
  async (client) => {
    for (let i = 0; i < 3; i++) await client.append(FOLDER, await mail(REQUEST.subject));
    const recorder = (debug: boolean) => {
      const records: { level: string; src: unknown }[] = [];
      const logger: Logger = {
        enabled: (level) => debug || level !== "debug",
        log: (level, _message, fields) => records.push({ level, src: fields?.src }),
      };
      return { logger, records };
    };
    const quiet = recorder(false);
    const loud = recorder(true);
    for (const { logger } of [quiet, loud]) {
      const source = new ImapSource(server(), { ...FAST, mailbox: FOLDER, logger });
      try {
        assert.equal((await source.list(REQUEST)).length, 3);
      } finally {
        await source.close();
      }
    }
    const serverSaid = (r: { records: { src: unknown }[] }) =>
      r.records.filter((x) => x.src === "s").length;
    // MAILPEER_LOG=debug shows what the server answered; without it, imapflow skips turning
    // each response back into text (it did so for every response, the FETCHes included)
    assert.ok(serverSaid(loud) > 0, "a debug logger sees the server's responses");
    assert.equal(serverSaid(quiet), 0, "no server response is built for a logger that drops it");
  },
);

imapTest(
  "a listing reads small matching bodies ahead, which fetch returns byte for byte",
  async (client) => {
    await client.append(FOLDER, await mail("Lunch on Friday?"));
    await client.append(FOLDER, await mail("Re: [mailpeer] lan request"));
    await client.append(FOLDER, await mail(REQUEST.subject));
    await client.append(FOLDER, await mail(REQUEST.subject, 5_000)); // over prefetchBytes
    await client.append(FOLDER, await mail(REQUEST.subject, 1_000));
    const delivered = await sourcesOf(client, FOLDER);
    const log = commandLog();
    const ahead = new ImapSource(server(), {
      ...FAST,
      mailbox: FOLDER,
      logger: log,
      prefetchBytes: 4_096,
    });
    const plain = new ImapSource(server(), { ...FAST, mailbox: FOLDER, prefetchBytes: 0 });
    try {
      const refs = await ahead.list(REQUEST);
      assert.deepEqual(refs.map((r) => r.id.split(":")[1]), ["3", "4", "5"]);
      // only the small mails that match: never the reply, the ordinary mail or the big one
      assert.ok(log.commands.includes("UID FETCH 3,5 (UID BODY.PEEK[])"), log.commands.join("\n"));
      log.commands.length = 0;
      const got = [];
      for (const ref of refs) got.push(await ahead.fetch(ref));
      assert.deepEqual(log.commands, ["UID FETCH 4 (UID BODY.PEEK[])"], "only the big one");
      assert.deepEqual(got, delivered.slice(2));
      assert.deepEqual(got, await Promise.all(refs.map((ref) => plain.fetch(ref))));
      // each prefetched body is served once; a second fetch asks the server again
      assert.deepEqual(await ahead.fetch(refs[0]!), delivered[2]);
      assert.deepEqual(log.commands.slice(1), ["UID FETCH 3 (UID BODY.PEEK[])"]);
      await client.mailboxOpen(FOLDER);
      const flags = await client.fetchAll("1:*", { uid: true, flags: true });
      assert.equal(flags.length, 5);
      for (const m of flags) assert.deepEqual([...(m.flags ?? [])], [], `${m.uid} was marked`);
    } finally {
      await Promise.all([ahead.close(), plain.close()]);
    }
  },
);

/** The UID of a ref into the source's mailbox (`<uidvalidity>:<uid>`). */
const uidOf = (ref: { id: string }) => ref.id.split(":")[1]!;

/**
 * A source of {@link FOLDER} that reads nothing ahead with the listing, as a host on a shared
 * mailbox (src/cli/host.ts: `readAhead: !sharedMailbox`): it reads the mails it won with
 * `prefetch` once its claims in the shared store are made (src/host/host.ts `#claimInLedger`).
 */
function claimingSource(
  logger: Logger,
  options: ImapSourceOptions = {},
  login: Partial<MailLogin> = {},
): ImapSource {
  return new ImapSource(server(login), {
    ...FAST,
    mailbox: FOLDER,
    prefetchBytes: 0,
    logger,
    ...options,
  });
}

imapTest(
  "prefetch reads the won mails up to the mail size limit in one FETCH; fetch reads the rest, and serves each body once",
  async (client) => {
    await client.append(FOLDER, await mail(REQUEST.subject));
    await client.append(FOLDER, await mail(REQUEST.subject, MAX_MAIL_BYTES)); // over the limit
    await client.append(FOLDER, await mail(REQUEST.subject, 1_000));
    await client.append(FOLDER, await mail(REQUEST.subject)); // not won
    const delivered = await sourcesOf(client, FOLDER);
    const log = commandLog();
    const source = claimingSource(log);
    try {
      const refs = await source.list(REQUEST);
      assert.deepEqual(refs.map(uidOf), ["1", "2", "3", "4"]);
      assert.ok(!log.commands.some((c) => c.includes("BODY")), "nothing read with the listing");
      log.commands.length = 0;
      await source.prefetch(refs.slice(0, 3));
      assert.deepEqual(log.commands, ["UID FETCH 1,3 (UID BODY.PEEK[])"]);
      log.commands.length = 0;
      const got = [];
      for (const ref of refs) got.push(await source.fetch(ref));
      assert.deepEqual(got, delivered);
      assert.deepEqual(log.commands, [
        "UID FETCH 2 (UID BODY.PEEK[])",
        "UID FETCH 4 (UID BODY.PEEK[])",
      ], "only the mail over the limit and the one not won");
      log.commands.length = 0;
      assert.deepEqual(await source.fetch(refs[0]!), delivered[0], "served once, then read");
      assert.deepEqual(log.commands, ["UID FETCH 1 (UID BODY.PEEK[])"]);
    } finally {
      await source.close();
    }
  },
);

imapTest(
  "a mail another session removed before the read-ahead is gone, and the others are still served once, byte for byte",
  async (client) => {
    for (let i = 0; i < 3; i++) await client.append(FOLDER, await mail(REQUEST.subject));
    const delivered = await sourcesOf(client, FOLDER); // (leaves FOLDER selected)
    const log = commandLog();
    const source = claimingSource(log);
    try {
      const refs = await source.list(REQUEST);
      assert.equal(refs.length, 3);
      // between the claim and the read-ahead: Dovecot's answer names that mail without a body
      // (OK [EXPUNGEISSUED]); the read-ahead holds the other two
      await client.messageDelete(uidOf(refs[1]!), { uid: true });
      log.commands.length = 0;
      await source.prefetch(refs);
      assert.deepEqual(log.commands, ["UID FETCH 1:3 (UID BODY.PEEK[])"]);
      log.commands.length = 0;
      assert.deepEqual(await source.fetch(refs[0]!), delivered[0]);
      assert.deepEqual(await source.fetch(refs[2]!), delivered[2]);
      assert.deepEqual(log.commands, [], "both read ahead");
      await assert.rejects(source.fetch(refs[1]!), /no longer in the mailbox; list the mailbox/);
      await source.deleteMany(refs); // the removed one too: no error
      assert.deepEqual(await source.list(REQUEST), []);
    } finally {
      await source.close();
    }
  },
);

imapTest("an aborted wait leaves the connection usable", async (client, source) => {
  await source.list(REQUEST);
  const controller = new AbortController();
  const waiting = source.waitForMail({ signal: controller.signal });
  controller.abort();
  await waiting;
  await client.append(FOLDER, await mail("[mailpeer] lan request"));
  assert.equal((await source.list(REQUEST)).length, 1);
});

imapTest(
  "a waiting host still hears of new mail after listing in between",
  async (client, source) => {
    await source.list(REQUEST);
    const waiting = source.waitForMail({ signal: AbortSignal.timeout(HANG_GUARD_MS) });
    assert.deepEqual(await source.list(REQUEST), []); // ends the IDLE the wait started
    await client.append(FOLDER, await mail("[mailpeer] lan request"));
    await waiting;
    assert.equal((await source.list(REQUEST)).length, 1);
  },
);

Deno.test({
  name: "IDLE wakes the host when a mail arrives through Postfix",
  ignore: NO_STACK,
  fn: async () => {
    const key = `[mailpeer] idle-${crypto.randomUUID()} request`;
    const source = new ImapSource(server(), FAST);
    try {
      await source.list({ subject: key, mode: "exact" });
      const guard = AbortSignal.timeout(HANG_GUARD_MS);
      const waiting = source.waitForMail({ signal: guard });
      await submitToPort25(await mail(key));
      await waiting;
      assert.equal(guard.aborted, false, "waitForMail did not notice the delivery");
      // other mail of the user may have woken it first: then this one's EXISTS is to come
      let refs = await source.list({ subject: key, mode: "exact" });
      while (refs.length === 0 && !guard.aborted) {
        await source.waitForMail({ signal: guard });
        refs = await source.list({ subject: key, mode: "exact" });
      }
      assert.equal(refs.length, 1);
      await source.delete(refs[0]!);
    } finally {
      await source.close();
    }
  },
});

/** Asserts a one-line MailError with `code` that names the server and `fix`. */
async function assertFails(
  promise: Promise<unknown>,
  code: string,
  where: string,
  fix: RegExp,
): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof MailError, String(err));
    assert.equal(err.code, code, err.message);
    assert.ok(!err.message.includes("\n"), err.message);
    assert.ok(err.message.startsWith("Cannot "), err.message);
    assert.ok(err.message.includes(where), err.message);
    assert.match(err.message, fix);
    return true;
  });
}

Deno.test({
  name: "a wrong password gives a one-line EAUTH naming the server and password_env",
  ignore: NO_STACK,
  fn: async () => {
    const source = new ImapSource(server({ password: "not-the-password" }), {
      ...FAST,
      configKey: "host.receive",
    });
    await assertFails(
      source.list(REQUEST),
      "EAUTH",
      `IMAP server 127.0.0.13:143 as ${ADDRESS}`,
      /refused the password; check host\.receive\.password_env/,
    );
    await source.close();
  },
});

Deno.test({
  name: "a certificate from an untrusted CA gives a one-line ETLS asking for ca_file",
  ignore: NO_STACK,
  fn: async () => {
    const source = new ImapSource(server({ caFile: undefined }), FAST);
    await assertFails(source.list(REQUEST), "ETLS", "127.0.0.13:143", /set receive\.ca_file/);
    await source.close();
  },
});

Deno.test({
  name: "a certificate for another name gives a one-line ETLS asking for servername",
  ignore: NO_STACK,
  fn: async () => {
    const source = new ImapSource(
      server({ servername: "mail.a.test", tls: "implicit", port: 993 }),
      FAST,
    );
    await assertFails(
      source.list(REQUEST),
      "ETLS",
      "127.0.0.13:993",
      /not valid for mail\.a\.test; set receive\.servername/,
    );
    await source.close();
  },
});

Deno.test({
  name: "tls none against a server that wants TLS says to turn TLS on",
  ignore: NO_STACK,
  fn: async () => {
    const source = new ImapSource(server({ tls: "none", caFile: undefined }), FAST);
    await assertFails(source.list(REQUEST), "EAUTH", "127.0.0.13:143", /tls = "starttls"/);
    await source.close();
  },
});

/** Submits raw mail to host.test's Postfix on port 25 (local delivery needs no login). */
async function submitToPort25(raw: Uint8Array): Promise<void> {
  const { provider } = account(ADDRESS);
  const transport = nodemailer.createTransport({
    host: provider.ip,
    port: provider.ports.smtp,
    secure: false,
    ignoreTLS: true,
    logger: false,
  });
  try {
    await transport.sendMail({
      envelope: { from: "alice@a.test", to: [ADDRESS] },
      raw: new TextDecoder().decode(raw),
    });
  } finally {
    transport.close();
  }
}

/**
 * Runs a command to its end. Its output is not captured: a daemon (dovecot) keeps inherited
 * pipes open for good, so its errors are read from the provider's log instead.
 */
async function run(cmd: string, args: string[]): Promise<void> {
  const status = await new Deno.Command(cmd, {
    args,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).output();
  if (!status.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed (exit ${status.code}); see the stack logs`);
  }
}

/**
 * Stops a Dovecot and waits until its master is gone for good (reaped, so a new master does
 * not find it "already running"): `tail --pid` does the waiting.
 */
async function stopDovecot(conf: string, pidFile: string): Promise<void> {
  const pid = (await Deno.readTextFile(pidFile)).trim();
  await run("doveadm", ["-c", conf, "stop"]);
  await run("timeout", ["20", "tail", `--pid=${pid}`, "-s", "0.05", "-f", "/dev/null"]);
  await Deno.remove(pidFile).catch(() => {}); // left behind when the master took long to exit
}

/**
 * Ends every process left of one private Dovecot instance and waits until they are gone: a
 * session can outlive its master (the CI once saw an IMAP session log out two seconds after
 * the master was killed), and a master started meanwhile then fails to read its config
 * socket, keeps running and rewrites its run directory under a removal. The master's command
 * line names the config file and each child's title the instance (`dovecot-<instance>/imap`).
 */
async function endInstance(conf: string, instance: string): Promise<void> {
  const pattern = `dovecot -c ${conf}|dovecot-${instance}/`;
  const found = await new Deno.Command("pgrep", { args: ["-f", pattern], stdout: "piped" })
    .output();
  const pids = new TextDecoder().decode(found.stdout).split("\n").filter((p) => /^\d+$/.test(p));
  if (pids.length === 0) return;
  await new Deno.Command("kill", { args: ["-TERM", ...pids], stderr: "null" }).output();
  for (const pid of pids) {
    await run("timeout", ["20", "tail", `--pid=${pid}`, "-s", "0.05", "-f", "/dev/null"]);
  }
}

/** A free TCP port on `ip`. */
function freePort(ip: string): number {
  const listener = Deno.listen({ hostname: ip, port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/**
 * A private Dovecot (IMAP only, on a free port of 127.0.0.13) that serves the same users and
 * Maildirs as host.test's own: restarting it leaves the shared stack healthy, so a parallel
 * `mailstack.sh start` does not see a dead provider and cold-restart every server.
 */
async function privateDovecot(): Promise<{
  port: number;
  start(): Promise<void>;
  /** Ends the test user's sessions (their connections drop); the server keeps running. */
  kick(): Promise<void>;
  stop(): Promise<void>;
  remove(): Promise<void>;
}> {
  const { provider } = account(ADDRESS);
  const shared = await Deno.readTextFile(
    join(STACK!.stateDir, provider.domain, "dovecot", "dovecot.conf"),
  );
  const tmp = await Deno.makeTempDir({ prefix: "mpimap" });
  await Deno.chmod(tmp, 0o755); // Dovecot's unprivileged processes reach their sockets here
  await Deno.mkdir(join(tmp, "state"));
  const port = freePort(provider.ip);
  const instance = `mailpeer-imaptest-${port}`;
  const common = shared.slice(0, shared.indexOf("service imap-login {"))
    .replace(/^instance_name = .*$/m, `instance_name = ${instance}`)
    .replace(/^base_dir = .*$/m, `base_dir = ${tmp}/run`)
    .replace(/^state_dir = .*$/m, `state_dir = ${tmp}/state`)
    .replace(/^protocols = .*$/m, "protocols = imap")
    .replace(/^(info_)?log_path = .*$/gm, `$1log_path = ${tmp}/dovecot.log`);
  const conf = join(tmp, "dovecot.conf");
  await Deno.writeTextFile(
    conf,
    common + `service imap-login {\n  inet_listener imap {\n    port = ${port}\n  }\n` +
      "  inet_listener imaps {\n    port = 0\n  }\n}\n" +
      "protocol imap {\n  mail_max_userip_connections = 500\n}\n",
  );
  const pidFile = join(tmp, "run", "master.pid");
  const kick = () => run("doveadm", ["-c", conf, "kick", ADDRESS]);
  return {
    port,
    start: () => run("dovecot", ["-c", conf]),
    kick,
    stop: async () => {
      // a stopping master may leave a session running for a while: end ours first
      await kick();
      await stopDovecot(conf, pidFile);
      await endInstance(conf, instance); // a session that outlived the master
    },
    remove: async () => {
      if (await Deno.stat(pidFile).then(() => true, () => false)) await stopDovecot(conf, pidFile);
      await endInstance(conf, instance);
      await Deno.remove(tmp, { recursive: true });
    },
  };
}

Deno.test({
  name: "an IMAP source survives its server being restarted mid-run and loses no mail",
  ignore: NO_STACK,
  fn: async () => {
    const key: SubjectMatch = {
      subject: `[mailpeer] restart-${crypto.randomUUID()} request`,
      mode: "exact",
    };
    const dovecot = await privateDovecot();
    let retries = 0;
    let retried = () => {};
    const firstRetry = new Promise<void>((resolve) => (retried = resolve));
    const source = new ImapSource(server({ port: dovecot.port }), {
      ...FAST,
      logger: {
        log: (_level, message) => {
          if (!message.includes("retrying")) return;
          retries++;
          retried();
        },
      },
    });
    const client = await mailClient();
    try {
      await dovecot.start();
      await client.append("INBOX", await mail(key.subject));
      const [before] = await source.list(key);
      assert.ok(before !== undefined);

      await dovecot.stop();
      await submitToPort25(await mail(key.subject)); // delivered while the host's server is down
      retries = 0;
      const listing = source.list(key); // fails to connect, retries with backoff
      await Promise.race([firstRetry, listing]);
      assert.ok(retries > 0, "the source retried while its server was down");
      await dovecot.start();
      const afterRestart = await listing;
      assert.equal(afterRestart[0]?.id, before.id, "the mail from before is still there");

      const guard = AbortSignal.timeout(HANG_GUARD_MS);
      let refs = afterRestart;
      while (refs.length < 2 && !guard.aborted) {
        await source.waitForMail({ signal: guard });
        refs = await source.list(key);
      }
      assert.equal(refs.length, 2, "the mail delivered during the restart was listed");
      await source.fetch(refs[1]!);
      for (const ref of refs) await source.delete(ref);
    } finally {
      await source.close();
      await client.logout();
      await dovecot.remove();
    }
  },
});

Deno.test({
  name: "a running host whose IMAP server restarts answers the request mailed meanwhile",
  ignore: NO_STACK,
  fn: async () => {
    const network = `restart-${crypto.randomUUID().slice(0, 8)}`;
    const dir = await Deno.makeTempDir({ prefix: "mailpeer-restart-" });
    const po = new MaildirPostOffice(dir);
    const hostKeys = await generateHostKeys(ADDRESS);
    const dovecot = await privateDovecot();
    const source = new ImapSource(server({ port: dovecot.port }), {
      ...FAST,
      idle: false,
      pollIntervalMs: 50,
    });
    // The host's backoff after a failed pass must not decide the outcome: its sleeps end at
    // once (the source's own connect attempts, 50 ms apart, pace the retries), so how long
    // the restart takes on a loaded machine does not matter.
    const retryAtOnce: Clock = {
      now: () => Date.now(),
      sleep: (_ms, signal) => signal?.aborted ? Promise.reject(signal.reason) : Promise.resolve(),
    };
    const host = new Host({
      keys: hostKeys,
      network,
      source,
      sender: new MaildirSender(po), // replies land in a local Maildir, read below
      store: new MemoryStore(),
      allowPrivateAddresses: true,
      clock: retryAtOnce,
    });
    const alice = new MaildirSource(await po.ensureMailbox("alice@a.test"), { pollIntervalMs: 50 });
    const requestMail = async (userId: string) => {
      const identity = await generateIdentityKeys(userId);
      const block = await sealRequest({
        network,
        userId,
        identityKey: identity.ed25519.publicKey,
        endpoints: [{ transport: "tcp", address: "192.0.2.5", port: 5000 }],
        sessionId: crypto.getRandomValues(new Uint8Array(16)),
        createdAt: Date.now(),
        replyKey: (await generateX25519()).publicKey,
        hostCards: [],
      }, { identity, hostCard: hostCardOf(hostKeys) });
      return (await composeMail({
        from: "alice@a.test",
        to: [ADDRESS],
        subject: subjectFor(network, "request"),
        text: bodyFor(network, "request", block),
      })).raw;
    };
    const replies = async (n: number) => {
      const guard = AbortSignal.timeout(60_000); // a guard against a hang, not a wait
      let refs = await alice.list({ subject: subjectFor(network, "reply"), mode: "exact" });
      while (refs.length < n && !guard.aborted) {
        await alice.waitForMail({ signal: guard });
        refs = await alice.list({ subject: subjectFor(network, "reply"), mode: "exact" });
      }
      return refs.length;
    };
    const stop = new AbortController();
    let running: Promise<void> | undefined;
    try {
      await dovecot.start();
      running = new HostService({ host, retryDelayMs: 50 }).run({ signal: stop.signal });
      await submitToPort25(await requestMail("before"));
      assert.equal(await replies(1), 1, "answered before the restart");

      await dovecot.stop();
      await submitToPort25(await requestMail("during")); // arrives while the server is down
      await dovecot.start();
      assert.equal(await replies(2), 2, "the request mailed during the restart is answered");
    } finally {
      stop.abort();
      await running;
      await source.close();
      await alice.close();
      await dovecot.remove();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

imapTest(
  "a read-ahead is read again after its connection breaks, and when its server is gone, fetch reads every mail itself",
  async (client) => {
    for (let i = 0; i < 3; i++) await client.append(FOLDER, await mail(REQUEST.subject));
    const delivered = await sourcesOf(client, FOLDER);
    const dovecot = await privateDovecot(); // the same Maildirs: FOLDER and its UIDs
    const log = commandLog();
    const failures: unknown[] = [];
    const source = claimingSource(
      {
        log: (level, message, fields) => {
          log.log(level, message, fields);
          if (message === "reading mail ahead failed; fetch reads it") failures.push(fields?.error);
        },
      },
      { connectAttempts: 2 },
      { port: dovecot.port },
    );
    const bodyFetches = () => log.commands.filter((c) => c.includes("BODY.PEEK[]"));
    try {
      await dovecot.start();
      const refs = await source.list(REQUEST);
      assert.equal(refs.length, 3);
      // the connection drops (waitForMail wakes when it does); the read-ahead reconnects
      const dropped = source.waitForMail();
      await dovecot.kick();
      await dropped;
      log.commands.length = 0;
      await source.prefetch(refs.slice(0, 2));
      assert.deepEqual(bodyFetches(), ["UID FETCH 1:2 (UID BODY.PEEK[])"]);
      assert.deepEqual([await source.fetch(refs[0]!), await source.fetch(refs[1]!)], [
        delivered[0],
        delivered[1],
      ]);
      assert.deepEqual(bodyFetches(), ["UID FETCH 1:2 (UID BODY.PEEK[])"], "read ahead");
      // the server goes away for longer than the source retries: the read-ahead fails quietly
      await dovecot.stop();
      await source.prefetch(refs);
      assert.equal(failures.length, 1, "the read-ahead failed");
      await dovecot.start();
      log.commands.length = 0;
      const got = [];
      for (const ref of refs) got.push(await source.fetch(ref));
      assert.deepEqual(got, delivered, "each mail's own bytes");
      assert.deepEqual(bodyFetches(), refs.map((r) => `UID FETCH ${uidOf(r)} (UID BODY.PEEK[])`));
      await source.deleteMany(refs);
    } finally {
      await source.close();
      await dovecot.remove();
    }
  },
);
