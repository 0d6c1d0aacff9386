/**
 * The host's admission rules seen from outside (issue 12): the real `mailpeer` command line
 * (subprocesses of main.ts) on a local Maildir post office, fed by an attacker who mails sealed,
 * validly signed requests straight into the host mailbox.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { MaildirPostOffice } from "../../src/mail/maildir/post_office.ts";
import { MaildirSender } from "../../src/mail/maildir/sender.ts";
import { MaildirSource } from "../../src/mail/maildir/source.ts";
import { parseMail } from "../../src/mail/rfc5322/parse.ts";
import { dearmor } from "../../src/message/armor.ts";
import { toBase64Url } from "../../src/message/base64.ts";
import { openReply, sealRequest } from "../../src/message/block.ts";
import { type HostCard, parseHostCard } from "../../src/message/host_card.ts";
import { decodeIdentityKeys, type IdentityKeys } from "../../src/message/key_file.ts";
import { generateX25519 } from "../../src/message/keys.ts";
import { bodyFor, subjectFor } from "../../src/message/mail_text.ts";
import type { Endpoint, ReplyPayload } from "../../src/message/types.ts";
import { events, mailpeer } from "../support/cli.ts";

const NETWORK = "admission";
const PER_USER = 5;

/** A host configured in `dir` with its keys, and the identities named in `users`. */
async function site(dir: string, users: Record<string, string>) {
  const keygen = await mailpeer(
    ["keygen", "--host", "host@lan.test", "-o", "host.keys.json", "--json"],
    { cwd: dir },
  );
  assert.equal(keygen.code, 0, keygen.stderr);
  const card = parseHostCard(events(keygen.stdout)[0]?.card as string);
  const identities: Record<string, IdentityKeys> = {};
  for (const [file, userId] of Object.entries(users)) {
    const made = await mailpeer(["keygen", "--user", userId, "-o", file], { cwd: dir });
    assert.equal(made.code, 0, made.stderr);
    identities[file] = await decodeIdentityKeys(await Deno.readTextFile(join(dir, file)));
  }
  await Deno.writeTextFile(
    join(dir, "mailpeer.toml"),
    `network = "${NETWORK}"
post_office = "po"
[host]
email = "host@lan.test"
allow_private_addresses = true
requests_per_user_per_hour = ${PER_USER}
`,
  );
  const office = new MaildirPostOffice(join(dir, "po"));
  return { card, identities, office, sender: new MaildirSender(office) };
}

/** Seals a request of `identity` to the host, as a terminal does. */
async function seal(s: { card: HostCard }, identity: IdentityKeys, endpoints: Endpoint[]) {
  const reply = await generateX25519();
  const block = await sealRequest({
    network: NETWORK,
    userId: identity.userId,
    identityKey: identity.ed25519.publicKey,
    endpoints,
    sessionId: crypto.getRandomValues(new Uint8Array(16)),
    createdAt: Date.now(),
    replyKey: reply.publicKey,
    hostCards: [],
  }, { identity, hostCard: s.card });
  return { block, replyKey: reply.privateKey };
}

/** Mails `block` from `from` to the host `copies` times (each copy a new Message-ID). */
async function mailCopies(
  s: { card: HostCard; sender: MaildirSender },
  block: Uint8Array,
  from: string,
  copies = 1,
) {
  for (let i = 0; i < copies; i++) {
    await s.sender.send({
      from,
      to: [s.card.email],
      subject: subjectFor(NETWORK, "request"),
      text: bodyFor(NETWORK, "request", block),
    });
  }
}

/** Seals a request of `identity` and mails it once from `from`; returns the reply key. */
async function mailRequest(
  s: { card: HostCard; sender: MaildirSender },
  identity: IdentityKeys,
  o: { from: string; endpoints: Endpoint[] },
) {
  const { block, replyKey } = await seal(s, identity, o.endpoints);
  await mailCopies(s, block, o.from);
  return replyKey;
}

/** Runs `host --once --json` and returns its events. */
async function hostOnce(dir: string) {
  const run = await mailpeer(["host", "--once", "--json"], { cwd: dir });
  assert.equal(run.code, 0, run.stderr);
  return events(run.stdout);
}

/** The table as `mailpeer table --json` shows it. */
async function table(dir: string) {
  const run = await mailpeer(["table", "--json"], { cwd: dir });
  assert.equal(run.code, 0, run.stderr);
  return events(run.stdout);
}

/** The replies in `email`'s mailbox that open with `replyKey`. */
async function replies(
  s: { office: MaildirPostOffice; card: HostCard },
  email: string,
  replyKey: Uint8Array,
): Promise<ReplyPayload[]> {
  const source = new MaildirSource(await s.office.ensureMailbox(email));
  try {
    const out: ReplyPayload[] = [];
    for (const ref of await source.list({ subject: subjectFor(NETWORK, "reply"), mode: "exact" })) {
      const mail = await parseMail(await source.fetch(ref));
      try {
        out.push(
          await openReply(dearmor(mail.text), { replyPrivateKey: replyKey, hostCard: s.card }),
        );
      } catch {
        // A reply to another request.
      }
    }
    return out;
  } finally {
    await source.close();
  }
}

/** How many mails wait in a Maildir folder of `email`. */
async function count(s: { office: MaildirPostOffice }, email: string, folder: string) {
  let n = 0;
  try {
    for await (const _ of Deno.readDir(join(s.office.maildirOf(email), folder))) n++;
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return n;
}

Deno.test("mallory's request for alice leaves alice's row alone, and alice is still answered", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mailpeer-admission-" });
  try {
    const s = await site(dir, { "alice.json": "alice", "mallory.json": "alice" });
    const alice = s.identities["alice.json"]!;
    const mallory = s.identities["mallory.json"]!;
    const home: Endpoint[] = [{ transport: "tcp", address: "192.0.2.10", port: 4000 }];
    const evil: Endpoint[] = [{ transport: "tcp", address: "198.51.100.66", port: 6666 }];

    await mailRequest(s, alice, { from: "alice@lan.test", endpoints: home });
    assert.equal((await hostOnce(dir)).filter((e) => e.event === "reply-sent").length, 1);
    const before = await table(dir);

    const malloryKey = await mailRequest(s, mallory, {
      from: "mallory@evil.test",
      endpoints: evil,
    });
    const run = await hostOnce(dir);
    assert.deepEqual(run.filter((e) => e.event === "reply-sent"), [], "mallory is not answered");
    assert.ok(
      run.some((e) => e.event === "quarantined" && e.code === "EOWNER"),
      JSON.stringify(run),
    );
    assert.deepEqual(await replies(s, "mallory@evil.test", malloryKey), []);
    const after = await table(dir);
    assert.equal(after.length, 1);
    assert.equal(after[0]?.identityKey, toBase64Url(alice.ed25519.publicKey));
    assert.deepEqual(after[0]?.endpoints, home);
    assert.equal(after[0]?.email, "alice@lan.test");
    assert.deepEqual(after[0]?.endpoints, before[0]?.endpoints);
    assert.equal(await count(s, "host@lan.test", ".Quarantine/cur"), 1, "nothing is lost");

    const moved: Endpoint[] = [{ transport: "tcp", address: "192.0.2.11", port: 4001 }];
    const aliceKey = await mailRequest(s, alice, { from: "alice@lan.test", endpoints: moved });
    assert.equal((await hostOnce(dir)).filter((e) => e.event === "reply-sent").length, 1);
    assert.equal((await replies(s, "alice@lan.test", aliceKey)).length, 1);
    assert.deepEqual((await table(dir))[0]?.endpoints, moved);

    // A key change is the operator's explicit act: remove the row, then the new key is taken.
    const removed = await mailpeer(["table", "--remove", "alice", "--json"], { cwd: dir });
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal(events(removed.stdout)[0]?.removed, 1);
    const newKey = await mailRequest(s, mallory, { from: "alice@new.test", endpoints: evil });
    assert.equal((await hostOnce(dir)).filter((e) => e.event === "reply-sent").length, 1);
    assert.equal((await replies(s, "alice@new.test", newKey)).length, 1);
    assert.equal((await table(dir))[0]?.identityKey, toBase64Url(mallory.ed25519.publicKey));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a request re-mailed 100 times gets at most the configured number of replies", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mailpeer-admission-" });
  try {
    const s = await site(dir, { "bob.json": "bob" });
    const bob = s.identities["bob.json"]!;
    const endpoints: Endpoint[] = [{ transport: "tcp", address: "192.0.2.20", port: 4020 }];
    const { block, replyKey } = await seal(s, bob, endpoints);
    await mailCopies(s, block, "bob@lan.test");
    let sent = (await hostOnce(dir)).filter((e) => e.event === "reply-sent").length;
    // The same request, re-mailed 100 times from an address that is not bob's, over ten
    // cron runs of the host.
    for (let run = 0; run < 10; run++) {
      await mailCopies(s, block, "bob2@b.test", 10);
      sent += (await hostOnce(dir)).filter((e) => e.event === "reply-sent").length;
    }
    assert.equal((await replies(s, "bob@lan.test", replyKey)).length, 1, "bob is answered");
    assert.ok(sent <= PER_USER, `${sent} replies, more than ${PER_USER}`);
    assert.ok((await replies(s, "bob2@b.test", replyKey)).length <= PER_USER - 1);
    assert.equal(await count(s, "host@lan.test", "new"), 0, "every copy was handled");
    assert.equal(await count(s, "host@lan.test", "cur"), 0);
    // Each copy was answered (and deleted) or set aside: none is lost.
    assert.equal(await count(s, "host@lan.test", ".Quarantine/cur"), 100 - (sent - 1));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
