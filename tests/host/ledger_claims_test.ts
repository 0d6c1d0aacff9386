/**
 * Host processes sharing a mailbox with their claims kept in the shared store
 * (`host.claims = "store"`, docs/decisions.md "Claims in the shared store"): every request is
 * answered by exactly one process, the mails stay in the mailbox until the winner deletes them
 * (the mailbox is never asked to claim), a mail another process holds is not asked for again
 * until its claim may have lapsed, and `claimLedgerOf` picks the ledger from the config.
 */
import assert from "node:assert/strict";
import { claimLedgerOf } from "../../src/cli/wire.ts";
import { parseConfig } from "../../src/config/config.ts";
import { Host, type HostOptions } from "../../src/host/host.ts";
import { HostService } from "../../src/host/host_service.ts";
import { MemoryStore } from "../../src/host/store/memory_store.ts";
import type { ClaimLedger, TableStore } from "../../src/host/types.ts";
import { HostError } from "../../src/errors.ts";
import { CLAIM_RECOVERY_MS, CLAIM_WINDOW_BATCHES, HOST_BATCH_SIZE } from "../../src/limits.ts";
import { MaildirSource } from "../../src/mail/maildir/source.ts";
import type { MailRef, MailSource } from "../../src/mail/types.ts";
import { subjectFor } from "../../src/message/mail_text.ts";
import { MemoryClaimLedgers } from "../support/memory_claim_ledger.ts";
import { wrapSource } from "../support/source_wrap.ts";
import { NETWORK, type Player, World } from "../support/world.ts";

const HOST = "host@host.test";

/**
 * Host process `name` on the world's mailbox (a source of its own, as a process has, with
 * `overrides` of its methods), with its ledger claims; the mailbox refuses to claim, and every
 * step checks that the mail is still in the mailbox's `new/` or `cur/` (never moved away).
 */
async function processOn(
  w: World,
  ledgers: MemoryClaimLedgers,
  name: string,
  options: {
    host?: Partial<HostOptions>;
    overrides?: (source: MaildirSource) => Partial<MailSource>;
  } = {},
): Promise<{ host: Host; source: MaildirSource }> {
  const source = new MaildirSource(await w.postOffice.ensureMailbox(HOST), { clock: w.clock });
  const host = new Host({
    keys: w.hostKeys,
    network: NETWORK,
    source: wrapSource(noMailboxClaims(source), options.overrides?.(source)),
    sender: w.sender,
    store: w.store,
    clock: w.clock,
    allowPrivateAddresses: true,
    sharedMailbox: true,
    claimLedger: ledgers.of(name),
    onStep: async ({ step, id }) => {
      if (step === "deleted") return;
      const files = [...await w.files(HOST, "new"), ...await w.files(HOST, "cur")];
      assert.ok(files.some((f) => f.startsWith(id)), `${id} left the mailbox before ${step}`);
    },
    ...options.host,
  });
  return { host, source };
}

/** `source`, except that claiming in the mailbox throws. */
function noMailboxClaims(source: MailSource): MailSource {
  const refuse = () => Promise.reject(new Error("a mailbox claim was made"));
  return wrapSource(source, { claim: refuse, claimMany: refuse });
}

/** Mails `n` requests of players numbered from `first` on. */
async function requests(w: World, n: number, first = 0) {
  const out: { p: Player; key: Uint8Array }[] = [];
  for (let i = first; i < first + n; i++) {
    const p = await w.player(`p${i}`, 4000 + i);
    out.push({ p, key: (await w.request(p)).replyPrivateKey });
  }
  return out;
}

async function assertAnsweredOnce(w: World, sent: { p: Player; key: Uint8Array }[]) {
  for (const { p, key } of sent) {
    assert.equal((await w.replies(p, key)).length, 1, `${p.identity.userId}: one reply`);
  }
}

async function listed(w: World): Promise<string[]> {
  const refs = await w.hostSource.list({ subject: subjectFor(NETWORK, "request"), mode: "exact" });
  return refs.map((r) => r.id);
}

Deno.test("three processes draining one mailbox at once with store claims answer each request exactly once", async () => {
  const w = await World.create();
  const ledgers = new MemoryClaimLedgers({ clock: w.clock, ttlMs: CLAIM_RECOVERY_MS });
  const processes = await Promise.all(
    ["a", "b", "c"].map((name) => processOn(w, ledgers, name, { host: { batchSize: 3 } })),
  );
  try {
    const sent = await requests(w, 12);
    const ids = await listed(w);
    const results = await Promise.all(processes.map(({ host }) => host.processPending()));
    assert.equal(results.reduce((sum, r) => sum + r.answered, 0), 12, JSON.stringify(results));
    await assertAnsweredOnce(w, sent);
    assert.deepEqual(await listed(w), [], "every request deleted");
    assert.deepEqual(await w.files(HOST, ".Processing/cur"), [], "nothing moved to be claimed");
    const won = ["a", "b", "c"].map((name) => new Set(ledgers.wonBy(name)));
    assert.deepEqual([...won.flatMap((s) => [...s])].sort(), [...ids].sort(), "each won once");
  } finally {
    await Promise.all(processes.map(({ source }) => source.close()));
    await w.close();
  }
});

Deno.test("a mail another process holds is left out of the next listings until its claim may have lapsed", async () => {
  const w = await World.create();
  const ledgers = new MemoryClaimLedgers({ clock: w.clock, ttlMs: CLAIM_RECOVERY_MS });
  const { host, source } = await processOn(w, ledgers, "b");
  try {
    const early = await requests(w, 3);
    const held = await listed(w);
    // process "a" holds them (it is answering them, or it died doing so)
    assert.equal((await ledgers.of("a").claim(held)).size, 3);
    assert.equal((await host.processPending()).answered, 0);
    assert.deepEqual(ledgers.askedBy("b").sort(), [...held].sort(), "b asked once for each");
    assert.deepEqual(await listed(w), held, "and left them in the mailbox");
    // the next passes do not ask again, and a new mail is asked for alone
    assert.equal((await host.processPending()).answered, 0);
    assert.equal(ledgers.askedBy("b").length, 3, "no second ask while a holds them");
    const late = await requests(w, 1, 3);
    const [fresh] = (await listed(w)).filter((id) => !held.includes(id));
    assert.equal((await host.processPending()).answered, 1);
    assert.deepEqual(ledgers.calls.at(-1), {
      owner: "b",
      ids: [fresh],
      upTo: HOST_BATCH_SIZE,
      tried: [fresh],
      held: [fresh],
    });
    await assertAnsweredOnce(w, late);
    // a died: once its claims lapse, b asks again, wins and answers
    w.clock.advance(CLAIM_RECOVERY_MS);
    assert.equal((await host.processPending()).answered, 3);
    assert.deepEqual(ledgers.calls.at(-1)?.held.sort(), [...held].sort());
    await assertAnsweredOnce(w, early);
    assert.deepEqual(await listed(w), []);
  } finally {
    await source.close();
    await w.close();
  }
});

Deno.test("a finished mail still listed by a process that listed before the delete is not answered again", async () => {
  const w = await World.create();
  const ledgers = new MemoryClaimLedgers({ clock: w.clock, ttlMs: CLAIM_RECOVERY_MS });
  const a = await processOn(w, ledgers, "a");
  // b lists before a deletes, and claims after a finished
  let bListed = () => {};
  const listedByB = new Promise<void>((resolve) => bListed = resolve);
  let release = () => {};
  const aDone = new Promise<void>((resolve) => release = resolve);
  const b = await processOn(w, ledgers, "b", {
    overrides: (plain) => ({
      list: async (match, options) => {
        const refs = await plain.list(match, options);
        bListed();
        await aDone;
        return refs;
      },
    }),
  });
  try {
    const sent = await requests(w, 2);
    const runB = b.host.processPending();
    await listedByB;
    assert.equal((await a.host.processPending()).answered, 2);
    release();
    assert.equal((await runB).answered, 0, "b wins nothing a finished");
    assert.equal(ledgers.askedBy("b").length, 2, "though it asked for both");
    await assertAnsweredOnce(w, sent);
  } finally {
    await Promise.all([a.source.close(), b.source.close()]);
    await w.close();
  }
});

Deno.test("a process's own listing made before it deleted a mail does not win the mail again", async () => {
  const w = await World.create();
  const ledgers = new MemoryClaimLedgers({ clock: w.clock, ttlMs: CLAIM_RECOVERY_MS });
  // every listing is the first one, as a listing made before the deletes would be
  let first: Promise<MailRef[]> | undefined;
  const { host, source } = await processOn(w, ledgers, "a", {
    overrides: (plain) => ({ list: (match, options) => first ??= plain.list(match, options) }),
  });
  try {
    const sent = await requests(w, 2);
    assert.equal((await host.processPending()).answered, 2);
    assert.equal((await host.processPending()).answered, 0);
    assert.deepEqual(ledgers.calls.map((c) => c.held.length), [2, 0], "finished: not renewed");
    await assertAnsweredOnce(w, sent);
  } finally {
    await source.close();
    await w.close();
  }
});

Deno.test("a store that cannot be reached for claims answers nothing and loses nothing; a failed finish is no failure", async () => {
  const w = await World.create();
  const ledgers = new MemoryClaimLedgers({ clock: w.clock, ttlMs: CLAIM_RECOVERY_MS });
  const down = new HostError(
    "ETABLE",
    "Cannot reach Redis at redis://127.0.0.1:6390: connection refused; start redis-server or fix host.store.url",
  );
  let claimUp = false;
  const real = ledgers.of("a");
  const ledger: ClaimLedger = {
    claim: (ids, options) => claimUp ? real.claim(ids, options) : Promise.reject(down),
    finish: () => Promise.reject(down),
  };
  const { host, source } = await processOn(w, ledgers, "a", { host: { claimLedger: ledger } });
  try {
    const sent = await requests(w, 2);
    const ids = await listed(w);
    await assert.rejects(host.processPending(), (err) => err === down);
    assert.deepEqual(await listed(w), ids, "the requests wait in the mailbox");
    claimUp = true;
    assert.equal((await host.processPending()).answered, 2);
    await assertAnsweredOnce(w, sent);
    assert.deepEqual(await listed(w), []);
  } finally {
    await source.close();
    await w.close();
  }
});

Deno.test("a shared mailbox whose server cannot claim is served when the claims are in the store", async () => {
  const w = await World.create();
  const ledgers = new MemoryClaimLedgers({ clock: w.clock, ttlMs: CLAIM_RECOVERY_MS });
  const { host, source } = await processOn(w, ledgers, "a", {
    overrides: () => ({ claims: false }),
  });
  try {
    const sent = await requests(w, 1);
    const service = new HostService({
      host,
      sharedMailbox: true,
      storeClaims: true,
      clock: w.clock,
    });
    assert.equal(await service.runOnce(), "done");
    await assertAnsweredOnce(w, sent);
  } finally {
    await source.close();
    await w.close();
  }
});

Deno.test('claims are kept in the store only with claims = "store" (the default), a shared mailbox and a store that can keep them', () => {
  const config = (extra: string, receive = "") =>
    parseConfig(
      `network = "x"\npost_office = "po"\n[host]\nemail = "h@x.test"\n${extra}\n${receive}`,
      { base: "/etc/mailpeer" },
    ).host!;
  const scopes: [string, number][] = [];
  const ledger: ClaimLedger = { claim: () => Promise.resolve(new Set()), finish: async () => {} };
  const store: TableStore = {
    read: () => Promise.resolve([]),
    update: () => Promise.reject(new Error("not used")),
    close: () => Promise.resolve(),
    claimLedger: (scope, { ttlMs }) => {
      scopes.push([scope, ttlMs]);
      return ledger;
    },
  };
  const imap = (mailbox: string) =>
    `[host.receive]\nkind = "imap"\nhost = "m.x.test"\nuser = "h"\npassword_env = "P"\n` +
    `mailbox = "${mailbox}"\n`;
  assert.equal(
    claimLedgerOf(config('shared_mailbox = true\nclaims = "mailbox"'), store),
    undefined,
    "claims in the mailbox",
  );
  assert.equal(claimLedgerOf(config('claims = "store"'), store), undefined, "not shared");
  assert.equal(
    claimLedgerOf(config('shared_mailbox = true\nclaims = "store"'), new MemoryStore()),
    undefined,
    "a store that cannot keep claims",
  );
  assert.equal(claimLedgerOf(config("shared_mailbox = true"), store), ledger, "the default");
  assert.equal(
    claimLedgerOf(config('shared_mailbox = true\nclaims = "store"', imap("INBOX")), store),
    ledger,
  );
  claimLedgerOf(config('shared_mailbox = true\nclaims = "store"', imap("Other")), store);
  assert.equal(scopes.length, 3);
  assert.ok(scopes.every(([, ttl]) => ttl === CLAIM_RECOVERY_MS), "claims lapse as mailbox ones");
  assert.equal(new Set(scopes.map(([s]) => s)).size, 3, `one scope per mailbox: ${scopes}`);
});

Deno.test("a host takes full batches when another process holds scattered mails of the listing", async () => {
  const w = await World.create();
  const ledgers = new MemoryClaimLedgers({ clock: w.clock, ttlMs: CLAIM_RECOVERY_MS });
  const { host, source } = await processOn(w, ledgers, "b", { host: { random: () => 0 } });
  try {
    const sent = await requests(w, 100);
    const ids = await listed(w);
    // process "x" is answering 36 mails spread over the listing (9 of every 25)
    const held = ids.filter((_, i) => i % 25 % 3 === 0);
    assert.equal((await ledgers.of("x").claim(held)).size, 36);
    assert.equal((await host.processPending()).answered, 64);
    // two full batches, where batches cut from the listing would each have lost a third
    assert.deepEqual(ledgers.callsOf("b").map((c) => c.held.length).filter((n) => n > 0), [
      HOST_BATCH_SIZE,
      HOST_BATCH_SIZE,
    ]);
    for (const call of ledgers.callsOf("b")) {
      assert.equal(call.upTo, HOST_BATCH_SIZE);
      assert.ok(call.ids.length <= HOST_BATCH_SIZE * CLAIM_WINDOW_BATCHES, "a bounded window");
    }
    const asked = ledgers.askedBy("b");
    assert.equal(new Set(asked).size, asked.length, "no mail asked for twice in a pass");
    await assertAnsweredOnce(w, sent.filter((_, i) => !held.includes(ids[i]!)));
    assert.deepEqual(await listed(w), held, "x's mails wait for x");
  } finally {
    await source.close();
    await w.close();
  }
});

Deno.test("a host offers the ledger at most four batches of the listing at a time, and a window another process holds whole ends the pass", async () => {
  const w = await World.create();
  const ledgers = new MemoryClaimLedgers({ clock: w.clock, ttlMs: CLAIM_RECOVERY_MS });
  const batchSize = 4;
  const window = batchSize * CLAIM_WINDOW_BATCHES;
  const { host, source } = await processOn(w, ledgers, "b", {
    host: { batchSize, random: () => 0 },
  });
  try {
    const sent = await requests(w, 30);
    const ids = await listed(w);
    // x holds the first 20 mails: more than a window
    const held = ids.slice(0, 20);
    assert.equal((await ledgers.of("x").claim(held)).size, 20);
    assert.equal((await host.processPending()).answered, 0);
    assert.deepEqual(ledgers.calls.at(-1)?.ids, ids.slice(0, window), "one window, no more");
    assert.deepEqual(ledgers.calls.at(-1)?.held, []);
    assert.ok(host.relistNow, "a window that won nothing marks the listing stale");
    // the next pass leaves those 16 out, and takes full batches of what is free after the rest
    assert.equal((await host.processPending()).answered, 10);
    const pass2 = ledgers.callsOf("b").slice(1);
    assert.deepEqual(pass2.map((c) => c.ids), [
      ids.slice(16, 30),
      ids.slice(24, 30),
      ids.slice(28),
    ]);
    assert.deepEqual(pass2.map((c) => c.held.length), [4, 4, 2]);
    assert.deepEqual(pass2[0]!.tried, ids.slice(16, 24), "the ledger stopped at a full batch");
    assert.equal(ledgers.askedBy("b").filter((id) => held.includes(id)).length, 20, "once each");
    await assertAnsweredOnce(w, sent.slice(20));
    assert.deepEqual(await listed(w), held);
  } finally {
    await source.close();
    await w.close();
  }
});

Deno.test("three processes with ledger windows beside a process holding scattered mails answer every request exactly once", async () => {
  const w = await World.create();
  const ledgers = new MemoryClaimLedgers({ clock: w.clock, ttlMs: CLAIM_RECOVERY_MS });
  const batchSize = 4;
  const processes = await Promise.all(
    [0, 0.34, 0.67].map((at, i) =>
      processOn(w, ledgers, "abc"[i]!, { host: { batchSize, random: () => at } })
    ),
  );
  try {
    const sent = await requests(w, 40);
    const ids = await listed(w);
    // x holds every third mail, then dies
    const held = ids.filter((_, i) => i % 3 === 1);
    assert.equal((await ledgers.of("x").claim(held)).size, held.length);
    const drain = async () => {
      let answered = 0;
      for (let round = 0; round < 10; round++) {
        const results = await Promise.all(processes.map(({ host }) => host.processPending()));
        answered += results.reduce((sum, r) => sum + r.answered, 0);
        if (!processes.some(({ host }) => host.relistNow)) break;
      }
      return answered;
    };
    assert.equal(await drain(), ids.length - held.length);
    assert.deepEqual(await listed(w), held, "x's mails wait for x");
    w.clock.advance(CLAIM_RECOVERY_MS); // x's claims lapse
    assert.equal(await drain(), held.length);
    assert.deepEqual(await listed(w), []);
    await assertAnsweredOnce(w, sent);
    for (const call of ledgers.calls.filter((c) => c.owner !== "x")) {
      assert.ok(call.ids.length <= batchSize * CLAIM_WINDOW_BATCHES, "a bounded window");
      assert.ok(call.held.length <= batchSize, "at most a batch");
    }
  } finally {
    await Promise.all(processes.map(({ source }) => source.close()));
    await w.close();
  }
});
