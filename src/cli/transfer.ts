/**
 * `mailpeer send FILE` and `mailpeer receive [DIR]`: find a peer through the host mailbox,
 * then move one file over the encrypted link, size and SHA-256 checked, with a progress bar.
 *
 * @module
 */
import { Command } from "@commander-js/extra-typings";
import { receiveFile, sendFile, type TransferProgress } from "../apps/file_transfer.ts";
import { renderProgress } from "../apps/progress.ts";
import type { EventSink } from "../events.ts";
import { rendezvousFromConfig } from "./client.ts";
import { configOption, loadConfigFor, onSignals } from "./common.ts";
import { cliSink } from "./output.ts";

const encoder = new TextEncoder();

/** Progress reporting: a redrawn bar on stderr for a person, a few events for `--json`. */
function progressReporter(name: string, json: boolean, onEvent: EventSink) {
  const started = Date.now();
  let lastDraw = 0;
  let lastPercent = -1;
  return {
    update(p: TransferProgress) {
      const now = Date.now();
      if (json) {
        const percent = p.total === 0 ? 100 : Math.floor((p.done / p.total) * 10) * 10;
        if (percent !== lastPercent) {
          lastPercent = percent;
          onEvent({ event: "transfer-progress", name, done: p.done, total: p.total });
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
  return configOption(new Command("send"))
    .description("find a peer, send it one file (size and SHA-256 checked), and disconnect")
    .argument("<file>", "the file to send")
    .option("--json", "print events as JSON lines")
    .action(async (file, opts) => {
      const config = await loadConfigFor(opts.config, { json: opts.json ?? false });
      const onEvent = cliSink({ json: opts.json ?? false });
      const stop = onSignals();
      const session = await rendezvousFromConfig(config, { onEvent, signal: stop.signal });
      const { link } = session;
      const progress = progressReporter(file, opts.json ?? false, onEvent);
      try {
        const sent = await sendFile(link, file, {
          onProgress: progress.update,
          signal: stop.signal,
        });
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
}

/** The `receive` subcommand. */
export function receiveCommand() {
  return configOption(new Command("receive"))
    .description("find a peer (or wait for one), receive one file into DIR, and disconnect")
    .argument("[dir]", "where to store the file", ".")
    .option("--overwrite", "replace an existing file of the same name")
    .option("--json", "print events as JSON lines")
    .action(async (dir, opts) => {
      const config = await loadConfigFor(opts.config, { json: opts.json ?? false });
      const onEvent = cliSink({ json: opts.json ?? false });
      const stop = onSignals();
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
}
