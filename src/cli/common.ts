/**
 * Pieces shared by the subcommands: the --config option, signal handling.
 *
 * @module
 */
import type { Command } from "@commander-js/extra-typings";
import { type Config, loadConfig } from "../config/config.ts";

/** Adds `--config FILE` (default `$MAILPEER_CONFIG` or `mailpeer.toml`). */
export function configOption<A extends unknown[], O extends Record<string, unknown>>(
  cmd: Command<A, O>,
) {
  return cmd.option("-c, --config <file>", "configuration file (TOML; see docs/config.md)");
}

/** Loads the configuration named by --config, $MAILPEER_CONFIG or ./mailpeer.toml. */
export function loadConfigFor(path: string | undefined): Promise<Config> {
  return loadConfig(path ?? Deno.env.get("MAILPEER_CONFIG") ?? "mailpeer.toml");
}

/** An AbortController aborted by SIGINT or SIGTERM. */
export function onSignals(): AbortController {
  const ctrl = new AbortController();
  const stop = () => ctrl.abort(new Error("stopped by signal"));
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    try {
      Deno.addSignalListener(sig, stop);
    } catch {
      // Not supported on this platform: Ctrl-C then simply ends the process.
    }
  }
  ctrl.signal.addEventListener("abort", () => {
    for (const sig of ["SIGINT", "SIGTERM"] as const) {
      try {
        Deno.removeSignalListener(sig, stop);
      } catch { /* ignore */ }
    }
  });
  return ctrl;
}
