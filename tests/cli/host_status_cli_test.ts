/**
 * `host --status` as an operator runs it (docs/status.md): the page and `/metrics` are served
 * while the host answers, and what cannot be served safely is refused in one line.
 */
import assert from "node:assert/strict";
import { mailpeer, Running } from "../support/cli.ts";
import { makeLocalSite } from "../support/local_site.ts";

Deno.test("host --status serves /metrics while the host answers, counting the replies it sent", async () => {
  const dir = await makeLocalSite();
  const host = new Running(
    ["host", "--config", "host.toml", "--json", "--status", "127.0.0.1:0"],
    { cwd: dir },
  );
  let alice: Running | undefined;
  try {
    const serving = await host.waitFor((e) => e.event === "status-serving");
    const url = serving.url as string;
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    alice = new Running(["client", "--config", "alice.toml", "--json"], { cwd: dir });
    await host.waitFor((e) => e.event === "reply-sent");
    const metrics = await (await fetch(`${url}metrics`)).text();
    assert.match(metrics, /^mailpeer_replies_sent_total 1$/m, metrics);
    const page = await (await fetch(url)).text();
    assert.match(page, /alice/);
    assert.doesNotMatch(page, /alice@lan\.test/, "no e-mail address without a token");
  } finally {
    await alice?.stop();
    await host.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

for (
  const [args, env, said] of [
    [["--once", "--status"], {}, /Cannot serve a status page with --once: .*; drop --status/],
    [
      ["--status", "--status-token-env", "MP_NO_SUCH_TOKEN"],
      {},
      /the environment variable MP_NO_SUCH_TOKEN \(--status-token-env\) is not set; export/,
    ],
    [["--status", "0.0.0.0:0"], {}, /Cannot serve the status page on .*token/],
    [["--status", "nowhere:port"], {}, /not an address; write HOST:PORT/],
  ] as const
) {
  Deno.test(`host ${args.join(" ")} is refused in one line`, async () => {
    const dir = await makeLocalSite();
    try {
      const out = await mailpeer(["host", "--config", "host.toml", ...args], { cwd: dir, env });
      assert.equal(out.code, 1, out.stdout + out.stderr);
      assert.match(out.stderr, said);
      assert.equal(out.stderr.trim().split("\n").length, 1, out.stderr);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
