/**
 * Control table benchmark (issue 7): a table of 1,000 rows (the default capacity), in this
 * process.
 *
 * - `selectPeers` for one requester (target ≤ 1 ms); baseline: one plain pass over the same
 *   rows that keeps the 8 newest (no filter closure, no sort);
 * - the host's whole update rule (expire, admit, upsert, select) on the rows, in memory;
 * - `applyRequests` (the host's rule for a batch) on a batch of 32 requests (per-user limit 30,
 *   per-sender limit 120 per hour, the defaults), on rows carrying 64 history entries each (one
 *   every 11 min, distinct senders); baseline: the same batch on rows with one entry each. And the
 *   attacker's case: every row's 64 entries from one sender within the hour, a batch of 32 new
 *   users from that sender (all refused, `ERATE`);
 * - `JsonFileStore.update` with that rule: lock, read + validate, rule, validate + write, fsync,
 *   rename, directory fsync (target ≤ 20 ms); baseline: the same bytes written atomically by
 *   hand (temp file, write, fsync, rename, directory fsync) — the disk's own cost;
 * - `JsonFileStore.read` alone.
 *
 * Median and p90 over `--iterations` (default 200; 50 for the file store) after a warm-up.
 *
 * Usage: scripts/bench runs it; alone:
 *   scripts/deno run --allow-read --allow-write --allow-env --allow-sys=loadavg \
 *   scripts/benchmarks/table.ts [--iterations 200]
 *   [--json-out bench-results/table.json]
 *
 * @module
 */
import { dirname, join } from "node:path";
import { admit, nextHistory, type RateLimits } from "../../src/host/admission.ts";
import { applyRequests, type CheckedRequest } from "../../src/host/host_request.ts";
import { JsonFileStore } from "../../src/host/store/json_file_store.ts";
import { DEFAULT_TABLE_POLICY, expireRows, selectPeers, upsertRow } from "../../src/host/table.ts";
import type { PeerRow } from "../../src/host/types.ts";
import {
  DEFAULT_REQUESTS_PER_SENDER_PER_HOUR,
  DEFAULT_REQUESTS_PER_USER_PER_HOUR,
  RATE_WINDOW_MS,
} from "../../src/limits.ts";
import { toBase64Url } from "../../src/message/base64.ts";
import { VERSION } from "../../src/version.ts";
import { arg, num } from "./args.ts";

// (not from rendezvous_stack.ts: that one loads imapflow, which this bench does not need)
const now = (): number => performance.now();
function out(text: string): void {
  const bytes = new TextEncoder().encode(text);
  for (let at = 0; at < bytes.length;) at += Deno.stdout.writeSync(bytes.subarray(at));
}
/** Nearest-rank percentile. */
function percentile(xs: readonly number[], p: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.max(1, Math.ceil((p / 100) * sorted.length)) - 1]!;
}

const ITERATIONS = Math.max(10, num("iterations", 200));
const FILE_ITERATIONS = Math.max(10, Math.round(ITERATIONS / 4));
const JSON_OUT = arg("json-out") ?? "bench-results/table.json";
const ROWS = 1000;
const NETWORK = "bench";

const b64 = (n: number) =>
  btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(n))))
    .replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");

/** 1,000 rows as a busy host holds them: each with a few history entries, some failures. */
function makeRows(at: number): PeerRow[] {
  return Array.from({ length: ROWS }, (_, i) => ({
    userId: `player${i}`,
    network: NETWORK,
    identityKey: b64(32),
    endpoints: [{ transport: "tcp" as const, address: `192.0.2.${i % 250}`, port: 5000 + i }],
    email: `player${i}@example.org`,
    sessionId: b64(16),
    requestedAt: at - (ROWS - i) * 1000,
    failures: i % 17 === 0 ? 1 : 0,
    history: Array.from({ length: 3 }, (_, h) => ({ sessionId: b64(16), at: at - h * 60_000 })),
  }));
}

const BATCH = 32;
const BATCH_RATES: RateLimits = {
  perUser: DEFAULT_REQUESTS_PER_USER_PER_HOUR,
  perSender: DEFAULT_REQUESTS_PER_SENDER_PER_HOUR,
  windowMs: RATE_WINDOW_MS,
};
/** The identity key of user `i`, as bytes (requests) and base64url (rows). */
const keyOf = (i: number) => {
  const key = new Uint8Array(32);
  new DataView(key.buffer).setUint32(0, i);
  return key;
};

/**
 * 1,000 rows whose histories hold `entries` requests each, `spacingMs` apart, the newest at the
 * row's own request; from the row's own address, or all from `from`.
 */
function historyRows(at: number, entries: number, spacingMs: number, from?: string): PeerRow[] {
  return Array.from({ length: ROWS }, (_, i) => {
    const requestedAt = at - (ROWS - i) * 1000;
    return {
      userId: `player${i}`,
      network: NETWORK,
      identityKey: toBase64Url(keyOf(i)),
      endpoints: [{ transport: "tcp" as const, address: `192.0.2.${i % 250}`, port: 5000 + i }],
      email: `player${i}@example.org`,
      sessionId: b64(16),
      requestedAt,
      failures: 0,
      since: requestedAt - entries * spacingMs,
      history: Array.from({ length: entries }, (_, h) => ({
        sessionId: b64(16),
        at: requestedAt - (entries - 1 - h) * spacingMs,
        from: from ?? `player${i}@example.org`,
      })),
    };
  });
}

/** A checked request of user `i` from `from` (its own address unless given), as the host has it. */
function checkedOf(i: number, at: number, from = `player${i}@example.org`): CheckedRequest {
  const sessionId = crypto.getRandomValues(new Uint8Array(16));
  return {
    ref: { id: `r${i}`, subject: "" },
    mail: { from, to: [], subject: "", text: "", headers: new Map() },
    request: {
      network: NETWORK,
      userId: `player${i}`,
      identityKey: keyOf(i),
      endpoints: [{ transport: "tcp", address: "192.0.2.9", port: 7000 + i }],
      sessionId,
      createdAt: at,
      replyKey: new Uint8Array(32),
      hostCards: [],
    },
    who: `player${i}`,
    sessionId: toBase64Url(sessionId),
    requestedAt: at,
    now: at,
  };
}

/** 32 requests: 28 users with rows, 4 new ones (the full table evicts its oldest rows). */
function batchOf(at: number): CheckedRequest[] {
  return Array.from(
    { length: BATCH },
    (_, k) => checkedOf(k < BATCH - 4 ? (k * 37) % ROWS : ROWS + k, at),
  );
}

/** `applyRequests` on `rows`: the batch's verdicts, as `ok` or the refusal's code. */
function batchRule(rows: PeerRow[], batch: CheckedRequest[], at: number): string[] {
  const { outcomes } = applyRequests(rows, batch, {
    network: NETWORK,
    policy: DEFAULT_TABLE_POLICY,
    now: at,
    rates: BATCH_RATES,
  });
  return outcomes.map((o) => "refused" in o ? o.refused.code : "ok");
}

interface Stat {
  p50: number;
  p90: number;
  n: number;
}
const r3 = (x: number) => Math.round(x * 1000) / 1000;

async function measure(n: number, fn: (i: number) => unknown | Promise<unknown>): Promise<Stat> {
  for (let i = 0; i < Math.min(20, n); i++) await fn(-1 - i); // warm-up (JIT, page cache)
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = now();
    await fn(i);
    xs.push(now() - t0);
  }
  return { p50: r3(percentile(xs, 50)), p90: r3(percentile(xs, 90)), n };
}

/** The host's update rule of a request (see Host #handleRequest), on `rows`. */
function hostRule(rows: PeerRow[], i: number, at: number) {
  const policy = DEFAULT_TABLE_POLICY;
  const userId = `player${(i + ROWS * 10) % (ROWS + 50)}`; // some new users: the table overflows
  const sessionId = b64(16);
  const live = expireRows(rows, at, policy);
  // A user id keeps its identity key while its row lives (admission refuses another key).
  const identityKey = live.find((r) => r.network === NETWORK && r.userId === userId)
    ?.identityKey ?? b64(32);
  const verdict = admit(live, {
    network: NETWORK,
    userId,
    email: `${userId}@example.org`,
    sessionId,
    identityKey,
    createdAt: at,
    now: at,
  }, { perUser: Infinity, perSender: Infinity, windowMs: RATE_WINDOW_MS });
  if (!verdict.ok) return { rows, result: 0 };
  const old = live.find((r) => r.network === NETWORK && r.userId === userId);
  const next = upsertRow(live, {
    userId,
    network: NETWORK,
    identityKey,
    endpoints: [{ transport: "tcp", address: "192.0.2.9", port: 7000 }],
    email: `${userId}@example.org`,
    sessionId,
    requestedAt: at,
    failures: 0,
    history: nextHistory(old, { sessionId, at, from: `${userId}@example.org` }, policy.expiryMs),
  }, policy);
  const chosen = selectPeers(next, { network: NETWORK, userId }, {
    now: at,
    expiryMs: policy.expiryMs,
    max: policy.peersPerReply,
  });
  return { rows: next, result: chosen.length };
}

/** Baseline of selectPeers: one pass keeping the 8 newest rows of the network, no sort. */
function newestEight(rows: PeerRow[], requester: string): PeerRow[] {
  const best: PeerRow[] = [];
  for (const row of rows) {
    if (row.network !== NETWORK || row.userId === requester) continue;
    if (best.length < 8) best.push(row);
    else {
      let min = 0;
      for (let k = 1; k < 8; k++) if (best[k]!.requestedAt < best[min]!.requestedAt) min = k;
      if (row.requestedAt > best[min]!.requestedAt) best[min] = row;
    }
  }
  return best;
}

/** Writes bytes like JsonFileStore does, by hand: the floor of an atomic, durable write. */
async function rawAtomicWrite(path: string, bytes: Uint8Array): Promise<void> {
  const temp = `${path}.raw-tmp`;
  const file = await Deno.open(temp, { write: true, create: true, truncate: true });
  try {
    for (let done = 0; done < bytes.length;) done += await file.write(bytes.subarray(done));
    await file.sync();
  } finally {
    file.close();
  }
  await Deno.rename(temp, path);
  const dir = await Deno.open(dirname(path), { read: true });
  try {
    await dir.sync();
  } finally {
    dir.close();
  }
}

async function main(): Promise<void> {
  const started = new Date().toISOString();
  const at = Date.now();
  const rows = makeRows(at);
  const policy = DEFAULT_TABLE_POLICY;
  out(`table bench: ${ROWS} rows, ${ITERATIONS} iterations (${FILE_ITERATIONS} on disk)\n`);

  const select = await measure(
    ITERATIONS,
    (i) =>
      selectPeers(rows, { network: NETWORK, userId: `player${Math.abs(i) % ROWS}` }, {
        now: at,
        expiryMs: policy.expiryMs,
        max: policy.peersPerReply,
      }),
  );
  const selectBase = await measure(
    ITERATIONS,
    (i) => newestEight(rows, `player${Math.abs(i) % ROWS}`),
  );
  const rule = await measure(ITERATIONS, (i) => hostRule(rows, Math.abs(i), at));

  const batch = batchOf(at);
  const busy = historyRows(at, 64, 11 * 60_000);
  const thin = historyRows(at, 1, 0);
  const attacked = historyRows(at, 64, 30_000, "mallory@example.org");
  const attack = Array.from(
    { length: BATCH },
    (_, k) => checkedOf(ROWS + k, at, "Mallory@Example.org"),
  );
  const verdicts = (codes: string[]) =>
    Object.entries(Object.groupBy(codes, (c) => c)).map(([c, n]) => `${n!.length} ${c}`)
      .join(", ");
  const busyVerdicts = verdicts(batchRule(busy, batch, at));
  const thinVerdicts = verdicts(batchRule(thin, batch, at));
  const attackVerdicts = verdicts(batchRule(attacked, attack, at));
  const batch64 = await measure(ITERATIONS, () => batchRule(busy, batch, at));
  const batch1 = await measure(ITERATIONS, () => batchRule(thin, batch, at));
  const batchAttack = await measure(ITERATIONS, () => batchRule(attacked, attack, at));

  const dir = await Deno.makeTempDir({ prefix: "mailpeer-bench-table-" });
  let update: Stat, write: Stat, read: Stat, fileBytes = 0;
  try {
    const path = join(dir, "table.json");
    const store = new JsonFileStore(path);
    await store.update(() => ({ rows, result: undefined }));
    fileBytes = (await Deno.stat(path)).size;
    const bytes = await Deno.readFile(path);
    update = await measure(
      FILE_ITERATIONS,
      (i) => store.update((current) => hostRule(current, Math.abs(i), Date.now())),
    );
    write = await measure(FILE_ITERATIONS, () => rawAtomicWrite(join(dir, "raw.json"), bytes));
    read = await measure(FILE_ITERATIONS, () => store.read());
  } finally {
    await Deno.remove(dir, { recursive: true });
  }

  const result = {
    bench: "table",
    version: VERSION,
    started,
    rows: ROWS,
    fileBytes,
    loadAverage1m: Deno.loadavg()[0],
    machine: { cpus: navigator.hardwareConcurrency, deno: Deno.version.deno, os: Deno.build.os },
    selectPeers: {
      ...select,
      targetMs: 1,
      baseline: selectBase,
      ratio: r3(select.p50 / selectBase.p50),
    },
    hostRuleInMemory: rule,
    batchRule: {
      ...batch64,
      batch: BATCH,
      historyEntries: 64,
      verdicts: busyVerdicts,
      baseline: { ...batch1, historyEntries: 1, verdicts: thinVerdicts },
      ratio: r3(batch64.p50 / batch1.p50),
      attack: { ...batchAttack, historyEntries: 64, verdicts: attackVerdicts },
    },
    storeUpdate: { ...update, targetMs: 20, baseline: write, ratio: r3(update.p50 / write.p50) },
    storeRead: read,
  };
  const line = (what: string, s: Stat, extra = "") =>
    `${what.padEnd(58)} ${s.p50.toFixed(3).padStart(8)} ${s.p90.toFixed(3).padStart(8)} ${
      String(s.n).padStart(4)
    }  ${extra}\n`;
  out(
    `\n${"metric (1,000 rows)".padEnd(58)} ${"p50 ms".padStart(8)} ${"p90 ms".padStart(8)}    n\n`,
  );
  out(line("selectPeers", select, `ratio ${result.selectPeers.ratio} to baseline; target ≤ 1 ms`));
  out(line("  baseline: one pass keeping the 8 newest (no sort)", selectBase));
  out(line("host update rule in memory (expire+admit+upsert+select)", rule));
  out(
    line(
      "applyRequests, batch of 32, rows with 64 history entries",
      batch64,
      `ratio ${result.batchRule.ratio}; ${busyVerdicts}`,
    ),
  );
  out(line("  baseline: same batch, rows with 1 history entry", batch1, thinVerdicts));
  out(line("  attack: 64 recent entries per row from 1 sender", batchAttack, attackVerdicts));
  out(
    line(
      "JsonFileStore.update with that rule",
      update,
      `ratio ${result.storeUpdate.ratio}; target ≤ 20 ms`,
    ),
  );
  out(line("  baseline: same bytes, write+fsync+rename+dir fsync", write));
  out(line("JsonFileStore.read (parse + validate)", read));
  const json = JSON.stringify(result, null, 2) + "\n";
  out(`table file: ${fileBytes} bytes\n\n${json}`);
  await Deno.mkdir(dirname(JSON_OUT), { recursive: true });
  await Deno.writeTextFile(JSON_OUT, json);
}

await main();
