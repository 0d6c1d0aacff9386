/**
 * `mailpeer combined`: one process that is both the host and a terminal (a player who also
 * hosts), from a configuration with both [host] and [terminal].
 *
 * @module
 */
import { Command } from "@commander-js/extra-typings";
import { silentSink, withActor } from "../events.ts";
import { chatFromConfig } from "./client.ts";
import { configOption, loadConfigFor, onSignals } from "./common.ts";
import { announceReady, hostFromConfig } from "./host.ts";
import { preflight } from "./preflight.ts";
import { cliSink } from "./output.ts";

/** The `combined` subcommand. */
export function combinedCommand() {
  return configOption(new Command("combined"))
    .description("run the host and a terminal in one process")
    .option(
      "-m, --message <text>",
      "send this line, print the answer, and disconnect (default: chat from stdin)",
    )
    .option("--json", "print events as JSON lines")
    .action(async (opts) => {
      const config = await loadConfigFor(opts.config, { json: opts.json ?? false });
      const sink = cliSink({ json: opts.json ?? false });
      // Both roles are checked before either touches a mailbox (docs/config.md "Pre-flight");
      // the terminal's warnings come again, once, from its own pre-flight in chatFromConfig.
      await preflight(config, { host: true, terminal: true }, { onEvent: silentSink });
      const stop = onSignals();
      const hostEvents = withActor(sink, "host");
      const { host, close } = await hostFromConfig(config, { onEvent: hostEvents });
      const hostRunning = host.run({
        signal: stop.signal,
        eachPass: announceReady(config.host!, { onEvent: hostEvents }),
      });
      try {
        const onEvent = withActor(sink, "terminal");
        await chatFromConfig(config, {
          onEvent,
          json: opts.json ?? false,
          signal: stop.signal,
          ...(opts.message !== undefined ? { message: opts.message } : {}),
        });
      } finally {
        stop.abort();
        await hostRunning.catch(() => {});
        await close();
      }
    });
}
