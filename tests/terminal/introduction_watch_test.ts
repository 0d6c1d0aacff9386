/**
 * The standby's introduction watch from the attacker's side (issue 13): an oversized mail is
 * quarantined unread, an expired or forged introduction is quarantined and never handed on, and
 * a valid one is handed on once and its mail deleted.
 */
import assert from "node:assert/strict";
import type { MailpeerEvent } from "../../src/events.ts";
import { MAX_TERMINAL_MAIL_BYTES } from "../../src/limits.ts";
import { silentLogger } from "../../src/log.ts";
import type { MailRef, MailSource } from "../../src/mail/types.ts";
import { candidatePriority } from "../../src/message/candidate.ts";
import { sealIntroduction } from "../../src/message/introduction.ts";
import { generateHostKeys, hostCardOf } from "../../src/message/key_file.ts";
import { generateX25519 } from "../../src/message/keys.ts";
import { bodyFor, subjectFor } from "../../src/message/mail_text.ts";
import type { IntroductionPayload } from "../../src/message/types.ts";
import { ManualClock } from "../support/manual_clock.ts";
import { watchIntroductions } from "../../src/terminal/introduction_watch.ts";

const SUBJECT = subjectFor("net", "introduction");

/** A mailbox of fixed mails; the watch stops (abort) once it waits for more. */
class FixedBox implements MailSource {
  fetched: string[] = [];
  deleted: string[] = [];
  quarantined: string[] = [];
  constructor(
    readonly mails: Map<string, { raw: Uint8Array; size?: number }>,
    readonly stop: AbortController,
  ) {}
  list(): Promise<MailRef[]> {
    const gone = new Set([...this.deleted, ...this.quarantined]);
    return Promise.resolve(
      [...this.mails].filter(([id]) => !gone.has(id)).map(([id, m]) => ({
        id,
        subject: SUBJECT,
        ...(m.size !== undefined ? { size: m.size } : {}),
      })),
    );
  }
  fetch(ref: MailRef): Promise<Uint8Array> {
    this.fetched.push(ref.id);
    return Promise.resolve(this.mails.get(ref.id)!.raw);
  }
  delete(ref: MailRef): Promise<void> {
    this.deleted.push(ref.id);
    return Promise.resolve();
  }
  async deleteMany(refs: MailRef[]): Promise<void> {
    for (const ref of refs) await this.delete(ref);
  }
  readonly claims = false;
  claim(ref: MailRef): Promise<MailRef | undefined> {
    return Promise.resolve(ref);
  }
  claimMany(refs: MailRef[]): Promise<MailRef[]> {
    return Promise.resolve(refs);
  }
  recoverClaims(): Promise<number> {
    return Promise.resolve(0);
  }
  quarantine(ref: MailRef): Promise<void> {
    this.quarantined.push(ref.id);
    return Promise.resolve();
  }
  waitForMail(): Promise<void> {
    this.stop.abort();
    return Promise.resolve();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

function mail(block: Uint8Array): Uint8Array {
  return new TextEncoder().encode(
    `From: host@intro.test\r\nTo: bob@intro.test\r\nSubject: ${SUBJECT}\r\n` +
      `Date: Fri, 04 Dec 2026 12:00:00 +0000\r\nMessage-ID: <x@intro.test>\r\n\r\n` +
      bodyFor("net", "introduction", block).replaceAll("\n", "\r\n"),
  );
}

Deno.test("the standby's watch hands on only its host's current introduction; the rest is quarantined", async () => {
  const clock = new ManualClock(Date.UTC(2026, 11, 4, 12));
  const hostKeys = await generateHostKeys("host@intro.test");
  const mallory = await generateHostKeys("host@intro.test");
  const key = await generateX25519();
  const sessionId = crypto.getRandomValues(new Uint8Array(16));
  const payload: IntroductionPayload = {
    network: "net",
    hostId: hostKeys.ed25519.publicKey,
    sessionId,
    createdAt: clock.now(),
    peer: {
      userId: "alice",
      identityKey: new Uint8Array(32),
      candidates: [{
        transport: "udp",
        address: "203.0.113.5",
        port: 61_000,
        type: "srflx",
        priority: candidatePriority("srflx"),
      }],
    },
    peerSessionId: new Uint8Array(16),
    punchStart: clock.now() + 5_000,
    punchEnd: clock.now() + 65_000,
  };
  const seal = (p: IntroductionPayload, keys = hostKeys) =>
    sealIntroduction(p, { hostKeys: keys, introductionKey: key.publicKey });
  const stop = new AbortController();
  const box = new FixedBox(
    new Map([
      ["huge", { raw: new Uint8Array(1), size: MAX_TERMINAL_MAIL_BYTES + 1 }],
      ["forged", {
        raw: mail(await seal({ ...payload, hostId: mallory.ed25519.publicKey }, mallory)),
      }],
      ["expired", {
        raw: mail(
          await seal({ ...payload, punchStart: clock.now() - 70_000, punchEnd: clock.now() - 1 }),
        ),
      }],
      ["old-session", { raw: mail(await seal({ ...payload, sessionId: new Uint8Array(16) })) }],
      ["garbage", { raw: new TextEncoder().encode("Subject: x\r\n\r\nnot a block") }],
      ["valid", { raw: mail(await seal(payload)) }],
    ]),
    stop,
  );
  const events: MailpeerEvent[] = [];
  const handed: IntroductionPayload[] = [];
  await watchIntroductions({
    source: box,
    match: { subject: SUBJECT, mode: "exact" },
    hosts: [hostCardOf(hostKeys)],
    network: "net",
    sessionId,
    introductionPrivateKey: key.privateKey,
    clock,
    onEvent: (e) => events.push(e),
    logger: silentLogger,
    onIntroduction: (i) => {
      handed.push(i);
      return Promise.resolve();
    },
    signal: stop.signal,
  });
  assert.deepStrictEqual(handed, [payload]);
  assert.deepStrictEqual(box.deleted, ["valid"]);
  assert.deepStrictEqual(box.quarantined, ["huge", "forged", "expired", "old-session", "garbage"]);
  assert.ok(!box.fetched.includes("huge"), "an oversized mail is never downloaded");
  assert.deepStrictEqual(
    events.map((e) => e.event === "error" ? e.code : e.event),
    ["EMAIL", "ESIGNATURE", "ESTALE", "ESESSION", "EMAIL"],
  );
});
