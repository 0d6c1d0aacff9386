/**
 * Sharing the load on the real mail stack: a representative host with two workers, and three
 * host processes on one mailbox sharing a Redis table, claiming each mail in the mailbox or in
 * the table (`[host] claims`). Every request is answered exactly once.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { createClient } from "redis";
import { Running } from "../support/cli.ts";
import { account, NO_STACK, STACK } from "../support/mailstack.ts";
import { NO_REDIS, REDIS_URL } from "../support/redis.ts";
import { mailRequests } from "../support/requests.ts";
import { makeSite } from "../support/site.ts";
import { deleteMessages, imapOf, inReplyToOf, untilMessages } from "../support/stack_mail.ts";

/** A host configuration for `address`'s mailbox, using the site's shared host keys. */
function hostConfig(network: string, address: string, extra: string, env: Record<string, string>) {
  const { provider, user } = account(address);
  const envName = `MP_PASS_${address.replace(/[^a-z0-9]/gi, "_").toUpperCase()}`;
  env[envName] = user.password;
  const server = (kind: "imap" | "smtp") =>
    [
      `kind = "${kind}"`,
      `host = "${provider.ip}"`,
      `port = ${kind === "imap" ? provider.ports.imap : provider.ports.submission}`,
      `user = "${user.user}"`,
      `password_env = "${envName}"`,
      `ca_file = "${STACK!.caFile}"`,
      `servername = "${provider.hostname}"`,
    ].join("\n");
  return `network = "${network}"
[host]
email = "${address}"
keys = "host.keys.json"
allow_private_addresses = true
requests_per_sender_per_hour = 100000
requests_per_hour = 10000000
new_rows_per_hour = 1000000
poll_interval = "50ms"
${extra}
[host.receive]
${server("imap")}
idle = false
[host.send]
${server("smtp")}
`;
}

/** Resolves once the processes together report `n` replies sent; rejects if one ends first. */
async function untilAnswered(processes: Running[], n: number): Promise<void> {
  const replied = (e: Record<string, unknown>) => e.event === "reply-sent";
  let count = processes.reduce((sum, p) => sum + p.events.filter(replied).length, 0);
  if (count >= n) return;
  const stops: (() => void)[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      for (const p of processes) {
        stops.push(p.onEvent((e) => {
          if (replied(e) && ++count >= n) resolve();
        }));
        p.status.then((s) =>
          reject(new Error(`a host ended (code ${s.code}) at ${count} of ${n}: ${p.stderr}`))
        );
      }
    });
  } finally {
    for (const stop of stops) stop();
  }
}

/** Every request has exactly one reply in alice's mailbox (by In-Reply-To). */
async function assertAnsweredOnce(network: string, n: number): Promise<void> {
  const subject = `[mailpeer] ${network} reply`;
  await untilMessages("alice@a.test", subject, n);
  const replies = await inReplyToOf("alice@a.test", subject);
  assert.equal(replies.length, n, "one reply per request");
  assert.equal(new Set(replies).size, n, "no request answered twice");
  await deleteMessages("alice@a.test", subject);
}

Deno.test({
  name:
    "a representative with two workers: 200 requests answered exactly once each, split about evenly",
  ignore: NO_STACK,
  fn: async () => {
    const site = await makeSite({ receive: "imap" });
    const env = site.env;
    const processes: Running[] = [];
    try {
      await Deno.writeTextFile(
        join(site.dir, "rep.toml"),
        hostConfig(
          site.network,
          "host@host.test",
          'forward_to = ["host2@host.test", "alice2@a.test"]',
          env,
        ),
      );
      await Deno.writeTextFile(
        join(site.dir, "w1.toml"),
        hostConfig(
          site.network,
          "host2@host.test",
          'table = "w1.json"\nhosts_file = "w1-hosts.json"',
          env,
        ),
      );
      await Deno.writeTextFile(
        join(site.dir, "w2.toml"),
        hostConfig(
          site.network,
          "alice2@a.test",
          'table = "w2.json"\nhosts_file = "w2-hosts.json"',
          env,
        ),
      );
      const opts = { cwd: site.dir, env };
      const rep = new Running(["host", "--config", "rep.toml", "--json"], opts);
      const w1 = new Running(["host", "--config", "w1.toml", "--json"], opts);
      const w2 = new Running(["host", "--config", "w2.toml", "--json"], opts);
      processes.push(rep, w1, w2);
      await mailRequests(site, 200);
      await untilAnswered([w1, w2], 200);
      const forwarded = rep.events.filter((e) => e.event === "forwarded");
      assert.equal(forwarded.length, 200);
      const byWorker = [w1, w2].map((w) => w.events.filter((e) => e.event === "reply-sent").length);
      assert.deepEqual(byWorker.toSorted(), [100, 100], `split ${byWorker}`);
      await assertAnsweredOnce(site.network, 200);
    } finally {
      await Promise.all(processes.map((p) => p.stop()));
      await site.cleanup();
    }
  },
});

/** The processing folder's UIDNEXT on host@host.test, or undefined when there is none. */
async function processingUidNext(): Promise<number | undefined> {
  const client = await imapOf("host@host.test");
  try {
    const folders = await client.list();
    if (!folders.some((f) => f.path === "Processing")) return undefined;
    const status = await client.status("Processing", { uidNext: true, messages: true });
    assert.ok(status !== false, "the server refused STATUS");
    assert.equal(status.messages, 0, "the processing folder is empty");
    return status.uidNext;
  } finally {
    await client.logout();
  }
}

/**
 * Three host processes on host@host.test's mailbox with a Redis table (`claims` kept where
 * `[host] claims` says) answer 500 requests, each exactly once.
 */
async function threeProcessesOnOneMailbox(claims: "store" | "mailbox"): Promise<void> {
  const site = await makeSite({ receive: "imap" });
  const env = site.env;
  const key = `mailpeer:test:${crypto.randomUUID()}`;
  const processes: Running[] = [];
  try {
    await Deno.writeTextFile(
      join(site.dir, "shared.toml"),
      hostConfig(
        site.network,
        "host@host.test",
        `shared_mailbox = true\nclaims = "${claims}"\n` +
          `[host.store]\nkind = "redis"\nurl = "${REDIS_URL}"\nkey = "${key}"`,
        env,
      ),
    );
    const opts = { cwd: site.dir, env };
    for (let i = 0; i < 3; i++) {
      processes.push(new Running(["host", "--config", "shared.toml", "--json"], opts));
    }
    const processingBefore = claims === "store" ? await processingUidNext() : undefined;
    await mailRequests(site, 500);
    await untilAnswered(processes, 500);
    const perProcess = processes.map((p) =>
      p.events.filter((e) => e.event === "reply-sent").length
    );
    assert.equal(perProcess.reduce((a, b) => a + b, 0), 500, `per process ${perProcess}`);
    await assertAnsweredOnce(site.network, 500);
    if (claims === "store") {
      assert.equal(await processingUidNext(), processingBefore, "no mail was moved to claim it");
    }
  } finally {
    await Promise.all(processes.map((p) => p.stop()));
    const raw = createClient({ url: REDIS_URL, socket: { reconnectStrategy: false } });
    raw.on("error", () => {});
    await raw.connect();
    for await (const keys of raw.scanIterator({ MATCH: `${key}*`, COUNT: 1000 })) {
      if (keys.length > 0) await raw.del(keys);
    }
    await raw.close();
    await site.cleanup();
  }
}

Deno.test({
  name:
    "three host processes on one mailbox with a Redis table: 500 requests, each answered exactly once",
  ignore: NO_STACK || NO_REDIS,
  fn: () => threeProcessesOnOneMailbox("mailbox"),
});

Deno.test({
  name:
    "three host processes on one mailbox with their claims in the Redis table: 500 requests, each answered exactly once, none moved",
  ignore: NO_STACK || NO_REDIS,
  fn: () => threeProcessesOnOneMailbox("store"),
});
