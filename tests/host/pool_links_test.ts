/**
 * Linked hosts (docs/decisions.md "Linked hosts"): rows travel along links hop by hop, are
 * forwarded at once after a merge, never back, once per partner, within the hop bound and the
 * forwarding rate. Three or four sync agents share the world's Maildir post office.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { MemoryHostDirectory } from "../../src/host/pool/host_directory.ts";
import { LinkRoutes } from "../../src/host/pool/link_routes.ts";
import { SyncAgent, type SyncAgentOptions } from "../../src/host/pool/sync_agent.ts";
import {
  decodeSyncPayload,
  encodeSyncPayload,
  type SnapshotPayload,
} from "../../src/host/pool/sync_payload.ts";
import { MemoryStore } from "../../src/host/store/memory_store.ts";
import type { TableStore } from "../../src/host/types.ts";
import type { MailpeerEvent } from "../../src/events.ts";
import { formatHostCard, type HostCard } from "../../src/message/host_card.ts";
import { generateHostKeys, hostCardOf, type HostKeys } from "../../src/message/key_file.ts";
import { NETWORK, World } from "../support/world.ts";

const HOUR = 3_600_000;

interface LinkedHost {
  name: string;
  keys: HostKeys;
  card: HostCard;
  store: TableStore;
  agent?: SyncAgent;
}

/**
 * Hosts named in `names` (the first is the world's own host, which answers requests), linked
 * as `links` says (pairs of names, both ways), each with `options`.
 */
async function linked(
  w: World,
  names: string[],
  links: [string, string][],
  options: Record<string, Partial<SyncAgentOptions>> = {},
): Promise<Map<string, LinkedHost & { agent: SyncAgent }>> {
  const hosts = new Map<string, LinkedHost>();
  for (const [i, name] of names.entries()) {
    const keys = i === 0 ? w.hostKeys : await generateHostKeys(`${name}@hosts.test`);
    hosts.set(name, {
      name,
      keys,
      card: hostCardOf(keys),
      store: i === 0 ? w.store : new MemoryStore(),
    });
  }
  for (const host of hosts.values()) {
    const partners = links
      .filter(([a, b]) => a === host.name || b === host.name)
      .map(([a, b]) => hosts.get(a === host.name ? b : a)!.card);
    host.agent = new SyncAgent({
      keys: host.keys,
      network: NETWORK,
      source: await w.sourceOf(host.keys.email),
      sender: w.sender,
      store: host.store,
      directory: new MemoryHostDirectory({ self: host.card }),
      links: partners,
      clock: w.clock,
      allowPrivateAddresses: true,
      onEvent: (e) => w.events.push({ ...e, actor: host.name } as MailpeerEvent),
      ...options[host.name],
    });
  }
  return hosts as Map<string, LinkedHost & { agent: SyncAgent }>;
}

/** The events of one kind, as plain objects. */
function eventsOf(w: World, kind: string): Record<string, unknown>[] {
  return (w.events as unknown as Record<string, unknown>[]).filter((e) => e.event === kind);
}

/** Processes the sync mail of every host until no host has any left; returns the passes. */
async function settle(hosts: Map<string, { agent: SyncAgent }>): Promise<number> {
  for (let passes = 1; passes < 20; passes++) {
    let handled = 0;
    for (const h of hosts.values()) {
      const r = await h.agent.processPending();
      handled += r.answered + r.merged + r.quarantined + r.stale;
    }
    if (handled === 0) return passes;
  }
  throw new Error("sync mail kept coming: a loop");
}

/** A player mails the world's host (A), which answers; A pushes and every host settles. */
async function enterAtA(
  w: World,
  hosts: Map<string, { agent: SyncAgent }>,
  who: string,
  port: number,
): Promise<void> {
  await w.request(await w.player(who, port));
  assert.equal((await w.host.processPending()).answered, 1);
  await hosts.get("a")!.agent.pushSnapshots();
  await settle(hosts);
}

async function userIds(store: TableStore): Promise<string[]> {
  return (await store.read()).map((r) => r.userId).sort();
}

Deno.test("a row entered at A reaches C through B at once, is forwarded once and never returns to A", async () => {
  const w = await World.create();
  try {
    const hosts = await linked(w, ["a", "b", "c"], [["a", "b"], ["b", "c"]]);
    const [a, b, c] = (["a", "b", "c"] as const).map((n) => hosts.get(n)!) as [
      LinkedHost & { agent: SyncAgent },
      LinkedHost & { agent: SyncAgent },
      LinkedHost & { agent: SyncAgent },
    ];
    await w.request(await w.player("carol", 7100));
    assert.equal((await w.host.processPending()).answered, 1);

    // A's periodic push goes to B only; B forwards the new row to C in the same pass.
    assert.deepEqual(await a.agent.pushSnapshots(), { sent: 1, failed: 0 });
    assert.equal((await b.agent.processPending()).rows, 1);
    assert.deepEqual(
      eventsOf(w, "sync-forwarded").map((e) => [e.actor, e.to, e.rows]),
      [["b", c.keys.email, 1]],
    );
    assert.equal((await c.agent.processPending()).rows, 1);
    assert.deepEqual(await userIds(c.store), ["carol"]);

    // Everyone pushes again: nothing is new anywhere, nothing is forwarded, A keeps its row.
    for (const h of [a, b, c]) await h.agent.pushSnapshots();
    await settle(hosts);
    assert.equal(eventsOf(w, "sync-forwarded").length, 1, "forwarded once, then never again");
    const merged = eventsOf(w, "sync-merged");
    assert.deepEqual(
      merged.filter((e) => e.changed !== 0).map((e) => [e.actor, e.changed]),
      [["b", 1], ["c", 1]],
      "A's row is new once on B and once on C, and nowhere after",
    );
    assert.ok(merged.some((e) => e.actor === "a"), "A merged B's push, which changed nothing");
    // What B and C push to A carries no row of A's (never back where it came from).
    const toA = eventsOf(w, "sync-sent").filter((e) => e.to === a.keys.email);
    assert.ok(toA.length > 0);
    assert.ok(toA.every((e) => e.rows === 0), JSON.stringify(toA));
    const aRows = await a.store.read();
    assert.equal(aRows.length, 1);
    assert.equal(aRows[0]!.email, "carol@player.test", "A's own row is not replaced by its echo");
    // No link is added as a trusted pool host: A still syncs with B alone.
    assert.deepEqual(await a.agent.pushSnapshots(), { sent: 1, failed: 0 });
  } finally {
    await w.close();
  }
});

Deno.test("in a ring of links a row goes round once: each host forwards it once, never back", async () => {
  const w = await World.create();
  try {
    const hosts = await linked(w, ["a", "b", "c"], [["a", "b"], ["b", "c"], ["c", "a"]]);
    await enterAtA(w, hosts, "carol", 7100);
    const forwards = eventsOf(w, "sync-forwarded").map((e) => [e.actor, e.to]);
    // B and C each got it from A; each forwards it once to the other, never to A.
    assert.deepEqual(forwards, [
      ["b", hosts.get("c")!.keys.email],
      ["c", hosts.get("b")!.keys.email],
    ]);
    for (const h of hosts.values()) assert.deepEqual(await userIds(h.store), ["carol"]);
    // Settled: a further round of processing finds no sync mail at all.
    assert.equal(await settle(hosts), 1);
  } finally {
    await w.close();
  }
});

Deno.test("a row travels at most max_hops links: the next host does not forward it further", async () => {
  const w = await World.create();
  try {
    const hosts = await linked(
      w,
      ["a", "b", "c", "d"],
      [["a", "b"], ["b", "c"], ["c", "d"]],
      { b: { maxHops: 2 }, c: { maxHops: 2 } },
    );
    await enterAtA(w, hosts, "carol", 7100);
    // B got it with 1 hop and C with 2: at C's cap, so C sends it nowhere, not even at a push.
    assert.deepEqual(await userIds(hosts.get("c")!.store), ["carol"]);
    await hosts.get("c")!.agent.pushSnapshots();
    await settle(hosts);
    assert.deepEqual(await userIds(hosts.get("d")!.store), []);
  } finally {
    await w.close();
  }
});

Deno.test("a host refuses a row that made more hops than its own cap, whatever the sender says", async () => {
  const w = await World.create();
  try {
    const hosts = await linked(w, ["a", "b", "c"], [["a", "b"], ["b", "c"]], {
      c: { maxHops: 1 },
    });
    await enterAtA(w, hosts, "carol", 7100);
    // B forwarded it (2 hops on arrival at C), C's cap is 1: not merged.
    assert.equal(eventsOf(w, "sync-forwarded").length, 1);
    assert.deepEqual(await userIds(hosts.get("c")!.store), []);
  } finally {
    await w.close();
  }
});

Deno.test("forwarding keeps to its hourly rate per partner; the rest goes with the periodic push", async () => {
  const w = await World.create();
  try {
    const hosts = await linked(w, ["a", "b", "c"], [["a", "b"], ["b", "c"]], {
      b: { forwardsPerHour: 1 },
    });
    const [b, c] = [hosts.get("b")!, hosts.get("c")!];
    await enterAtA(w, hosts, "carol", 7100);
    await enterAtA(w, hosts, "dave", 7101);
    assert.equal(eventsOf(w, "sync-forwarded").length, 1, "one forwarding mail an hour");
    assert.deepEqual(await userIds(c.store), ["carol"]);
    await b.agent.pushSnapshots();
    await settle(hosts);
    assert.deepEqual(await userIds(c.store), ["carol", "dave"], "the periodic push carries it");

    // An hour on, forwarding resumes.
    w.clock.advance(HOUR);
    await enterAtA(w, hosts, "erin", 7200);
    assert.equal(eventsOf(w, "sync-forwarded").length, 2);
    assert.ok((await userIds(c.store)).includes("erin"));
  } finally {
    await w.close();
  }
});

Deno.test("the hop count reads back as written, absent reads as 1 hop, and 0 or 256 are refused", async () => {
  const keys = await generateHostKeys("a@hosts.test");
  const base: SnapshotPayload = {
    network: NETWORK,
    hostId: keys.ed25519.publicKey,
    createdAt: 1,
    kind: "snapshot",
    cards: [formatHostCard(hostCardOf(keys))],
    rows: [{
      userId: "carol",
      network: NETWORK,
      identityKey: new Uint8Array(32).fill(1),
      endpoints: [],
      sessionId: new Uint8Array(16).fill(2),
      requestedAt: 1,
      failures: 0,
      hops: 3,
    }],
  };
  const back = decodeSyncPayload(encodeSyncPayload(base)) as SnapshotPayload;
  assert.equal(back.rows[0]!.hops, 3);
  const { hops: _, ...old } = base.rows[0]!;
  const earlier = decodeSyncPayload(encodeSyncPayload({ ...base, rows: [old] }));
  assert.equal((earlier as SnapshotPayload).rows[0]!.hops, undefined);
  const text = new TextDecoder().decode(encodeSyncPayload(base));
  for (const bad of [0, 256, 1.5]) {
    assert.throws(
      () => decodeSyncPayload(new TextEncoder().encode(text.replace('"hops":3', `"hops":${bad}`))),
      /hops/,
    );
  }
});

Deno.test("routes: never back to the origin, own rows count 0 hops, and forgotten rows are pruned", () => {
  const routes = new LinkRoutes({ maxHops: 2, forwardsPerHour: 2 });
  const own = { network: "n", userId: "own", sessionId: "s0", email: "own@x.test" };
  const synced = { network: "n", userId: "far", sessionId: "s1", email: "" };
  routes.record(synced, { from: "B", hops: 2 });
  assert.equal(routes.mayGo(own, "B"), true);
  assert.equal(routes.mayGo(synced, "C"), false, "a third hop is over the cap of 2");
  routes.record(synced, { from: "B", hops: 1 });
  assert.equal(routes.mayGo(synced, "B"), false, "never back where it came from");
  assert.equal(routes.mayForward(synced, "C"), true);
  routes.forwarded([synced], "C");
  assert.equal(routes.mayForward(synced, "C"), false, "once per partner");
  assert.deepEqual([0, 1, 2].map(() => routes.takeForward("C", 0)), [true, true, false]);
  assert.equal(routes.takeForward("C", HOUR + 1), true, "the budget is per hour");
  routes.prune([own]);
  assert.deepEqual(routes.routeOf(synced), { hops: 1 }, "a pruned row is of unknown origin");
});

Deno.test("a cron host keeps its routes in a file: its next run still sends no row back where it came from", async () => {
  const w = await World.create();
  try {
    const routesFile = join(w.dir, "b.table.json.routes.json");
    const hosts = await linked(w, ["a", "b", "c"], [["a", "b"], ["b", "c"]], {
      b: { routesFile },
    });
    await enterAtA(w, hosts, "carol", 7100);
    // The next cron run of B: a new agent on the same table and routes file.
    const b = hosts.get("b")!;
    const nextRun = (file?: string) =>
      new SyncAgent({
        keys: b.keys,
        network: NETWORK,
        source: w.hostSource,
        sender: w.sender,
        store: b.store,
        directory: new MemoryHostDirectory({ self: b.card }),
        links: [w.card, hosts.get("c")!.card],
        clock: w.clock,
        onEvent: (e) => w.events.push({ ...e, actor: "b2" } as MailpeerEvent),
        ...(file ? { routesFile: file } : {}),
      });
    await nextRun(routesFile).pushSnapshots();
    const sentBy = (actor: string) =>
      eventsOf(w, "sync-sent").filter((e) => e.actor === actor).map((e) => [e.to, e.rows]);
    assert.deepEqual(sentBy("b2"), [[w.hostKeys.email, 0], [hosts.get("c")!.keys.email, 1]]);
    // Without the file the origin is unknown: the row would go back to A (a harmless repeat).
    w.events.length = 0;
    await nextRun().pushSnapshots();
    assert.deepEqual(sentBy("b2"), [[w.hostKeys.email, 1], [hosts.get("c")!.keys.email, 1]]);
    // A file that is not a routes file is set aside: the run goes on as without one.
    await Deno.writeTextFile(routesFile, '{"version":1,"routes":[["k",7,1]]}');
    w.events.length = 0;
    await nextRun(routesFile).pushSnapshots();
    assert.deepEqual(sentBy("b2"), [[w.hostKeys.email, 1], [hosts.get("c")!.keys.email, 1]]);
  } finally {
    await w.close();
  }
});
