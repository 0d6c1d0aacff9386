/**
 * The mailpeer command line: parses arguments, wires the subcommands, and maps errors to exit
 * codes (0 done, 1 operational failure with a one-line message, 2 usage error). Only this file
 * exits the process.
 *
 * @module
 */
import { Command, CommanderError } from "@commander-js/extra-typings";
import { clientCommand } from "./src/cli/client.ts";
import { combinedCommand } from "./src/cli/combined.ts";
import { demoCommand } from "./src/cli/demo.ts";
import { hostCommand } from "./src/cli/host.ts";
import { keygenCommand } from "./src/cli/keygen.ts";
import { tableCommand } from "./src/cli/table.ts";
import { receiveCommand, sendCommand } from "./src/cli/transfer.ts";
import { isMailpeerError } from "./src/errors.ts";
import { VERSION } from "./src/version.ts";

function program(): Command {
  const root = new Command("mailpeer")
    .description("find the peers of a P2P application through ordinary e-mail")
    .version(VERSION)
    .exitOverride()
    .showHelpAfterError()
    .configureOutput({ writeErr: (s) => Deno.stderr.writeSync(new TextEncoder().encode(s)) });
  for (
    const cmd of [
      keygenCommand(),
      hostCommand(),
      clientCommand(),
      combinedCommand(),
      demoCommand(),
      tableCommand(),
      sendCommand(),
      receiveCommand(),
    ]
  ) {
    root.addCommand(cmd.exitOverride().showHelpAfterError() as unknown as Command);
  }
  return root;
}

function wantsJson(args: string[]): boolean {
  return args.includes("--json");
}

async function main(args: string[]): Promise<number> {
  try {
    await program().parseAsync(args, { from: "user" });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version print and exit 0; everything else is a usage error.
      return err.exitCode === 0 ? 0 : 2;
    }
    if (isMailpeerError(err)) {
      const line = wantsJson(args)
        ? JSON.stringify({
          time: new Date().toISOString(),
          event: "error",
          code: err.code,
          message: err.message,
        }) + "\n"
        : `mailpeer: ${err.message}\n`;
      (wantsJson(args) ? Deno.stdout : Deno.stderr).writeSync(new TextEncoder().encode(line));
      return 1;
    }
    throw err;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
