/**
 * Hosts learned from a request's recipients (docs/decisions.md "Hosts learned from a request's
 * recipients"), mostly from the attacker's side: recipients are only addresses anyone can
 * write, so a host learns a card only where a recipient matches a card the terminal signed,
 * mails no address on a recipient list's word, and keeps its directory within its bound.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Host } from "../../src/host/host.ts";
import { MAX_KNOWN_HOSTS, MemoryHostDirectory } from "../../src/host/pool/host_directory.ts";
import { recipientsOf, RecipientTap } from "../../src/host/pool/recipient_tap.ts";
import { SyncAgent } from "../../src/host/pool/sync_agent.ts";
import { MemoryStore } from "../../src/host/store/memory_store.ts";
import { LEARNED_ANSWERS_PER_HOUR, MAX_REQUEST_RECIPIENTS } from "../../src/limits.ts";
import { deliverToMaildir } from "../../src/mail/maildir/sender.ts";
import { sealRequest } from "../../src/message/block.ts";
import { formatHostCard } from "../../src/message/host_card.ts";
import { generateHostKeys, hostCardOf, type HostKeys } from "../../src/message/key_file.ts";
import { generateX25519 } from "../../src/message/keys.ts";
import { bodyFor, subjectFor } from "../../src/message/mail_text.ts";
import { MAX_HOST_CARDS } from "../../src/protocol.ts";
import { NETWORK, type Player, World } from "../support/world.ts";

/** A world whose host reads through a recipient tap and learns hosts as the CLI wires it. */
async function learningWorld() {
  const w = await World.create();
  const tap = new RecipientTap(w.hostSource, { network: NETWORK });
  const { sync, directory } = w.syncAgent();
  w.host = new Host({
    keys: w.hostKeys,
    network: NETWORK,
    source: tap,
    sender: w.sender,
    store: w.store,
    clock: w.clock,
    allowPrivateAddresses: true,
    learnHosts: (cards) => sync.learn(cards, { recipients: tap.take() }),
    onEvent: (e) => w.events.push(e),
  });
  return { w, sync, directory };
}

/**
 * Delivers into the host's mailbox a request of `p` whose To header names `to` and whose signed
 * `hostCards` are the host's card and `cards` (as an attacker or a terminal would write them).
 */
async function requestTo(w: World, p: Player, to: string[], cards: string[], cc: string[] = []) {
  const block = await sealRequest({
    network: NETWORK,
    userId: p.identity.userId,
    identityKey: p.identity.ed25519.publicKey,
    endpoints: p.endpoints,
    sessionId: crypto.getRandomValues(new Uint8Array(16)),
    createdAt: w.clock.now(),
    replyKey: (await generateX25519()).publicKey,
    hostCards: [formatHostCard(w.card), ...cards],
  }, { identity: p.identity, hostCard: w.card });
  const raw = [
    `From: ${p.email}`,
    `To: ${to.join(", ")}`,
    ...(cc.length > 0 ? [`Cc: ${cc.join(", ")}`] : []),
    `Subject: ${subjectFor(NETWORK, "request")}`,
    `Date: ${new Date(w.clock.now()).toUTCString()}`,
    `Message-ID: <${crypto.randomUUID()}@player.test>`,
    "MIME-Version: 1.0",
    "Content-Type: text/plain; charset=utf-8",
    "",
    bodyFor(NETWORK, "request", block),
  ].join("\r\n");
  await deliverToMaildir(w.postOffice.maildirOf("host@host.test"), new TextEncoder().encode(raw));
}

/** Whether any mail was ever delivered to `address` in the world's post office. */
async function mailboxExists(w: World, address: string): Promise<boolean> {
  try {
    await Deno.stat(join(w.postOffice.maildirOf(address), "new"));
    return true;
  } catch {
    return false;
  }
}

/** A holder of `keys` mails the world's host a signed table request (its card, its address). */
async function askForTable(w: World, keys: HostKeys): Promise<void> {
  const directory = new MemoryHostDirectory({ self: hostCardOf(keys) });
  await directory.add([w.card], { trusted: true });
  await new SyncAgent({
    keys,
    network: NETWORK,
    source: w.hostSource, // only sends here: its own mailbox is never read
    sender: w.sender,
    store: new MemoryStore(),
    directory,
    clock: w.clock,
  }).requestTables();
}

async function cards(n: number, domain: string): Promise<HostKeys[]> {
  return await Promise.all(
    Array.from({ length: n }, (_, i) => generateHostKeys(`h${i}@${domain}`)),
  );
}

Deno.test("a host learns the other hosts a terminal mailed, from To and Cc matched to the signed cards", async () => {
  const { w, directory } = await learningWorld();
  try {
    const [b, c] = await cards(2, "hosts.test");
    await requestTo(w, await w.player("carol", 7100), ["host@host.test", b!.email], [
      formatHostCard(hostCardOf(b!)),
      formatHostCard(hostCardOf(c!)),
    ], [c!.email]);
    assert.equal((await w.host.processPending()).answered, 1);
    assert.deepEqual((await directory.list()).map((x) => x.email).sort(), [b!.email, c!.email]);
    assert.deepEqual(await directory.list({ trustedOnly: true }), [], "learned, not trusted");
    const learned = (w.events as unknown as Record<string, unknown>[])
      .filter((e) => e.event === "host-learned").map((e) => e.email);
    assert.deepEqual(learned.sort(), [b!.email, c!.email]);
  } finally {
    await w.close();
  }
});

Deno.test("forged recipients teach nothing: an address without a signed card, or a card not mailed, is not learned and never mailed", async () => {
  const { w, sync, directory } = await learningWorld();
  try {
    const [signedNotMailed] = await cards(1, "evil.test");
    await requestTo(
      w,
      await w.player("mallory", 7100),
      ["host@host.test", "stranger@evil.test", "victim@else.test"],
      [formatHostCard(hostCardOf(signedNotMailed!))],
    );
    assert.equal((await w.host.processPending()).answered, 1);
    assert.deepEqual(await directory.list(), []);
    // Pushing the table mails nobody: no host is trusted or linked.
    assert.deepEqual(await sync.pushSnapshots(), { sent: 0, failed: 0 });
    for (const stranger of ["stranger@evil.test", "victim@else.test", signedNotMailed!.email]) {
      assert.equal(await mailboxExists(w, stranger), false, `${stranger} got mail`);
    }
  } finally {
    await w.close();
  }
});

Deno.test("a request with 1000 recipients reads 64 of them and never grows the directory past its bound", async () => {
  const { w, directory } = await learningWorld();
  try {
    // Each request names as many signed cards as a request may carry, all among its 1000
    // recipients; most of them sit past the first MAX_REQUEST_RECIPIENTS and are not read.
    let learnable = 0;
    for (let i = 0; i < 10; i++) {
      const keys = await cards(MAX_HOST_CARDS - 1, `flood${i}.test`);
      const fillers = Array.from({ length: 1000 }, (_, k) => `x${k}@flood${i}.test`);
      const to = [
        "host@host.test",
        keys[0]!.email,
        ...fillers,
        ...keys.slice(1).map((k) => k.email),
      ];
      learnable += 1;
      await requestTo(
        w,
        await w.player(`mallory${i}`, 7100 + i),
        to,
        keys.map((k) => formatHostCard(hostCardOf(k))),
      );
      await w.host.processPending();
    }
    const known = await directory.list();
    assert.equal(known.length, learnable, "only the cards among the first 64 recipients");
    assert.ok(known.length <= MAX_KNOWN_HOSTS);
    // Enough mailed cards to overflow: the directory stays at its bound.
    for (let i = 0; i < 6; i++) {
      const keys = await cards(MAX_HOST_CARDS - 1, `many${i}.test`);
      await requestTo(
        w,
        await w.player(`eve${i}`, 7300 + i),
        ["host@host.test", ...keys.map((k) => k.email)],
        keys.map((k) => formatHostCard(hostCardOf(k))),
      );
      await w.host.processPending();
    }
    assert.equal((await directory.list()).length, MAX_KNOWN_HOSTS);
  } finally {
    await w.close();
  }
});

Deno.test("learned hosts get few answers: at most LEARNED_ANSWERS_PER_HOUR table requests an hour in all", async () => {
  const { w, sync } = await learningWorld();
  try {
    const learned = await cards(LEARNED_ANSWERS_PER_HOUR + 2, "learned.test");
    await requestTo(
      w,
      await w.player("carol", 7100),
      ["host@host.test", ...learned.map((k) => k.email)],
      learned.map((k) => formatHostCard(hostCardOf(k))),
    );
    await w.host.processPending();
    // Each learned host asks for the table (what a stranger holding a learned key would do).
    for (const keys of learned) await askForTable(w, keys);
    const pass = await sync.processPending();
    assert.equal(pass.answered, LEARNED_ANSWERS_PER_HOUR);
    assert.equal(pass.stale, 2, "the rest are deleted unanswered");
  } finally {
    await w.close();
  }
});

Deno.test("a learned host's table request is answered only at the address a request was mailed to, not at one its own card names", async () => {
  const { w, sync } = await learningWorld();
  try {
    const keys = await generateHostKeys("b@hosts.test");
    await requestTo(w, await w.player("carol", 7100), ["host@host.test", keys.email], [
      formatHostCard(hostCardOf(keys)),
    ]);
    await w.host.processPending();
    // The holder of B's key asks for the table with a card naming a victim's address.
    await askForTable(w, { ...keys, email: "victim@else.test" });
    assert.equal((await sync.processPending()).answered, 1);
    assert.equal(await mailboxExists(w, "victim@else.test"), false, "the victim got mail");
    const atB = await (await w.sourceOf(keys.email)).list({
      subject: subjectFor(NETWORK, "sync"),
      mode: "exact",
    });
    assert.equal(atB.length, 1, "B's learned address got the answer");
  } finally {
    await w.close();
  }
});

Deno.test("recipient addresses are read bare and lower-cased, at most the given number, junk skipped", () => {
  assert.deepEqual(
    recipientsOf(['"Host A" <A@Hosts.test>, b@hosts.test', 'x, "a, b" <c@h.test>, <d@h.test>'], 8),
    ["a@hosts.test", "b@hosts.test", "c@h.test", "d@h.test"],
  );
  assert.equal(
    recipientsOf([
      Array.from({ length: 500 }, (_, i) => `u${i}@h.test`).join(","),
    ], MAX_REQUEST_RECIPIENTS).length,
    64,
  );
});
