/**
 * `mailpeer table`: shows the host's control table.
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
    .action(async (opts) => {
      const config = await loadConfigFor(opts.config, { json: opts.json ?? false });
      if (!config.host) {
        throw new ConfigError(
          "ECONFIG",
          "Cannot show the table: the configuration has no [host] section; add one (see docs/config.md)",
        );
      }
      const rows = (await (await openStore(config.host)).read()).sort((a, b) =>
        b.requestedAt - a.requestedAt
      );
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
