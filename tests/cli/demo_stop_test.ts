/**
 * Ctrl-C during `mailpeer demo` (the first thing a new user runs) stops it at any point with
 * every socket, link and mailbox closed, so the CLI can remove the temporary post office. Deno's
 * resource and op sanitizers fail these tests if anything is left open.
 */
import assert from "node:assert/strict";
import { StoppedError } from "../../src/cli/common.ts";
import { runDemo } from "../../src/cli/demo.ts";
import type { EventName } from "../../src/events.ts";

for (const at of ["request-sent", "standby", "connected", "message"] as EventName[]) {
  Deno.test(`a demo stopped at its first ${at} event ends with everything closed`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "mailpeer-demo-stop-" });
    const stop = new AbortController();
    try {
      await assert.rejects(
        runDemo(dir, {
          signal: stop.signal,
          onEvent: (e) => {
            if (e.event === at) stop.abort(new StoppedError("SIGINT"));
          },
        }),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
