/**
 * `mailpeer combined`: one process that is both the host and a terminal (a player who also
 * hosts), from a configuration with both [host] and [terminal]. The host part goes on serving
 * other terminals after the chat ends, until Ctrl-C; `--exit-after-chat` ends both with the
 * chat (docs/cli.md "combined").
 *
 * @module
 */
import { Command } from "@commander-js/extra-typings";
import { isMailpeerError } from "../errors.ts";
import { silentSink, withActor } from "../events.ts";
import { CHAT_HELP, chatFromConfig } from "./client.ts";
import {
  configOption,
  loadConfigFor,
  onSignals,
  StoppedError,
  transportOption,
  untilStopped,
  withTransport,
} from "./common.ts";
import { hostFromConfig, statusFromOptions, statusOptions } from "./host.ts";
import { memberFromConfig } from "./member.ts";
import { preflight } from "./preflight.ts";
import { cliSink } from "./output.ts";

const COMBINED_HELP = `
The host part answers other terminals from the start and goes on after the chat ends, until
Ctrl-C or SIGTERM (exit 0 then). A chat that fails (no peer before terminal.standby_timeout,
say) is reported and the host goes on too. With --exit-after-chat the process ends with the
chat instead: exit 0 when the chat ended, 1 when it failed, as \`client\` does.`;

/** The `combined` subcommand. */
export function combinedCommand() {
  return statusOptions(transportOption(configOption(new Command("combined"))))
    .description("run the host and a terminal in one process; the host serves until Ctrl-C")
    .option(
      "-m, --message <text>",
      "send this line, print the answer, and disconnect (default: chat from stdin)",
    )
    .option("--exit-after-chat", "stop the host too when the chat ends (default: serve on)")
    .option("--json", "print events as JSON lines")
    .addHelpText("after", CHAT_HELP + "\n" + COMBINED_HELP)
    .action(async (opts) => {
      const json = opts.json ?? false;
      const config = withTransport(await loadConfigFor(opts.config, { json }), opts.transport);
      const sink = cliSink({ json });
      // Both roles are checked before either touches a mailbox (docs/config.md "Pre-flight");
      // the terminal's warnings come again, once, from its own pre-flight in chatFromConfig.
      await preflight(config, { host: true, terminal: true }, { onEvent: silentSink });
      // The status page counts the host's events only, never the terminal's.
      const statusPage = statusFromOptions(opts);
      const hostSink = withActor(statusPage ? statusPage.status.wrap(sink) : sink, "host");
      const terminalSink = withActor(sink, "terminal");
      const stop = onSignals();
      // The same service as `host`: run lock, pool sync, claims, backoff (docs/cli.md "combined");
      // or, with host.role = "auto", a member that answers only while it holds the host role.
      const { service, store, close } = config.host?.role === "auto"
        ? await memberFromConfig(config, { onEvent: hostSink })
        : await hostFromConfig(config, { onEvent: hostSink });
      const server = await statusPage?.start({
        table: () => store.read(),
        network: config.network,
        email: config.host!.email,
      }).catch(async (err) => {
        await close();
        throw err;
      });
      if (server) hostSink({ event: "status-serving", url: server.url });
      const hostRunning = service.run({ signal: stop.signal });
      // A host that cannot run (another process holds its table, say) ends the chat at once.
      const hostFailed = new AbortController();
      hostRunning.catch((err) => hostFailed.abort(err));
      const chatSignal = AbortSignal.any([stop.signal, hostFailed.signal]);
      try {
        try {
          await untilStopped(stop.signal, () =>
            chatFromConfig(config, {
              onEvent: terminalSink,
              json,
              signal: chatSignal,
              ...(opts.message !== undefined ? { message: opts.message } : {}),
            }));
        } catch (err) {
          if (hostFailed.signal.aborted) throw hostFailed.signal.reason;
          // The terminal failed; unless asked to end with the chat, the host serves on.
          if (err instanceof StoppedError || opts.exitAfterChat || !isMailpeerError(err)) {
            throw err;
          }
          terminalSink({ event: "error", code: err.code, message: err.message });
        }
        if (!opts.exitAfterChat) {
          hostSink({ event: "host-serving" });
          await hostRunning; // until a signal stops it
        }
      } finally {
        stop.abort();
        await hostRunning.catch(() => {});
        await server?.close();
        await close();
      }
    });
}
