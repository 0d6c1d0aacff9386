/**
 * docs/design.md "Host processing": a crash between two steps "repeats a reply at worst and never
 * loses a request". A real host process (tests/support/crash_host.ts) is killed with SIGKILL right
 * after each step of processing a batch of requests, then started again; every request must end up
 * answered, repeats must be idempotent, and the table must stay a valid JSON file.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { JsonFileStore } from "../../src/host/store/json_file_store.ts";
import { HOST_REPLY_CONCURRENCY } from "../../src/host/host.ts";
import type { HostStep } from "../../src/host/host.ts";
import { toBase64Url } from "../../src/message/base64.ts";
import { encodeHostKeys } from "../../src/message/key_file.ts";
import { type Player, World } from "../support/world.ts";

const CRASH_HOST = new URL("../support/crash_host.ts", import.meta.url).pathname;
const HOST = "host@host.test";
const BATCH = 5;
const STEPS: HostStep["step"][] = ["fetched", "table-saved", "reply-sent", "deleted"];
const decoder = new TextDecoder();

interface Setup {
  w: World;
  args: string[];
  tableDir: string;
  tablePath: string;
  players: Player[];
  requests: { sessionId: Uint8Array; replyPrivateKey: Uint8Array }[];
}

/** A post office with BATCH valid requests from BATCH users, and the crash host's arguments. */
async function setUp(): Promise<Setup> {
  const w = await World.create();
  const keyFile = join(w.dir, "host.keys.json");
  await Deno.writeTextFile(keyFile, encodeHostKeys(w.hostKeys), { mode: 0o600 });
  const tableDir = join(w.dir, "state");
  const tablePath = join(tableDir, "table.json");
  const players: Player[] = [];
  const requests = [];
  for (let i = 0; i < BATCH; i++) {
    const p = await w.player(`user${i}`, 4000 + i);
    players.push(p);
    requests.push(await w.request(p));
  }
  const args = [w.postOffice.root, keyFile, tablePath, "--now", String(w.clock.now())];
  return { w, args, tableDir, tablePath, players, requests };
}

function crashHost(args: string[]): Promise<Deno.CommandOutput> {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "-A", CRASH_HOST, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
}

function killedBySigkill(status: Deno.CommandStatus): boolean {
  return status.signal === "SIGKILL" || status.code === 137;
}

async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) out.push(e.name);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return out.sort();
}

/** Kills the host right after the n-th `step`, restarts it and checks the outcome. */
async function killAndRestart(step: HostStep["step"], n: number): Promise<void> {
  const s = await setUp();
  try {
    const killed = await crashHost([...s.args, "--kill-at", `${step}:${n}`]);
    assert.ok(
      killedBySigkill(killed),
      `the host died by SIGKILL (code ${killed.code}, signal ${killed.signal}): ${
        decoder.decode(killed.stderr)
      }`,
    );
    assert.equal(decoder.decode(killed.stdout), "", "the killed pass never finished");

    const restarted = await crashHost(s.args);
    assert.equal(restarted.code, 0, decoder.decode(restarted.stderr));
    // The host handles the BATCH mails as one batch (HOST_BATCH_SIZE is larger): every mail is
    // fetched, then the table is saved once, then the replies are sent (HOST_REPLY_CONCURRENCY
    // at a time, so when the n-th is sent the next ones may be on their way too), then the
    // batch is deleted at once (deleteMany; "deleted" steps follow it), so a kill at any
    // "deleted" finds the whole batch done. Otherwise the restart answers all the mails, and
    // those whose reply went out before the kill get it again.
    const deletedBefore = step === "deleted" ? BATCH : 0;
    const repeated = step === "reply-sent"
      ? [n, Math.min(BATCH, n + HOST_REPLY_CONCURRENCY - 1)]
      : [0, 0];
    assert.deepEqual(JSON.parse(decoder.decode(restarted.stdout)), {
      answered: BATCH - deletedBefore,
      notices: 0,
      quarantined: 0,
      stale: 0,
    });

    for (const [i, p] of s.players.entries()) {
      const r = s.requests[i]!;
      const replies = await s.w.replies(p, r.replyPrivateKey);
      assert.ok(replies.length >= 1, `${p.identity.userId} got a reply`);
      // Only a kill between sending a reply and deleting its request repeats that reply.
      // Which users those are depends on the processing order, so count the repeats overall.
      assert.ok(replies.length <= 2, `${p.identity.userId} got ${replies.length} replies`);
      const first = replies[0]!;
      for (const reply of replies) {
        assert.deepEqual(reply.sessionId, r.sessionId, "the reply echoes the session id");
        // Idempotent: the repeated reply lists the same peers in the same order.
        assert.deepEqual(
          reply.peers.map((e) => [e.userId, toBase64Url(e.identityKey), e.endpoints]),
          first.peers.map((e) => [e.userId, toBase64Url(e.identityKey), e.endpoints]),
        );
        assert.deepEqual(reply.hostId, first.hostId);
        assert.ok(
          reply.peers.every((e) => e.userId !== p.identity.userId),
          "never the requester",
        );
      }
    }
    const total = (await Promise.all(
      s.players.map((p, i) => s.w.replies(p, s.requests[i]!.replyPrivateKey)),
    )).reduce((sum, r) => sum + r.length, 0);
    assert.ok(
      total >= BATCH + repeated[0]! && total <= BATCH + repeated[1]!,
      `${total} replies in all, expected ${BATCH} + ${repeated.join("…")}`,
    );

    // No request is left in the host's mailbox, none was quarantined.
    assert.deepEqual([
      ...await s.w.files(HOST, "new"),
      ...await s.w.files(HOST, "cur"),
      ...await s.w.files(HOST, ".Quarantine/cur"),
    ], []);

    // The table is valid JSON, one row per user holding that user's request.
    const table = JSON.parse(await Deno.readTextFile(s.tablePath));
    assert.equal(table.version, 1);
    assert.equal(table.rows.length, BATCH);
    assert.deepEqual(
      table.rows.map((row: { userId: string; sessionId: string }) => [
        row.userId,
        row.sessionId,
      ]).sort(),
      s.players.map((p, i) => [p.identity.userId, toBase64Url(s.requests[i]!.sessionId)])
        .sort(),
    );
    assert.equal((await new JsonFileStore(s.tablePath).read()).length, BATCH);
    // No temp file, no lock file: the kill never fell inside a table write.
    assert.deepEqual(await names(s.tableDir), ["table.json"]);
  } finally {
    await s.w.close();
  }
}

for (const step of STEPS) {
  const ns = [1, Math.ceil(BATCH / 2), BATCH];
  Deno.test(`a host killed right after "${step}" of mail ${ns.join(", ")} of ${BATCH} answers every request after a restart`, async () => {
    // The cases are independent (own post office, own table): run them side by side, since
    // most of a case is waiting for a subprocess to start.
    const results = await Promise.allSettled(ns.map((n) => killAndRestart(step, n)));
    const failed = results.flatMap((r, i) =>
      r.status === "rejected" ? [`kill at ${step}:${ns[i]}: ${r.reason?.stack ?? r.reason}`] : []
    );
    assert.deepEqual(failed, []);
  });
}

/**
 * A kill inside the table write itself. JsonFileStore writes the whole new table to a temp
 * file, fsyncs it and only then renames it over the table; rename(2) replaces the directory
 * entry atomically, so at any instant the table path names either the complete old file or
 * the complete new one. A process killed before the rename leaves the old table (plus an
 * orphan temp file); killed after it, the new one. The flock on `<table>.lock` dies with the
 * process, so the next host is not blocked.
 *
 * Here a child rewrites a large table in a loop and is killed while a later write is under way
 * (its second temp file appeared, or the table file itself is being modified — which only a
 * non-atomic store does, and this test then fails); the table must always read as one whole
 * version, and at least one kill must have fallen between a temp file's creation and its rename.
 */
Deno.test("a host killed in the middle of a table write leaves a whole, valid table", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mailpeer-crash-" });
  const tablePath = join(dir, "table.json");
  const ROWS = 5_000;
  const watcher = Deno.watchFs(dir);
  const events = watcher[Symbol.asyncIterator]();
  try {
    let midWrite = 0;
    for (let attempt = 0; attempt < 10 && midWrite < 2; attempt++) {
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "--no-prompt", "-A", CRASH_HOST, "--write-loop", tablePath, String(ROWS)],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const stderr = new Response(child.stderr).text();
      // The child prints a line after each complete write.
      const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let firstWriteDone = false;
      const firstLine = (async () => {
        for (let text = ""; !text.includes("\n");) {
          const chunk = await lines.read();
          if (chunk.done) return;
          text += chunk.value;
        }
        firstWriteDone = true;
      })();
      // Kill while a later write is under way: when the child creates its second temp file,
      // or (a store writing in place) when the table itself is modified after the first write.
      const mine = `.tmp-${child.pid}-`;
      for (let created = 0; created < 2;) {
        const next = await events.next();
        if (next.done) throw new Error("the file watcher stopped");
        const { kind, paths } = next.value;
        if (kind === "create" && paths.some((p) => p.includes(mine))) created++;
        if (firstWriteDone && kind === "modify" && paths.includes(tablePath)) break;
      }
      child.kill("SIGKILL");
      const status = await child.status;
      await lines.cancel();
      await firstLine;
      assert.ok(killedBySigkill(status), `killed (${status.code}): ${await stderr}`);
      await stderr;
      const temps = (await names(dir)).filter((name) => name.includes(".tmp-"));
      if (temps.length > 0) midWrite++;
      for (const temp of temps) await Deno.remove(join(dir, temp));

      const table = JSON.parse(await Deno.readTextFile(tablePath));
      assert.equal(table.version, 1);
      assert.equal(table.rows.length, ROWS);
      const rounds = new Set(
        table.rows.map((r: { sessionId: string }) => r.sessionId.split("-")[1]),
      );
      assert.equal(rounds.size, 1, "every row comes from the same write");
      // The next process reads the table and takes the lock at once.
      const store = new JsonFileStore(tablePath, { lockTimeoutMs: 2_000 });
      assert.equal(await store.update((rows) => ({ rows, result: rows.length })), ROWS);
    }
    assert.ok(
      midWrite >= 1,
      "at least one kill fell between creating the temp file and the rename",
    );
  } finally {
    watcher.close();
    await Deno.remove(dir, { recursive: true });
  }
});
