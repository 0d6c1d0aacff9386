/**
 * What a host refuses to answer: replays, senders over their rate, addresses it must not hand
 * out, unverified senders when verification is required. Each is logged with the reason.
 */
import assert from "node:assert/strict";
import type { LogFields, LogLevel } from "../../src/log.ts";
import { join } from "node:path";
import { bodyFor, subjectFor } from "../../src/message/mail_text.ts";
import { NETWORK, World } from "../support/world.ts";

function captureLog() {
  const lines: { level: LogLevel; message: string; fields?: LogFields }[] = [];
  return {
    lines,
    logger: {
      log: (level: LogLevel, message: string, fields?: LogFields) =>
        lines.push({ level, message, ...(fields ? { fields } : {}) }),
    },
  };
}

Deno.test("a sender over the rate limit gets no reply and the log says why", async () => {
  const log = captureLog();
  const w = await World.create({ limits: { requestsPerUserPerHour: 3 }, logger: log.logger });
  try {
    const bob = await w.player("bob", 4000);
    for (let i = 0; i < 5; i++) {
      await w.request(bob);
      w.clock.advance(1000);
      await w.host.processPending();
    }
    const quarantined = w.events.filter((e) => e.event === "quarantined");
    assert.equal(quarantined.length, 2);
    assert.ok(quarantined.every((e) => e.event === "quarantined" && e.code === "ERATE"));
    assert.equal(w.events.filter((e) => e.event === "reply-sent").length, 3);
    const line = log.lines.find((l) => l.fields?.code === "ERATE");
    assert.match(
      line?.message ?? "",
      /request not answered: user bob sent 3 requests within 60 min \(limit 3\)/,
    );
  } finally {
    await w.close();
  }
});

Deno.test("one sender address cannot flood the table with many user ids", async () => {
  const w = await World.create({ limits: { requestsPerSenderPerHour: 4 } });
  try {
    for (let i = 0; i < 6; i++) {
      const p = await w.player(`sock${i}`, 4000 + i);
      p.email = "flood@evil.test";
      await w.request(p);
      w.clock.advance(1000);
      await w.host.processPending();
    }
    assert.equal(w.events.filter((e) => e.event === "reply-sent").length, 4);
    assert.equal((await w.store.read()).length, 4);
  } finally {
    await w.close();
  }
});

Deno.test("a replayed old request cannot roll a user back to an old address", async () => {
  const w = await World.create();
  try {
    const bob = await w.player("bob", 4000);
    const first = await w.requestBlock(bob);
    await w.mailBlock(bob, first.block);
    await w.host.processPending();
    w.clock.advance(60_000);
    bob.endpoints = [{ transport: "tcp", address: "192.0.2.99", port: 4999 }];
    await w.request(bob);
    await w.host.processPending();
    // An attacker re-sends bob's first mail (a captured copy) with a fresh Date.
    await w.mailBlock(bob, first.block);
    const pass = await w.host.processPending();
    assert.equal(pass.quarantined, 1);
    const q = w.events.findLast((e) => e.event === "quarantined");
    assert.ok(q && q.event === "quarantined" && q.code === "EREPLAY", JSON.stringify(q));
    assert.deepEqual((await w.store.read())[0]?.endpoints, bob.endpoints);
  } finally {
    await w.close();
  }
});

Deno.test("loopback, private and multicast addresses are refused unless the network allows them", async () => {
  const strict = await World.create({ allowPrivateAddresses: false });
  try {
    for (const [i, address] of ["127.0.0.1", "10.1.2.3", "fe80::1", "224.0.0.1"].entries()) {
      const p = await strict.player(`p${i}`, 4000);
      p.endpoints = [{ transport: "udp", address, port: 4000 }];
      await strict.request(p);
    }
    const global = await strict.player("global", 4000);
    global.endpoints = [{ transport: "tcp", address: "8.8.4.4", port: 4000 }];
    await strict.request(global);
    const pass = await strict.host.processPending();
    assert.deepEqual(pass, { answered: 1, notices: 0, quarantined: 4, stale: 0 });
    assert.ok(
      strict.events.filter((e) => e.event === "quarantined").every((e) =>
        e.event === "quarantined" && e.code === "EPOLICY"
      ),
    );
  } finally {
    await strict.close();
  }
  const lan = await World.create({ allowPrivateAddresses: true });
  try {
    const p = await lan.player("lan", 4000);
    p.endpoints = [{ transport: "tcp", address: "192.168.1.20", port: 4000 }];
    await lan.request(p);
    const m = await lan.player("multicast", 4000);
    m.endpoints = [{ transport: "udp", address: "239.1.1.1", port: 4000 }];
    await lan.request(m);
    assert.deepEqual(await lan.host.processPending(), {
      answered: 1,
      notices: 0,
      quarantined: 1,
      stale: 0,
    });
  } finally {
    await lan.close();
  }
});

Deno.test("with sender verification required, only mail whose SPF or DKIM passed at our server is answered", async () => {
  const w = await World.create({ requireVerifiedSender: { authservId: "mx.host.test" } });
  try {
    const bob = await w.player("bob", 4000);
    const r = await w.requestBlock(bob);
    // Unverified: no Authentication-Results at all.
    await w.mailBlock(bob, r.block);
    const refused = await w.host.processPending();
    assert.equal(refused.quarantined, 1);
    // Verified by our server (the header a real MTA adds on top).
    await w.sender.send({
      from: bob.email,
      to: ["host@host.test"],
      subject: `[mailpeer] ${NETWORK} request`,
      text: bodyFor(NETWORK, "request", r.block),
      headers: { "Authentication-Results": "mx.host.test; spf=pass smtp.mailfrom=player.test" },
    });
    assert.equal((await w.host.processPending()).answered, 1);
    // Forged by the sender with another server's name: ignored.
    const carol = await w.player("carol", 4001);
    const rc = await w.requestBlock(carol);
    await w.sender.send({
      from: carol.email,
      to: ["host@host.test"],
      subject: `[mailpeer] ${NETWORK} request`,
      text: bodyFor(NETWORK, "request", rc.block),
      headers: { "Authentication-Results": "evil.example; spf=pass smtp.mailfrom=player.test" },
    });
    assert.equal((await w.host.processPending()).quarantined, 1);
  } finally {
    await w.close();
  }
});

Deno.test('a request whose From local part holds , ; < > ( ) [ ] : " or a space is quarantined, never answered', async () => {
  const w = await World.create();
  try {
    const crafted = [
      "<a,b@evil.test>",
      "<a;b@evil.test>",
      '<"a(b)"@evil.test>', // unquoted, (b) is a comment: the address is a@evil.test
      "<a:b@evil.test>",
      '<"a,b"@evil.test>',
      "<a[b]@evil.test>",
    ];
    const newDir = join(w.postOffice.maildirOf("host@host.test"), "new");
    for (const [i, from] of crafted.entries()) {
      const p = await w.player(`crafty${i}`, 4100 + i);
      const { block } = await w.requestBlock(p);
      const raw = [
        `From: ${from}`,
        "To: host@host.test",
        `Subject: ${subjectFor(NETWORK, "request")}`,
        `Date: ${new Date(w.clock.now()).toUTCString()}`,
        `Message-ID: <crafted${i}@evil.test>`,
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "",
        bodyFor(NETWORK, "request", block),
      ].join("\r\n");
      await Deno.writeTextFile(join(newDir, `${1000 + i}.crafted${i}.evil`), raw);
    }
    await w.host.processPending();
    assert.equal(
      w.events.filter((e) => e.event === "reply-sent").length,
      0,
      JSON.stringify(w.events),
    );
    const quarantined = w.events.filter((e) => e.event === "quarantined");
    assert.equal(quarantined.length, crafted.length);
    assert.ok(quarantined.every((e) => e.event === "quarantined" && e.code === "EMAIL"));
    assert.deepEqual(await w.store.read(), []);
  } finally {
    await w.close();
  }
});
