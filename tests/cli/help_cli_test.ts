/**
 * What `--help` tells a new user: where the configuration is looked up, examples, exit codes,
 * how a chat ends, and which transports each subcommand works over (docs/cli.md).
 */
import assert from "node:assert/strict";
import { mailpeer } from "../support/cli.ts";

Deno.test("mailpeer --help shows the configuration lookup, examples and exit codes", async () => {
  const r = await mailpeer(["--help"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /--config FILE, else \$MAILPEER_CONFIG, else \.\/mailpeer\.toml/);
  assert.match(r.stdout, /Examples:\n {2}mailpeer keygen --host /);
  for (const code of ["0", "1", "2", "130", "143"]) {
    assert.match(r.stdout, new RegExp(`\\n  ${code} +\\S`), `exit code ${code}`);
  }
});

Deno.test("client --help says how a chat ends and offers --transport", async () => {
  const r = await mailpeer(["client", "--help"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Ctrl-D \(end of input\) ends the chat/);
  assert.match(
    r.stdout,
    /--transport <kind> +peer transport for this run \(overrides\s+terminal\.transport\)/,
  );
  assert.match(r.stdout, /\$MAILPEER_CONFIG/);
  assert.match(r.stdout, /130 +Ctrl-C/);
});

Deno.test("send --help says it works over TCP and UDP; combined --help says what the host does after the chat", async () => {
  const send = await mailpeer(["send", "--help"]);
  assert.match(send.stdout, /works\s+over TCP and UDP/);
  assert.match(send.stdout, /--transport <kind>/);
  const combined = await mailpeer(["combined", "--help"]);
  assert.match(combined.stdout, /goes on after the chat ends, until\s+Ctrl-C/);
  assert.match(combined.stdout, /--exit-after-chat/);
});
