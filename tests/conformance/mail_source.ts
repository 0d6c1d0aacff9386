/**
 * The conformance suite every {@link MailSource} passes (Maildir, IMAP, POP3).
 *
 * It is written only against the MailSource interface and the fixture's `deliver()`, so it
 * runs unchanged against a real mail server. Call it from an implementation's test file:
 *
 * ```ts ignore
 * mailSourceConformance("maildir", async () => ({ source, deliver, cleanup }));
 * ```
 *
 * @module
 */
import assert from "node:assert/strict";
import { composeMail } from "../../src/mail/rfc5322/compose.ts";
import type { MailRef, MailSource, SubjectMatch } from "../../src/mail/types.ts";

/** A fresh, empty mailbox read by `source`; `deliver` puts raw mail into it. */
export interface MailSourceFixture {
  source: MailSource;
  /** Delivers raw RFC 5322 bytes into the mailbox (arrival order = delivery order). */
  deliver(raw: Uint8Array): Promise<void>;
  /** Closes the source and removes the mailbox. */
  cleanup(): Promise<void>;
}

const REQUEST: SubjectMatch = { subject: "[mailpeer] lan request", mode: "exact" };
const PREFIX: SubjectMatch = { subject: "[mailpeer] lan request", mode: "prefix" };
const ORDINARY_SUBJECT = "Holiday photos from Grödingen";
const ORDINARY: SubjectMatch = { subject: ORDINARY_SUBJECT, mode: "exact" };
/** How long a waitForMail test may take before it counts as hung (a guard, not a wait). */
const HANG_GUARD_MS = 15_000;

let counter = 0;

/** A real mail with a unique body, so its bytes identify it. */
async function mail(subject: string): Promise<Uint8Array> {
  const n = counter++;
  const { raw } = await composeMail({
    from: "Alice <alice@example.org>",
    to: ["host@example.org"],
    subject,
    text: `Mail number ${n}. Grüße, ünïcödé ✓\r\nSecond line.\r\n`,
    date: new Date(Date.UTC(2026, 0, 1, 12, 0, n)),
  });
  return raw;
}

/** Registers the MailSource conformance tests, each named `${name}: ...`. */
export function mailSourceConformance(
  name: string,
  makeFixture: () => Promise<MailSourceFixture>,
): void {
  const test = (title: string, fn: (f: MailSourceFixture) => Promise<void>) =>
    Deno.test(`${name}: ${title}`, async () => {
      const fixture = await makeFixture();
      try {
        await fn(fixture);
      } finally {
        await fixture.cleanup();
      }
    });

  /** Fetches every ref and returns the bytes, in list order. */
  const fetchAll = (source: MailSource, refs: MailRef[]) =>
    Promise.all(refs.map((ref) => source.fetch(ref)));

  test("an empty mailbox lists nothing", async ({ source }) => {
    assert.deepEqual(await source.list(REQUEST), []);
  });

  test("lists only mail whose subject equals the key, oldest first", async (f) => {
    const first = await mail("[mailpeer] lan request");
    const other = await mail("[mailpeer] lan reply");
    const longer = await mail("[mailpeer] lan request (forwarded)");
    const ordinary = await mail(ORDINARY_SUBJECT);
    const second = await mail("[mailpeer] lan request");
    for (const raw of [first, other, longer, ordinary, second]) await f.deliver(raw);

    const refs = await f.source.list(REQUEST);
    assert.deepEqual(refs.map((r) => r.subject), [
      "[mailpeer] lan request",
      "[mailpeer] lan request",
    ]);
    assert.notEqual(refs[0]?.id, refs[1]?.id);
    assert.deepEqual(await fetchAll(f.source, refs), [first, second]);
  });

  test("prefix mode lists every subject that starts with the key, oldest first", async (f) => {
    const first = await mail("[mailpeer] lan request");
    const other = await mail("[mailpeer] lan reply");
    const longer = await mail("[mailpeer] lan request (forwarded)");
    for (const raw of [first, other, longer]) await f.deliver(raw);

    const refs = await f.source.list(PREFIX);
    assert.deepEqual(refs.map((r) => r.subject), [
      "[mailpeer] lan request",
      "[mailpeer] lan request (forwarded)",
    ]);
    assert.deepEqual(await fetchAll(f.source, refs), [first, longer]);
  });

  test("a subject key that arrives RFC 2047-encoded is still recognised", async (f) => {
    const text = "From: bob@example.org\r\nTo: host@example.org\r\n" +
      "Subject: =?UTF-8?B?W21haWxwZWVyXSBsYW4gcmVxdWVzdA==?=\r\n" +
      "Date: Thu, 01 Jan 2026 12:00:00 +0000\r\nMessage-ID: <encoded@example.org>\r\n" +
      "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nencoded\r\n";
    const raw = new TextEncoder().encode(text);
    await f.deliver(raw);
    const refs = await f.source.list(REQUEST);
    assert.equal(refs.length, 1);
    assert.equal(refs[0]?.subject, "[mailpeer] lan request");
    assert.deepEqual(await f.source.fetch(refs[0]!), raw);
  });

  test("fetch returns exactly the bytes that were delivered", async (f) => {
    const raw = await mail("[mailpeer] lan request");
    await f.deliver(raw);
    const [ref] = await f.source.list(REQUEST);
    assert.ok(ref !== undefined);
    if (ref.size !== undefined) assert.equal(ref.size, raw.length);
    assert.deepEqual(await f.source.fetch(ref), raw);
    // fetching does not make it disappear: a crash before delete must not lose it
    assert.deepEqual((await f.source.list(REQUEST)).map((r) => r.id), [ref.id]);
    assert.deepEqual(await f.source.fetch(ref), raw);
  });

  test("deleteMany removes those mails and no other", async (f) => {
    const raws = [];
    for (let i = 0; i < 3; i++) raws.push(await mail("[mailpeer] lan request"));
    for (const raw of raws) await f.deliver(raw);
    const [a, b, c] = await f.source.list(REQUEST);
    assert.ok(a !== undefined && b !== undefined && c !== undefined);
    await f.source.deleteMany([a, c]);
    const left = await f.source.list(REQUEST);
    assert.deepEqual(left.map((r) => r.id), [b.id]);
    assert.deepEqual(await f.source.fetch(left[0]!), raws[1]);
  });

  test("claims are what the source says: exclusive where it claims, the ref itself where not", async (f) => {
    await f.deliver(await mail("[mailpeer] lan request"));
    const [ref] = await f.source.list(REQUEST);
    assert.ok(ref !== undefined);
    const [won] = await f.source.claimMany([ref]);
    assert.ok(won !== undefined, "the only claimer won the mail");
    if (f.source.claims) {
      // Taken: a second claim of the listed ref finds it gone, and it no longer lists.
      assert.equal(await f.source.claim(ref), undefined);
      assert.deepEqual(await f.source.list(REQUEST), []);
    } else {
      assert.deepEqual(won, ref);
      assert.equal(await f.source.recoverClaims(0), 0);
    }
    await f.source.delete(won);
    assert.deepEqual(await f.source.list(REQUEST), []);
  });

  test("delete removes that mail and no other", async (f) => {
    const first = await mail("[mailpeer] lan request");
    const second = await mail("[mailpeer] lan request");
    await f.deliver(first);
    await f.deliver(second);
    const [a, b] = await f.source.list(REQUEST);
    assert.ok(a !== undefined && b !== undefined);
    await f.source.fetch(a);
    await f.source.delete(a);
    const left = await f.source.list(REQUEST);
    assert.deepEqual(left.map((r) => r.id), [b.id]);
    assert.deepEqual(await f.source.fetch(left[0]!), second);
  });

  test("a quarantined mail is no longer listed", async (f) => {
    const bad = await mail("[mailpeer] lan request");
    const good = await mail("[mailpeer] lan request");
    await f.deliver(bad);
    await f.deliver(good);
    const [a, b] = await f.source.list(REQUEST);
    assert.ok(a !== undefined && b !== undefined);
    await f.source.quarantine(a, "bad coded block");
    const left = await f.source.list(REQUEST);
    assert.deepEqual(left.map((r) => r.id), [b.id]);
    assert.deepEqual(await f.source.fetch(left[0]!), good);
  });

  test("ordinary mail is never listed and survives list, fetch, delete and quarantine", async (f) => {
    const ordinary = await mail(ORDINARY_SUBJECT);
    const processed = await mail("[mailpeer] lan request");
    const hostile = await mail("[mailpeer] lan request");
    await f.deliver(ordinary);
    await f.deliver(processed);
    await f.deliver(hostile);

    for (const match of [REQUEST, PREFIX, { subject: "[mailpeer]", mode: "prefix" } as const]) {
      const subjects = (await f.source.list(match)).map((r) => r.subject);
      assert.ok(!subjects.includes(ORDINARY_SUBJECT), `listed by ${JSON.stringify(match)}`);
    }
    const [p, h] = await f.source.list(REQUEST);
    assert.ok(p !== undefined && h !== undefined);
    await f.source.fetch(p);
    await f.source.delete(p);
    await f.source.fetch(h);
    await f.source.quarantine(h, "replayed request");
    assert.deepEqual(await f.source.list(REQUEST), []);

    const seen = await f.source.list(ORDINARY);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]?.subject, ORDINARY_SUBJECT);
    assert.deepEqual(await f.source.fetch(seen[0]!), ordinary);
  });

  test("waitForMail resolves after a delivery", async (f) => {
    await f.source.list(REQUEST);
    const guard = new AbortController();
    let hung = false;
    const timer = setTimeout(() => {
      hung = true;
      guard.abort();
    }, HANG_GUARD_MS);
    try {
      const waiting = f.source.waitForMail({ signal: guard.signal });
      await f.deliver(await mail("[mailpeer] lan request"));
      await waiting;
    } finally {
      clearTimeout(timer);
    }
    assert.equal(hung, false, "waitForMail did not notice the delivery");
    assert.equal((await f.source.list(REQUEST)).length, 1);
  });

  test("waitForMail resolves, without error, when its signal aborts", async ({ source }) => {
    await source.list(REQUEST);
    const controller = new AbortController();
    const waiting = source.waitForMail({ signal: controller.signal });
    controller.abort(new Error("shutting down"));
    await waiting;
    await source.waitForMail({ signal: controller.signal }); // already aborted: at once
  });
}
