/**
 * The terminal flow end to end on a local post office with real sockets: dead peers, notices,
 * standby and allow-lists (patent FIG. 2 / FIG. 8).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { MailpeerEvent } from "../../src/events.ts";
import { Host } from "../../src/host/host.ts";
import { MemoryStore } from "../../src/host/memory_store.ts";
import { MaildirPostOffice } from "../../src/mail/maildir_post_office.ts";
import { MaildirSender } from "../../src/mail/maildir_sender.ts";
import { MaildirSource } from "../../src/mail/maildir_source.ts";
import { generateHostKeys, generateIdentityKeys, hostCardOf } from "../../src/message/key_file.ts";
import { TcpTransport } from "../../src/peer/tcp_transport.ts";
import { type Rendezvous, Terminal } from "../../src/terminal/terminal.ts";
import type { PeerPolicy } from "../../src/terminal/peer_choice.ts";

const NETWORK = "flow";

async function localWorld() {
  const dir = await Deno.makeTempDir({ prefix: "mailpeer-flow-" });
  const po = new MaildirPostOffice(join(dir, "po"));
  const hostKeys = await generateHostKeys("host@flow.test");
  const store = new MemoryStore();
  const hostEvents = new EventLog();
  const hostSource = new MaildirSource(await po.ensureMailbox(hostKeys.email), {
    pollIntervalMs: 50,
  });
  const host = new Host({
    keys: hostKeys,
    network: NETWORK,
    source: hostSource,
    sender: new MaildirSender(po),
    store,
    allowPrivateAddresses: true,
    onEvent: hostEvents.tell,
  });
  const stop = new AbortController();
  const running = host.run({ signal: stop.signal });
  const sources: MaildirSource[] = [];
  const terminal = async (
    userId: string,
    options: { policy?: PeerPolicy; standbyTimeoutMs?: number } = {},
  ) => {
    const events = new EventLog();
    const email = `${userId}@flow.test`;
    const source = new MaildirSource(await po.ensureMailbox(email), { pollIntervalMs: 50 });
    sources.push(source);
    const t = new Terminal({
      identity: await generateIdentityKeys(userId),
      email,
      network: NETWORK,
      hosts: [hostCardOf(hostKeys)],
      sender: new MaildirSender(po),
      source,
      transport: new TcpTransport(),
      advertise: "127.0.0.1",
      replyTimeoutMs: 20_000,
      // A dead peer here refuses at once; the timeout only bounds a bug.
      connectTimeoutMs: 20_000,
      standbyTimeoutMs: options.standbyTimeoutMs ?? 20_000,
      ...(options.policy ? { policy: options.policy } : {}),
      onEvent: events.tell,
    });
    return { t, events };
  };
  const close = async () => {
    stop.abort();
    await running;
    await Promise.all([hostSource.close(), ...sources.map((s) => s.close())]);
    await Deno.remove(dir, { recursive: true });
  };
  return { terminal, store, hostEvents, close };
}

/** The events a terminal or host told, in order, and a way to await the next of a kind. */
class EventLog extends Array<MailpeerEvent> {
  #waiters: { name: string; resolve: () => void }[] = [];

  static override get [Symbol.species]() {
    return Array;
  }

  /** Records an event and wakes those waiting for its kind (the `onEvent` of the code). */
  readonly tell = (e: MailpeerEvent): void => {
    this.push(e);
    const woken = this.#waiters.filter((w) => w.name === e.event);
    this.#waiters = this.#waiters.filter((w) => w.name !== e.event);
    for (const w of woken) w.resolve();
  };

  /** Resolves when an event named `name` has been told (at once if it already was). */
  until(name: MailpeerEvent["event"]): Promise<void> {
    if (this.some((e) => e.event === name)) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ name, resolve }));
  }
}

/** A port on 127.0.0.1 where nobody listens. */
function closedPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

Deno.test("a dead first peer is reported by notice, flagged by user id, ranked last, and the second peer is reached", async () => {
  const w = await localWorld();
  try {
    // bob stands by; then "ghost" asks with an address where nobody listens (newest row).
    const bob = await w.terminal("bob");
    const bobRun = bob.t.rendezvous();
    await bob.events.until("standby");
    // ghost skips bob (deny-list) and stands by too; then its row is pointed at a dead port.
    const ghost = await w.terminal("ghost", { policy: { deny: ["bob"] } });
    const stopGhost = new AbortController();
    const ghostRun = ghost.t.rendezvous({ signal: stopGhost.signal }).catch((err) => err);
    await ghost.events.until("standby");
    // Mail dates have one-second resolution: make ghost's row strictly the newest.
    await w.store.update((rows) => ({
      rows: rows.map((r) =>
        r.userId === "ghost"
          ? {
            ...r,
            requestedAt: r.requestedAt + 1000,
            endpoints: [{ ...r.endpoints[0]!, port: closedPort() }],
          }
          : r
      ),
      result: undefined,
    }));

    const alice = await w.terminal("alice");
    const result: Rendezvous = await alice.t.rendezvous();
    assert.equal(result.role, "initiator");
    assert.equal(result.link.remote.userId, "bob");
    const order = alice.events.filter((e) => e.event === "connecting").map((e) =>
      e.event === "connecting" && e.peer
    );
    assert.deepEqual(order, ["ghost", "bob"], "the newest peer was tried first");
    const failed = alice.events.find((e) => e.event === "connect-failed");
    assert.ok(
      failed && failed.event === "connect-failed" && failed.peer === "ghost" &&
        failed.code === "EPEER",
    );
    assert.ok(alice.events.some((e) => e.event === "notice-sent" && e.failed.includes("ghost")));

    // The host flags ghost's row by user id; a later reply ranks it last.
    await w.hostEvents.until("notice-received");
    const rows = await w.store.read();
    assert.equal(rows.find((r) => r.userId === "ghost")?.failures, 1);
    assert.equal(rows.find((r) => r.userId === "bob")?.failures, 0);
    // A later requester's reply lists ghost last (carol only looks: she denies everyone).
    const carol = await w.terminal("carol", {
      policy: { deny: ["alice", "bob", "ghost"] },
      standbyTimeoutMs: 10,
    });
    await assert.rejects(carol.t.rendezvous(), (err: { code?: string }) => err.code === "ETIMEOUT");
    const carolReply = carol.events.find((e) => e.event === "reply-received");
    assert.ok(carolReply && carolReply.event === "reply-received");
    assert.equal(carolReply.peers.at(-1)?.userId, "ghost");
    assert.equal(carolReply.peers.at(-1)?.failures, 1);
    assert.ok(carolReply.peers.length >= 2);

    const bobSide = await bobRun;
    assert.equal(bobSide.role, "acceptor");
    assert.equal(bobSide.link.remote.userId, "alice");
    await result.link.close();
    assert.equal(await bobSide.link.receive(), null);
    await bobSide.link.close();
    stopGhost.abort();
    await ghostRun;
  } finally {
    await w.close();
  }
});

Deno.test("a terminal on standby with an allow-list refuses a user not on it and accepts one who is", async () => {
  const w = await localWorld();
  try {
    const bob = await w.terminal("bob", { policy: { allow: ["carol"] } });
    const bobRun = bob.t.rendezvous();
    await bob.events.until("standby");

    const mallory = await w.terminal("mallory", { standbyTimeoutMs: 50 });
    await assert.rejects(
      mallory.t.rendezvous(),
      (err: { code?: string }) => err.code === "ETIMEOUT",
    );
    const refused = mallory.events.find((e) => e.event === "connect-failed");
    assert.ok(
      refused && refused.event === "connect-failed" && refused.code === "EPEER",
      JSON.stringify(refused),
    );
    assert.match(refused.message, /refused/);

    const carol = await w.terminal("carol");
    const c = await carol.t.rendezvous();
    assert.equal(c.link.remote.userId, "bob");
    const b = await bobRun;
    assert.equal(b.link.remote.userId, "carol");
    await c.link.close();
    await b.link.close();
  } finally {
    await w.close();
  }
});
