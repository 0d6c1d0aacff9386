/**
 * `mailpeer turn-check`: allocates a relay on each `terminal.turn_servers` entry, says what
 * peers would send to (the relayed address) and what the server saw (the mapped address), and
 * releases it. A way to check the URL, user and password before a session needs the relay.
 *
 * @module
 */
import { Command } from "@commander-js/extra-typings";
import type { TurnServerConfig } from "../config/config_schema.ts";
import { resolveSecret } from "../config/secret.ts";
import { ConfigError, isMailpeerError } from "../errors.ts";
import type { Endpoint } from "../message/types.ts";
import { openTurnSocket, TurnClient } from "../peer/turn_client.ts";
import { configOption, loadConfigFor } from "./common.ts";
import { jsonLine, printable } from "./terminal_text.ts";

/** What one server answered. */
export type TurnCheck =
  | { ok: true; url: string; relayed: Endpoint; mapped: Endpoint; lifetimeS: number; ms: number }
  | { ok: false; url: string; error: Error };

/**
 * Allocates and releases a relay on `server`, from a UDP socket of its own. Never throws for
 * what the server or the secret does: that is `ok: false` with the one-line error.
 */
export async function checkTurnServer(
  server: TurnServerConfig,
  options: { requests?: number; signal?: AbortSignal } = {},
): Promise<TurnCheck> {
  const started = performance.now();
  let socket: ReturnType<typeof openTurnSocket> | undefined;
  try {
    const password = await resolveSecret(server.password, `TURN password of ${server.url}`);
    socket = openTurnSocket({ towards: server.host });
    const turn = await TurnClient.allocate(
      {
        url: server.url,
        user: server.user,
        password,
        ...(server.realm ? { realm: server.realm } : {}),
      },
      {
        socket,
        ...(options.requests ? { requests: options.requests } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      },
    );
    const ms = Math.round(performance.now() - started);
    const lifetimeS = Math.round((turn.expiresAt - Date.now()) / 1000);
    await turn.close();
    return { ok: true, url: server.url, relayed: turn.relayed, mapped: turn.mapped, lifetimeS, ms };
  } catch (err) {
    if (!isMailpeerError(err)) throw err;
    return { ok: false, url: server.url, error: err };
  } finally {
    await socket?.close();
  }
}

/** The `turn-check` subcommand. */
export function turnCheckCommand() {
  return configOption(new Command("turn-check"))
    .description(
      "allocate a relay on each terminal.turn_servers entry, print its addresses, release it",
    )
    .option("--json", "print one JSON object per server")
    .action(async (opts) => {
      const json = opts.json ?? false;
      const config = await loadConfigFor(opts.config, { json });
      const servers = config.terminal?.turnServers ?? [];
      if (servers.length === 0) {
        throw new ConfigError(
          "ECONFIG",
          "Cannot check the TURN servers: terminal.turn_servers lists none; add one (see docs/config.md)",
        );
      }
      let failure: Error | undefined;
      for (const server of servers) {
        const r = await checkTurnServer(server);
        const ep = (e: Endpoint) =>
          `${e.address.includes(":") ? `[${e.address}]` : e.address}:${e.port}`;
        const line = r.ok
          ? json
            ? jsonLine({
              event: "turn-allocated",
              url: r.url,
              relayed: r.relayed,
              mapped: r.mapped,
              lifetimeS: r.lifetimeS,
              ms: r.ms,
            })
            : `${r.url}: relayed ${ep(r.relayed)}, mapped ${
              ep(r.mapped)
            }, lifetime ${r.lifetimeS} s, ${r.ms} ms; released`
          : json
          ? jsonLine({
            event: "turn-failed",
            url: r.url,
            code: (r.error as { code?: string }).code,
            message: r.error.message,
          })
          : `${r.url}: ${printable(r.error.message)}`;
        await Deno.stdout.write(new TextEncoder().encode(line + "\n"));
        if (!r.ok) failure ??= r.error;
      }
      // One line on the way out (exit 1) when a server failed; each is on stdout already.
      if (failure) throw failure;
    });
}
