/**
 * The status page as an operator sees it (docs/status.md): headless Chromium loads it while a
 * host answers real terminals over the real mail stack (Postfix + Dovecot), and the DOM shows
 * the terminals that asked, the replies, a latency plot and a quarantined mail. Ignored without
 * the stack or Chromium, unless MAILPEER_REQUIRE_STACK is set (then it fails).
 *
 * With MAILPEER_UPDATE_SCREENSHOT=1 it also saves docs/status-page.png.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadHostKeys, openSender, openSource } from "../../src/cli/wire.ts";
import { loadConfig } from "../../src/config/config.ts";
import type { EventSink } from "../../src/events.ts";
import { Host } from "../../src/host/host.ts";
import { MemoryStore } from "../../src/host/store/memory_store.ts";
import { HostService } from "../../src/host/host_service.ts";
import { readyOf } from "../../src/cli/host.ts";
import { HostStatus, type StatusSnapshot } from "../../src/host/status.ts";
import { serveStatus } from "../../src/host/status_server.ts";
import { subjectFor } from "../../src/message/mail_text.ts";
import { CHROMIUM, dumpDom, NO_CHROMIUM, screenshot } from "../support/chromium.ts";
import { mailpeer, Running } from "../support/cli.ts";
import { NO_STACK } from "../support/mailstack.ts";
import { mailRequests } from "../support/requests.ts";
import { makeSite } from "../support/site.ts";
import { deliverOrdinary } from "../support/stack_mail.ts";

const SKIP = NO_STACK
  ? "the mail stack is not running (scripts/mailstack/mailstack.sh start)"
  : NO_CHROMIUM;
const TOKEN = "status-browser-test-token-0123456789";
const SCREENSHOT = new URL("../../docs/status-page.png", import.meta.url).pathname;
/** A deadline for each wait, so a broken host fails the test instead of hanging it. */
const DEADLINE_MS = 120_000;

Deno.test({
  name: "headless Chromium shows the status page of a host answering terminals over real mail" +
    (SKIP ? ` [ignored: ${SKIP}]` : ""),
  ignore: SKIP !== undefined,
  fn: async () => {
    const site = await makeSite({ receive: "imap" });
    for (const [name, value] of Object.entries(site.env)) Deno.env.set(name, value);
    const config = await loadConfig(join(site.dir, "host.toml"));

    // The host, in this process, with the status collector on its events.
    const status = new HostStatus();
    const checks = new Set<() => void>();
    const onEvent: EventSink = status.wrap(() => checks.forEach((check) => check()));
    const until = (what: string, pred: (s: StatusSnapshot) => boolean) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (!pred(status.snapshot())) return;
          checks.delete(check);
          clearTimeout(deadline);
          resolve();
        };
        const deadline = setTimeout(() => {
          checks.delete(check);
          reject(new Error(`the host did not get to ${what} in ${DEADLINE_MS} ms`));
        }, DEADLINE_MS);
        checks.add(check);
        check();
      });
    // The host as `mailpeer host` builds it from host.toml (src/cli/wire.ts), on a table in
    // memory, saying once that it is ready as the CLI does.
    const hc = config.host!;
    const source = await openSource(hc.receive, { pollIntervalMs: hc.pollIntervalMs });
    const sender = await openSender(hc.send);
    const store = new MemoryStore();
    const host = new Host({
      keys: await loadHostKeys(hc.keys),
      network: config.network,
      source,
      sender,
      store,
      allowPrivateAddresses: true,
      onEvent,
    });
    const stop = new AbortController();
    const hosting = new HostService({ host, ready: readyOf(hc), onEvent }).run({
      signal: stop.signal,
    });
    const server = await serveStatus({
      status,
      table: () => store.read(),
      token: TOKEN,
      network: site.network,
      email: hc.email,
      port: 0,
    });
    try {
      await until("its first pass", (s) => s.health.state === "ok");
      const opts = { cwd: site.dir, env: site.env };

      // FIG. 4 with real CLI terminals: bob asks first and stands by, alice connects to him.
      const bob = new Running(["client", "--config", "bob.toml", "--json", "-m", "hi"], opts);
      await bob.waitFor((e) => e.event === "standby");
      const alice = await mailpeer(
        ["client", "--config", "alice.toml", "--json", "-m", "hi"],
        opts,
      );
      assert.equal(alice.code, 0, alice.stderr);
      assert.equal((await bob.status).code, 0, bob.stderr);

      // Three more terminals' requests, and one hostile mail under the request subject.
      await mailRequests(site, 3);
      await deliverOrdinary("host@host.test", subjectFor(site.network, "request"), {
        text: "-----BEGIN MAILPEER BLOCK-----\n<script>alert(1)</script>\n" +
          "-----END MAILPEER BLOCK-----\n",
      });
      await until(
        "5 replies and 1 quarantined mail",
        (s) => s.counters.repliesSent >= 5 && s.recent.quarantined.length >= 1,
      );

      const url = `${server.url}?token=${TOKEN}`;
      const dom = await dumpDom(url);
      const snapshot = status.snapshot();

      // The control table: one row per terminal that asked, with its e-mail for the operator.
      const rows = [...dom.matchAll(/<tr class="peer">([\s\S]*?)<\/tr>/g)].map((m) => m[1]!);
      assert.equal(rows.length, 5, dom);
      for (const user of ["alice", "bob", "player0", "player1", "player2"]) {
        assert.ok(rows.some((r) => r.includes(`<td class="user">${user}</td>`)), user);
      }
      assert.ok(rows.some((r) => r.includes("bob@b.test")), "the operator sees e-mail addresses");

      // The counters and the latency plot.
      const replies = /<b id="replies-sent">(\d+)<\/b>/.exec(dom)?.[1];
      assert.equal(Number(replies), snapshot.counters.repliesSent);
      const svg = /<svg id="latency-plot"[\s\S]*?<\/svg>/.exec(dom)?.[0] ?? "";
      const points = svg.match(/<circle class="latency-point"/g)?.length ?? 0;
      assert.ok(points >= 1, svg);
      assert.equal(points, snapshot.latency.samples.length);
      assert.match(dom, /<td class="ok" id="health-state">ok<\/td>/);

      // The hostile mail is listed with its reason, and its markup is text, not a script.
      const quarantined = /<table id="recent-quarantined">[\s\S]*?<\/table>/.exec(dom)?.[0] ?? "";
      assert.match(quarantined, /<td>E[A-Z]+<\/td>/, quarantined);
      assert.doesNotMatch(dom, /<script/i);

      // Without the token, Chromium gets the 401 line and nothing of the host.
      const stranger = await dumpDom(server.url);
      assert.match(stranger, /a token is required/);
      assert.doesNotMatch(stranger, /alice|replies-sent/);

      if (Deno.env.get("MAILPEER_UPDATE_SCREENSHOT") === "1") {
        await screenshot(url, SCREENSHOT, { width: 1200, height: 1500 });
        const png = await Deno.readFile(SCREENSHOT);
        assert.deepEqual([...png.slice(1, 4)], [0x50, 0x4e, 0x47], `${CHROMIUM} wrote a PNG`);
      }
    } finally {
      await server.close();
      stop.abort();
      await hosting;
      await Promise.allSettled([source.close(), sender.close()]);
      for (const name of Object.keys(site.env)) Deno.env.delete(name);
      await site.cleanup();
    }
  },
});
