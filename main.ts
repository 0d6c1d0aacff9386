/**
 * The mailpeer command line: parses arguments, wires the subcommands, and maps errors to exit
 * codes (0 done, 1 operational failure with a one-line message, 2 usage error). Only this file
 * exits the process.
 *
 * @module
 */
import { Command, CommanderError } from "@commander-js/extra-typings";
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
  "turn-check": async () => [
    (await import("./src/cli/turn_check.ts")).turnCheckCommand() as unknown as Command,
  ],
};

async function program(args: string[]): Promise<Command> {
  const root = new Command("mailpeer")
    .description("find the peers of a P2P application through ordinary e-mail")
    .version(VERSION)
    .exitOverride()
    .showHelpAfterError()
    .configureOutput({ writeErr: (s) => Deno.stderr.writeSync(new TextEncoder().encode(s)) });
  const chosen = args[0] !== undefined && args[0] in SUBCOMMANDS
    ? [args[0]]
    : Object.keys(SUBCOMMANDS);
  for (const name of chosen) {
    for (const cmd of await SUBCOMMANDS[name]!()) {
      root.addCommand(cmd.exitOverride().showHelpAfterError());
    }
  }
  return root;
}

function wantsJson(args: string[]): boolean {
  return args.includes("--json");
}

async function main(args: string[]): Promise<number> {
  try {
    await (await program(args)).parseAsync(args, { from: "user" });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version print and exit 0; everything else is a usage error.
      return err.exitCode === 0 ? 0 : 2;
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
      (wantsJson(args) ? Deno.stdout : Deno.stderr).writeSync(new TextEncoder().encode(line));
      return 1;
    }
    throw err;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
