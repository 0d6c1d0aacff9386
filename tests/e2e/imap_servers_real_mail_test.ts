/**
 * FIG. 4 and `host --once` with the host's mailbox on Courier IMAP and on Cyrus IMAP (run
 * beside the mail stack by scripts/imapservers, docs/imap-servers.md): terminals mail the stack's
 * host@host.test as always, and a forwarder hands this network's requests to the host's
 * mailbox on the other server; replies go out through the stack. A garbage request waits in
 * the mailbox each time: the host quarantines it (into the server's namespace) and still
 * answers the real ones, on a first run and on a second run that finds the folders there.
 * `shared_mailbox` is refused with one line on Courier (no CONDSTORE) and exactly-once on
 * Cyrus. Ignored when the servers are not running (unless MAILPEER_REQUIRE_STACK is set).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { ImapFlow } from "imapflow";
import { composeMail } from "../../src/mail/rfc5322/compose.ts";
import { events, mailpeer, Running } from "../support/cli.ts";
import {
  clientOf,
  countOf,
  deliveryTo,
  emptyAccount,
  foldersOf,
  forwardMail,
  IMAP_SERVERS,
  type ImapServer,
  imapServerNamed,
  loginOf,
  NO_IMAP_SERVERS,
} from "../support/imap_servers.ts";
import { NO_STACK } from "../support/mailstack.ts";
import { mailRequests, untilDelivered } from "../support/requests.ts";
import { makeSite } from "../support/site.ts";

const IGNORE = NO_STACK || NO_IMAP_SERVERS;
const NAMES = ["courier", "cyrus"] as const;

/** A site whose host reads `user` on `server` (IMAP IDLE or polling), optionally shared. */
async function siteOn(
  server: ImapServer,
  options: { idle: boolean; shared?: boolean },
) {
  const site = await makeSite({ receive: "imap" });
  const login = loginOf(server, "host");
  const config = join(site.dir, "host.toml");
  const text = await Deno.readTextFile(config);
  const receive = [
    "[host.receive]",
    `kind = "imap"`,
    `host = "${login.host}"`,
    `port = ${login.port}`,
    `tls = "${login.tls}"`,
    `user = "${login.user}"`,
    `password_env = "MP_PASS_IMAPSRV_HOST"`,
    `ca_file = "${IMAP_SERVERS!.caFile}"`,
    `servername = "${login.servername}"`,
    `idle = ${options.idle}`,
    "",
  ].join("\n");
  let next = text.replace(/\[host\.receive\][\s\S]*?(?=\[host\.send\])/, receive);
  if (options.shared) {
    next = next.replace("allow_private_addresses = true", "$&\nshared_mailbox = true");
  }
  assert.notEqual(next, text);
  await Deno.writeTextFile(config, next);
  site.env.MP_PASS_IMAPSRV_HOST = login.password ?? "";
  return site;
}

/** An empty mailbox for `host` on `server`, and a client on it. */
async function emptyHost(server: ImapServer): Promise<ImapFlow> {
  const client = await clientOf(server, "host");
  await emptyAccount(client);
  return client;
}

/** A mail with the network's request subject that is no request at all. */
async function appendGarbage(client: ImapFlow, network: string): Promise<void> {
  const { raw } = await composeMail({
    from: "mallory@a.test",
    to: ["host@host.test"],
    subject: `[mailpeer] ${network} request`,
    text: "this is not a sealed request\r\n",
  });
  await client.append("INBOX", raw);
}

/** Mails `n` requests from alice through the stack and hands them to the host's mailbox. */
async function requestsInto(
  server: ImapServer,
  client: ImapFlow,
  site: { network: string; card: string },
  n: number,
): Promise<void> {
  await mailRequests(site, n);
  await untilDelivered(site.network, n);
  const forward = await forwardMail(
    `[mailpeer] ${site.network} request`,
    deliveryTo(server, "host", client),
  );
  await forward.stop();
  assert.equal(forward.moved, n);
}

const quarantineOf = (name: string) => name === "courier" ? "INBOX.Quarantine" : "Quarantine";

for (const name of NAMES) {
  Deno.test({
    name:
      `${name}: host --once quarantines a garbage mail and answers the request, again on a second run with the folders there`,
    ignore: IGNORE,
    fn: async () => {
      const server = imapServerNamed(name);
      const client = await emptyHost(server);
      const site = await siteOn(server, { idle: false });
      try {
        for (let run = 1; run <= 2; run++) {
          // mailRequests signs as player0 with new keys each time: a table of its own per run
          await Deno.remove(join(site.dir, "table.json")).catch(() => {});
          await appendGarbage(client, site.network);
          await requestsInto(server, client, site, 1);
          const r = await mailpeer(["host", "--once", "--config", "host.toml", "--json"], {
            cwd: site.dir,
            env: site.env,
          });
          assert.equal(r.code, 0, `run ${run}: ${r.stderr}`);
          const evs = events(r.stdout);
          assert.equal(
            evs.filter((e) => e.event === "reply-sent").length,
            1,
            `run ${run}: ${JSON.stringify(evs)}`,
          );
          assert.equal(evs.filter((e) => e.event === "quarantined").length, 1, `run ${run}`);
          assert.deepEqual(evs.filter((e) => e.event === "error"), [], `run ${run}`);
        }
        assert.deepEqual(await foldersOf(client), [quarantineOf(name)]);
        const box = await countOf(client, quarantineOf(name));
        assert.equal(box, 2, "both garbage mails quarantined");
        const inbox = await countOf(client, "INBOX");
        assert.equal(inbox, 0, `both requests answered and deleted: ${JSON.stringify(inbox)}`);
      } finally {
        await client.logout();
        await site.cleanup();
      }
    },
  });

  for (const idle of [true, false]) {
    Deno.test({
      name: `${name}: FIG. 4 with the host reading by ${
        idle ? "IDLE" : "polling"
      } behind a garbage mail: b stands by, a connects to b over TCP`,
      ignore: IGNORE,
      fn: async () => {
        const server = imapServerNamed(name);
        const client = await emptyHost(server);
        const site = await siteOn(server, { idle });
        await appendGarbage(client, site.network);
        const forward = await forwardMail(
          `[mailpeer] ${site.network} request`,
          deliveryTo(server, "host", client),
        );
        const opts = { cwd: site.dir, env: site.env };
        const host = new Running(["host", "--config", "host.toml", "--json"], opts);
        try {
          await host.waitFor((e) => e.event === "quarantined");
          const bob = new Running(
            ["client", "--config", "bob.toml", "--json", "-m", "hello from bob"],
            opts,
          );
          const empty = await bob.waitFor((e) => e.event === "reply-received");
          assert.deepEqual(empty.peers, []);
          await bob.waitFor((e) => e.event === "standby");
          const alice = await mailpeer(
            ["client", "--config", "alice.toml", "--json", "-m", "hello from alice"],
            opts,
          );
          assert.equal(alice.code, 0, alice.stderr);
          const evs = events(alice.stdout);
          const reply = evs.find((e) => e.event === "reply-received");
          assert.deepEqual((reply?.peers as { userId: string }[]).map((p) => p.userId), ["bob"]);
          const connected = evs.find((e) => e.event === "connected");
          assert.equal(connected?.transport, "tcp");
          assert.ok(evs.some((e) => e.event === "message" && e.text === "hello from bob"));
          assert.equal((await bob.status).code, 0, bob.stderr);
          assert.equal(host.events.filter((e) => e.event === "reply-sent").length, 2);
          assert.equal(host.events.filter((e) => e.event === "quarantined").length, 1);
          assert.deepEqual(host.events.filter((e) => e.event === "error"), [], host.stderr);
          assert.ok(
            host.events.some((e) =>
              e.event === "host-ready" && e.wait === (idle ? "idle" : "poll")
            ),
          );
        } finally {
          await host.stop();
          await forward.stop();
        }
        assert.equal(forward.moved, 2);
        assert.deepEqual(await foldersOf(client), [quarantineOf(name)]);
        await client.logout();
        await site.cleanup();
      },
    });
  }
}

Deno.test({
  name:
    "courier: a host with shared_mailbox = true is refused with one line naming CONDSTORE, and answers nothing",
  ignore: IGNORE,
  fn: async () => {
    const server = imapServerNamed("courier");
    const client = await emptyHost(server);
    const site = await siteOn(server, { idle: false, shared: true });
    try {
      await requestsInto(server, client, site, 1);
      const r = await mailpeer(["host", "--once", "--config", "host.toml"], {
        cwd: site.dir,
        env: site.env,
      });
      assert.equal(r.code, 1, r.stderr);
      assert.match(
        r.stderr,
        /^mailpeer: Cannot share the host's mailbox among host processes: .*CONDSTORE.*[;,] (or )?set shared_mailbox = false .*\n$/,
      );
      assert.doesNotMatch(r.stdout, /replied|reply/);
      const inbox = await countOf(client, "INBOX");
      assert.equal(inbox, 1, "the request stays for a host that may read it");
    } finally {
      await client.logout();
      await site.cleanup();
    }
  },
});

Deno.test({
  name:
    "cyrus: two overlapping shared-mailbox host --once runs answer each of 6 requests exactly once",
  ignore: IGNORE,
  fn: async () => {
    const server = imapServerNamed("cyrus");
    const client = await emptyHost(server);
    const site = await siteOn(server, { idle: false, shared: true });
    try {
      await requestsInto(server, client, site, 6);
      const opts = { cwd: site.dir, env: site.env };
      const runs = await Promise.all([
        mailpeer(["host", "--once", "--config", "host.toml", "--json"], opts),
        mailpeer(["host", "--once", "--config", "host.toml", "--json"], opts),
      ]);
      for (const r of runs) assert.equal(r.code, 0, r.stderr);
      const sent = runs.flatMap((r) => events(r.stdout)).filter((e) => e.event === "reply-sent");
      assert.equal(sent.length, 6, "each request answered once across both runs");
      const inbox = await countOf(client, "INBOX");
      assert.equal(inbox, 0);
      const processing = await countOf(client, "Processing");
      assert.equal(processing, 0);
    } finally {
      await client.logout();
      await site.cleanup();
    }
  },
});
