/**
 * `mailpeer client`: the terminal. Mails a request, waits for the reply, connects to a peer
 * (or stands by), then chats over the encrypted link.
 *
 * @module
 */
import { loggerFromEnv } from "../log.ts";
import { Command } from "@commander-js/extra-typings";
import { receiveLine, runChat, sendLine } from "../apps/chat.ts";
import type { Config, PortMappingConfig, TurnServerConfig } from "../config/config_schema.ts";
import { resolveSecret } from "../config/secret.ts";
import { ConfigError } from "../errors.ts";
import type { EventSink } from "../events.ts";
import { TcpTransport } from "../peer/tcp_transport.ts";
import type { TurnServer } from "../peer/turn_client.ts";
import { UdpTransport } from "../peer/udp_transport.ts";
import type { PeerLink } from "../peer/types.ts";
import {
  detectAddress,
  ExplicitAddress,
  globalIPv6Addresses,
  InterfaceAddress,
  networkInterfaces,
} from "../terminal/address.ts";
import {
  SessionPortMapper,
  type SessionPortMapperOptions,
} from "../terminal/port_mapping/session_port_mapper.ts";
import { defaultListenAddress, type Rendezvous, Terminal } from "../terminal/terminal.ts";
import { configOption, loadConfigFor, onSignals } from "./common.ts";
import { cliSink } from "./output.ts";
import { preflight } from "./preflight.ts";
import { printable } from "./terminal_text.ts";
import { loadIdentity, openSender, openSource, parseHostCards } from "./wire.ts";

/**
 * The router mapping of one session from `terminal.port_mapping` (docs/port-mapping.md), or
 * undefined when it is "off". What the mapper logs as `warn` (no mapping granted, a failed
 * renewal, a lost lease, a refused SSDP answer) is a `warning` event: the user asked for the
 * mapping and should hear when it does not work.
 */
export function portMapperFromConfig(
  config: PortMappingConfig,
  options:
    & { onEvent: EventSink }
    & Omit<SessionPortMapperOptions, "gateway" | "upnpUrl" | "protocols">,
): SessionPortMapper | undefined {
  if (config === "off") return undefined;
  const { onEvent, ...rest } = options;
  return new SessionPortMapper({
    logger: {
      log: (level, message) => {
        if (level === "warn" || level === "error") onEvent({ event: "warning", message });
      },
    },
    ...rest,
    ...(config.gateway !== undefined ? { gateway: config.gateway } : {}),
    ...(config.upnpUrl !== undefined ? { upnpUrl: config.upnpUrl } : {}),
    protocols: config.protocols,
  });
}

/** A link from {@link rendezvousFromConfig}, and what its session holds besides the link. */
export interface ConfigRendezvous extends Rendezvous {
  /**
   * Ends the session's other resources: deletes the router mapping (`terminal.port_mapping`),
   * which peers may reach the link through while it lasts. Call it when the chat or transfer
   * ends, on every way out. Idempotent; never rejects.
   */
  close(): Promise<void>;
}

/** `terminal.turn_servers` with their passwords read (`password_env` / `password_file`). */
export async function turnServersFromConfig(
  servers: readonly TurnServerConfig[],
): Promise<TurnServer[]> {
  const out: TurnServer[] = [];
  for (const server of servers) {
    out.push({
      url: server.url,
      user: server.user,
      password: await resolveSecret(server.password, `TURN password of ${server.url}`),
      ...(server.realm ? { realm: server.realm } : {}),
    });
  }
  return out;
}

/**
 * Runs the terminal flow of a configuration until a link is established. The caller closes the
 * result when the session ends; on failure everything is closed already.
 */
export async function rendezvousFromConfig(
  config: Config,
  options: { onEvent: EventSink; signal?: AbortSignal },
): Promise<ConfigRendezvous> {
  const tc = config.terminal;
  if (!tc) {
    throw new ConfigError(
      "ECONFIG",
      `Cannot start a terminal: ${
        config.path ?? "the configuration"
      } has no [terminal] section; add one (see docs/config.md)`,
    );
  }
  // Keys, passwords and cards before any mailbox (docs/config.md "Pre-flight").
  await preflight(config, { terminal: true }, { onEvent: options.onEvent });
  const identity = await loadIdentity(tc.identity);
  const hosts = parseHostCards(tc.hosts);
  // An explicit address is announced as it is. "auto": a global interface address, and the
  // STUN mapping of the listening port, which the terminal asks for itself (from that port).
  const stunServers = tc.address === "auto" ? tc.stunServers : [];
  const found = tc.address !== "auto"
    ? await new ExplicitAddress(tc.address).detect()
    : stunServers.length > 0
    ? await new InterfaceAddress().detect()
    : await detectAddress([new InterfaceAddress()]);
  if (found) {
    options.onEvent({ event: "address-detected", address: found.address, source: found.source });
  }
  const source = await openSource(tc.receive, {
    pollIntervalMs: tc.pollIntervalMs,
    configKey: "terminal.receive",
  });
  const sender = await openSender(tc.send);
  // TURN passwords are read when the session starts, like the mail passwords.
  const turnServers = tc.transport === "udp" ? await turnServersFromConfig(tc.turnServers) : [];
  if (tc.transport !== "udp" && tc.turnServers.length > 0) {
    options.onEvent({
      event: "warning",
      message: "terminal.turn_servers is not used over TCP: a TURN relay carries UDP only",
    });
  }
  const portMapper = portMapperFromConfig(tc.portMapping, { onEvent: options.onEvent });
  const close = () => portMapper?.close().catch(() => {}) ?? Promise.resolve();
  try {
    // Find the router while the terminal listens and asks STUN.
    void portMapper?.prepare();
    const terminal = new Terminal({
      identity,
      email: tc.email,
      network: config.network,
      hosts,
      sender,
      source,
      transport: tc.transport === "udp" ? new UdpTransport() : new TcpTransport(),
      ...(found ? { advertise: found.address } : {}),
      stunServers,
      listen: {
        // UDP listens dual-stack (`::`) when this machine has a global IPv6 address or an IPv6 STUN
        // server is configured (docs/nat.md "IPv6").
        address: tc.listen ?? defaultListenAddress(found?.address ?? "0.0.0.0", {
          ...(tc.transport === "udp" ? { stunServers } : {}),
          ipv6: tc.transport === "udp" && globalIPv6Addresses(networkInterfaces()).length > 0,
        }),
        port: tc.port,
      },
      subjectMatch: config.subjectMatch,
      policy: { allow: tc.allow, deny: tc.deny },
      replyTimeoutMs: tc.replyTimeoutMs,
      connectTimeoutMs: tc.connectTimeoutMs,
      standbyTimeoutMs: tc.standbyTimeoutMs,
      punchWindowMs: tc.punchWindowMs,
      upgradeIntervalMs: tc.upgradeIntervalMs,
      ...(portMapper ? { portMapper } : {}),
      turnServers,
      onEvent: options.onEvent,
      logger: loggerFromEnv(),
    });
    const rendezvous = await terminal.rendezvous(options.signal ? { signal: options.signal } : {});
    // The relay is released once the link has closed (by the listener); close waits for that.
    const { relay } = rendezvous;
    const closeAll = async () => {
      await Promise.all([close(), relay?.close().catch(() => {})]);
    };
    return { ...rendezvous, close: closeAll };
  } catch (err) {
    await close();
    throw err;
  } finally {
    await Promise.allSettled([source.close(), sender.close()]);
  }
}

async function* stdinLines(): AsyncIterable<string> {
  let buffered = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      yield buffered.slice(0, nl).replace(/\r$/, "");
      buffered = buffered.slice(nl + 1);
    }
  }
  if (buffered) yield buffered;
}

/** Chats over an established link: one `--message` exchange, or stdin lines. */
export async function chatOver(
  link: PeerLink,
  options: { onEvent: EventSink; message?: string; json: boolean; signal?: AbortSignal },
): Promise<void> {
  const peer = link.remote.userId;
  const show = (text: string) => {
    options.onEvent({ event: "message", from: peer, text });
    if (!options.json) {
      // The peer chooses the text: never let it drive the terminal.
      Deno.stdout.writeSync(new TextEncoder().encode(printable(`${peer}> ${text}`) + "\n"));
    }
  };
  if (options.message !== undefined) {
    await sendLine(link, options.message);
    const line = await receiveLine(link, options.signal ? { signal: options.signal } : {});
    if (line !== null) show(line);
    await link.close();
  } else {
    await runChat(link, {
      input: stdinLines(),
      onLine: show,
      ...(options.signal ? { signal: options.signal } : {}),
    });
  }
  options.onEvent({ event: "disconnected", peer });
}

/**
 * The `client` flow: rendezvous from the configuration, chat over the link, then end the
 * session (its router mapping too), also when the chat fails or a signal stops it.
 */
export async function chatFromConfig(
  config: Config,
  options: { onEvent: EventSink; message?: string; json: boolean; signal?: AbortSignal },
): Promise<void> {
  const { onEvent, signal } = options;
  const session = await rendezvousFromConfig(config, { onEvent, ...(signal ? { signal } : {}) });
  try {
    await chatOver(session.link, options);
  } finally {
    await session.close();
  }
}

/** The `client` subcommand. */
export function clientCommand() {
  return configOption(new Command("client"))
    .description("find a peer through the host mailbox, connect, and chat")
    .option(
      "-m, --message <text>",
      "send this line, print the answer, and disconnect (default: chat from stdin)",
    )
    .option("--json", "print events as JSON lines")
    .action(async (opts) => {
      const config = await loadConfigFor(opts.config, { json: opts.json ?? false });
      const onEvent = cliSink({ json: opts.json ?? false });
      const stop = onSignals();
      await chatFromConfig(config, {
        onEvent,
        json: opts.json ?? false,
        signal: stop.signal,
        ...(opts.message !== undefined ? { message: opts.message } : {}),
      });
    });
}
