import assert from "node:assert/strict";
import { join } from "node:path";
import { MailError } from "../../src/errors.ts";
import { composeMail } from "../../src/mail/rfc5322/compose.ts";
import { deliverToMaildir, MaildirSender } from "../../src/mail/maildir/sender.ts";
import { MaildirPostOffice } from "../../src/mail/maildir/post_office.ts";
import { MaildirSource } from "../../src/mail/maildir/source.ts";
import { parseMail } from "../../src/mail/rfc5322/parse.ts";
import type { SubjectMatch } from "../../src/mail/types.ts";
import type { Clock } from "../../src/runtime.ts";
import { ManualClock } from "../support/manual_clock.ts";
import { mailSenderConformance } from "../conformance/mail_sender.ts";
import { mailSourceConformance } from "../conformance/mail_source.ts";

const REQUEST: SubjectMatch = { subject: "[mailpeer] lan request", mode: "exact" };
const HOST = "host@lan.example";

mailSourceConformance("maildir", async () => {
  const root = await Deno.makeTempDir({ prefix: "mailpeer-maildir-" });
  const maildir = await new MaildirPostOffice(root).ensureMailbox(HOST);
  // a poll interval that never elapses: only the file watch can wake waitForMail
  const source = new MaildirSource(maildir, {
    clock: new ManualClock(),
    pollIntervalMs: 3_600_000,
  });
  return {
    source,
    deliver: async (raw) => {
      await deliverToMaildir(maildir, raw);
    },
    cleanup: async () => {
      await source.close();
      await Deno.remove(root, { recursive: true });
    },
  };
});

mailSenderConformance("maildir", async ({ now }) => {
  const root = await Deno.makeTempDir({ prefix: "mailpeer-sender-" });
  const office = new MaildirPostOffice(root);
  const sender = new MaildirSender(office, { now });
  return {
    sender,
    from: "terminal@lan.example",
    recipients: [HOST, "peer@lan.example"],
    // delivery is done when send() resolves: what is not there now never arrives
    received: async (address, tag) => {
      const found: { name: string; raw: Uint8Array }[] = [];
      for (const sub of ["new", "cur"]) {
        const dir = join(office.maildirOf(address), sub);
        for (const name of await names(dir).catch(() => [])) {
          const raw = await Deno.readFile(join(dir, name));
          if (!(await parseMail(raw)).subject.includes(tag)) continue;
          found.push({ name, raw });
          await Deno.remove(join(dir, name));
        }
      }
      // unique names start with the delivery time and a sequence number
      return found.sort((a, b) => a.name < b.name ? -1 : 1).map((m) => m.raw);
    },
    cleanup: async () => {
      await sender.close();
      await Deno.remove(root, { recursive: true });
    },
  };
});

/** A temporary post office with the host's Maildir; removed by `cleanup`. */
async function postOffice() {
  const root = await Deno.makeTempDir({ prefix: "mailpeer-po-" });
  const office = new MaildirPostOffice(root);
  const maildir = await office.ensureMailbox(HOST);
  return { root, office, maildir, cleanup: () => Deno.remove(root, { recursive: true }) };
}

async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) out.push(entry.name);
  return out.sort();
}

async function mail(subject: string): Promise<Uint8Array> {
  return (await composeMail({ from: "t@lan.example", to: [HOST], subject, text: "hi ✓\n" })).raw;
}

Deno.test("a user's ordinary unread mail stays unread in new/ under its name while mailpeer mail is fetched", async () => {
  const po = await postOffice();
  const source = new MaildirSource(po.maildir, { clock: new ManualClock() });
  try {
    const ordinary = await mail("Dinner on Saturday?");
    const ordinaryName = await deliverToMaildir(po.maildir, ordinary);
    const requestName = await deliverToMaildir(po.maildir, await mail(REQUEST.subject));
    const before = await Deno.stat(join(po.maildir, "new", ordinaryName));

    const refs = await source.list(REQUEST);
    assert.deepEqual(refs.map((r) => r.id), [requestName]);
    await source.fetch(refs[0]!);

    assert.deepEqual(await names(join(po.maildir, "new")), [ordinaryName]);
    assert.deepEqual(await names(join(po.maildir, "cur")), [`${requestName}:2,S`]);
    const after = await Deno.stat(join(po.maildir, "new", ordinaryName));
    assert.equal(after.mtime?.getTime(), before.mtime?.getTime());
    assert.deepEqual(await Deno.readFile(join(po.maildir, "new", ordinaryName)), ordinary);

    await source.delete(refs[0]!);
    assert.deepEqual(await names(join(po.maildir, "cur")), []);
    assert.deepEqual(await names(join(po.maildir, "new")), [ordinaryName]);
  } finally {
    await source.close();
    await po.cleanup();
  }
});

Deno.test("MaildirSender delivers a parseable copy into new/ of every recipient, creating mailboxes", async () => {
  const po = await postOffice();
  const now = Date.UTC(2026, 4, 1, 10, 0, 0);
  const sender = new MaildirSender(po.office, { now: () => now, hostname: "box" });
  try {
    const { messageId } = await sender.send({
      from: HOST,
      to: ["Terminal <T1@Lan.Example>", "t2@lan.example", "t1@lan.example"],
      subject: "[mailpeer] lan reply",
      text: "peers inside\n",
      inReplyTo: "<req@lan.example>",
    });
    for (const address of ["t1@lan.example", "t2@lan.example"]) {
      const dir = po.office.maildirOf(address);
      assert.equal(dir, join(po.root, address));
      assert.deepEqual(await names(join(dir, "tmp")), []);
      const delivered = await names(join(dir, "new"));
      assert.equal(delivered.length, 1, `one copy for ${address}`);
      assert.match(
        delivered[0]!,
        new RegExp(`^${now / 1000}\\.M000000P\\d+Q\\d+R[0-9a-f]+\\.box$`),
      );
      const parsed = await parseMail(await Deno.readFile(join(dir, "new", delivered[0]!)));
      assert.equal(parsed.messageId, messageId);
      assert.equal(parsed.inReplyTo, "<req@lan.example>");
      assert.equal(parsed.date?.getTime(), now);
      assert.equal(parsed.from, HOST);
    }
  } finally {
    await sender.close();
    await po.cleanup();
  }
});

Deno.test("an address that could escape the post office directory is refused", async () => {
  const po = await postOffice();
  try {
    for (const bad of ["../etc@x", "a/b@x", "a@x/..", "..@x", "a\n@x", "", "nobody", ".hidden@x"]) {
      assert.throws(() => po.office.maildirOf(bad), (err: unknown) => {
        assert.ok(err instanceof MailError, bad);
        assert.equal(err.code, "EMAILDIR");
        return true;
      });
    }
    const sender = new MaildirSender(po.root);
    await assert.rejects(
      sender.send({ from: HOST, to: ["ok@x", "../../evil@x"], subject: "s", text: "t" }),
      MailError,
    );
    assert.deepEqual(await names(po.root), [HOST], "nothing delivered when one recipient is bad");
  } finally {
    await po.cleanup();
  }
});

Deno.test("a quarantined mail lands in the .Quarantine folder a mail client shows", async () => {
  const po = await postOffice();
  const source = new MaildirSource(po.maildir, { clock: new ManualClock() });
  try {
    const raw = await mail(REQUEST.subject);
    const name = await deliverToMaildir(po.maildir, raw);
    const [ref] = await source.list(REQUEST);
    await source.quarantine(ref!, "bad coded block");
    const folder = join(po.maildir, ".Quarantine");
    assert.deepEqual(await names(folder), ["cur", "maildirfolder", "new", "tmp"]);
    assert.deepEqual(await names(join(folder, "cur")), [`${name}:2,`]);
    assert.deepEqual(await Deno.readFile(join(folder, "cur", `${name}:2,`)), raw);
    assert.deepEqual(await source.list(REQUEST), []);
  } finally {
    await source.close();
    await po.cleanup();
  }
});

Deno.test("listing skips mail that vanished or cannot be read and keeps the ids of seen mail", async () => {
  const po = await postOffice();
  const source = new MaildirSource(po.maildir, { clock: new ManualClock() });
  try {
    await Deno.symlink(join(po.root, "gone"), join(po.maildir, "new", "1.dangling.box"));
    const name = await deliverToMaildir(po.maildir, await mail(REQUEST.subject));
    // a mail client marks it read and flagged
    await Deno.rename(join(po.maildir, "new", name), join(po.maildir, "cur", `${name}:2,FS`));
    const refs = await source.list(REQUEST);
    assert.deepEqual(refs.map((r) => r.id), [name]);
    assert.equal((await source.fetch(refs[0]!)).length, refs[0]!.size);
    assert.deepEqual(await names(join(po.maildir, "cur")), [`${name}:2,FS`]);
  } finally {
    await source.close();
    await po.cleanup();
  }
});

Deno.test("fetching a mail another process already deleted fails with EMAILDIR", async () => {
  const po = await postOffice();
  const source = new MaildirSource(po.maildir, { clock: new ManualClock() });
  try {
    const name = await deliverToMaildir(po.maildir, await mail(REQUEST.subject));
    const [ref] = await source.list(REQUEST);
    await Deno.remove(join(po.maildir, "new", name));
    await assert.rejects(source.fetch(ref!), (err: unknown) => {
      assert.ok(err instanceof MailError);
      assert.equal(err.code, "EMAILDIR");
      assert.match(err.message, /^Cannot fetch mail .+; list the mailbox again$/);
      return true;
    });
    await source.delete(ref!); // already gone: nothing to do
  } finally {
    await source.close();
    await po.cleanup();
  }
});

Deno.test("a missing Maildir is created on first use", async () => {
  const po = await postOffice();
  const dir = join(po.root, "new-terminal@lan.example");
  const source = new MaildirSource(dir, { clock: new ManualClock() });
  try {
    assert.deepEqual(await source.list(REQUEST), []);
    assert.deepEqual(await names(dir), ["cur", "new", "tmp"]);
  } finally {
    await source.close();
    await po.cleanup();
  }
});

Deno.test("waitForMail wakes after one poll interval of the injected clock", async () => {
  const po = await postOffice();
  const clock = new ManualClock();
  let sleeping!: (ms: number) => void;
  const asleep = new Promise<number>((resolve) => (sleeping = resolve));
  const spy: Clock = {
    now: () => clock.now(),
    sleep: (ms, signal) => {
      sleeping(ms);
      return clock.sleep(ms, signal);
    },
  };
  const source = new MaildirSource(po.maildir, { clock: spy, pollIntervalMs: 2_500 });
  try {
    const waiting = source.waitForMail();
    assert.equal(await asleep, 2_500);
    clock.advance(2_500);
    await waiting;
  } finally {
    await source.close();
    await po.cleanup();
  }
});

Deno.test("waitForMail returns at once when mail arrived since the last listing", async () => {
  const po = await postOffice();
  const source = new MaildirSource(po.maildir, {
    clock: new ManualClock(),
    pollIntervalMs: 3_600_000,
  });
  try {
    await source.list(REQUEST);
    await deliverToMaildir(po.maildir, await mail(REQUEST.subject));
    await source.waitForMail();
    assert.equal((await source.list(REQUEST)).length, 1);
  } finally {
    await source.close();
    await po.cleanup();
  }
});
