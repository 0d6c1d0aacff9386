/**
 * The terminal flow end to end on a local post office with real sockets: dead peers, notices,
 * standby and allow-lists (patent FIG. 2 / FIG. 8).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { MailpeerEvent } from "../../src/events.ts";
import { Host } from "../../src/host/host.ts";
import { HostService } from "../../src/host/host_service.ts";
import { MemoryStore } from "../../src/host/store/memory_store.ts";
import { MaildirPostOffice } from "../../src/mail/maildir/post_office.ts";
import { MaildirSender } from "../../src/mail/maildir/sender.ts";
import { MaildirSource } from "../../src/mail/maildir/source.ts";
import {
  generateHostKeys,
  generateIdentityKeys,
  hostCardOf,
  type IdentityKeys,
} from "../../src/message/key_file.ts";
import { toBase64Url } from "../../src/message/base64.ts";
import { bytesEqual } from "../../src/message/bytes.ts";
import { TcpTransport } from "../../src/peer/tcp_transport.ts";
import { type Rendezvous, Terminal, type TerminalOptions } from "../../src/terminal/terminal.ts";
import type { PeerTransport } from "../../src/peer/types.ts";
import { UdpTransport } from "../../src/peer/udp_transport.ts";
import dgram from "node:dgram";
import { candidatePriority } from "../../src/message/candidate.ts";
import { bodyFor, subjectFor } from "../../src/message/mail_text.ts";
import { sealIntroduction } from "../../src/message/introduction.ts";
import { fromBase64Url } from "../../src/message/base64.ts";
import { generateHostKeys as otherHostKeys } from "../../src/message/key_file.ts";
import { decodeBindingRequest, encodeBindingResponse } from "../../src/net/stun_message.ts";
import type { PeerPolicy } from "../../src/terminal/peer_choice.ts";
import { REAL_TURN } from "../support/coturn.ts";

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
  const running = new HostService({ host }).run({ signal: stop.signal });
  const sources: MaildirSource[] = [];
  const terminal = async (
    userId: string,
    options: {
      policy?: PeerPolicy;
      standbyTimeoutMs?: number;
      identity?: IdentityKeys;
      advertise?: string;
      transport?: PeerTransport;
      /** More terminal options, as the code under test names them. */
      extra?: Record<string, unknown>;
    } = {},
  ) => {
    const events = new EventLog();
    const email = `${userId}@flow.test`;
    const source = new MaildirSource(await po.ensureMailbox(email), { pollIntervalMs: 50 });
    sources.push(source);
    const identity = options.identity ?? await generateIdentityKeys(userId);
    const t = new Terminal({
      identity,
      email,
      network: NETWORK,
      hosts: [hostCardOf(hostKeys)],
      sender: new MaildirSender(po),
      source,
      transport: options.transport ?? new TcpTransport(),
      advertise: options.advertise ?? "127.0.0.1",
      replyTimeoutMs: 20_000,
      // A dead peer here refuses at once; the timeout only bounds a bug.
      connectTimeoutMs: 20_000,
      standbyTimeoutMs: options.standbyTimeoutMs ?? 20_000,
      ...(options.policy ? { policy: options.policy } : {}),
      onEvent: events.tell,
      ...options.extra,
    } as TerminalOptions);
    return { t, events, identity };
  };
  const close = async () => {
    stop.abort();
    await running;
    await Promise.all([hostSource.close(), ...sources.map((s) => s.close())]);
    await Deno.remove(dir, { recursive: true });
  };
  /** Mails `block` to `email` as the host would, under the subject of `kind`. */
  const mailFromHost = async (email: string, kind: "introduction", block: Uint8Array) => {
    await new MaildirSender(po).send({
      from: hostKeys.email,
      to: [email],
      subject: subjectFor(NETWORK, kind),
      text: bodyFor(NETWORK, kind, block),
      date: new Date(),
    });
  };
  return { terminal, store, hostEvents, close, hostKeys, mailFromHost };
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

/** The documented key fingerprint (docs/config.md): base64url of SHA-256 of the Ed25519 key. */
async function fingerprint(keys: IdentityKeys): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", keys.ed25519.publicKey.slice());
  return toBase64Url(new Uint8Array(digest));
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
    const ghost = await w.terminal("ghost", {
      policy: { deny: [await fingerprint(bob.identity)] },
    });
    const stopGhost = new AbortController();
    const ghostRun = ghost.t.rendezvous({ signal: stopGhost.signal }).catch((err) => err);
    await ghost.events.until("standby");
    // Mail dates have one-second resolution: make ghost's row strictly the newest.
    const dead = closedPort();
    await w.store.update((rows) => ({
      rows: rows.map((r) =>
        r.userId === "ghost"
          ? {
            ...r,
            requestedAt: r.requestedAt + 1000,
            endpoints: [{ ...r.endpoints[0]!, port: dead }],
            // The candidates (version 2) are what terminals try: point them there too.
            candidates: [{ ...r.candidates![0]!, port: dead }],
          }
          : r
      ),
      result: undefined,
    }));

    // ghost is gone: it neither answers at its address nor punches back on its introduction.
    stopGhost.abort();
    await ghostRun;
    // Over TCP the terminal punches (docs/nat.md "TCP simultaneous open"): a port that answers
    // with RST is dialled again until the window ends, since an unopened NAT may answer so too.
    const alice = await w.terminal("alice", { extra: { punchWindowMs: 300 } });
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
        failed.code === "ETIMEOUT",
      JSON.stringify(failed),
    );
    assert.ok(alice.events.some((e) => e.event === "notice-sent" && e.failed.includes("ghost")));

    // The host flags ghost's row by user id; a later reply ranks it last.
    await w.hostEvents.until("notice-received");
    const rows = await w.store.read();
    assert.equal(rows.find((r) => r.userId === "ghost")?.failures, 1);
    assert.equal(rows.find((r) => r.userId === "bob")?.failures, 0);
    // A later requester's reply lists ghost last (carol only looks: she denies everyone).
    const carol = await w.terminal("carol", {
      policy: { deny: await Promise.all([alice, bob, ghost].map((t) => fingerprint(t.identity))) },
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
  } finally {
    await w.close();
  }
});

Deno.test("a terminal on standby with an allow-list refuses a user not on it and accepts one who is", async () => {
  const w = await localWorld();
  const stopBob = new AbortController();
  try {
    const carolKeys = await generateIdentityKeys("carol");
    const bob = await w.terminal("bob", { policy: { allow: [await fingerprint(carolKeys)] } });
    const bobRun = bob.t.rendezvous({ signal: stopBob.signal });
    bobRun.catch(() => {}); // awaited below; a failing test must not leave it unhandled
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

    // carol's reply lists mallory first, who no longer listens: over TCP it is punched to (a
    // RST may come from a NAT not yet opened) until the window ends, then bob is reached.
    const carol = await w.terminal("carol", {
      identity: carolKeys,
      standbyTimeoutMs: 10,
      extra: { punchWindowMs: 2_000 },
    });
    const c = await carol.t.rendezvous();
    assert.equal(c.link.remote.userId, "bob");
    const b = await bobRun;
    assert.equal(b.link.remote.userId, "carol");
    await c.link.close();
    await b.link.close();
  } finally {
    stopBob.abort();
    await w.close();
  }
});

Deno.test("a terminal on standby refuses an impostor who claims an allow-listed user id with another key", async () => {
  const w = await localWorld();
  const stopBob = new AbortController();
  try {
    const carolKeys = await generateIdentityKeys("carol");
    const allow = [`carol@${await fingerprint(carolKeys)}`];
    const bob = await w.terminal("bob", { policy: { allow } });
    const bobRun = bob.t.rendezvous({ signal: stopBob.signal });
    bobRun.catch(() => {}); // awaited below; a failing test must not leave it unhandled
    await bob.events.until("standby");

    // mallory asks as "carol" (the host has no carol row yet, so it answers her).
    const impostor = await w.terminal("carol", {
      identity: await generateIdentityKeys("carol"),
      standbyTimeoutMs: 50,
    });
    await assert.rejects(
      impostor.t.rendezvous(),
      (err: { code?: string }) => err.code === "ETIMEOUT",
    );
    const refused = impostor.events.find((e) => e.event === "connect-failed");
    assert.ok(refused && refused.event === "connect-failed", JSON.stringify(impostor.events));
    assert.match(refused.message, /refused/);

    // The real carol (a fresh row replaces the impostor's only after it expires: clear it).
    await w.store.update((rows) => ({
      rows: rows.filter((r) => r.userId !== "carol"),
      result: undefined,
    }));
    const carol = await w.terminal("carol", { identity: carolKeys, standbyTimeoutMs: 10 });
    const c = await carol.t.rendezvous();
    const b = await bobRun;
    assert.equal(b.link.remote.userId, "carol");
    assert.ok(bytesEqual(b.link.remote.identityKey, carolKeys.ed25519.publicKey));
    await c.link.close();
    await b.link.close();
  } finally {
    stopBob.abort();
    await w.close();
  }
});

Deno.test("a terminal never tries a peer whose key is deny-listed, whatever user id it claims", async () => {
  const w = await localWorld();
  try {
    const bob = await w.terminal("bob", { standbyTimeoutMs: 20_000 });
    const stopBob = new AbortController();
    const bobRun = bob.t.rendezvous({ signal: stopBob.signal }).catch((err) => err);
    await bob.events.until("standby");

    const alice = await w.terminal("alice", {
      policy: { deny: [await fingerprint(bob.identity)] },
      standbyTimeoutMs: 10,
    });
    await assert.rejects(alice.t.rendezvous(), (err: { code?: string }) => err.code === "ETIMEOUT");
    assert.ok(!alice.events.some((e) => e.event === "connecting"), "bob's key is never dialled");
    stopBob.abort();
    await bobRun;
  } finally {
    await w.close();
  }
});

Deno.test("a peer that proves the listed key but names another user id in its ACK is refused and reported", async () => {
  const w = await localWorld();
  try {
    const bob = await w.terminal("bob", { standbyTimeoutMs: 20_000 });
    const stopBob = new AbortController();
    const bobRun = bob.t.rendezvous({ signal: stopBob.signal }).catch((err) => err);
    await bob.events.until("standby");
    // Bob's key, but its ACK says "eve": point bob's row at such a listener.
    const liar = await new TcpTransport().listen({ address: "127.0.0.1", port: 0 }, {
      identity: {
        userId: "eve",
        publicKey: bob.identity.ed25519.publicKey,
        privateKey: bob.identity.ed25519.privateKey,
      },
    });
    const accepting = liar.accept().then((l) => l.close(), () => {});
    await w.store.update((rows) => ({
      rows: rows.map((r) =>
        r.userId === "bob"
          ? {
            ...r,
            endpoints: [{ ...r.endpoints[0]!, port: liar.endpoint.port }],
            candidates: [{ ...r.candidates![0]!, port: liar.endpoint.port }],
          }
          : r
      ),
      result: undefined,
    }));
    // The real bob is gone: it does not punch back (over TCP it would, and be reached).
    stopBob.abort();
    await bobRun;

    const alice = await w.terminal("alice", { standbyTimeoutMs: 10 });
    await assert.rejects(alice.t.rendezvous(), (err: { code?: string }) => err.code === "ETIMEOUT");
    const failed = alice.events.find((e) => e.event === "connect-failed");
    assert.ok(
      failed && failed.event === "connect-failed" && failed.peer === "bob" &&
        failed.code === "EIDENTITY",
      JSON.stringify(failed),
    );
    assert.ok(alice.events.some((e) => e.event === "notice-sent" && e.failed.includes("bob")));
    await liar.close();
    await accepting;
  } finally {
    await w.close();
  }
});

Deno.test("a terminal that announces a public address it does not hold listens on all interfaces and stands by", async () => {
  const w = await localWorld();
  const stop = new AbortController();
  try {
    // 198.18.0.1 is what a NAT lab's router holds, not this machine: binding it would fail.
    const bob = await w.terminal("bob", { advertise: "198.18.0.1" });
    const run = bob.t.rendezvous({ signal: stop.signal });
    run.catch(() => {}); // aborted below
    // A failed listen ends the run before standby: the test must see that failure.
    await Promise.race([bob.events.until("standby"), run]);
    const sent = bob.events.find((e) => e.event === "request-sent");
    assert.ok(sent && sent.event === "request-sent", JSON.stringify(bob.events));
    const listening = bob.events.find((e) => e.event === "listening");
    assert.ok(listening && listening.event === "listening");
    assert.equal(sent.endpoints[0]?.address, "198.18.0.1");
    assert.equal(sent.endpoints[0]?.port, listening.endpoint.port);
    stop.abort();
    await assert.rejects(run);
  } finally {
    stop.abort();
    await w.close();
  }
});

/** A STUN server on 127.0.0.1 that maps every request to `mapped` (a NAT's public side). */
async function natStun(mapped: { address: string; port: number }) {
  const socket = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  const sources: number[] = [];
  socket.on("message", (packet: Uint8Array, from: dgram.RemoteInfo) => {
    const tid = decodeBindingRequest(packet);
    if (!tid) return;
    sources.push(from.port);
    const answer = encodeBindingResponse(tid, { family: "IPv4", ...mapped });
    socket.send(answer, from.port, from.address);
  });
  return {
    address: `127.0.0.1:${socket.address().port}`,
    sources,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

Deno.test("a UDP terminal behind a NAT announces the STUN mapping of its listening socket, port included", async () => {
  const w = await localWorld();
  const stun = await natStun({ address: "203.0.113.5", port: 61_000 });
  const stop = new AbortController();
  try {
    const bob = await w.terminal("bob", {
      transport: new UdpTransport(),
      extra: { advertise: undefined, stunServers: [stun.address] },
    });
    const run = bob.t.rendezvous({ signal: stop.signal });
    run.catch(() => {}); // aborted below
    await Promise.race([bob.events.until("standby"), run]);
    const sent = bob.events.find((e) => e.event === "request-sent");
    assert.ok(sent && sent.event === "request-sent", JSON.stringify(bob.events));
    assert.deepStrictEqual(sent.endpoints, [
      { transport: "udp", address: "203.0.113.5", port: 61_000 },
    ]);
    assert.deepStrictEqual(sent.candidates, [{
      transport: "udp",
      address: "203.0.113.5",
      port: 61_000,
      type: "srflx",
      priority: candidatePriority("srflx"),
    }]);
    // STUN was asked from the socket peers reach: a handshake to that port finds bob.
    assert.ok(stun.sources.length > 0);
    const alice = await generateIdentityKeys("alice");
    const link = await new UdpTransport().connect(
      { transport: "udp", address: "127.0.0.1", port: stun.sources[0]! },
      {
        identity: {
          userId: "alice",
          publicKey: alice.ed25519.publicKey,
          privateKey: alice.ed25519.privateKey,
        },
        timeoutMs: 10_000,
      },
    );
    assert.equal(link.remote.userId, "bob");
    const accepted = await run;
    assert.equal(accepted.link.remote.userId, "alice");
    await link.close();
    await accepted.link.close();
  } finally {
    stop.abort();
    await stun.close();
    await w.close();
  }
});

Deno.test("a dual-stack UDP terminal announces its global IPv6 address beside its IPv4 STUN mapping and takes IPv4 peers on the same socket", async () => {
  const w = await localWorld();
  const stun = await natStun({ address: "203.0.113.5", port: 61_000 });
  const stop = new AbortController();
  const interfaces = () =>
    [
      { family: "IPv4", address: "192.168.1.20" },
      { family: "IPv6", address: "fe80::1" },
      { family: "IPv6", address: "2A01:4F8:0:0::10" },
    ] as Deno.NetworkInterfaceInfo[];
  try {
    const bob = await w.terminal("bob", {
      transport: new UdpTransport(),
      extra: {
        advertise: undefined,
        stunServers: [stun.address],
        listen: { address: "::", port: 0 },
        interfaces,
      },
    });
    const run = bob.t.rendezvous({ signal: stop.signal });
    run.catch(() => {}); // aborted below
    await Promise.race([bob.events.until("standby"), run]);
    const sent = bob.events.find((e) => e.event === "request-sent");
    assert.ok(sent && sent.event === "request-sent", JSON.stringify(bob.events));
    const port = stun.sources[0]!;
    assert.deepStrictEqual(sent.candidates.map((c) => [c.type, c.address, c.port]), [
      ["host", "2a01:4f8::10", port],
      ["srflx", "203.0.113.5", 61_000],
    ]);
    const alice = await generateIdentityKeys("alice");
    const identity = {
      userId: "alice",
      publicKey: alice.ed25519.publicKey,
      privateKey: alice.ed25519.privateKey,
    };
    // The one socket on :: answers an IPv4 peer and sees it as plain IPv4, not ::ffff:….
    const v4 = await new UdpTransport().connect(
      { transport: "udp", address: "127.0.0.1", port },
      { identity, timeoutMs: 10_000 },
    );
    assert.equal(v4.remote.userId, "bob");
    const accepted = await run;
    assert.equal(accepted.link.remote.endpoint.address, "127.0.0.1");
    await v4.close();
    await accepted.link.close();
  } finally {
    stop.abort();
    await stun.close();
    await w.close();
  }
});

/**
 * Bob stands by over UDP; the host's introduction of carol (a UDP listener of the test) names
 * carol's listener as a candidate of `type`; bob and carol punch to each other. `beforeReal` runs
 * before the real introduction is mailed (with what a forger would need).
 */
async function introducedPunch(
  type: "host" | "relay",
  check: (r: {
    result: Rendezvous;
    bob: { events: EventLog };
  }) => void,
  beforeReal?: (
    w: Awaited<ReturnType<typeof localWorld>>,
    bob: { events: EventLog },
    run: Promise<Rendezvous>,
    payload: Parameters<typeof sealIntroduction>[0],
    introductionKey: Uint8Array,
  ) => Promise<void>,
): Promise<void> {
  const w = await localWorld();
  const stop = new AbortController();
  const udp = new UdpTransport();
  const carol = await generateIdentityKeys("carol");
  const carolListener = await udp.listen({ address: "127.0.0.1", port: 0 }, {
    identity: {
      userId: "carol",
      publicKey: carol.ed25519.publicKey,
      privateKey: carol.ed25519.privateKey,
    },
  });
  try {
    const bob = await w.terminal("bob", { transport: udp });
    const run = bob.t.rendezvous({ signal: stop.signal });
    run.catch(() => {}); // awaited below
    await Promise.race([bob.events.until("standby"), run]);
    const row = (await w.store.read()).find((r) => r.userId === "bob")!;
    assert.ok(row.introductionKey, "bob's request announced an introduction key");
    const now = Date.now();
    const payload = {
      network: NETWORK,
      hostId: w.hostKeys.ed25519.publicKey,
      sessionId: fromBase64Url(row.sessionId),
      createdAt: now,
      peer: {
        userId: "carol",
        identityKey: carol.ed25519.publicKey,
        candidates: [{
          transport: "udp" as const,
          address: "127.0.0.1",
          port: carolListener.endpoint.port,
          type,
          priority: candidatePriority(type),
        }],
      },
      peerSessionId: new Uint8Array(16),
      punchStart: now,
      punchEnd: now + 60_000,
    };
    const introductionKey = fromBase64Url(row.introductionKey);
    await beforeReal?.(w, bob, run, payload, introductionKey);

    // The host's own introduction: bob punches to carol while carol punches to bob (the
    // requester's side, from its reply), whichever of them holds the smaller key controlling.
    const real = await sealIntroduction(payload, { hostKeys: w.hostKeys, introductionKey });
    await w.mailFromHost("bob@flow.test", "introduction", real);
    // Carol starts once bob has read the introduction: a link bob accepted before that could
    // not be judged by carol's candidates (docs/nat.md "Path kinds").
    await Promise.race([bob.events.until("connecting"), run]);
    const bobAt = bob.events.find((e) => e.event === "listening");
    assert.ok(bobAt && bobAt.event === "listening");
    const [result, carolSide] = await Promise.all([
      run,
      carolListener.punch({
        peerKey: bob.identity.ed25519.publicKey,
        candidates: [{ ...bobAt.endpoint, kind: "host" }],
        windowMs: 10_000,
      }),
    ]);
    assert.equal(result.link.remote.userId, "carol");
    assert.equal(carolSide.link.remote.userId, "bob");
    const told = bob.events.find((e) => e.event === "introduction");
    assert.ok(told && told.event === "introduction" && told.peer === "carol");
    check({ result, bob });
    await result.link.close();
    await carolSide.link.close();
  } finally {
    stop.abort();
    await carolListener.close();
    await w.close();
  }
}

Deno.test("a UDP terminal on standby acts only on its host's introduction: it connects to the introduced peer, and a forged one is quarantined", async () => {
  await introducedPunch("host", ({ result, bob }) => {
    assert.equal(result.role, "acceptor");
    assert.equal(result.path, "host");
    const connected = bob.events.find((e) => e.event === "connected");
    assert.ok(connected && connected.event === "connected" && connected.path === "host");
  }, async (w, bob, run, payload, introductionKey) => {
    // First a forgery: signed by a key that is not bob's host, claiming the host's id.
    const mallory = await otherHostKeys("host@flow.test");
    const forged = await sealIntroduction({ ...payload, hostId: mallory.ed25519.publicKey }, {
      hostKeys: mallory,
      introductionKey,
    });
    await w.mailFromHost("bob@flow.test", "introduction", forged);
    await Promise.race([bob.events.until("error"), run]);
    const refused = bob.events.find((e) => e.event === "error");
    assert.ok(refused && refused.event === "error" && refused.code === "ESIGNATURE");
    assert.ok(!bob.events.some((e) => e.event === "introduction" || e.event === "connecting"));
  });
});

Deno.test("a terminal that reaches an introduced peer at its TURN relay candidate reports the path as relayed", async () => {
  // Carol's listener stands in for her relayed address: what reaches it reaches carol. Whoever
  // of the two is controlling, one end of the winning pair is carol's relay candidate.
  await introducedPunch("relay", ({ result, bob }) => {
    assert.equal(result.path, "relayed");
    const connected = bob.events.find((e) => e.event === "connected");
    assert.ok(connected && connected.event === "connected" && connected.path === "relayed");
  });
});

/** A UDP port on 127.0.0.1 that reads and never answers: a candidate behind a closed NAT. */
function silentUdpPort(): { port: number; close: () => void } {
  const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  (async () => {
    try {
      for await (const _ of conn) { /* never answered */ }
    } catch {
      // closed
    }
  })();
  return { port: (conn.addr as Deno.NetAddr).port, close: () => conn.close() };
}

Deno.test({
  name:
    "a UDP terminal with a TURN server announces its relay, and a peer it cannot reach directly gets through it",
  ignore: !REAL_TURN,
  async fn() {
    const turn = REAL_TURN!;
    const w = await localWorld();
    const stop = new AbortController();
    const udp = new UdpTransport();
    const carol = await generateIdentityKeys("carol");
    const carolListener = await udp.listen({ address: "127.0.0.1", port: 0 }, {
      identity: {
        userId: "carol",
        publicKey: carol.ed25519.publicKey,
        privateKey: carol.ed25519.privateKey,
      },
    });
    const closedNat = silentUdpPort();
    try {
      const bob = await w.terminal("bob", {
        transport: udp,
        extra: { turnServers: [{ url: turn.url, user: turn.user, password: turn.password }] },
      });
      const run = bob.t.rendezvous({ signal: stop.signal });
      run.catch(() => {}); // awaited below
      await Promise.race([bob.events.until("standby"), run]);
      // The relay candidate comes last, with the lowest priority, and reaches the host's table.
      const sent = bob.events.find((e) => e.event === "request-sent");
      assert.ok(sent && sent.event === "request-sent");
      const relayCandidate = sent.candidates.at(-1)!;
      assert.equal(relayCandidate.type, "relay");
      assert.equal(relayCandidate.priority, candidatePriority("relay"));
      assert.ok(
        relayCandidate.port >= turn.relayPorts[0] && relayCandidate.port <= turn.relayPorts[1],
      );
      assert.equal(sent.endpoints.length, sent.candidates.length - 1); // never an endpoint
      const row = (await w.store.read()).find((r) => r.userId === "bob")!;
      assert.ok(row.candidates?.some((c) => c.type === "relay" && c.port === relayCandidate.port));
      // The host introduces carol at an address that never answers: bob's punch there fails,
      // but it permits that address on bob's relay, and carol punches to the relay.
      const now = Date.now();
      const payload = {
        network: NETWORK,
        hostId: w.hostKeys.ed25519.publicKey,
        sessionId: fromBase64Url(row.sessionId),
        createdAt: now,
        peer: {
          userId: "carol",
          identityKey: carol.ed25519.publicKey,
          candidates: [{
            transport: "udp" as const,
            address: "127.0.0.1",
            port: closedNat.port,
            type: "srflx" as const,
            priority: candidatePriority("srflx"),
          }],
        },
        peerSessionId: new Uint8Array(16),
        punchStart: now,
        punchEnd: now + 60_000,
      };
      const introduction = await sealIntroduction(payload, {
        hostKeys: w.hostKeys,
        introductionKey: fromBase64Url(row.introductionKey!),
      });
      await w.mailFromHost("bob@flow.test", "introduction", introduction);
      await Promise.race([bob.events.until("connecting"), run]);
      const [result, carolSide] = await Promise.all([
        run,
        carolListener.punch({
          peerKey: bob.identity.ed25519.publicKey,
          candidates: [{ ...relayCandidate, kind: "relay" }],
          windowMs: 10_000,
        }),
      ]);
      assert.equal(result.link.remote.userId, "carol");
      assert.equal(result.path, "relayed");
      assert.equal(carolSide.path, "relayed");
      const connected = bob.events.find((e) => e.event === "connected");
      assert.ok(connected && connected.event === "connected" && connected.path === "relayed");
      assert.deepEqual(result.relay?.relayed, {
        transport: "udp",
        address: relayCandidate.address,
        port: relayCandidate.port,
      });
      await carolSide.link.send(new TextEncoder().encode("through the relay"));
      assert.equal(
        new TextDecoder().decode((await result.link.receive())!),
        "through the relay",
      );
      await result.link.close();
      await carolSide.link.close();
      // The session ended: the listener released the relay (close waits for that release).
      await result.relay!.close();
      assert.equal((result.relay as { closed?: boolean }).closed, true);
    } finally {
      stop.abort();
      closedNat.close();
      await carolListener.close();
      await w.close();
    }
  },
});
