import { wrapSource } from "../support/source_wrap.ts";
import assert from "node:assert/strict";
import { join } from "node:path";
import { PeerError } from "../../src/errors.ts";
import type { MailpeerEvent } from "../../src/events.ts";
import { silentLogger } from "../../src/log.ts";
import type { MailRef, MailSource } from "../../src/mail/types.ts";
import { sealReply } from "../../src/message/block.ts";
import { bodyFor, subjectFor } from "../../src/message/mail_text.ts";
import { generateHostKeys } from "../../src/message/key_file.ts";
import { generateX25519, publicKeyOf } from "../../src/message/keys.ts";
import { waitForReply } from "../../src/terminal/reply_wait.ts";
import { NETWORK, World } from "../support/world.ts";

Deno.test("a reply signed by a key other than the host card's is refused and the real one accepted", async () => {
  const w = await World.create();
  try {
    const alice = await w.player("alice", 4000);
    const r = await w.requestBlock(alice);
    // A forger who knows the session id and the reply key, but not the host's signing key.
    const forger = await generateHostKeys("host@host.test");
    const forged = await sealReply({
      network: NETWORK,
      sessionId: r.sessionId,
      hostId: forger.ed25519.publicKey,
      createdAt: w.clock.now(),
      peers: [{
        userId: "evil",
        identityKey: forger.ed25519.publicKey,
        endpoints: [{ transport: "tcp", address: "198.51.100.1", port: 6666 }],
        lastSeen: w.clock.now(),
        failures: 0,
      }],
    }, { hostKeys: forger, replyKey: await publicKeyOf("X25519", r.replyPrivateKey) });
    await w.sender.send({
      from: "host@host.test",
      to: [alice.email],
      subject: subjectFor(NETWORK, "reply"),
      text: bodyFor(NETWORK, "reply", forged),
    });
    w.clock.advance(10);
    await w.mailBlock(alice, r.block);
    await w.host.processPending();

    const events: MailpeerEvent[] = [];
    const got = await waitForReply({
      source: await w.sourceOf(alice.email),
      match: { subject: subjectFor(NETWORK, "reply"), mode: "exact" },
      hosts: [w.card],
      sessionId: r.sessionId,
      replyPrivateKey: r.replyPrivateKey,
      notBefore: w.clock.now() - 60_000,
      timeoutMs: 60_000,
      clock: w.clock,
      onEvent: (e) => events.push(e),
      logger: silentLogger,
    });
    assert.deepEqual(got.reply.peers, [], "the host's real (empty) reply won");
    const refused = events.find((e) => e.event === "error");
    assert.ok(
      refused && refused.event === "error" && refused.code === "ESIGNATURE",
      JSON.stringify(refused),
    );
    assert.equal(
      (await w.files(alice.email, ".Quarantine/cur")).length,
      1,
      "the forgery is quarantined",
    );
    assert.deepEqual(await w.files(alice.email, "new"), []);
  } finally {
    await w.close();
  }
});

Deno.test("waiting for a reply that never comes ends with a clear ETIMEOUT", async () => {
  const w = await World.create();
  try {
    const alice = await w.player("alice", 4000);
    const waiting = waitForReply({
      source: await w.sourceOf(alice.email),
      match: { subject: subjectFor(NETWORK, "reply"), mode: "exact" },
      hosts: [w.card],
      sessionId: new Uint8Array(16),
      replyPrivateKey: (await generateX25519()).privateKey,
      notBefore: w.clock.now(),
      timeoutMs: 30_000,
      clock: w.clock,
      onEvent: () => {},
      logger: silentLogger,
    });
    w.clock.advance(30_001);
    await assert.rejects(waiting, (err: unknown) => {
      assert.ok(err instanceof PeerError);
      assert.equal(err.code, "ETIMEOUT");
      assert.match(
        err.message,
        /^Cannot get a reply from host@host\.test: none arrived within 30\.0s; /,
      );
      return true;
    });
  } finally {
    await w.close();
  }
});

/** The source, and every ref that was fetched (downloaded) from it. */
function recordingFetches(source: MailSource): { source: MailSource; fetched: MailRef[] } {
  const fetched: MailRef[] = [];
  return {
    fetched,
    source: wrapSource(source, {
      fetch: (ref, options) => {
        fetched.push(ref);
        return source.fetch(ref, options);
      },
    }),
  };
}

Deno.test("an oversize mail under the reply subject is quarantined unread and the real reply accepted", async () => {
  const w = await World.create();
  try {
    const alice = await w.player("alice", 4000);
    const r = await w.requestBlock(alice);
    const mailbox = await w.sourceOf(alice.email);
    // 1 MiB under the reply subject, delivered before the host's reply.
    const huge = [
      "From: host@host.test",
      `To: ${alice.email}`,
      `Subject: ${subjectFor(NETWORK, "reply")}`,
      `Date: ${new Date(w.clock.now()).toUTCString()}`,
      "Message-ID: <huge@evil.test>",
      "",
      ("x".repeat(998) + "\r\n").repeat(1050),
    ].join("\r\n");
    await Deno.writeTextFile(
      join(w.postOffice.maildirOf(alice.email), "new", "1000.huge.evil"),
      huge,
    );
    w.clock.advance(10);
    await w.mailBlock(alice, r.block);
    await w.host.processPending();

    const events: MailpeerEvent[] = [];
    const spy = recordingFetches(mailbox);
    const got = await waitForReply({
      source: spy.source,
      match: { subject: subjectFor(NETWORK, "reply"), mode: "exact" },
      hosts: [w.card],
      sessionId: r.sessionId,
      replyPrivateKey: r.replyPrivateKey,
      notBefore: w.clock.now() - 60_000,
      timeoutMs: 60_000,
      clock: w.clock,
      onEvent: (e) => events.push(e),
      logger: silentLogger,
    });
    assert.deepEqual(got.reply.peers, []);
    assert.ok(
      spy.fetched.every((ref) => !ref.id.startsWith("1000.huge")),
      "the oversize mail was never downloaded",
    );
    const refused = events.find((e) => e.event === "error");
    assert.ok(
      refused && refused.event === "error" && refused.code === "EMAIL" &&
        /bytes/.test(refused.message),
      JSON.stringify(refused),
    );
    const quarantined = await w.files(alice.email, ".Quarantine/cur");
    assert.equal(quarantined.length, 1, "the oversize mail is quarantined");
    assert.match(quarantined[0]!, /^1000\.huge/);
  } finally {
    await w.close();
  }
});
