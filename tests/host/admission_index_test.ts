/**
 * `applyRequests` judges a batch through an index of the rows (admission_index.ts) that follows
 * the batch's own changes. Its verdicts, reasons and rows are those of the rule that scans the
 * rows for each request (`admit` without an index), which this file keeps as the reference.
 */
import assert from "node:assert/strict";
import { admit, type RateLimits } from "../../src/host/admission.ts";
import { AdmissionIndex } from "../../src/host/admission_index.ts";
import {
  admissionOf,
  admittedRow,
  applyRequests,
  type CheckedRequest,
  repliesOf,
  type RequestOutcome,
} from "../../src/host/host_request.ts";
import { expireRows, type TablePolicy, upsertRow } from "../../src/host/table.ts";
import type { PeerRow } from "../../src/host/types.ts";
import { fromBase64Url, toBase64Url } from "../../src/message/base64.ts";

const NET = "net";
const NOW = 1_000_000_000_000;
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/**
 * The table rule as it was before the index: `admit` scans the rows for each request, and the
 * requester's own row is found by a scan too. Only this scan is the reference's own: the row an
 * admitted request leaves and the replies after admission are the host's (`admittedRow`,
 * `repliesOf`).
 */
function referenceApply(
  rows: readonly PeerRow[],
  requests: readonly CheckedRequest[],
  o: { network: string; policy: TablePolicy; now: number; rates: RateLimits },
): { rows: PeerRow[]; outcomes: RequestOutcome[] } {
  let live = expireRows(rows, o.now, o.policy);
  const verdicts = requests.map((c) => {
    const verdict = admit(live, admissionOf(c, o.network), o.rates);
    if (!verdict.ok) return verdict;
    const old = live.find((r) => r.network === o.network && r.userId === c.who);
    const row = admittedRow(c, old, verdict.repeat, o.policy.expiryMs);
    live = verdict.repeat ? live.map((r) => r === old ? row : r) : upsertRow(live, row, o.policy);
    return verdict;
  });
  return repliesOf(live, requests, verdicts, o);
}

/** mulberry32: a small seeded PRNG, so every failure replays from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const keyBytes = (n: number) => new Uint8Array(32).fill(n);
const sessionBytes = (n: number) => new Uint8Array(16).fill(n);
const session = (n: number) => toBase64Url(sessionBytes(n));

function checked(
  userId: string,
  o: { key: number; session: number; from: string; createdAt: number; now: number },
): CheckedRequest {
  const sessionId = sessionBytes(o.session);
  return {
    ref: { id: `${userId}-${o.session}`, subject: "" },
    mail: { from: o.from, to: [], subject: "", text: "", headers: new Map() },
    request: {
      network: NET,
      userId,
      identityKey: keyBytes(o.key),
      endpoints: [{ transport: "tcp", address: "192.0.2.1", port: 4000 + o.session }],
      sessionId,
      createdAt: o.createdAt,
      replyKey: new Uint8Array(32),
      hostCards: [],
    },
    who: userId,
    sessionId: toBase64Url(sessionId),
    requestedAt: o.createdAt,
    now: o.now,
  };
}

/** One random case: a table, a batch against it, and the limits and policy. */
function randomCase(random: () => number) {
  const int = (n: number) => Math.floor(random() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const users = Array.from({ length: 3 + int(10) }, (_, i) => `u${i}`);
  const senders = ["ann@mail.test", "ben@mail.test", "cyd@other.test", "dee@x.test"];
  // the same address in random case: the rates count it as one sender
  const anyCase = (address: string) =>
    [...address].map((ch) => random() < 0.3 ? ch.toUpperCase() : ch).join("");
  const sender = () => anyCase(pick(senders));
  const policy: TablePolicy = {
    capacity: 1 + int(14),
    expiryMs: pick([12 * HOUR, 2 * HOUR]),
    peersPerReply: 1 + int(4),
  };
  const rows: PeerRow[] = [];
  for (const network of [NET, NET, "other"]) {
    for (const userId of users) {
      if (random() < 0.5 || rows.some((r) => r.network === network && r.userId === userId)) {
        continue;
      }
      // times on a grid of minutes, so some fall exactly at the start of a rate window
      const requestedAt = NOW - int(3 * policy.expiryMs / 2 / MINUTE) * MINUTE;
      const history = Array.from({ length: pick([0, 1, 5, 30, 64]) }, () => ({
        sessionId: session(int(40)),
        at: requestedAt - int(180) * MINUTE + int(60) * MINUTE,
        ...(random() < 0.8 ? { from: sender() } : {}),
      })).sort((a, b) => a.at - b.at);
      rows.push({
        userId,
        network,
        identityKey: toBase64Url(keyBytes(1)),
        endpoints: [{ transport: "tcp", address: "192.0.2.2", port: 5000 + rows.length }],
        email: sender(),
        sessionId: session(int(40)),
        requestedAt,
        failures: int(2),
        ...(history.length > 0 || random() < 0.5 ? { history } : {}),
        ...(random() < 0.7 ? { since: requestedAt - int(120) * MINUTE } : {}),
      });
    }
  }
  const rates: RateLimits = {
    perUser: pick([1, 2, 3, 10, 40, Infinity]),
    perSender: pick([1, 3, 10, 40, 120, Infinity]),
    ...(random() < 0.6 ? { perHost: pick([5, 20, 100, 400, Infinity]) } : {}),
    ...(random() < 0.6 ? { newRows: pick([0, 1, 3, 10, Infinity]) } : {}),
    windowMs: pick([HOUR, HOUR / 2]),
  };
  const batch: CheckedRequest[] = [];
  for (let k = 0; k < 1 + int(32); k++) {
    const userId = pick(users);
    const now = NOW + k * int(3) * MINUTE;
    const row = rows.find((r) => r.network === NET && r.userId === userId);
    const earlier = batch.filter((c) => c.who === userId);
    const choice = random();
    let s = 40 + int(200); // a new session
    if (choice < 0.15 && row) s = sessionBytesOf(row.sessionId); // a repeat of the row's request
    else if (choice < 0.25 && earlier.length > 0) {
      s = sessionBytesOf(pick(earlier).sessionId); // a repeat or replay within the batch
    } else if (choice < 0.35 && row?.history?.length) {
      s = sessionBytesOf(pick(row.history).sessionId); // a replay of an old one
    }
    batch.push(checked(userId, {
      key: random() < 0.1 ? 2 : 1, // another identity: a takeover attempt
      session: s,
      from: sender(),
      createdAt: random() < 0.1 ? NOW - int(180) * MINUTE : now - int(2) * MINUTE,
      now,
    }));
  }
  return { rows, batch, o: { network: NET, policy, now: NOW, rates } };
}

/** The number n of a session id `session(n)`. */
function sessionBytesOf(sessionId: string): number {
  return fromBase64Url(sessionId)[0]!;
}

const what = (outcome: RequestOutcome): string =>
  "refused" in outcome
    ? `${outcome.refused.code} ${outcome.refused.reason.split(" ")[0]}`
    : outcome.repeat
    ? "repeat"
    : "ok";

Deno.test("a batch judged through the index gets the verdicts, reasons and rows of the scanning rule", () => {
  const seen = new Map<string, number>();
  let evicted = 0;
  for (let seed = 1; seed <= 600; seed++) {
    const { rows, batch, o } = randomCase(prng(seed));
    const input = structuredClone(rows);
    const indexed = applyRequests(rows, batch, o);
    const reference = referenceApply(rows, batch, o);
    assert.deepEqual(indexed, reference, `seed ${seed}`);
    assert.deepEqual(rows, input, `seed ${seed}: the input rows are left as they were`);
    for (const outcome of indexed.outcomes) {
      seen.set(what(outcome), (seen.get(what(outcome)) ?? 0) + 1);
    }
    const kept = new Set(indexed.rows.map((r) => `${r.network}/${r.userId}`));
    if (expireRows(rows, NOW, o.policy).some((r) => !kept.has(`${r.network}/${r.userId}`))) {
      evicted++;
    }
  }
  // The cases reach every verdict, each rate, and full tables that drop rows.
  for (
    const verdict of [
      "ok",
      "repeat",
      "EOWNER request",
      "EREPLAY session",
      "EREPLAY request",
      "ERATE user",
      "ERATE sender",
      "ERATE this",
      "ERATE network",
    ]
  ) {
    assert.ok((seen.get(verdict) ?? 0) >= 20, `${verdict}: ${seen.get(verdict) ?? 0} times`);
  }
  assert.ok(evicted >= 50, `${evicted} cases dropped a row of a full table`);
});

Deno.test("the index counts what a scan of the rows counts, after rows are replaced and dropped", () => {
  const random = prng(7);
  for (let round = 0; round < 200; round++) {
    const { rows } = randomCase(random);
    // half the rounds leave out the times a batch starting at NOW - 4 h never asks about
    const floor = round % 2 === 0 ? undefined : NOW - 5 * HOUR;
    const index = new AdmissionIndex(rows, { floor });
    // index every count first, so the changes below must keep each one up to date
    index.sender("ann@mail.test", NOW);
    index.host(NET, NOW);
    index.made(NET, NOW);
    let live = rows;
    for (let change = 0; change < 4 && live.length > 0; change++) {
      const old = live[Math.floor(random() * live.length)]!;
      const next = { ...old, email: "Ben@Mail.test", history: old.history?.slice(1) };
      const dropped = live.filter((r) => r !== old && random() < 0.2);
      live = [...live.filter((r) => r !== old && !dropped.includes(r)), next];
      index.replace([old, ...dropped], [next]);
    }
    const scan = (since: number) => {
      const count = (keep: (r: PeerRow, h: { at: number; from?: string }) => boolean) =>
        live.reduce((n, r) => n + (r.history ?? []).filter((h) => keep(r, h)).length, 0);
      return {
        ann: count((r, h) => h.at > since && (h.from ?? r.email).toLowerCase() === "ann@mail.test"),
        ben: count((r, h) => h.at > since && (h.from ?? r.email).toLowerCase() === "ben@mail.test"),
        host: count((r, h) => r.network === NET && h.at > since),
        made: live.filter((r) => r.network === NET && (r.since ?? -1) > since).length,
        own: live.find((r) => r.network === NET && r.userId === "u1"),
      };
    };
    for (const since of [floor ?? 0, NOW - 4 * HOUR, NOW - 2 * HOUR, NOW - HOUR, NOW]) {
      assert.deepEqual(
        {
          ann: index.sender("ann@mail.test", since),
          ben: index.sender("ben@mail.test", since),
          host: index.host(NET, since),
          made: index.made(NET, since),
          own: index.own(NET, "u1"),
        },
        scan(since),
        `round ${round}, since ${since}`,
      );
    }
    if (floor !== undefined) {
      assert.throws(() => index.sender("ann@mail.test", floor - 1), RangeError);
    }
  }
});

/** 1,000 rows whose 64 history entries each came from one sender within the last hour. */
function floodedTable(): PeerRow[] {
  return Array.from({ length: 1000 }, (_, i) => ({
    userId: `player${i}`,
    network: NET,
    identityKey: toBase64Url(keyBytes(1)),
    endpoints: [{ transport: "tcp" as const, address: "192.0.2.3", port: 1000 + i }],
    email: `player${i}@example.org`,
    sessionId: session(200),
    requestedAt: NOW - 3_000_000 + i,
    failures: 0,
    since: NOW - 3_000_000 + i,
    history: Array.from({ length: 64 }, (_, h) => ({
      sessionId: toBase64Url(new Uint8Array([i >> 8, i & 255, h])),
      at: NOW - 3_000_000 + i + h,
      from: "mallory@evil.test",
    })),
  }));
}

const defaults = {
  network: NET,
  policy: { capacity: 1000, expiryMs: 12 * HOUR, peersPerReply: 8 },
  now: NOW,
  rates: { perUser: 30, perSender: 120, windowMs: HOUR },
};

Deno.test("a sender who filled every row's history is refused for each of 32 new users, and the table stays", () => {
  const rows = floodedTable();
  const batch = Array.from({ length: 32 }, (_, k) =>
    checked(`new${k}`, {
      key: 1,
      session: k,
      from: "Mallory@Evil.TEST",
      createdAt: NOW,
      now: NOW + k,
    }));
  const { rows: after, outcomes } = applyRequests(rows, batch, defaults);
  assert.deepEqual(
    outcomes,
    batch.map(() => ({
      refused: {
        ok: false,
        code: "ERATE",
        reason: "sender Mallory@Evil.TEST sent 64000 requests within 60 min (limit 120)",
      },
    })),
  );
  assert.deepEqual(after, rows);
});

Deno.test("in a flooded table, a row a new user overwrites stops counting for its sender within the batch", () => {
  const rows = floodedTable();
  const at = { createdAt: NOW, now: NOW };
  const mallory = (k: number) =>
    checked(`new${k}`, { key: 1, session: k, from: "MALLORY@evil.test", ...at });
  const batch = [
    mallory(0),
    checked("ann", { key: 3, session: 90, from: "ann@mail.test", ...at }),
    mallory(1),
    // player5's own request: refused by its row's rate, before the sender's count
    checked("player5", { key: 1, session: 91, from: "player5@example.org", ...at }),
    checked("bob", { key: 4, session: 92, from: "bob@mail.test", ...at }),
    mallory(2),
  ];
  const { rows: after, outcomes } = applyRequests(rows, batch, defaults);
  const sender = (n: number) => ({
    refused: {
      ok: false,
      code: "ERATE",
      reason: `sender MALLORY@evil.test sent ${n} requests within 60 min (limit 120)`,
    },
  });
  assert.deepEqual(outcomes[0], sender(64000));
  assert.ok("peers" in outcomes[1]! && !outcomes[1].repeat, "ann is answered");
  // ann's row overwrote the oldest row, player0, and its 64 entries from mallory
  assert.deepEqual(outcomes[2], sender(63936));
  assert.deepEqual(outcomes[3], {
    refused: {
      ok: false,
      code: "ERATE",
      reason: "user player5 sent 64 requests within 60 min (limit 30)",
    },
  });
  assert.ok("peers" in outcomes[4]!, "bob is answered");
  // and bob's overwrote player1's
  assert.deepEqual(outcomes[5], sender(63872));
  assert.equal(after.length, 1000);
  const users = new Set(after.map((r) => r.userId));
  assert.deepEqual(
    ["ann", "bob", "player0", "player1", "player2"].map((u) => users.has(u)),
    [true, true, false, false, true],
  );
  assert.deepEqual(referenceApply(rows, batch, defaults), { rows: after, outcomes });
});
