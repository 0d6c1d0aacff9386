/**
 * `--transport tcp|udp` overrides `terminal.transport` for one run of `client`, `send` and
 * `receive` (as `demo --transport` chooses the demo's), without editing the configuration.
 */
import assert from "node:assert/strict";
import { Running } from "../support/cli.ts";
import { makeLocalSite } from "../support/local_site.ts";

Deno.test("--transport udp makes a TCP-configured client, sender or receiver listen on UDP", async () => {
  const dir = await makeLocalSite({ terminal: `transport = "tcp"` });
  try {
    for (
      const args of [
        ["client"],
        ["send", "bob.toml"],
        ["receive", "."],
      ]
    ) {
      const run = new Running([...args, "--config", "bob.toml", "--json", "--transport", "udp"], {
        cwd: dir,
      });
      const listening = await run.waitFor((e) => e.event === "listening");
      assert.equal((listening.endpoint as { transport: string }).transport, "udp", args[0]!);
      assert.equal((await run.stop("SIGINT")).code, 130, run.stderr);
    }
    const tcp = new Running(["client", "--config", "bob.toml", "--json"], { cwd: dir });
    const listening = await tcp.waitFor((e) => e.event === "listening");
    assert.equal((listening.endpoint as { transport: string }).transport, "tcp");
    await tcp.stop("SIGINT");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
