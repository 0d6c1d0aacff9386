/**
 * Pieces shared by the subcommands: the --config option, signal handling.
 *
 * @module
 */
import type { Command } from "@commander-js/extra-typings";
import type { Config } from "../config/config_schema.ts";
import { loadConfig } from "../config/config.ts";
import { cliSink } from "./output.ts";

/** Adds `--config FILE` (default `$MAILPEER_CONFIG` or `mailpeer.toml`). */
export function configOption<A extends unknown[], O extends Record<string, unknown>>(
  cmd: Command<A, O>,
) {
  return cmd.option("-c, --config <file>", "configuration file (TOML; see docs/config.md)");
}

/**
 * Loads the configuration named by --config, $MAILPEER_CONFIG or ./mailpeer.toml, and reports
 * each of its warnings (a setting that works but weakens security) as a `warning` event: a
 * JSON line with `json`, else a line on stderr.
 */
export async function loadConfigFor(
  path: string | undefined,
  options: { json?: boolean } = {},
): Promise<Config> {
  const config = await loadConfig(path ?? Deno.env.get("MAILPEER_CONFIG") ?? "mailpeer.toml");
  const sink = cliSink({ json: options.json ?? false });
  for (const message of config.warnings ?? []) sink({ event: "warning", message });
  return config;
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
