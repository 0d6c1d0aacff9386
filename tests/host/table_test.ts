import assert from "node:assert/strict";
import fc from "fast-check";
import { isMailpeerError } from "../../src/errors.ts";
import {
  DEFAULT_TABLE_POLICY,
  expireRows,
  flagFailure,
  selectPeers,
  upsertRow,
  validateRows,
} from "../../src/host/table.ts";
import type { PeerRow } from "../../src/host/types.ts";
import { sampleRow } from "../conformance/table_store.ts";

const NOW = Date.UTC(2026, 0, 1, 12);
const HOUR = 60 * 60 * 1000;
const policy = { capacity: 1000, expiryMs: 12 * HOUR, peersPerReply: 8 };
const select = (rows: readonly PeerRow[], userId: string, max = 8, network = "chess") =>
  selectPeers(rows, { userId, network }, { now: NOW, expiryMs: policy.expiryMs, max });
const ids = (rows: readonly PeerRow[]) => rows.map((r) => r.userId);
/** A row of user `n` that made its request `agoMs` before NOW. */
const rowAgo = (n: number, agoMs: number, extra: Partial<PeerRow> = {}) =>
  sampleRow(n, { requestedAt: NOW - agoMs, ...extra });

Deno.test("the default policy keeps 1000 rows for 12 hours and replies with 8 peers", () => {
  assert.deepEqual(DEFAULT_TABLE_POLICY, { capacity: 1000, expiryMs: 12 * HOUR, peersPerReply: 8 });
});

Deno.test("a new request from the same user replaces the old row", () => {
  const old = rowAgo(1, 2 * HOUR, { failures: 2, lastFailureAt: NOW - HOUR, sessionId: "old" });
  const other = rowAgo(2, HOUR);
  const newer = rowAgo(1, 0, {
    sessionId: "new",
    endpoints: [{ transport: "udp", address: "198.51.100.7", port: 5000 }],
  });
  const table = upsertRow([old, other], newer, policy);
  assert.deepEqual(table, [rowAgo(1, 0, { sessionId: "new", endpoints: newer.endpoints }), other]);
  assert.equal(table[0]?.failures, 0, "a new request clears the failure flag");
  assert.equal("lastFailureAt" in table[0]!, false);
});

Deno.test("a late copy of an older request does not replace the newer row", () => {
  const current = rowAgo(1, 0, { sessionId: "new" });
  const late = rowAgo(1, HOUR, { sessionId: "old" });
  assert.deepEqual(upsertRow([current], late, policy), [current]);
});

Deno.test("processing the same request twice gives the same table", () => {
  const request = rowAgo(1, 0);
  const once = upsertRow([rowAgo(2, HOUR)], request, policy);
  const flagged = flagFailure(once, { userId: "user-1", network: "chess" }, NOW);
  assert.deepEqual(upsertRow(once, request, policy), once);
  assert.deepEqual(upsertRow(flagged, request, policy), flagged, "a repeat keeps the flag");
});

Deno.test("the same user id on another network is a separate row", () => {
  const table = upsertRow([rowAgo(1, HOUR)], rowAgo(1, 0, { network: "go" }), policy);
  assert.deepEqual(table.map((r) => `${r.network}/${r.userId}`), ["chess/user-1", "go/user-1"]);
});

Deno.test("a full table overwrites its oldest row", () => {
  const full = [rowAgo(1, 2 * HOUR), rowAgo(2, 5 * HOUR), rowAgo(3, 1 * HOUR)];
  const table = upsertRow(full, rowAgo(4, 0), { capacity: 3 });
  assert.deepEqual(ids(table).sort(), ["user-1", "user-3", "user-4"]);
  assert.deepEqual(upsertRow(full, rowAgo(2, 0), { capacity: 3 }).length, 3, "a known user fits");
});

Deno.test("a table over a lowered capacity shrinks to it, keeping the newest rows", () => {
  const rows = [1, 2, 3, 4, 5].map((n) => rowAgo(n, n * HOUR));
  assert.deepEqual(ids(upsertRow(rows, rowAgo(9, 0), { capacity: 3 })), [
    "user-1",
    "user-2",
    "user-9",
  ]);
  assert.throws(() => upsertRow(rows, rowAgo(9, 0), { capacity: 0 }), RangeError);
});

Deno.test("table functions never change the rows they are given", () => {
  const rows = [rowAgo(1, HOUR), rowAgo(2, 2 * HOUR, { failures: 1 })];
  const before = structuredClone(rows);
  upsertRow(rows, rowAgo(1, 0, { sessionId: "x" }), { capacity: 1 });
  flagFailure(rows, { userId: "user-1", network: "chess" }, NOW);
  expireRows(rows, NOW + 100 * HOUR, policy);
  select(rows, "user-3");
  assert.deepEqual(rows, before);
});

Deno.test("selection gives the newest rows first and never the requester", () => {
  const rows = [rowAgo(1, 3 * HOUR), rowAgo(2, 1 * HOUR), rowAgo(3, 2 * HOUR), rowAgo(4, 0)];
  assert.deepEqual(ids(select(rows, "user-4")), ["user-2", "user-3", "user-1"]);
  assert.deepEqual(ids(select(rows, "user-9", 2)), ["user-4", "user-2"]);
});

Deno.test("selection only gives peers of the requester's network", () => {
  const rows = [rowAgo(1, 0, { network: "go" }), rowAgo(2, HOUR)];
  assert.deepEqual(ids(select(rows, "user-3")), ["user-2"]);
  assert.deepEqual(ids(select(rows, "user-3", 8, "go")), ["user-1"]);
});

Deno.test("failed rows are ranked lower", () => {
  const rows = [
    rowAgo(1, 0, { failures: 2, lastFailureAt: NOW }),
    rowAgo(2, 3 * HOUR),
    rowAgo(3, HOUR, { failures: 1, lastFailureAt: NOW }),
    rowAgo(4, 2 * HOUR, { failures: 1, lastFailureAt: NOW }),
  ];
  assert.deepEqual(ids(select(rows, "user-9")), ["user-2", "user-3", "user-4", "user-1"]);
});

Deno.test("expired rows are never selected", () => {
  const rows = [rowAgo(1, 12 * HOUR), rowAgo(2, 12 * HOUR + 1), rowAgo(3, 0)];
  assert.deepEqual(ids(select(rows, "user-9")), ["user-3", "user-1"]);
  assert.deepEqual(ids(expireRows(rows, NOW, policy)), ["user-1", "user-3"]);
});

Deno.test("a notice flags the row by user id, not by address", () => {
  const shared = [{ transport: "tcp" as const, address: "192.0.2.50", port: 7000 }];
  const rows = [rowAgo(1, HOUR, { endpoints: shared }), rowAgo(2, 0, { endpoints: shared })];
  const flagged = flagFailure(rows, { userId: "user-1", network: "chess" }, NOW);
  assert.deepEqual(flagged, [{ ...rows[0]!, failures: 1, lastFailureAt: NOW }, rows[1]]);
  const twice = flagFailure(flagged, { userId: "user-1", network: "chess" }, NOW + 5);
  assert.deepEqual([twice[0]?.failures, twice[0]?.lastFailureAt], [2, NOW + 5]);
});

Deno.test("a notice about an unknown user changes nothing", () => {
  const rows = [rowAgo(1, 0)];
  assert.deepEqual(flagFailure(rows, { userId: "nobody", network: "chess" }, NOW), rows);
  assert.deepEqual(flagFailure(rows, { userId: "user-1", network: "go" }, NOW), rows);
});

Deno.test("an empty table selects nothing", () => {
  assert.deepEqual(select([], "user-1"), []);
  assert.deepEqual(select([rowAgo(1, 0)], "user-1"), [], "only the requester itself");
  assert.deepEqual(select([rowAgo(2, 0)], "user-1", 0), [], "no peers asked for");
});

Deno.test("a table read back from disk keeps every field", () => {
  const rows = [rowAgo(1, 0, { failures: 1, lastFailureAt: NOW }), rowAgo(2, 0)];
  assert.deepEqual(validateRows(JSON.parse(JSON.stringify(rows))), rows);
});

Deno.test("a malformed table is rejected with ETABLE naming the bad row", () => {
  const good = rowAgo(1, 0);
  const cases: [unknown, RegExp][] = [
    [{ rows: [] }, /rows are not a list/],
    [[good, null], /row 1 is not an object/],
    [[{ ...good, userId: 5 }], /row 0 has no valid "userId"/],
    [[{ ...good, failures: -1 }], /"failures"/],
    [[{ ...good, lastFailureAt: "yesterday" }], /"lastFailureAt"/],
    [[{ ...good, endpoints: [{ transport: "sctp", address: "::1", port: 1 }] }], /endpoint 0/],
    [[{ ...good, endpoints: [{ transport: "tcp", address: "::1", port: 70000 }] }], /port/],
    [[{ ...good, admin: true }], /unknown field "admin"/],
    [[good, rowAgo(1, HOUR)], /row 1 repeats user "user-1"/],
  ];
  for (const [value, pattern] of cases) {
    assert.throws(() => validateRows(value), (err: unknown) => {
      assert.ok(isMailpeerError(err) && err.code === "ETABLE", String(err));
      assert.match(err.message, pattern);
      assert.match(err.message, /^Cannot load the control table: .+; .+/);
      return true;
    });
  }
});

const arbRow = fc.record({
  user: fc.integer({ min: 0, max: 30 }),
  network: fc.constantFrom("chess", "go"),
  requestedAt: fc.integer({ min: NOW - 20 * HOUR, max: NOW }),
  failures: fc.integer({ min: 0, max: 3 }),
  session: fc.integer({ min: 0, max: 3 }),
}).map(({ user, network, requestedAt, failures, session }) =>
  sampleRow(user, { network, requestedAt, failures, sessionId: `s${session}` })
);

Deno.test("upserts never exceed capacity and keep one row per user, the latest request", () => {
  fc.assert(fc.property(
    fc.array(arbRow, { maxLength: 60 }),
    fc.integer({ min: 1, max: 20 }),
    (requests, capacity) => {
      let table: PeerRow[] = [];
      for (const request of requests) {
        table = upsertRow(table, request, { capacity });
        assert.ok(table.length <= capacity);
        const keys = table.map((r) => `${r.network}/${r.userId}`);
        assert.equal(new Set(keys).size, keys.length);
        const stored = table.find((r) =>
          r.network === request.network && r.userId === request.userId
        );
        // The request just made is kept unless the same or a newer one of its user already was.
        if (stored) {
          assert.ok(
            stored.requestedAt >= request.requestedAt || stored.sessionId === request.sessionId,
          );
        } else assert.fail("the latest request must always be in the table");
      }
    },
  ));
});

Deno.test("selection is always live, same-network, without the requester, in rank order", () => {
  fc.assert(fc.property(
    fc.array(arbRow, { maxLength: 40 }),
    fc.integer({ min: 0, max: 30 }),
    fc.integer({ min: 0, max: 10 }),
    (rows, requester, max) => {
      const unique = rows.reduce<PeerRow[]>((t, r) => upsertRow(t, r, { capacity: 100 }), []);
      const picked = select(unique, `user-${requester}`, max);
      assert.ok(picked.length <= max);
      for (const [i, row] of picked.entries()) {
        assert.equal(row.network, "chess");
        assert.notEqual(row.userId, `user-${requester}`);
        assert.ok(row.requestedAt >= NOW - policy.expiryMs);
        const next = picked[i + 1];
        if (next) {
          assert.ok(
            row.failures < next.failures ||
              (row.failures === next.failures && row.requestedAt >= next.requestedAt),
          );
        }
      }
      const eligible = unique.filter((r) =>
        r.network === "chess" && r.userId !== `user-${requester}` &&
        r.requestedAt >= NOW - policy.expiryMs
      );
      assert.equal(picked.length, Math.min(max, eligible.length));
    },
  ));
});

Deno.test("selection gives exactly the first peers of the whole table in rank order", () => {
  // the reference: every eligible row sorted by the rank (reachable on the requester's
  // transports, fewer failures, newer, then user id), cut to max
  const reference = (
    rows: readonly PeerRow[],
    userId: string,
    max: number,
    transports?: readonly ("tcp" | "udp")[],
  ) => {
    const unreachable = (r: PeerRow) =>
      transports === undefined || r.endpoints.some((e) => transports.includes(e.transport)) ? 0 : 1;
    return rows.filter((r) =>
      r.network === "chess" && r.userId !== userId && r.requestedAt >= NOW - policy.expiryMs
    ).sort((a, b) =>
      unreachable(a) - unreachable(b) || a.failures - b.failures ||
      b.requestedAt - a.requestedAt || (a.userId < b.userId ? -1 : 1)
    ).slice(0, max);
  };
  fc.assert(fc.property(
    fc.array(
      fc.record({
        user: fc.integer({ min: 0, max: 40 }),
        network: fc.constantFrom("chess", "go"),
        // few distinct times and failure counts: many ties, decided by the later keys
        ago: fc.constantFrom(0, HOUR, 2 * HOUR, 13 * HOUR),
        failures: fc.integer({ min: 0, max: 2 }),
        transport: fc.constantFrom("tcp" as const, "udp" as const),
      }),
      { maxLength: 60 },
    ),
    fc.integer({ min: 0, max: 40 }),
    fc.integer({ min: 0, max: 12 }),
    fc.constantFrom(undefined, ["tcp" as const], ["udp" as const], [
      "tcp" as const,
      "udp" as const,
    ]),
    (specs, requester, max, transports) => {
      const rows = specs.reduce<PeerRow[]>(
        (t, s) =>
          upsertRow(
            t,
            rowAgo(s.user, s.ago, {
              network: s.network,
              failures: s.failures,
              endpoints: [{ transport: s.transport, address: "192.0.2.7", port: 4000 + s.user }],
            }),
            { capacity: 100 },
          ),
        [],
      );
      const userId = `user-${requester}`;
      const picked = selectPeers(rows, { userId, network: "chess" }, {
        now: NOW,
        expiryMs: policy.expiryMs,
        max,
        ...(transports ? { transports } : {}),
      });
      assert.deepEqual(ids(picked), ids(reference(rows, userId, max, transports)));
    },
  ));
});
