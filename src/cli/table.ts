/**
 * `mailpeer table`: shows the host's control table, or removes one user's row (the explicit act
 * that lets a user id come back under a new identity key before its row expires).
 *
 * @module
 */
import { Command } from "@commander-js/extra-typings";
import { ConfigError } from "../errors.ts";
import type { PeerRow } from "../host/types.ts";
import { fromBase64Url } from "../message/base64.ts";
import { formatPeerRef } from "../message/key_fingerprint.ts";
import { configOption, loadConfigFor } from "./common.ts";
import { openStore } from "./wire.ts";

/** The `table` subcommand. */
export function tableCommand() {
  return configOption(new Command("table"))
    .description("show the host's control table, newest first")
    .option("--json", "print one JSON object per row")
    .option(
      "--remove <user-id>",
      "remove this user's row, so the user id may come back under a new identity key",
    )
    .action(async (opts) => {
      const config = await loadConfigFor(opts.config, { json: opts.json ?? false });
      if (!config.host) {
        throw new ConfigError(
          "ECONFIG",
          "Cannot show the table: the configuration has no [host] section; add one (see docs/config.md)",
        );
      }
      const store = await openStore(config.host);
      if (opts.remove !== undefined) {
        const userId = opts.remove;
        const network = config.network;
        const removed = await store.update((rows) => {
          const kept = rows.filter((r) => !(r.userId === userId && r.network === network));
          return { rows: kept, result: rows.length - kept.length };
        });
        await store.close();
        const line = opts.json
          ? JSON.stringify({ event: "row-removed", userId, removed })
          : `${removed} row${
            removed === 1 ? "" : "s"
          } of ${userId} removed from ${config.host.table}`;
        await Deno.stdout.write(new TextEncoder().encode(line + "\n"));
        return;
      }
      const rows = (await store.read()).sort((a, b) => b.requestedAt - a.requestedAt);
      await store.close();
      // user@fingerprint is what terminal.allow and terminal.deny take.
      const peerOf = (r: PeerRow) => formatPeerRef(r.userId, fromBase64Url(r.identityKey));
      const lines = opts.json
        ? rows.map((r) => JSON.stringify({ event: "row", ...r, peer: peerOf(r) }))
        : [
          `${rows.length} row${rows.length === 1 ? "" : "s"} in ${config.host.table}`,
          ...rows.map((r) =>
            `${new Date(r.requestedAt).toISOString()}  ${peerOf(r)}  ${
              r.endpoints.map((e) => `${e.address}:${e.port}/${e.transport}`).join(",").padEnd(28)
            } failures=${r.failures}  ${r.email}`
          ),
        ];
      await Deno.stdout.write(new TextEncoder().encode(lines.join("\n") + "\n"));
    });
}
