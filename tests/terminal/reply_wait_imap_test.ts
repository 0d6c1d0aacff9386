/**
 * A terminal waiting for its reply over IMAP (the real Dovecot of the test stack) learns the
 * size of each listed mail from RFC822.SIZE and never downloads an oversize one. Skipped when
 * the stack is not running; tests/terminal/reply_wait_test.ts covers the same rule on Maildir.
 */
import assert from "node:assert/strict";
import { silentLogger } from "../../src/log.ts";
import { composeMail } from "../../src/mail/rfc5322/compose.ts";
import { ImapSource } from "../../src/mail/imap/source.ts";
import { sealReply } from "../../src/message/block.ts";
import { generateHostKeys, hostCardOf } from "../../src/message/key_file.ts";
import { generateX25519 } from "../../src/message/keys.ts";
import { bodyFor, subjectFor } from "../../src/message/mail_text.ts";
import { ManualClock } from "../support/manual_clock.ts";
import { waitForReply } from "../../src/terminal/reply_wait.ts";
import {
  commandLog,
  IMAP_TEST_ADDRESS as ADDRESS,
  imapServer,
  mailClient,
  removeFolders,
} from "../support/imap_mailbox.ts";
import { NO_STACK } from "../support/mailstack.ts";

const FOLDER = "mailpeer-reply-size";
const QUARANTINE = "mailpeer-reply-size-quarantine";
const NETWORK = "sizes";

/** True when the IMAP sequence set `set` (e.g. `3,5:7`) names `uid`. */
function setHas(set: string, uid: number): boolean {
  return set.split(",").some((part) => {
    const [a, b] = part.split(":").map(Number);
    return b === undefined ? a === uid : uid >= Math.min(a!, b) && uid <= Math.max(a!, b);
  });
}

Deno.test({
  name: "over IMAP an oversize mail under the reply subject is quarantined without downloading it",
  ignore: NO_STACK,
  fn: async () => {
    const client = await mailClient();
    await removeFolders(client, [FOLDER, QUARANTINE]);
    await client.mailboxCreate(FOLDER);
    const log = commandLog();
    const source = new ImapSource(imapServer(), {
      mailbox: FOLDER,
      quarantine: QUARANTINE,
      logger: log,
    });
    try {
      const hostKeys = await generateHostKeys("host@host.test");
      const replyKeys = await generateX25519();
      const sessionId = crypto.getRandomValues(new Uint8Array(16));
      const clock = new ManualClock(Date.now());
      const subject = subjectFor(NETWORK, "reply");
      const huge = await composeMail({
        from: "host@host.test",
        to: [ADDRESS],
        subject,
        text: ("x".repeat(998) + "\n").repeat(1050),
      });
      const big = await client.append(FOLDER, huge.raw);
      const block = await sealReply({
        network: NETWORK,
        sessionId,
        hostId: hostKeys.ed25519.publicKey,
        createdAt: clock.now(),
        peers: [],
      }, { hostKeys, replyKey: replyKeys.publicKey });
      const real = await composeMail({
        from: "host@host.test",
        to: [ADDRESS],
        subject,
        text: bodyFor(NETWORK, "reply", block),
      });
      await client.append(FOLDER, real.raw);
      const bigUid = big && typeof big === "object" ? big.uid : undefined;
      assert.ok(typeof bigUid === "number", "UIDPLUS gave the appended UID");

      const got = await waitForReply({
        source,
        match: { subject, mode: "exact" },
        hosts: [hostCardOf(hostKeys)],
        sessionId,
        replyPrivateKey: replyKeys.privateKey,
        notBefore: clock.now() - 60_000,
        timeoutMs: 60_000,
        clock,
        onEvent: () => {},
        logger: silentLogger,
      });
      assert.deepEqual(got.reply.peers, []);
      const downloads = log.commands.filter((c) => /^UID FETCH \S+ \(.*BODY/.test(c));
      assert.ok(
        downloads.every((c) => !setHas(c.split(" ")[2]!, bigUid)),
        `the big mail was never fetched:\n${log.commands.join("\n")}`,
      );
      await client.mailboxOpen(QUARANTINE);
      const moved = await client.fetchAll("1:*", { size: true });
      assert.equal(moved.length, 1);
      assert.ok((moved[0]!.size ?? 0) > 1_000_000);
    } finally {
      await source.close();
      await removeFolders(client, [FOLDER, QUARANTINE]);
      await client.logout();
    }
  },
});
