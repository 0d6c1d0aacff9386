/**
 * The host service (src/host/host_service.ts, docs/design.md "The host service"): one listing
 * per pass handed to every handler, the run lock, bootstrap and the periodic push to the pool,
 * backoff after a failed pass on the injected clock, and the `host-ready` event.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { MailError } from "../../src/errors.ts";
import type { MailpeerEvent } from "../../src/events.ts";
import { type HostReady, HostService } from "../../src/host/host_service.ts";
import type { SyncAgent } from "../../src/host/pool/sync_agent.ts";
import { withFileLock } from "../../src/host/store/file_lock.ts";
import type { MailRef } from "../../src/mail/types.ts";
import { subjectFor } from "../../src/message/mail_text.ts";
import { NETWORK, World } from "../support/world.ts";

const READY: HostReady = {
  email: "host@host.test",
  receive: "local",
  mailbox: "po/host",
  wait: "watch",
  pollIntervalMs: 1000,
};

/** A pool sync that records what the service asked of it, in order. */
function recordingSync(isNew = false) {
  const calls: string[] = [];
  const listings: string[][] = [];
  const sync = {
    isNew: () => Promise.resolve(isNew),
    requestTables: () => (calls.push("requestTables"), Promise.resolve({ sent: 1, failed: 0 })),
    pushSnapshots: () => (calls.push("pushSnapshots"), Promise.resolve({ sent: 1, failed: 0 })),
    processPending: (o: { listing?: readonly MailRef[] }) => {
      calls.push("processPending");
      listings.push((o.listing ?? []).map((r) => r.subject));
      return Promise.resolve({ answered: 0, merged: 0, rows: 0, quarantined: 0, stale: 0 });
    },
  };
  return { calls, listings, sync: sync as unknown as SyncAgent };
}

/** Counts the listings of the host's mailbox. */
function countLists(w: World): { count: number } {
  const counter = { count: 0 };
  const list = w.hostSource.list.bind(w.hostSource);
  w.hostSource.list = (...args) => {
    counter.count++;
    return list(...args);
  };
  return counter;
}

const replied = (w: World) => w.events.filter((e) => e.event === "reply-sent").length;

Deno.test("a pass lists the mailbox once and hands requests to the host and sync mail to the pool sync", async () => {
  const w = await World.create();
  try {
    const [ann] = [await w.player("ann", 4001)];
    await w.request(ann!);
    await w.sender.send({
      from: "other-host@host.test",
      to: ["host@host.test"],
      subject: subjectFor(NETWORK, "sync"),
      text: "sync\n",
    });
    const lists = countLists(w);
    const { sync, listings } = recordingSync();
    const service = new HostService({ host: w.host, sync, clock: w.clock });
    assert.equal(await service.runOnce(), "done");
    assert.equal(lists.count, 1);
    assert.equal(replied(w), 1);
    assert.deepEqual(listings, [[subjectFor(NETWORK, "request"), subjectFor(NETWORK, "sync")]]);
  } finally {
    await w.close();
  }
});

Deno.test("a cron run while another process holds the table does nothing and says host-busy; the next run answers", async () => {
  const w = await World.create();
  try {
    await w.request(await w.player("ann", 4001));
    const runLock = join(w.dir, "table.json.run");
    const events: MailpeerEvent[] = [];
    const service = new HostService({ host: w.host, runLock, onEvent: (e) => events.push(e) });
    const release = Promise.withResolvers<void>();
    const held = Promise.withResolvers<void>();
    const holder = withFileLock(runLock, () => (held.resolve(), release.promise));
    await held.promise;
    assert.equal(await service.runOnce({ lockWaitMs: 0 }), "busy");
    assert.equal(events.at(-1)?.event, "host-busy");
    assert.equal(replied(w), 0, "a busy run answered a request");
    release.resolve();
    await holder;
    assert.equal(await service.runOnce({ lockWaitMs: 0 }), "done");
    assert.equal(replied(w), 1);
  } finally {
    await w.close();
  }
});

Deno.test("a long-running host refuses to start while another process holds the table", async () => {
  const w = await World.create();
  try {
    const runLock = join(w.dir, "table.json.run");
    const service = new HostService({ host: w.host, runLock });
    const release = Promise.withResolvers<void>();
    const held = Promise.withResolvers<void>();
    const holder = withFileLock(runLock, () => (held.resolve(), release.promise));
    await held.promise;
    await assert.rejects(
      service.run({ signal: new AbortController().signal }),
      (err: Error & { code?: string }) =>
        err.code === "ETABLE" && /holds .*\.run\.lock/.test(err.message),
    );
    release.resolve();
    await holder;
  } finally {
    await w.close();
  }
});

Deno.test("cron: bootstrap asks the pool first, the pass follows, and --sync pushes last", async () => {
  const w = await World.create();
  try {
    const { sync, calls } = recordingSync();
    const service = new HostService({ host: w.host, sync });
    await service.runOnce({ bootstrap: true, push: true });
    assert.deepEqual(calls, ["requestTables", "processPending", "pushSnapshots"]);
  } finally {
    await w.close();
  }
});

Deno.test("a new host asks the pool for tables first, and pushes its table every sync interval of its clock", async () => {
  const w = await World.create();
  try {
    const { sync, calls } = recordingSync(true);
    // The mailbox wakes the service when the test says so: one pass per wake.
    let wake = Promise.withResolvers<void>();
    let asleep = Promise.withResolvers<void>();
    w.hostSource.waitForMail = () => (asleep.resolve(), wake.promise);
    const nextPass = async () => {
      const woken = wake;
      [wake, asleep] = [Promise.withResolvers<void>(), Promise.withResolvers<void>()];
      woken.resolve();
      await asleep.promise;
    };
    const service = new HostService({ host: w.host, sync, clock: w.clock, syncIntervalMs: 60_000 });
    const stop = new AbortController();
    const running = service.run({ signal: stop.signal });
    await asleep.promise;
    assert.deepEqual(calls, ["requestTables", "processPending"]);
    // Less than the interval: a pass, no push.
    w.clock.advance(59_999);
    await nextPass();
    assert.deepEqual(calls.slice(2), ["processPending"]);
    // The interval is up: the next pass pushes.
    w.clock.advance(1);
    await nextPass();
    assert.deepEqual(calls.slice(3), ["processPending", "pushSnapshots"]);
    stop.abort();
    wake.resolve();
    await running;
  } finally {
    await w.close();
  }
});

Deno.test("a quiet mailbox does not hold up the push: the service wakes when the sync interval is up", async () => {
  const w = await World.create();
  try {
    const { sync, calls } = recordingSync();
    // No mail ever arrives: waiting ends only when the service stops waiting.
    let waits = Promise.withResolvers<void>();
    w.hostSource.waitForMail = (o) =>
      new Promise<void>((resolve) => {
        waits.resolve();
        o?.signal?.addEventListener("abort", () => resolve(), { once: true });
      });
    const service = new HostService({ host: w.host, sync, clock: w.clock, syncIntervalMs: 60_000 });
    const stop = new AbortController();
    const running = service.run({ signal: stop.signal });
    await waits.promise;
    assert.deepEqual(calls, ["processPending"]);
    waits = Promise.withResolvers<void>();
    w.clock.advance(60_000);
    await waits.promise;
    assert.deepEqual(calls, ["processPending", "processPending", "pushSnapshots"]);
    stop.abort();
    await running;
  } finally {
    await w.close();
  }
});

Deno.test("a host stopped during a pass ends after it, without waiting for mail", async () => {
  const w = await World.create();
  try {
    const stop = new AbortController();
    const { sync } = recordingSync();
    // The stop comes while the pass runs; the mailbox would never wake the service again.
    sync.processPending = () => {
      stop.abort();
      return Promise.resolve({ answered: 0, merged: 0, rows: 0, quarantined: 0, stale: 0 });
    };
    w.hostSource.waitForMail = () => new Promise<void>(() => {});
    const service = new HostService({ host: w.host, sync, clock: w.clock });
    await service.run({ signal: stop.signal });
  } finally {
    await w.close();
  }
});

Deno.test("a failed pass is reported, tried again after a backoff on the service's clock, and host-ready comes once it read the mailbox", async () => {
  const w = await World.create();
  try {
    await w.request(await w.player("ann", 4001));
    const list = w.hostSource.list.bind(w.hostSource);
    let failures = 1;
    w.hostSource.list = (...args) => {
      if (failures-- > 0) {
        return Promise.reject(new MailError("ECONNECT", "Cannot list: the server is down; wait"));
      }
      return list(...args);
    };
    const events: MailpeerEvent[] = [];
    const ready = Promise.withResolvers<void>();
    const service = new HostService({
      host: w.host,
      clock: w.clock,
      retryDelayMs: 500,
      ready: READY,
      onEvent: (e) => {
        events.push(e);
        if (e.event === "host-ready") ready.resolve();
      },
    });
    const stop = new AbortController();
    const running = service.run({ signal: stop.signal });
    await w.clock.sleeping(1);
    assert.deepEqual(events.map((e) => e.event), ["error"]);
    assert.equal(w.clock.nextWakeIn, 500);
    w.clock.advance(500);
    await ready.promise;
    assert.deepEqual(events.map((e) => e.event), ["error", "host-ready"]);
    assert.equal(replied(w), 1);
    stop.abort();
    await running;
    assert.equal(events.filter((e) => e.event === "host-ready").length, 1);
  } finally {
    await w.close();
  }
});

Deno.test("a service needs a host or a representative", () => {
  assert.throws(
    () => new HostService({} as ConstructorParameters<typeof HostService>[0]),
    /give it a host or a representative/,
  );
});
