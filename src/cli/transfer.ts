/**
 * `mailpeer send FILE` and `mailpeer receive [DIR]`: find a peer through the host mailbox,
 * then move one file over the encrypted link, size and SHA-256 checked, with a progress bar.
 * The file (or directory) is checked before anything is mailed (docs/cli.md "send and
 * receive").
 *
 * @module
 */
import { Command } from "@commander-js/extra-typings";
import { basename, join } from "node:path";
import { receiveFile, sendFile, sendStream, type TransferProgress } from "../apps/file_transfer.ts";
import { renderProgress } from "../apps/progress.ts";
import type { EventSink } from "../events.ts";
import { ConfigError } from "../errors.ts";
import { rendezvousFromConfig } from "./client.ts";
import {
  configOption,
  loadConfigFor,
  onSignals,
  transportOption,
  untilStopped,
  withTransport,
} from "./common.ts";
import { cliSink } from "./output.ts";

const encoder = new TextEncoder();
const STREAM_PROGRESS_STEP = 16 * 1024 * 1024;

/** Progress reporting: a redrawn bar on stderr for a person, a few events for `--json`. */
function progressReporter(name: string, json: boolean, onEvent: EventSink) {
  const started = Date.now();
  let lastDraw = 0;
  let lastStep = -1;
  return {
    update(p: TransferProgress) {
      const now = Date.now();
      if (json) {
        // Every tenth of the file, or every 16 MiB of a stream of unknown length.
        const step = p.total === undefined
          ? Math.floor(p.done / STREAM_PROGRESS_STEP)
          : p.total === 0
          ? 10
          : Math.floor((p.done / p.total) * 10);
        if (step !== lastStep) {
          lastStep = step;
          onEvent({
            event: "transfer-progress",
            name,
            done: p.done,
            ...(p.total === undefined ? {} : { total: p.total }),
          });
        }
      } else if (now - lastDraw >= 100 || p.done === p.total) {
        lastDraw = now;
        const line = renderProgress({ done: p.done, total: p.total, elapsedMs: now - started });
        Deno.stderr.writeSync(encoder.encode(`\r${line}`));
      }
    },
    end() {
      if (!json) Deno.stderr.writeSync(encoder.encode("\n"));
    },
  };
}

/** The `send` subcommand. */
export function sendCommand() {
  return transportOption(configOption(new Command("send")))
    .description(
      "find a peer, send it one file (size and SHA-256 checked), and disconnect; " +
        "works over TCP and UDP",
    )
    .argument("<file>", 'the file to send (checked before anything is mailed); "-" for stdin')
    .option("--name <name>", "the name the receiver stores it under (default: the file's name)")
    .option("--json", "print events as JSON lines")
    .addHelpText("after", TRANSFER_HELP)
    .action(async (file, opts) => {
      const stdin = file === "-";
      if (stdin) checkPipedStdin();
      else await checkReadableFile(file);
      const name = opts.name ?? (stdin ? "stdin" : basename(file));
      const config = withTransport(
        await loadConfigFor(opts.config, { json: opts.json ?? false }),
        opts.transport,
      );
      const onEvent = cliSink({ json: opts.json ?? false });
      const stop = onSignals();
      await untilStopped(stop.signal, async () => {
        const session = await rendezvousFromConfig(config, { onEvent, signal: stop.signal });
        const { link } = session;
        const progress = progressReporter(name, opts.json ?? false, onEvent);
        try {
          const how = { name, onProgress: progress.update, signal: stop.signal };
          const sent = stdin
            ? await sendStream(link, Deno.stdin, how)
            : await sendFile(link, file, how);
          progress.end();
          onEvent({
            event: "file-transferred",
            direction: "sent",
            name: sent.name,
            size: sent.size,
            sha256: sent.sha256,
          });
        } finally {
          await link.close().finally(() => session.close());
          onEvent({ event: "disconnected", peer: link.remote.userId });
        }
      });
    });
}

/** The `receive` subcommand. */
export function receiveCommand() {
  return transportOption(configOption(new Command("receive")))
    .description(
      "find a peer (or wait for one), receive one file into DIR, and disconnect; " +
        "works over TCP and UDP",
    )
    .argument("[dir]", "where to store the file (checked before anything is mailed)", ".")
    .option("--overwrite", "replace an existing file of the same name")
    .option("--json", "print events as JSON lines")
    .addHelpText("after", TRANSFER_HELP)
    .action(async (dir, opts) => {
      await checkWritableDir(dir);
      const config = withTransport(
        await loadConfigFor(opts.config, { json: opts.json ?? false }),
        opts.transport,
      );
      const onEvent = cliSink({ json: opts.json ?? false });
      const stop = onSignals();
      await untilStopped(stop.signal, async () => {
        const session = await rendezvousFromConfig(config, { onEvent, signal: stop.signal });
        const { link } = session;
        let progress: ReturnType<typeof progressReporter> | undefined;
        try {
          const got = await receiveFile(link, dir, {
            overwrite: opts.overwrite ?? false,
            signal: stop.signal,
            onProgress: (p) => {
              progress ??= progressReporter("file", opts.json ?? false, onEvent);
              progress.update(p);
            },
          });
          progress?.end();
          onEvent({
            event: "file-transferred",
            direction: "received",
            name: got.path,
            size: got.size,
            sha256: got.sha256,
          });
        } finally {
          await link.close().finally(() => session.close());
          onEvent({ event: "disconnected", peer: link.remote.userId });
        }
      });
    });
}

const TRANSFER_HELP = `
Both ends run mailpeer with the same network: one \`send FILE\`, the other \`receive DIR\`.
\`send -\` sends what is piped in, to its end (\`tar c maps | mailpeer send - --name maps.tar\`);
the receiver holds it to its size limit as it comes.
The file goes over the encrypted peer link, TCP or UDP (terminal.transport, or --transport);
over UDP a reliable stream carries it. Ctrl-C stops at any time (exit 130); a partly received
file is deleted, never left under its name.`;

/**
 * The file `send` will send, checked before anything is mailed: it exists, is a regular file
 * and can be read. A one-line `EFILE` error otherwise.
 */
export async function checkReadableFile(path: string): Promise<void> {
  const problem = (what: string, todo: string, cause: unknown) =>
    new ConfigError("EFILE", `Cannot send ${path}: it ${what}; ${todo}`, { cause });
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (err) {
    throw err instanceof Deno.errors.NotFound
      ? problem("does not exist", "check the path", err)
      : problem(`cannot be read (${(err as Error).message})`, "check its permissions", err);
  }
  if (info.isDirectory) {
    throw problem(
      "is a directory",
      "name one file (pack a directory into an archive first)",
      "dir",
    );
  }
  if (!info.isFile) {
    throw problem("is not a regular file", "name a regular file", "not a regular file");
  }
  try {
    (await Deno.open(path, { read: true })).close();
  } catch (err) {
    throw problem("cannot be read (permission denied)", "check its permissions", err);
  }
}

/**
 * `send -` reads a pipe or a file redirected into stdin, never a person typing: a terminal on
 * stdin is a one-line `EFILE` error before anything is mailed.
 */
export function checkPipedStdin(): void {
  if (Deno.stdin.isTerminal()) {
    throw new ConfigError(
      "EFILE",
      "Cannot send -: stdin is a terminal; pipe the data in (tar c dir | mailpeer send - " +
        "--name dir.tar) or name a file",
      { cause: "stdin is a terminal" },
    );
  }
}

/**
 * The directory `receive` writes into, checked before anything is mailed: it exists, is a
 * directory and can be written (a file is created in it and removed).
 */
export async function checkWritableDir(path: string): Promise<void> {
  const problem = (what: string, todo: string, cause: unknown) =>
    new ConfigError("EFILE", `Cannot receive into ${path}: it ${what}; ${todo}`, { cause });
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (err) {
    throw err instanceof Deno.errors.NotFound
      ? problem("does not exist", "create it first", err)
      : problem(`cannot be read (${(err as Error).message})`, "check its permissions", err);
  }
  if (!info.isDirectory) throw problem("is not a directory", "name a directory", "not a dir");
  const probe = join(path, `.mailpeer-check-${crypto.randomUUID()}`);
  try {
    await Deno.writeFile(probe, new Uint8Array(), { createNew: true, mode: 0o600 });
  } catch (err) {
    throw problem("cannot be written (permission denied)", "check its permissions", err);
  }
  await Deno.remove(probe).catch(() => {});
}
