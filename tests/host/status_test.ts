/**
 * The host's status collector and server (docs/status.md), from the operator's side (what the
 * page and metrics say) and from an attacker's (what mail and strangers can make them do).
 * Time moves on a ManualClock; the server listens on 127.0.0.1 port 0.
 */
import assert from "node:assert/strict";
import parsePrometheus from "parse-prometheus-text-format";
import type { MailpeerEvent } from "../../src/events.ts";
import { HostStatus } from "../../src/host/status.ts";
import {
  isLoopback,
  parseStatusAddress,
  serveStatus,
  startStatus,
  STATUS_CSP,
  statusHandler,
  type StatusServerOptions,
} from "../../src/host/status_server.ts";
import type { PeerRow } from "../../src/host/types.ts";
import {
  STATUS_ID_MAX_CHARS,
  STATUS_LATENCY_SAMPLES,
  STATUS_MAX_CODES,
  STATUS_MAX_CONCURRENT,
  STATUS_RECENT_ENTRIES,
  STATUS_TEXT_MAX_CHARS,
} from "../../src/limits.ts";
import { ManualClock } from "../support/manual_clock.ts";
import { World } from "../support/world.ts";

const START = Date.UTC(2026, 0, 1, 12, 0, 0);
const TOKEN = "operator-secret-0123456789abcdef";
const XSS = "<script>alert(1)</script>";

function collector() {
  const clock = new ManualClock(START);
  return { clock, status: new HostStatus({ clock }) };
}

const request = (userId: string, sessionId = "s-" + userId): MailpeerEvent => ({
  event: "request-received",
  userId,
  sessionId,
});
const reply = (userId: string, peers = 2): MailpeerEvent => ({
  event: "reply-sent",
  to: `${userId}@example.org`,
  userId,
  peers,
});

function row(userId: string, overrides: Partial<PeerRow> = {}): PeerRow {
  return {
    userId,
    network: "net",
    identityKey: "key-" + userId,
    endpoints: [{ transport: "tcp", address: "192.0.2.7", port: 5000 }],
    email: `${userId.length < 40 ? userId : "x"}@mail.example`,
    sessionId: "sess",
    requestedAt: START - 90_000,
    failures: 0,
    ...overrides,
  };
}

Deno.test("status counts requests, replies, notices, quarantines, errors and passes", () => {
  const { status } = collector();
  const events: MailpeerEvent[] = [
    request("alice"),
    reply("alice"),
    request("bob"),
    reply("bob", 1),
    { event: "notice-received", userId: "bob", failed: ["alice"] },
    { event: "quarantined", subject: "[mailpeer] net request", code: "ESEAL", reason: "bad seal" },
    { event: "quarantined", subject: "[mailpeer] net request", code: "ESEAL", reason: "bad seal" },
    { event: "quarantined", subject: "[mailpeer] net request", code: "ERATE", reason: "too many" },
    { event: "request-deleted", userId: "carol", reason: "older than the expiry" },
    { event: "introduction-sent", userId: "alice", peer: "bob" },
    { event: "error", code: "ECONNECT", message: "Cannot connect to IMAP server" },
    { event: "host-pass", answered: 2, notices: 1, quarantined: 3, stale: 1 },
    { event: "sync-sent", to: "h2@example.org", kind: "snapshot", rows: 2 },
    { event: "sync-forwarded", to: "h3@example.org", from: "h2@example.org", rows: 1 },
    { event: "message", from: "x", text: "ignored: a terminal's event" },
  ];
  events.forEach(status.sink);
  const c = status.snapshot().counters;
  assert.deepEqual(c, {
    requestsReceived: 2,
    repliesSent: 2,
    noticesReceived: 1,
    introductionsSent: 1,
    requestsDeleted: 1,
    passes: 1,
    syncSent: 1,
    syncMerged: 0,
    syncForwarded: 1,
    forwarded: 0,
    quarantinedByCode: { ESEAL: 2, ERATE: 1 },
    errorsByCode: { ECONNECT: 1 },
  });
  const s = status.snapshot();
  assert.deepEqual(s.recent.requests.map((r) => r.userId), ["alice", "bob"]);
  assert.deepEqual(s.recent.replies.map((r) => [r.userId, r.peers]), [["alice", 2], ["bob", 1]]);
  assert.deepEqual(s.recent.quarantined.map((q) => q.code), ["ESEAL", "ESEAL", "ERATE"]);
  assert.equal(s.recent.deleted[0]!.about, "carol");
  assert.deepEqual(JSON.parse(JSON.stringify(s)), s, "the snapshot is plain JSON");
  assert.doesNotMatch(JSON.stringify(s), /example\.org/, "no e-mail address is kept");
});

Deno.test("wrap passes every event on and observes it too", () => {
  const { status } = collector();
  const seen: string[] = [];
  const sink = status.wrap((e) => seen.push(e.event));
  sink(request("alice"));
  sink(reply("alice"));
  assert.deepEqual(seen, ["request-received", "reply-sent"]);
  assert.equal(status.snapshot().counters.repliesSent, 2 - 1);
});

Deno.test("latency pairs a reply with the latest request of the same user id", () => {
  const { clock, status } = collector();
  status.observe(request("alice"));
  clock.advance(100);
  status.observe(request("bob"));
  clock.advance(50);
  status.observe(reply("bob")); // 50 ms
  clock.advance(200);
  status.observe(reply("alice")); // 350 ms
  status.observe(reply("carol")); // no request seen: no sample
  status.observe(request("dave"));
  clock.advance(11 * 60_000);
  status.observe(reply("dave")); // over 10 minutes: not a sample
  const s = status.snapshot();
  assert.deepEqual(s.latency.samples.map((x) => [x.userId, x.ms]), [["bob", 50], ["alice", 350]]);
  assert.deepEqual(s.recent.replies.map((r) => r.latencyMs), [50, 350, undefined, undefined]);
  assert.equal(s.latency.count, 2);
  assert.equal(s.latency.sumMs, 400);
  assert.deepEqual([s.latency.minMs, s.latency.p50Ms, s.latency.maxMs], [50, 50, 350]);
});

Deno.test("a repeated request times from the latest one, and the pairing is used once", () => {
  const { clock, status } = collector();
  status.observe(request("alice", "s1"));
  clock.advance(1_000);
  status.observe(request("alice", "s2"));
  clock.advance(30);
  status.observe(reply("alice"));
  status.observe(reply("alice"));
  assert.deepEqual(status.snapshot().latency.samples.map((x) => x.ms), [30]);
});

Deno.test("replies per minute: one bucket a minute over the last hour, older ones dropped", () => {
  const { clock, status } = collector();
  for (let minute = 0; minute < 3; minute++) {
    for (let i = 0; i <= minute; i++) status.observe(reply(`u${minute}-${i}`));
    clock.advance(60_000);
  }
  let r = status.snapshot().rates;
  assert.equal(r.windowMinutes, 4, "three full minutes and the current one");
  assert.deepEqual(r.perMinute.map((b) => b.replies), [1, 2, 3, 0]);
  assert.equal(r.repliesLastHour, 6);
  assert.equal(r.repliesPerMinute, 1.5);
  assert.equal(r.repliesLastMinute, 0);

  clock.advance(58 * 60_000); // minute 61: the hour is minutes 2 to 61
  status.observe(reply("late"));
  r = status.snapshot().rates;
  assert.equal(r.windowMinutes, 60);
  assert.equal(r.perMinute.length, 60);
  assert.equal(r.repliesLastHour, 3 + 1, "minutes 0 and 1 are out of the hour");
  assert.equal(r.repliesLastMinute, 1);
  assert.equal(r.perMinute[59]!.minute, START + 61 * 60_000);
});

Deno.test("mailbox health: starting, failing with errors in a row, ok after a pass", () => {
  const { clock, status } = collector();
  status.observe({
    event: "host-ready",
    email: "host@example.org",
    receive: "imap",
    mailbox: "127.0.0.13:143",
    wait: "idle",
    pollIntervalMs: 1000,
  });
  assert.equal(status.snapshot().health.state, "starting");
  assert.equal(status.snapshot().email, "host@example.org");
  status.observe({ event: "host-pass", answered: 0, notices: 0, quarantined: 0, stale: 0 });
  const passAt = clock.now();
  clock.advance(5_000);
  status.observe({ event: "error", code: "ECONNECT", message: "Cannot connect to IMAP server" });
  clock.advance(5_000);
  status.observe({ event: "error", code: "EAUTH", message: "Cannot log in" });
  let h = status.snapshot().health;
  assert.equal(h.state, "failing");
  assert.equal(h.consecutiveErrors, 2);
  assert.deepEqual(h.lastError, { code: "EAUTH", message: "Cannot log in" });
  assert.equal(h.lastErrorAt, START + 10_000);
  assert.equal(h.lastPassAt, passAt);
  assert.deepEqual([h.receive, h.mailbox, h.wait], ["imap", "127.0.0.13:143", "idle"]);
  clock.advance(1_000);
  status.observe({ event: "host-pass", answered: 1, notices: 0, quarantined: 0, stale: 0 });
  h = status.snapshot().health;
  assert.deepEqual([h.state, h.consecutiveErrors, h.lastPassAt], ["ok", 0, START + 11_000]);
  assert.equal(h.lastError?.code, "EAUTH", "the last error stays on show");
});

Deno.test("a flood of hostile mail leaves every list, sample set and code table bounded", () => {
  const { clock, status } = collector();
  const longId = "u".repeat(10_000);
  for (let i = 0; i < 3_000; i++) {
    status.observe(request(`${longId}${i}`, "s".repeat(5_000)));
    status.observe(reply(`${longId}${i}`));
    status.observe({
      event: "quarantined",
      subject: "S".repeat(100_000),
      code: `ECODE${i}`,
      reason: "r\u0000\u001b[31m\u202e".repeat(10_000),
    });
    status.observe({ event: "error", code: `not a code ${i}`, message: "m".repeat(50_000) });
    status.observe({ event: "request-deleted", userId: longId, reason: "old ".repeat(9_000) });
    clock.advance(997);
  }
  const s = status.snapshot();
  for (const list of Object.values(s.recent)) assert.equal(list.length, STATUS_RECENT_ENTRIES);
  assert.equal(s.latency.samples.length, STATUS_LATENCY_SAMPLES);
  assert.equal(s.latency.count, 3_000);
  assert.equal(Object.keys(s.counters.quarantinedByCode).length, STATUS_MAX_CODES);
  assert.ok(s.counters.quarantinedByCode.OTHER! > 2_900);
  assert.deepEqual(s.counters.errorsByCode, { OTHER: 3_000 }, "codes not in the code shape");
  assert.ok(s.rates.perMinute.length <= 60);
  const q = s.recent.quarantined[0]!;
  assert.ok(Array.from(q.reason).length <= STATUS_TEXT_MAX_CHARS);
  assert.ok(Array.from(q.about!).length <= STATUS_TEXT_MAX_CHARS);
  // deno-lint-ignore no-control-regex
  assert.doesNotMatch(q.reason, /[\u0000-\u001f\u202e]/, "control characters replaced");
  assert.ok(Array.from(s.recent.requests[0]!.userId).length <= STATUS_ID_MAX_CHARS);
  assert.ok(Array.from(s.recent.requests[0]!.sessionId).length <= STATUS_ID_MAX_CHARS);
  assert.ok(JSON.stringify(s).length < 200_000, "the snapshot stays small");
});

Deno.test("fed by a real host, the status counts its replies and times them per request", async () => {
  const seen: string[] = [];
  const world = await World.create({
    onEvent: (e) => {
      status.observe(e);
      seen.push(e.event);
    },
    // Each request's table update "takes" 25 ms on the world's clock.
    onStep: (step) => {
      if (step.step === "table-saved" && step.kind === "request") world.clock.advance(25);
    },
  });
  const status = new HostStatus({ clock: world.clock });
  const w = world;
  try {
    const bob = await w.player("bob", 4000);
    const alice = await w.player("alice", 4001);
    const mallory = await w.player("mallory", 4002);
    await w.request(bob);
    await w.request(alice);
    const tampered = (await w.requestBlock(mallory)).block.slice();
    tampered[tampered.length - 20]! ^= 0x01;
    await w.mailBlock(mallory, tampered);
    const pass = await w.host.processPending();
    assert.deepEqual(pass, { answered: 2, notices: 0, quarantined: 1, stale: 0 });

    const s = status.snapshot();
    assert.equal(s.counters.requestsReceived, 2);
    assert.equal(s.counters.repliesSent, seen.filter((e) => e === "reply-sent").length);
    assert.equal(s.counters.repliesSent, 2);
    assert.deepEqual(s.counters.quarantinedByCode, { ESEAL: 1 });
    assert.equal(s.recent.quarantined[0]!.about, "[mailpeer] testnet request");
    assert.deepEqual(
      s.latency.samples.map((x) => [x.userId, x.ms]).sort(),
      [["alice", 50], ["bob", 50]],
      "both requests were received, then both table updates ran, then both replies went out",
    );
    assert.equal(s.health.state, "ok");
    assert.equal(s.counters.passes, 1);
  } finally {
    await w.close();
  }
});

// ---------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------

async function withServer(
  options: Partial<StatusServerOptions>,
  fn: (url: string, status: HostStatus, clock: ManualClock) => Promise<void>,
) {
  const { clock, status } = collector();
  const server = await serveStatus({ status, port: 0, ...options });
  try {
    await fn(server.url, status, clock);
  } finally {
    await server.close();
  }
}

async function get(url: string, init: RequestInit = {}) {
  const res = await fetch(url, init);
  return { res, body: await res.text() };
}

const hostile = (status: HostStatus) => {
  status.observe(request(XSS));
  status.observe(reply(XSS));
  status.observe({
    event: "quarantined",
    subject: `[mailpeer] net request ${XSS}`,
    code: "EBLOCK",
    reason: `block <img src=x onerror=alert(1)> "quoted" & 'single'`,
  });
  status.observe({ event: "error", code: "ECONNECT", message: `<b>${XSS}</b>` });
};

Deno.test("the status server listens on loopback and answers its three routes", async () => {
  await withServer({
    table: () => Promise.resolve([row("alice"), row("bob", { failures: 2 })]),
    network: "net",
    email: "host@example.org",
  }, async (url, status) => {
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    status.observe(request("alice"));
    status.observe(reply("alice", 1));
    const page = await get(url);
    assert.equal(page.res.status, 200);
    assert.equal(page.res.headers.get("content-type"), "text/html; charset=utf-8");
    assert.match(page.body, /<meta http-equiv="refresh" content="5;url=\.\/">/);
    assert.match(page.body, /<title>mailpeer host host@example\.org<\/title>/);
    assert.match(page.body, /<b id="replies-sent">1<\/b>/);
    assert.equal(page.body.match(/<tr class="peer">/g)?.length, 2);
    assert.doesNotMatch(page.body, /@mail\.example/, "no e-mail address without the token");
    assert.doesNotMatch(page.body, /<script|\sstyle=|src=|href="http/i, "self-contained");
    assert.equal(page.body.match(/<circle class="latency-point"/g)?.length, 1);

    const json = await get(url + "status.json");
    assert.equal(json.res.headers.get("content-type"), "application/json; charset=utf-8");
    assert.equal(JSON.parse(json.body).counters.repliesSent, 1);

    const metrics = await get(url + "metrics");
    assert.equal(
      metrics.res.headers.get("content-type"),
      "text/plain; version=0.0.4; charset=utf-8",
    );
    assert.match(metrics.body, /^mailpeer_table_rows 2$/m);

    for (const res of [page.res, json.res, metrics.res]) {
      assert.equal(res.headers.get("content-security-policy"), STATUS_CSP);
      assert.equal(res.headers.get("x-content-type-options"), "nosniff");
      assert.equal(res.headers.get("cache-control"), "no-store");
    }
    assert.match(STATUS_CSP, /default-src 'none'/);
    assert.doesNotMatch(STATUS_CSP, /unsafe|script-src/);
  });
});

Deno.test("the page draws one latency point per recent sample, joined by a line", async () => {
  await withServer({}, async (url, status, clock) => {
    for (let i = 0; i < 7; i++) {
      status.observe(request(`u${i}`));
      clock.advance(10 * (i + 1));
      status.observe(reply(`u${i}`));
    }
    const { body } = await get(url);
    const svg = body.match(/<svg id="latency-plot"[\s\S]*?<\/svg>/)?.[0] ?? "";
    assert.equal(svg.match(/<circle class="latency-point"/g)?.length, 7);
    const points = svg.match(/<polyline class="latency-line" points="([^"]*)"/)?.[1] ?? "";
    assert.equal(points.split(" ").length, 7);
    assert.match(body, /median 40 ms/);
  });
});

Deno.test("only GET and HEAD: other methods get 405, unknown paths 404, HEAD no body", async () => {
  await withServer({}, async (url) => {
    for (const method of ["POST", "PUT", "DELETE", "PATCH"]) {
      const { res } = await get(url, { method, body: method === "DELETE" ? null : "x" });
      assert.equal(res.status, 405, method);
      assert.equal(res.headers.get("allow"), "GET, HEAD");
    }
    for (const path of ["nope", "status.json/", "../etc/passwd", "metrics.txt"]) {
      const { res } = await get(url + path);
      assert.equal(res.status, 404, path);
    }
    const head = await get(url + "metrics", { method: "HEAD" });
    assert.equal(head.res.status, 200);
    assert.equal(head.body, "");
    const long = await get(url + "?" + "a".repeat(5_000));
    assert.equal(long.res.status, 414);
  });
});

Deno.test("with a token: no token or a wrong one gets 401 on every route", async () => {
  await withServer({ token: TOKEN }, async (url) => {
    for (const path of ["", "status.json", "metrics", "nope"]) {
      const none = await get(url + path);
      assert.equal(none.res.status, 401, path);
      assert.match(none.res.headers.get("www-authenticate") ?? "", /^Bearer/);
      assert.doesNotMatch(none.body, /mailpeer_|counters/);
      for (const wrong of [TOKEN + "x", TOKEN.slice(0, -1), TOKEN.toUpperCase(), ""]) {
        const header = await get(url + path, { headers: { authorization: `Bearer ${wrong}` } });
        assert.equal(header.res.status, 401, `${path} with Bearer ${wrong}`);
        const query = await get(`${url}${path}?token=${encodeURIComponent(wrong)}`);
        assert.equal(query.res.status, 401, `${path}?token=${wrong}`);
      }
      const basic = await get(url + path, { headers: { authorization: `Basic ${btoa(TOKEN)}` } });
      assert.equal(basic.res.status, 401);
    }
    const post = await get(url, { method: "POST", body: "x" });
    assert.equal(post.res.status, 401, "a stranger learns nothing, not even the methods");
  });
});

Deno.test("with the token, the operator sees the page and the peers' e-mail addresses", async () => {
  await withServer({ token: TOKEN, table: () => Promise.resolve([row("alice")]) }, async (url) => {
    const header = await get(url, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(header.res.status, 200);
    assert.match(header.body, /<td>alice@mail\.example<\/td>/);
    assert.match(header.body, /content="5;url=\.\/">/, "a header token stays out of the page");
    const query = await get(`${url}?token=${TOKEN}`);
    assert.equal(query.res.status, 200);
    assert.match(query.body, new RegExp(`content="5;url=\\./\\?token=${TOKEN}"`));
    assert.match(query.body, new RegExp(`href="metrics\\?token=${TOKEN}"`));
    const metrics = await get(`${url}metrics?token=${TOKEN}`);
    assert.equal(metrics.res.status, 200);
  });
});

Deno.test("a user id, subject or reason full of HTML appears escaped, never as markup", async () => {
  await withServer({
    table: () => Promise.resolve([row(XSS, { email: `${XSS}@evil.example` })]),
    token: TOKEN,
  }, async (url, status) => {
    hostile(status);
    const { body } = await get(url, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.doesNotMatch(body, /<script|<img|<b>/i);
    const escaped = "&#60;script&#62;alert(1)&#60;/script&#62;";
    const rowCells = body.match(/<tr class="peer">.*<\/tr>/)?.[0] ?? "";
    assert.ok(rowCells.includes(`<td class="user">${escaped}</td>`), rowCells);
    assert.ok(rowCells.includes(`${escaped}@evil.example`));
    assert.ok(body.includes("block &#60;img src=x onerror=alert(1)&#62; &#34;quoted&#34; &#38;"));
    assert.ok(body.includes(`[mailpeer] net request ${escaped}`));
    assert.ok(body.includes(`&#60;b&#62;${escaped}&#60;/b&#62;`));
  });
});

/** One raw HTTP/1.1 GET with the given Host header; the status line of the answer. */
async function rawGet(url: string, host: string): Promise<string> {
  const { hostname, port } = new URL(url);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  try {
    await conn.write(
      new TextEncoder().encode(`GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`),
    );
    const text = await new Response(conn.readable).text();
    return text.split("\r\n")[0]!;
  } catch (err) {
    conn.close();
    throw err;
  }
}

Deno.test("without a token, a page asked for under another name is refused (DNS rebinding)", async () => {
  await withServer({}, async (url) => {
    const port = new URL(url).port;
    for (const host of ["evil.example", `evil.example:${port}`, "192.0.2.1", "localhost.evil"]) {
      assert.match(await rawGet(url, host), /^HTTP\/1\.1 421 /, host);
    }
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, "localhost", `[::1]:${port}`]) {
      assert.match(await rawGet(url, host), /^HTTP\/1\.1 200 /, host);
    }
  });
  await withServer({ token: TOKEN }, async (url) => {
    assert.match(await rawGet(url, "evil.example"), /^HTTP\/1\.1 401 /, "the token decides");
  });
});

Deno.test("requests beyond the concurrency limit get 503 at once, not a queue", async () => {
  const gate = Promise.withResolvers<PeerRow[]>();
  const handler = statusHandler({
    status: new HostStatus({ clock: new ManualClock(START) }),
    table: () => gate.promise,
    refreshSeconds: 5,
  });
  const ask = () =>
    handler(new Request("http://127.0.0.1:8787/", { headers: { host: "127.0.0.1" } }));
  const held = Array.from({ length: STATUS_MAX_CONCURRENT }, ask);
  const refused = await ask();
  assert.equal(refused.status, 503);
  assert.equal(refused.headers.get("retry-after"), "1");
  gate.resolve([row("alice")]);
  for (const res of await Promise.all(held)) {
    assert.equal(res.status, 200);
    await res.body?.cancel();
  }
  assert.equal((await ask()).status, 200, "the slots are free again");
});

Deno.test("a table that cannot be read shows one escaped line instead of the table", async () => {
  await withServer({ table: () => Promise.reject(new Error(`Redis down ${XSS}`)) }, async (url) => {
    const { res, body } = await get(url);
    assert.equal(res.status, 200);
    assert.match(body, /<p class="empty" id="peers-error">table unavailable: Redis down &#60;/);
    const metrics = await get(url + "metrics");
    assert.doesNotMatch(metrics.body, /mailpeer_table_rows/);
  });
});

Deno.test("refuses a non-loopback address without a token, and a short token, in one line", async () => {
  const status = new HostStatus();
  for (const hostname of ["0.0.0.0", "::", "192.0.2.1", "example.org"]) {
    await assert.rejects(
      serveStatus({ status, hostname, port: 0 }),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, "ECONFIG");
        assert.match(
          err.message,
          /^Cannot serve the status page on .* without a token: .*; set a token/,
        );
        assert.doesNotMatch(err.message, /\n/);
        return true;
      },
    );
  }
  await assert.rejects(
    serveStatus({ status, hostname: "127.0.0.1", port: 0, token: "short" }),
    /at least 16 characters/,
  );
  assert.ok(isLoopback("127.0.0.1") && isLoopback("::1") && isLoopback("[::1]"));
  assert.ok(isLoopback("localhost") && isLoopback("127.1.2.3"));
  assert.ok(!isLoopback("0.0.0.0") && !isLoopback("::") && !isLoopback("128.0.0.1"));
});

Deno.test("an address in use is one line naming it", async () => {
  await withServer({}, async (url) => {
    const port = Number(new URL(url).port);
    await assert.rejects(
      serveStatus({ status: new HostStatus(), port }),
      new RegExp(
        `^ConfigError: Cannot serve the status page on 127\\.0\\.0\\.1:${port}: the address is in use; `,
      ),
    );
  });
});

Deno.test("status addresses: HOST:PORT, [IPv6]:PORT or a port; anything else one line", () => {
  assert.deepEqual(parseStatusAddress("127.0.0.1:8787"), { hostname: "127.0.0.1", port: 8787 });
  assert.deepEqual(parseStatusAddress("[::1]:9000"), { hostname: "::1", port: 9000 });
  assert.deepEqual(parseStatusAddress("9100"), { hostname: "127.0.0.1", port: 9100 });
  assert.deepEqual(parseStatusAddress("localhost:1"), { hostname: "localhost", port: 1 });
  for (const bad of ["", "host", "1.2.3.4:99999", "a b:1", "http://x:1"]) {
    assert.throws(() => parseStatusAddress(bad), /^ConfigError: Cannot serve .*; write HOST:PORT/);
  }
});

Deno.test("startStatus, as the CLI calls it: an address string, loopback unless a token", async () => {
  const status = new HostStatus();
  const server = await startStatus({ status, address: "127.0.0.1:0" });
  try {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    assert.equal(
      (await fetch(server.url + "status.json").then((r) => r.json())).counters.passes,
      0,
    );
  } finally {
    await server.close();
  }
  await assert.rejects(startStatus({ status, address: "nonsense" }), /write HOST:PORT/);
  await assert.rejects(startStatus({ status, address: "0.0.0.0:0" }), /without a token/);
  // (With a token it would listen on 0.0.0.0 too; tests listen on 127.0.0.1 only.)
  const guarded = await startStatus({ status, address: "127.0.0.1:0", token: TOKEN });
  try {
    assert.equal((await fetch(guarded.url)).status, 401);
  } finally {
    await guarded.close();
  }
});

Deno.test("aborting the signal stops the server", async () => {
  const stop = new AbortController();
  const server = await serveStatus({ status: new HostStatus(), port: 0, signal: stop.signal });
  assert.equal((await fetch(server.url + "metrics").then((r) => r.text())).length > 0, true);
  stop.abort();
  await server.close();
  await assert.rejects(fetch(server.url));
});

// ---------------------------------------------------------------------------------------------
// /metrics
// ---------------------------------------------------------------------------------------------

/**
 * The exposition format's grammar, line by line (parse-prometheus-text-format is lenient): a
 * HELP then a TYPE before a family's samples, names and label names valid, values numbers.
 */
function strictCheck(text: string): void {
  assert.ok(text.endsWith("\n"), "ends with a line feed");
  const name = "[a-zA-Z_:][a-zA-Z0-9_:]*";
  const value = String.raw`(?:[-+]?(?:\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|NaN|[+-]Inf)`;
  const label = String.raw`[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\\\|\\"|\\n)*"`;
  const sample = new RegExp(`^(${name})(\\{${label}(?:,${label})*\\})? ${value}$`);
  const typed = new Map<string, string>();
  let help: string | undefined;
  for (const line of text.slice(0, -1).split("\n")) {
    let m: RegExpExecArray | null;
    if ((m = new RegExp(`^# HELP (${name}) .+$`).exec(line))) {
      help = m[1];
    } else if (
      (m = new RegExp(`^# TYPE (${name}) (counter|gauge|summary|histogram|untyped)$`).exec(line))
    ) {
      assert.equal(m[1], help, `TYPE ${m[1]} follows its HELP`);
      assert.ok(!typed.has(m[1]!), `${m[1]} typed once`);
      typed.set(m[1]!, m[2]!);
    } else if ((m = sample.exec(line))) {
      const base = m[1]!.replace(/_(sum|count)$/, "");
      const family = typed.has(m[1]!) ? m[1]! : base;
      assert.ok(typed.has(family), `sample ${m[1]} after its TYPE`);
      if (typed.get(family) === "counter") assert.match(m[1]!, /_total$/);
    } else {
      assert.fail(`not a valid exposition line: ${JSON.stringify(line)}`);
    }
  }
}

Deno.test("/metrics parses as Prometheus text and counts what the page counts", async () => {
  await withServer({ table: () => Promise.resolve([row("a"), row("b"), row("c")]) }, async (
    url,
    status,
    clock,
  ) => {
    for (let i = 0; i < 5; i++) {
      status.observe(request(`u${i}`));
      clock.advance(100 * (i + 1));
      status.observe(reply(`u${i}`));
    }
    status.observe({
      event: "quarantined",
      subject: "s",
      code: "ESEAL",
      reason: 'a "quoted"\\ reason',
    });
    status.observe({ event: "error", code: "ECONNECT", message: "down" });
    status.observe({ event: "host-pass", answered: 5, notices: 0, quarantined: 1, stale: 0 });
    const { body } = await get(url + "metrics");
    strictCheck(body);
    const families = new Map(
      (parsePrometheus(body) as {
        name: string;
        type: string;
        metrics: Record<string, unknown>[];
      }[])
        .map((f) => [f.name, f]),
    );
    const value = (name: string, labels?: Record<string, string>) =>
      Number(
        families.get(name)?.metrics.find((m) =>
          JSON.stringify(m.labels ?? {}) === JSON.stringify(labels ?? {})
        )?.value,
      );
    assert.equal(families.get("mailpeer_replies_sent_total")?.type, "COUNTER");
    assert.equal(value("mailpeer_replies_sent_total"), status.snapshot().counters.repliesSent);
    assert.equal(value("mailpeer_replies_sent_total"), 5);
    assert.equal(value("mailpeer_requests_received_total"), 5);
    assert.equal(value("mailpeer_quarantined_total", { code: "ESEAL" }), 1);
    assert.equal(value("mailpeer_errors_total", { code: "ECONNECT" }), 1);
    assert.equal(value("mailpeer_host_passes_total"), 1);
    assert.equal(value("mailpeer_mailbox_up"), 1);
    assert.equal(value("mailpeer_table_rows"), 3);
    const latency = families.get("mailpeer_reply_latency_seconds")!;
    assert.equal(latency.type, "SUMMARY");
    assert.deepEqual(latency.metrics[0], {
      quantiles: { "0.5": "0.3", "0.9": "0.5", "0.99": "0.5" },
      sum: "1.5",
      count: "5",
    });
  });
});

Deno.test("/metrics before anything happened is valid too", async () => {
  await withServer({}, async (url) => {
    const { body } = await get(url + "metrics");
    strictCheck(body);
    assert.match(body, /^mailpeer_replies_sent_total 0$/m);
    assert.match(body, /^mailpeer_reply_latency_seconds_count 0$/m);
    assert.match(body, /^mailpeer_mailbox_up 0$/m);
  });
});

Deno.test("a group member's page shows the host role lease it holds, then the one it defers to, and the forwarded sync count", async () => {
  await withServer({}, async (url, status, clock) => {
    const { body: plain } = await get(url);
    assert.doesNotMatch(plain, /id="role"/, "a host that is no member shows no role");
    assert.match(plain, /<b id="sync-forwarded">0<\/b>/);
    const until1 = START + 600_000;
    status.observe({ event: "role-taken", epoch: 1, holder: "anna" });
    status.observe({ event: "role-sent", epoch: 1, holder: "anna", until: until1, rows: 0 });
    status.observe({ event: "sync-forwarded", to: "c@x.test", from: "a@x.test", rows: 2 });
    let { body } = await get(url);
    assert.match(body, /<td id="role-holder">anna \(this member\)<\/td>/);
    assert.match(body, /<td class="num" id="role-epoch">1<\/td>/);
    assert.match(body, /id="role-until"><time datetime="2026-01-01T12:10:00.000Z">.*\(in 10 min\)/);
    assert.match(body, /<b id="sync-forwarded">1<\/b>/);
    assert.deepEqual(status.snapshot().role, {
      holder: "anna",
      epoch: 1,
      until: until1,
      self: true,
    });

    // anna's member lost the role to ben's earlier take in epoch 2; a stale epoch-1 role mail
    // read later changes nothing
    clock.advance(60_000);
    const until2 = START + 900_000;
    const merged = { rows: 1, changed: 1 };
    status.observe({ event: "role-merged", epoch: 2, holder: XSS, until: until2, ...merged });
    status.observe({ event: "role-lost", epoch: 2, holder: XSS });
    status.observe({ event: "role-merged", epoch: 1, holder: "zed", until: until2 + 1, ...merged });
    ({ body } = await get(url));
    assert.ok(!body.includes(XSS), "the holder's name is escaped");
    assert.match(body, /<td id="role-holder">&#60;script&#62;alert\(1\)&#60;\/script&#62;<\/td>/);
    assert.match(body, /<td class="num" id="role-epoch">2<\/td>/);
    assert.match(body, /\(in 14 min\)/);
    const metrics = (await get(url + "metrics")).body;
    strictCheck(metrics);
    assert.match(metrics, /^mailpeer_role_epoch 2$/m);
    assert.match(metrics, /^mailpeer_role_held 0$/m);
    assert.match(metrics, /^mailpeer_sync_forwarded_total 1$/m);
  });
});
