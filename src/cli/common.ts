/**
 * Pieces shared by the subcommands: the --config and --transport options, and how a signal
 * stops a run (docs/cli.md "Stopping").
 *
 * @module
 */
import { type Command, Option } from "@commander-js/extra-typings";
import type { Config } from "../config/config_schema.ts";
import { loadConfig } from "../config/config.ts";
import { ConfigError } from "../errors.ts";
import type { TransportKind } from "../message/types.ts";
import { cliSink } from "./output.ts";

/** Where a subcommand looks for its configuration, in order (docs/cli.md "Configuration"). */
export const CONFIG_LOOKUP = "--config FILE, else $MAILPEER_CONFIG, else ./mailpeer.toml";

/** Adds `--config FILE` (default `$MAILPEER_CONFIG` or `mailpeer.toml`). */
export function configOption<A extends unknown[], O extends Record<string, unknown>>(
  cmd: Command<A, O>,
) {
  return cmd.option(
    "-c, --config <file>",
    "configuration file (TOML; default $MAILPEER_CONFIG, else ./mailpeer.toml; see docs/config.md)",
  );
}

/** Adds `--transport tcp|udp`, which overrides `terminal.transport` for this run. */
export function transportOption<A extends unknown[], O extends Record<string, unknown>>(
  cmd: Command<A, O>,
) {
  return cmd.addOption(
    new Option("--transport <kind>", "peer transport for this run (overrides terminal.transport)")
      .choices(["tcp", "udp"] as const),
  );
}

/** `config` with `terminal.transport` replaced by `transport` when one was given. */
export function withTransport(config: Config, transport: TransportKind | undefined): Config {
  if (transport === undefined || !config.terminal) return config;
  return { ...config, terminal: { ...config.terminal, transport } };
}

/**
 * The configuration path a run uses, and where it came from: --config, else $MAILPEER_CONFIG
 * (when set and not empty), else ./mailpeer.toml.
 */
export function configPath(
  option: string | undefined,
): { path: string; from: "--config" | "$MAILPEER_CONFIG" | "default" } {
  if (option !== undefined) return { path: option, from: "--config" };
  const fromEnv = Deno.env.get("MAILPEER_CONFIG");
  if (fromEnv) return { path: fromEnv, from: "$MAILPEER_CONFIG" };
  return { path: "mailpeer.toml", from: "default" };
}

/**
 * A configuration file that is not there, said with where the name came from: a first run
 * without --config should learn about --config and $MAILPEER_CONFIG, not "check the --config
 * path" of an option it never gave.
 */
async function checkConfigExists(found: ReturnType<typeof configPath>): Promise<void> {
  try {
    await Deno.stat(found.path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) return; // loadConfig names other problems
    const why = found.from === "--config"
      ? "check the --config path"
      : found.from === "$MAILPEER_CONFIG"
      ? "it is named by $MAILPEER_CONFIG; fix or unset that variable"
      : "no --config was given and $MAILPEER_CONFIG is not set; pass --config FILE, or write " +
        "./mailpeer.toml (docs/config.md)";
    throw new ConfigError(
      "ECONFIG",
      `Cannot read the configuration ${found.path}: it does not exist; ${why}`,
      { cause: err },
    );
  }
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
  const found = configPath(path);
  await checkConfigExists(found);
  const config = await loadConfig(found.path);
  const sink = cliSink({ json: options.json ?? false });
  for (const message of config.warnings ?? []) sink({ event: "warning", message });
  return config;
}

/** The signals that stop a run, and the exit code of a run they interrupt (128 + number). */
export const STOP_SIGNALS = { SIGINT: 130, SIGTERM: 143 } as const;
/** A signal that stops a run. */
export type StopSignal = keyof typeof STOP_SIGNALS;

/**
 * Thrown by a subcommand whose work a signal interrupted (a client waiting for its reply, on
 * standby or in a chat). Not a failure: main.ts ends the run with a `stopped` event and exit
 * code 130 (SIGINT) or 143 (SIGTERM), without a stack (docs/cli.md "Stopping").
 */
export class StoppedError extends Error {
  constructor(readonly signal: StopSignal) {
    super(`stopped by ${signal}`);
    this.name = "StoppedError";
  }
}

let received: StopSignal | undefined;

/** The signal that stopped this process's run, if one did. */
export function stopSignal(): StopSignal | undefined {
  return received;
}

/**
 * An AbortController aborted by SIGINT (Ctrl-C) or SIGTERM, with a {@link StoppedError} as its
 * reason. After the first signal the handlers are removed: a second Ctrl-C ends the process at
 * once, should cleaning up hang.
 */
export function onSignals(): AbortController {
  const ctrl = new AbortController();
  const stops = new Map<StopSignal, () => void>();
  for (const sig of Object.keys(STOP_SIGNALS) as StopSignal[]) {
    const stop = () => {
      received ??= sig;
      ctrl.abort(new StoppedError(sig));
    };
    try {
      Deno.addSignalListener(sig, stop);
      stops.set(sig, stop);
    } catch {
      // Not supported on this platform: Ctrl-C then simply ends the process.
    }
  }
  ctrl.signal.addEventListener("abort", () => {
    for (const [sig, stop] of stops) {
      try {
        Deno.removeSignalListener(sig, stop);
      } catch { /* ignore */ }
    }
  });
  return ctrl;
}

/**
 * Runs `work` and, when `signal` was aborted by a stop signal meanwhile, throws that
 * {@link StoppedError} whatever `work` did: an interrupted wait rejects with whatever the
 * aborted operation threw, and an interrupted chat may end normally, but either way the user
 * stopped the run before its work was done.
 */
export async function untilStopped<T>(signal: AbortSignal, work: () => Promise<T>): Promise<T> {
  try {
    const result = await work();
    if (signal.reason instanceof StoppedError) throw signal.reason;
    return result;
  } catch (err) {
    if (signal.reason instanceof StoppedError) throw signal.reason;
    throw err;
  }
}
