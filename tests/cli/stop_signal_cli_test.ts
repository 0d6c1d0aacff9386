/**
 * Ctrl-C (SIGINT) and SIGTERM are normal ways to stop mailpeer: a client stopped while it waits
 * for its reply or stands by ends with a `stopped` event (or one line for a person), no stack
 * trace, and exit code 130 or 143 (docs/cli.md "Stopping"). Each test awaits the event that
 * shows the client is waiting before it sends the signal.
 */
import assert from "node:assert/strict";
import { mailpeer, Running } from "../support/cli.ts";
import { makeLocalSite } from "../support/local_site.ts";

Deno.test("Ctrl-C while a client waits for its reply ends with a stopped event and exit 130, in --json mode", async () => {
  const dir = await makeLocalSite();
  try {
    // No host runs: the client mails its request and waits.
    const client = new Running(["client", "--config", "bob.toml", "--json"], { cwd: dir });
    await client.waitFor((e) => e.event === "waiting");
    const status = await client.stop("SIGINT");
    assert.equal(status.code, 130, client.stderr);
    assert.equal(client.stderr, "", "no stack trace, no uncaught error");
    assert.deepEqual(
      { ...client.events.at(-1), time: undefined },
      { time: undefined, event: "stopped", reason: "signal", signal: "SIGINT" },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Ctrl-C on standby says it stopped in one line and exits 130; SIGTERM exits 143", async () => {
  const dir = await makeLocalSite();
  try {
    for (
      const [signal, code, line] of [
        ["SIGINT", 130, "mailpeer: stopped by Ctrl-C\n"],
        ["SIGTERM", 143, "mailpeer: stopped by SIGTERM\n"],
      ] as const
    ) {
      // The host answers once with no peers: the client stands by.
      const client = new Running(["client", "--config", "bob.toml", "--json"], { cwd: dir });
      await client.waitFor((e) => e.event === "waiting");
      const once = await mailpeer(["host", "--once", "--config", "host.toml"], { cwd: dir });
      assert.equal(once.code, 0, once.stderr);
      await client.waitFor((e) => e.event === "standby");
      const status = await client.stop(signal);
      assert.equal(status.code, code, client.stderr);
      assert.equal(client.events.at(-1)?.event, "stopped");
      assert.equal(client.events.at(-1)?.signal, signal);

      // The same for a person: narration, then one line, no stack.
      const person = new Running(["client", "--config", "bob.toml"], { cwd: dir });
      await waitForText(person, /stands by/, dir);
      const personStatus = await person.stop(signal);
      assert.equal(personStatus.code, code, person.stderr);
      assert.ok(person.stderr.endsWith(line), person.stderr);
      assert.doesNotMatch(person.stderr, /Uncaught|at async|\bError\b/);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * Waits until a narrating (non-JSON) process's stderr matches `pattern`; runs the host once per
 * round so that a waiting client gets its reply.
 */
async function waitForText(run: Running, pattern: RegExp, dir: string): Promise<void> {
  for (let i = 0; i < 400 && !pattern.test(run.stderr); i++) {
    const once = await mailpeer(["host", "--once", "--config", "host.toml"], { cwd: dir });
    assert.equal(once.code, 0, once.stderr);
  }
  assert.match(run.stderr, pattern);
}
