/**
 * Pre-flight: everything a subcommand can check of its configuration before it touches a
 * mailbox (docs/config.md "Pre-flight"): the key files of its roles (present, mode 0600,
 * well-formed), every password it will need (`password_env` set, `password_file` readable),
 * the host cards, and what a host would refuse of the terminal's announced address. A
 * mistake is then one line at once, not a failure when the first mail arrives or a reply that
 * never comes.
 *
 * @module
 */
import type { Config, ReceiveConfig, SendConfig } from "../config/config_schema.ts";
import { resolveSecret, runTokenCommand } from "../config/secret.ts";
import { ConfigError } from "../errors.ts";
import type { EventSink } from "../events.ts";
import { classifyAddress } from "../net/address_class.ts";
import { parseStunServer } from "../terminal/stun.ts";
import { loadHostKeys, loadIdentity, parseHostCards } from "./wire.ts";

/** Which roles a subcommand runs. */
export interface PreflightRoles {
  host?: boolean;
  terminal?: boolean;
}

function missingSection(config: Config, role: "host" | "terminal"): ConfigError {
  return new ConfigError(
    "ECONFIG",
    `Cannot start a ${role}: ${
      config.path ?? "the configuration"
    } has no [${role}] section; add one (see docs/config.md)`,
  );
}

/** Reads the passwords of a role's mail servers, as opening them will. */
async function checkMailSecrets(receive: ReceiveConfig, send: SendConfig): Promise<void> {
  if (receive.kind !== "local" && receive.password) {
    const what = `${receive.kind === "imap" ? "IMAP" : "POP3"} password of ${receive.user}`;
    await resolveSecret(receive.password, what);
  }
  if (send.kind === "smtp" && send.password) {
    await resolveSecret(send.password, `SMTP password of ${send.user}`);
  }
  // OAuth2: the token command runs once now, so a broken helper fails before any mail is sent.
  if (receive.kind !== "local" && receive.tokenCommand) {
    await runTokenCommand(receive.tokenCommand, `IMAP OAuth2 token of ${receive.user}`);
  }
  if (send.kind === "smtp" && send.tokenCommand) {
    await runTokenCommand(send.tokenCommand, `SMTP OAuth2 token of ${send.user}`);
  }
}

async function checkHost(config: Config): Promise<void> {
  const hc = config.host;
  if (!hc) throw missingSection(config, "host");
  await loadHostKeys(hc.keys, { email: hc.email });
  await checkMailSecrets(hc.receive, hc.send);
  parseHostCards(hc.pool, "host.pool");
  parseHostCards(hc.links, "host.links");
}

async function checkTerminal(config: Config, onEvent: EventSink): Promise<void> {
  const tc = config.terminal;
  if (!tc) throw missingSection(config, "terminal");
  const identity = await loadIdentity(tc.identity, { userId: tc.userId });
  // Peers see the identity's user id, whatever user_id says: a copied configuration or
  // identity file would otherwise make the terminal someone else without a word.
  if (identity.userId !== tc.userId) {
    throw new ConfigError(
      "ECONFIG",
      `Cannot start a terminal: terminal.user_id is ${JSON.stringify(tc.userId)} but ` +
        `${tc.identity} is the identity of ${JSON.stringify(identity.userId)}; set user_id to ` +
        `that, or make an identity for ${JSON.stringify(tc.userId)} with mailpeer keygen --user`,
    );
  }
  parseHostCards(tc.hosts);
  tc.stunServers.forEach((server, i) => {
    try {
      parseStunServer(server);
    } catch {
      throw new ConfigError(
        "ECONFIG",
        `Cannot read terminal.stun_servers[${i}]: ${JSON.stringify(server)} is not a STUN ` +
          'server; write "host:port", e.g. "stun.example.org:3478" or "[2001:db8::10]:3478"',
      );
    }
  });
  await checkMailSecrets(tc.receive, tc.send);
  if (tc.transport === "udp") {
    for (const server of tc.turnServers) {
      await resolveSecret(server.password, `TURN password of ${server.url}`);
    }
  }
  // A host with the default allow_private_addresses = false refuses such an address: the
  // terminal cannot know the host's setting, so it says so at once instead of after
  // reply_timeout (docs/decisions.md, issue 15).
  const relayed = tc.transport === "udp" && tc.turnServers.length > 0;
  if (tc.address !== "auto" && !relayed && tc.portMapping === "off") {
    const cls = classifyAddress(tc.address);
    if (cls !== "global") {
      onEvent({
        event: "warning",
        message: `terminal.address ${tc.address} is a ${cls} address, the only one this ` +
          "terminal announces: a host refuses it unless it sets allow_private_addresses = true " +
          '(a LAN); on the internet use address = "auto" with stun_servers',
      });
    }
  }
}

/**
 * Checks what the configuration's `roles` need before any mailbox is touched; throws the first
 * problem as one line (`ConfigError`, `MessageError`), reports what may still work as a
 * `warning` event.
 */
export async function preflight(
  config: Config,
  roles: PreflightRoles,
  options: { onEvent: EventSink },
): Promise<void> {
  if (roles.host) await checkHost(config);
  if (roles.terminal) await checkTerminal(config, options.onEvent);
}
