/**
 * `mailpeer init`: sets up a mailbox for mailpeer in one go (docs/cli.md "init"). It asks for
 * the address and the role (host, terminal or both), discovers the mail servers
 * (docs/discovery.md), probes each before it is offered and tests the login, generates the
 * keys, writes the configuration and a password file (mode 0600) or names an environment
 * variable, checks that the written configuration loads and passes the pre-flight, and prints
 * the host card (host) or the command to run next (terminal).
 *
 * Interactive on a terminal; `--non-interactive` (or a standard input that is no terminal)
 * takes everything from flags and refuses with one line naming the missing flag.
 *
 * @module
 */
import { Command, Option } from "@commander-js/extra-typings";
import { dirname, join, relative, resolve } from "node:path";
import { loadConfig } from "../config/config.ts";
import { renderConfig } from "../config/config_writer.ts";
import { discoverServers, type FoundServer, type ProbeVerdict } from "../config/discovery.ts";
import { dnsLookup, parseNameServer } from "../config/dns_lookup.ts";
import {
  describeCandidate,
  DISCOVERY_SOURCES,
  type DiscoverySource,
} from "../config/server_candidate.ts";
import { ConfigError, isMailpeerError } from "../errors.ts";
import { DISCOVERY_PROBE_TIMEOUT_MS } from "../limits.ts";
import { probeMailServer } from "../mail/server_probe.ts";
import { emailProblem, formatCheckedHostCard } from "../message/host_card.ts";
import {
  encodeHostKeys,
  encodeIdentityKeys,
  generateHostKeys,
  generateIdentityKeys,
  hostCardOf,
} from "../message/key_file.ts";
import { StoppedError } from "./common.ts";
import { preflight } from "./preflight.ts";
import { jsonLine } from "./terminal_text.ts";
import { loadHostKeys, parseHostCards } from "./wire.ts";

/** The roles `init` sets up. */
export type InitRole = "host" | "terminal" | "both";

const encoder = new TextEncoder();

/** Asks a question on the terminal; the answer, trimmed (empty for none). */
function ask(question: string, fallback?: string): string {
  const answer = prompt(fallback ? `${question} [${fallback}]` : question)?.trim() ?? "";
  return answer === "" ? fallback ?? "" : answer;
}

/** Reads a password from the terminal without echoing it. */
async function askSecret(question: string): Promise<string> {
  // Raw (no echo) before the question shows: an answer typed as soon as it shows is not echoed.
  Deno.stdin.setRaw(true);
  await Deno.stdout.write(encoder.encode(`${question} `));
  const bytes: number[] = [];
  try {
    const buf = new Uint8Array(1);
    for (;;) {
      const n = await Deno.stdin.read(buf);
      if (n === null || buf[0] === 0x0d || buf[0] === 0x0a) break;
      // Ctrl-C in raw mode is a byte, not a signal: end as a Ctrl-C would (exit 130).
      if (buf[0] === 0x03) throw new StoppedError("SIGINT");
      if (buf[0] === 0x7f) bytes.pop();
      else bytes.push(buf[0]!);
    }
  } finally {
    Deno.stdin.setRaw(false);
    await Deno.stdout.write(encoder.encode("\n"));
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

/** Writes a file that holds a secret: mode 0600, never over an existing one unless `force`. */
async function writeSecret(path: string, text: string, force: boolean): Promise<void> {
  try {
    await Deno.writeTextFile(path, text, { createNew: !force, mode: 0o600 });
    await Deno.chmod(path, 0o600);
  } catch (err) {
    throw new ConfigError(
      "ECONFIG",
      err instanceof Deno.errors.AlreadyExists
        ? `Cannot write ${path}: the file exists; pass --force to replace it, or remove it`
        : `Cannot write ${path}: ${(err as Error).message}; check the directory`,
      { cause: err },
    );
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Where the password comes from. */
type PasswordRef = { env: string } | { file: string };

/** The password, where the configuration will find it, and whether to write its file. */
interface Secret {
  password: string;
  ref: PasswordRef;
  write: boolean;
}

/**
 * The password from `env`, from an existing `file` (mode 0600), or asked on the terminal (to be
 * written to `file`); undefined when none of these can give it.
 */
async function passwordOf(
  email: string,
  o: { env?: string; file: string; fileGiven: boolean; interactive: boolean; force: boolean },
): Promise<Secret | undefined> {
  let secret: Secret;
  if (o.env !== undefined) {
    secret = { password: Deno.env.get(o.env) ?? "", ref: { env: o.env }, write: false };
    if (secret.password === "") {
      throw new ConfigError(
        "ESECRET",
        `Cannot test the login of ${email}: environment variable ${o.env} is not set; export it with the password first`,
      );
    }
    return secret;
  }
  if (await exists(o.file) && !(o.interactive && o.force)) {
    const mode = (await Deno.stat(o.file)).mode;
    if (mode !== null && (mode & 0o077) !== 0) {
      throw new ConfigError(
        "ESECRET",
        `Cannot use the password file ${o.file}: it has mode 0${
          (mode & 0o777).toString(8)
        }, so others may read it; run chmod 600 ${o.file}`,
      );
    }
    const password = (await Deno.readTextFile(o.file)).replace(/\r?\n$/, "");
    secret = { password, ref: { file: o.file }, write: false };
  } else if (o.interactive) {
    const password = await askSecret(`Password of ${email} (kept in ${o.file}, mode 0600):`);
    secret = { password, ref: { file: o.file }, write: true };
  } else if (o.fileGiven) {
    throw new ConfigError(
      "ESECRET",
      `Cannot read the password file ${o.file}: it does not exist; write the password into it (chmod 600), or pass --password-env NAME`,
    );
  } else {
    return undefined;
  }
  if (secret.password === "") {
    throw new ConfigError(
      "ESECRET",
      `Cannot test the login of ${email}: the password is empty; give the mailbox's password`,
    );
  }
  return secret;
}

/**
 * The probe discovery runs on each server: connect, TLS, greeting and this login. A refused
 * password stops discovery (every server of the provider would refuse it); any other failure
 * only passes the server over.
 */
function loginProbe(
  email: string,
  password: string,
  caFile: string | undefined,
): (server: FoundServer) => Promise<ProbeVerdict> {
  return async (server) => {
    const protocol = server.protocol === "imap"
      ? "IMAP"
      : server.protocol === "pop3"
      ? "POP3"
      : "SMTP";
    try {
      await probeMailServer(protocol, {
        host: server.address ?? server.hostname,
        port: server.port,
        tls: server.tls,
        user: server.username ?? email,
        password,
        ...(caFile ? { caFile } : {}),
        ...(server.address !== undefined ? { servername: server.hostname } : {}),
      }, {
        timeoutMs: DISCOVERY_PROBE_TIMEOUT_MS,
        configKey: server.protocol === "smtp" ? "send" : "receive",
      });
      return { ok: true };
    } catch (err) {
      if (isMailpeerError(err) && err.code === "EAUTH") throw err;
      return { ok: false, why: (err as Error).message };
    }
  };
}

/** The host keys in `path` (kept when there), and their checked host card. */
async function ensureHostKeys(
  path: string,
  email: string,
  narrate: (text: string) => void,
): Promise<string> {
  if (await exists(path)) {
    const keys = await loadHostKeys(path, { email });
    narrate(`uses the host keys in ${path}`);
    return formatCheckedHostCard(hostCardOf(keys));
  }
  const keys = await generateHostKeys(email);
  await writeSecret(path, encodeHostKeys(keys) + "\n", false);
  narrate(`wrote the host keys ${path}`);
  return formatCheckedHostCard(hostCardOf(keys));
}

/** The terminal identity in `path`, made when not there. */
async function ensureIdentity(
  path: string,
  userId: string,
  narrate: (text: string) => void,
): Promise<void> {
  if (await exists(path)) {
    narrate(`uses the identity in ${path}`);
    return;
  }
  await writeSecret(path, encodeIdentityKeys(await generateIdentityKeys(userId)) + "\n", false);
  narrate(`wrote the identity ${path}`);
}

/** The `init` subcommand. */
export function initCommand() {
  return new Command("init")
    .description(
      "set up mailpeer for a mailbox: find its servers, test the login, make keys, write the configuration",
    )
    .option("--email <address>", "the mailbox's e-mail address")
    .addOption(
      new Option("--role <role>", "what this mailbox is for").choices(
        ["host", "terminal", "both"] as const,
      ),
    )
    .option(
      "--password-file <file>",
      "file holding the mailbox password (mode 0600; written when asked interactively)",
    )
    .option("--password-env <name>", "environment variable holding the mailbox password")
    .option(
      "--host-card <card>",
      "a terminal: the card of the host it asks (from `mailpeer keygen --host`)",
    )
    .option(
      "--user-id <id>",
      "a terminal: the user id peers see (default: the address's local part)",
    )
    .option("--network <id>", "network id, part of every subject key", "mailpeer")
    .option("-o, --out <file>", "where to write the configuration", "mailpeer.toml")
    .option(
      "--sources <list>",
      `discovery sources to ask, comma-separated (default: ${DISCOVERY_SOURCES.join(",")})`,
    )
    .option("--autoconfig-url <url>", "autoconfig URL template (%EMAILDOMAIN%, %EMAILADDRESS%)")
    .option("--well-known-url <url>", "well-known autoconfig URL template")
    .option(
      "--ispdb-url <url>",
      "ISPDB URL template (default: Mozilla's autoconfig.thunderbird.net)",
    )
    .option(
      "--dns-server <ip:port>",
      "ask this DNS server (SRV, MX, host names) instead of the system's",
    )
    .option(
      "--ca-file <file>",
      "trust this CA (PEM) for autoconfig and the mail servers; written into the configuration",
    )
    .option("--non-interactive", "take everything from flags; refuse when something is missing")
    .option("--force", "replace an existing configuration and password file")
    .option("--json", "one JSON object per line")
    .addHelpText(
      "after",
      `
Examples:
  mailpeer init                                  # asks for what it needs
  mailpeer init --non-interactive --email host@example.org --role host --password-env MP_PASSWORD
  mailpeer init --non-interactive --email bob@example.org --role terminal \\
      --password-file bob.password --host-card 'mailpeer1:host@example.org:...'

Discovery (docs/discovery.md) asks, in order: autoconfig.<domain>, the domain's .well-known path,
Mozilla's ISPDB, SRV records, the MX's provider, the usual names; each server is probed and the
login tested before it is offered. By default that is the network and the system's DNS.`,
    )
    .action(async (opts, cmd) => {
      const json = opts.json ?? false;
      const interactive = !opts.nonInteractive && Deno.stdin.isTerminal();
      const say = (event: Record<string, unknown>, text: string) => {
        const line = json ? jsonLine({ time: new Date().toISOString(), ...event }) : text;
        Deno.stdout.writeSync(encoder.encode(line + "\n"));
      };
      const narrate = (text: string) => {
        if (!json) Deno.stderr.writeSync(encoder.encode(text + "\n"));
      };
      const missing = (flag: string, what: string): never =>
        cmd.error(
          `error: ${flag} is missing (${what}); pass it, or run mailpeer init on a terminal to be asked`,
          { exitCode: 2 },
        );

      // Before any question: answers that could not be used are not asked for.
      const configPath = resolve(opts.out);
      const configDir = dirname(configPath);
      if (!opts.force && await exists(configPath)) {
        throw new ConfigError(
          "ECONFIG",
          `Cannot write the configuration ${configPath}: the file exists; pass --force to replace it, or -o another file`,
        );
      }

      // 1. Who: the address and the role.
      const email = opts.email ??
        (interactive
          ? ask("E-mail address of the mailbox:")
          : missing("--email", "the mailbox's address"));
      const problem = emailProblem(email);
      if (problem !== undefined || !email.includes("@")) {
        cmd.error(
          `error: ${opts.email !== undefined ? "--email" : "the address"} ${
            JSON.stringify(email)
          } is not an e-mail address (${problem ?? "it has no @"})`,
          { exitCode: 2 },
        );
      }
      const localPart = email.slice(0, email.lastIndexOf("@"));
      let role: InitRole;
      if (opts.role) role = opts.role;
      else if (interactive) {
        const answer = ask("Role of this mailbox: host, terminal or both?", "terminal");
        if (answer !== "host" && answer !== "terminal" && answer !== "both") {
          cmd.error(`error: the role ${JSON.stringify(answer)} is not host, terminal or both`, {
            exitCode: 2,
          });
        }
        role = answer as InitRole;
      } else role = missing("--role", "host, terminal or both");
      const terminal = role !== "host";
      const host = role !== "terminal";
      let hostCards: string[] = opts.hostCard ? [opts.hostCard] : [];
      if (role === "terminal" && hostCards.length === 0) {
        hostCards = [
          interactive
            ? ask("Card of the host to ask (the line `mailpeer keygen --host` printed):")
            : missing("--host-card", "the card of the host this terminal asks"),
        ];
      }
      if (hostCards.length > 0) parseHostCards(hostCards, "--host-card");
      const userId = opts.userId ?? localPart;
      if (opts.passwordEnv && opts.passwordFile) {
        cmd.error("error: give one of --password-file and --password-env, not both", {
          exitCode: 2,
        });
      }
      const sources = opts.sources?.split(",").map((s) => s.trim()) ?? [...DISCOVERY_SOURCES];
      const unknown = sources.find((s) => !DISCOVERY_SOURCES.includes(s as DiscoverySource));
      if (unknown !== undefined) {
        cmd.error(
          `error: --sources names ${JSON.stringify(unknown)}, which is none of ${
            DISCOVERY_SOURCES.join(", ")
          }`,
          { exitCode: 2 },
        );
      }

      // 2. The password: from the environment, an existing file, or asked (then written 0600).
      const secret = await passwordOf(email, {
        ...(opts.passwordEnv ? { env: opts.passwordEnv } : {}),
        file: resolve(
          opts.passwordFile ??
            join(configDir, `${localPart.replace(/[^A-Za-z0-9._-]/g, "_")}.password`),
        ),
        fileGiven: opts.passwordFile !== undefined,
        interactive,
        force: opts.force ?? false,
      }) ?? missing("--password-file or --password-env", "where the mailbox password is");
      const { password, ref: passwordRef } = secret;

      // 3. Discovery, each server probed (and logged in to) before it is offered.
      const caFile = opts.caFile === undefined ? undefined : resolve(opts.caFile);
      const caCerts = caFile === undefined ? undefined : [
        await Deno.readTextFile(caFile).catch((err) => {
          throw new ConfigError(
            "ECONFIG",
            `Cannot read the CA file ${caFile}: ${(err as Error).message}; check --ca-file`,
            { cause: err },
          );
        }),
      ];
      const nameServer = opts.dnsServer === undefined ? undefined : parseNameServer(opts.dnsServer);
      narrate(`looking for the mail servers of ${email} ...`);
      const found = await discoverServers(email, {
        sources: sources as DiscoverySource[],
        urls: {
          ...(opts.autoconfigUrl ? { autoconfig: opts.autoconfigUrl } : {}),
          ...(opts.wellKnownUrl ? { wellKnown: opts.wellKnownUrl } : {}),
          ...(opts.ispdbUrl ? { ispdb: opts.ispdbUrl } : {}),
        },
        fetch: caCerts ? { caCerts } : {},
        dns: dnsLookup(nameServer ? { nameServer } : {}),
        resolveHosts: nameServer !== undefined,
        onNote: (note) => json ? say({ event: "discovery", note }, note) : narrate(`  ${note}`),
        probe: loginProbe(email, password, caFile),
      });
      if (!found.incoming || !found.outgoing) {
        const lacking = !found.incoming ? "an IMAP or POP3 server" : "an SMTP submission server";
        throw new ConfigError(
          "EDISCOVER",
          `Cannot set up ${email}: no ${lacking} was found that answers and accepts the login (asked: ${
            sources.join(", ")
          }); ` +
            "ask the provider for its server settings and write them into the configuration by hand (docs/config.md)",
        );
      }
      say(
        { event: "servers-found", incoming: found.incoming, outgoing: found.outgoing },
        `found ${describeCandidate(found.incoming)} and ${
          describeCandidate(found.outgoing)
        }; the login works`,
      );

      // 4. Keys: reuse those already there, else make them.
      const hostKeysFile = join(configDir, "host.keys.json");
      const identityFile = join(
        configDir,
        `${userId.replace(/[^A-Za-z0-9._-]/g, "_")}.identity.json`,
      );
      const card = host ? await ensureHostKeys(hostKeysFile, email, narrate) : undefined;
      if (card !== undefined && role === "both") hostCards = [card, ...hostCards];
      if (terminal) await ensureIdentity(identityFile, userId, narrate);

      // 5. The configuration (and the password file), then the proof that it loads.
      if (secret.write && "file" in passwordRef) {
        await writeSecret(passwordRef.file, password + "\n", opts.force ?? false);
        narrate(`wrote the password file ${passwordRef.file} (mode 0600)`);
      }
      const text = renderConfig({
        role,
        email,
        network: opts.network,
        incoming: found.incoming,
        outgoing: found.outgoing,
        password: "env" in passwordRef
          ? passwordRef
          : { file: relative(configDir, passwordRef.file) },
        ...(caFile ? { caFile } : {}),
        ...(host ? { hostKeys: relative(configDir, hostKeysFile) } : {}),
        ...(terminal
          ? { terminal: { userId, identity: relative(configDir, identityFile), hosts: hostCards } }
          : {}),
      });
      await Deno.writeTextFile(configPath, text, { mode: 0o644 });
      const config = await loadConfig(configPath);
      await preflight(config, { host, terminal }, { onEvent: () => {} });
      say({ event: "config-written", path: configPath, role }, `wrote ${configPath}`);

      // 6. What to do next.
      const quoted = /^[A-Za-z0-9._\/-]+$/.test(opts.out)
        ? opts.out
        : `'${opts.out.replaceAll("'", `'\\''`)}'`;
      const configArg = opts.out === "mailpeer.toml" ? "" : ` --config ${quoted}`;
      if (card !== undefined) {
        say(
          { event: "host-card", card },
          `host card (give it to your terminals: mailpeer init --role terminal --host-card ...):\n${card}`,
        );
      }
      const next = role === "host"
        ? `mailpeer host${configArg}`
        : role === "both"
        ? `mailpeer combined${configArg}`
        : `mailpeer client${configArg}`;
      say({ event: "next-command", command: next }, `next: ${next}`);
    });
}
