/**
 * The mailpeer command line: parses arguments, wires the subcommands, and maps errors to exit
 * codes (0 done, 1 operational failure with a one-line message, 2 usage error, 130 or 143 when
 * Ctrl-C or SIGTERM stopped the work; docs/cli.md). Only this file exits the process.
 *
 * @module
 */
import { Command, CommanderError } from "@commander-js/extra-typings";
import { CONFIG_LOOKUP, STOP_SIGNALS, StoppedError, stopSignal } from "./src/cli/common.ts";
import { cliSink, writeQuietly } from "./src/cli/output.ts";
import { jsonLine, printable } from "./src/cli/terminal_text.ts";
import { isMailpeerError } from "./src/errors.ts";
import { VERSION } from "./src/version.ts";

/**
 * Each subcommand's module, loaded only when that subcommand runs (or for help): a cron run of
 * `host --once` does not pay for loading the client, the demo or the file transfer.
 */
const SUBCOMMANDS: Record<string, () => Promise<Command[]>> = {
  keygen: async () => [(await import("./src/cli/keygen.ts")).keygenCommand() as unknown as Command],
  host: async () => [(await import("./src/cli/host.ts")).hostCommand() as unknown as Command],
  client: async () => [(await import("./src/cli/client.ts")).clientCommand() as unknown as Command],
  combined: async () => [
    (await import("./src/cli/combined.ts")).combinedCommand() as unknown as Command,
  ],
  demo: async () => [(await import("./src/cli/demo.ts")).demoCommand() as unknown as Command],
  table: async () => [(await import("./src/cli/table.ts")).tableCommand() as unknown as Command],
  send: async () => [(await import("./src/cli/transfer.ts")).sendCommand() as unknown as Command],
  receive: async () => [
    (await import("./src/cli/transfer.ts")).receiveCommand() as unknown as Command,
  ],
  init: async () => [(await import("./src/cli/init.ts")).initCommand() as unknown as Command],
  "turn-check": async () => [
    (await import("./src/cli/turn_check.ts")).turnCheckCommand() as unknown as Command,
  ],
  doctor: async () => [(await import("./src/cli/doctor.ts")).doctorCommand() as unknown as Command],
};

const EXIT_CODES = `Exit codes:
  0    done (also a host or combined run that Ctrl-C or SIGTERM ended)
  1    failure: one line says what is wrong and what to do
  2    usage error: one line, and \`--help\` shows the usage
  130  Ctrl-C stopped the work (waiting for a reply, on standby, in a chat or a transfer)
  143  SIGTERM stopped the work`;

const ROOT_HELP = `
Configuration: ${CONFIG_LOOKUP} (docs/config.md).

Examples:
  mailpeer keygen --host host@example.org -o host.keys.json   # prints the host card
  mailpeer keygen --user alice -o alice.identity.json
  mailpeer host --config mailpeer.toml           # answer requests until Ctrl-C
  mailpeer client                                # find a peer, chat: type lines, Ctrl-D ends
  mailpeer client --transport udp -m "hello"     # one line, print the answer, disconnect
  mailpeer send photo.jpg                        # find a peer, send it one file
  mailpeer receive ~/Downloads                   # wait for a peer, receive one file
  mailpeer demo                                  # everything on a temporary local post office

Every subcommand takes --json: one JSON object per line, each with an "event" field; the last
one is "error" on a failure and "stopped" after Ctrl-C.

${EXIT_CODES}`;

/** What every subcommand's help ends with. */
function subcommandHelp(cmd: Command): string {
  const config = cmd.options.some((o) => o.long === "--config")
    ? `\nConfiguration: ${CONFIG_LOOKUP} (docs/config.md).\n`
    : "";
  return `${config}\n${EXIT_CODES}`;
}

/**
 * A usage error as one line, naming the subcommand and where its usage is: commander's
 * "error: unknown option '--x'" becomes "mailpeer host: unknown option '--x'; see `mailpeer
 * host --help`".
 */
function usageLine(cmd: Command, message: string): string {
  const name = cmd.parent ? `mailpeer ${cmd.name()}` : "mailpeer";
  const what = message.trim().replace(/^error: /, "").replace(/\s*\n\s*/g, " ").replace(/\.$/, "");
  return `${name}: ${what}; see \`${name} --help\`\n`;
}

/** Usage errors are one line and a pointer to --help, never the whole help (docs/cli.md). */
function configured(cmd: Command): Command {
  return cmd
    .exitOverride()
    .showHelpAfterError(false)
    .configureOutput({
      writeErr: (s) => Deno.stderr.writeSync(new TextEncoder().encode(s)),
      outputError: (s, write) => write(usageLine(cmd, s)),
    });
}

async function program(args: string[]): Promise<Command> {
  const root = configured(
    new Command("mailpeer")
      .description("find the peers of a P2P application through ordinary e-mail")
      .version(VERSION)
      .addHelpText("after", ROOT_HELP),
  );
  // `--version` alone needs no subcommand; help and usage errors list them all.
  const chosen = args[0] !== undefined && args[0] in SUBCOMMANDS
    ? [args[0]]
    : args.length === 1 && (args[0] === "--version" || args[0] === "-V")
    ? []
    : Object.keys(SUBCOMMANDS);
  for (const name of chosen) {
    for (const cmd of await SUBCOMMANDS[name]!()) {
      root.addCommand(configured(cmd).addHelpText("after", subcommandHelp(cmd)));
    }
  }
  return root;
}

function wantsJson(args: string[]): boolean {
  return args.includes("--json");
}

/** The last word of a run a signal stopped: a `stopped` event, or one line on stderr. */
function reportStopped(signal: keyof typeof STOP_SIGNALS, json: boolean): void {
  if (json) {
    cliSink({ json: true })({ event: "stopped", reason: "signal", signal });
  } else {
    const how = signal === "SIGINT" ? "Ctrl-C" : signal;
    Deno.stderr.writeSync(new TextEncoder().encode(`mailpeer: stopped by ${how}\n`));
  }
}

async function main(args: string[]): Promise<number> {
  try {
    await (await program(args)).parseAsync(args, { from: "user" });
    // A host (or combined after its chat) ends by a signal: that is its normal end.
    const signal = stopSignal();
    if (signal) reportStopped(signal, wantsJson(args));
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version print and exit 0; everything else is a usage error.
      return err.exitCode === 0 ? 0 : 2;
    }
    // Work a signal interrupted ends with whatever the interrupted operation threw: still a
    // stop the user asked for, not a failure (docs/cli.md "Stopping").
    const signal = err instanceof StoppedError ? err.signal : stopSignal();
    if (signal) {
      reportStopped(signal, wantsJson(args));
      return STOP_SIGNALS[signal];
    }
    if (isMailpeerError(err)) {
      const line = wantsJson(args)
        ? jsonLine({
          time: new Date().toISOString(),
          event: "error",
          code: err.code,
          message: err.message,
        }) + "\n"
        : `mailpeer: ${printable(err.message)}\n`; // may quote a peer (a refusal reason)
      writeQuietly(wantsJson(args) ? Deno.stdout : Deno.stderr, new TextEncoder().encode(line));
      return 1;
    }
    throw err;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
