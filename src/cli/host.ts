/**
 * `mailpeer host`: reads the host mailbox and answers requests, once (for cron) or until
 * stopped (push or polling).
 *
 * @module
 */
import { Command } from "@commander-js/extra-typings";
import type { Config, HostConfig } from "../config/config_schema.ts";
import { parseDuration } from "../duration.ts";
import { ConfigError } from "../errors.ts";
import type { EventSink } from "../events.ts";
import { Host } from "../host/host.ts";
import { type HostReady, HostService } from "../host/host_service.ts";
import { CappedSender } from "../host/send_caps.ts";
import { HostStatus } from "../host/status.ts";
import type { MailSender } from "../mail/types.ts";
import {
  parseStatusAddress,
  startStatus,
  type StatusServer,
  type StatusServerOptions,
} from "../host/status_server.ts";
import { STATUS_DEFAULT_ADDRESS } from "../limits.ts";
import type { HostOptions } from "../host/host.ts";
import { cliSink } from "./output.ts";
import { configOption, loadConfigFor, onSignals } from "./common.ts";
import {
  claimLedgerOf,
  imapCertainlyEmpty,
  loadHostKeys,
  openSender,
  openSource,
  openStore,
  parseHostCards,
} from "./wire.ts";
import { JsonFileHostDirectory } from "../host/pool/host_directory.ts";
import { RecipientTap } from "../host/pool/recipient_tap.ts";
import { SyncAgent } from "../host/pool/sync_agent.ts";
import { Representative } from "../host/pool/representative.ts";
import { hostCardOf } from "../message/key_file.ts";
import { preflight } from "./preflight.ts";

/**
 * What the `host-ready` event says of the configured mailbox: after its first pass (the mailbox
 * was read, so the host logged in) a long-running host says once how it waits for mail, which
 * the CLI narrates as one line. Without it a new host prints nothing until the first mail.
 */
export function readyOf(hc: HostConfig, pollIntervalMs = hc.pollIntervalMs): HostReady {
  const r = hc.receive;
  return {
    email: hc.email,
    receive: r.kind,
    mailbox: r.kind === "local"
      ? r.maildir
      : `${r.host}:${r.port} as ${r.user}${r.kind === "imap" ? ` (${r.mailbox})` : ""}`,
    wait: r.kind === "local" ? "watch" : r.kind === "imap" && r.idle ? "idle" : "poll",
    pollIntervalMs,
  };
}

/** What the configuration says about how a host answers (everything but its seams). */
export function hostPolicyOf(config: Config, hc: HostConfig) {
  return {
    network: config.network,
    subjectMatch: config.subjectMatch,
    policy: { capacity: hc.tableCapacity, expiryMs: hc.expiryMs, peersPerReply: hc.peersPerReply },
    limits: {
      maxMailBytes: hc.maxMailBytes,
      maxBlockBytes: hc.maxBlockBytes,
      requestsPerUserPerHour: hc.requestsPerUserPerHour,
      requestsPerSenderPerHour: hc.requestsPerSenderPerHour,
      requestsPerHour: hc.requestsPerHour,
      newRowsPerHour: hc.newRowsPerHour,
    },
    allowPrivateAddresses: hc.allowPrivateAddresses,
    ...(hc.requireVerifiedSender
      ? { requireVerifiedSender: { authservId: hc.requireVerifiedSender } }
      : {}),
    sharedMailbox: hc.sharedMailbox,
  } satisfies Partial<HostOptions>;
}

/** Builds a host from a configuration. */
export async function hostFromConfig(
  config: Config,
  options: { onEvent: EventSink; pollIntervalMs?: number },
) {
  const hc: HostConfig | undefined = config.host;
  if (!hc) {
    throw new ConfigError(
      "ECONFIG",
      `Cannot start a host: ${
        config.path ?? "the configuration"
      } has no [host] section; add one (see docs/config.md)`,
    );
  }
  if (hc.role === "auto") {
    throw new ConfigError(
      "ECONFIG",
      'Cannot start a standing host: [host] role = "auto" makes this a member of a group that ' +
        'takes the host role when needed; run "mailpeer combined", or set role = "off"',
    );
  }
  const keys = await loadHostKeys(hc.keys, { email: hc.email });
  const mailbox = await openSource(hc.receive, {
    configKey: "host.receive",
    pollIntervalMs: options.pollIntervalMs ?? hc.pollIntervalMs,
    // Processes sharing a mailbox each take only some of the listed mails: reading every body
    // ahead would fetch most of them for nothing.
    readAhead: !hc.sharedMailbox,
  });
  // The recipients of each request: the hosts a terminal mailed together with this one.
  const source = new RecipientTap(mailbox, {
    network: config.network,
    subjectMatch: config.subjectMatch,
  });
  const sender = await openHostSender(hc);
  const store = await openStore(hc);
  const card = hostCardOf(keys);
  const directory = new JsonFileHostDirectory(hc.hostsFile, { self: card });
  const pool = parseHostCards(hc.pool, "host.pool");
  if (pool.length > 0) await directory.add(pool, { trusted: true });
  const sync = new SyncAgent({
    keys,
    network: config.network,
    source,
    sender,
    store,
    directory,
    subjectMatch: config.subjectMatch,
    acceptUnknownHosts: hc.acceptUnknownHosts,
    links: parseHostCards(hc.links, "host.links"),
    maxHops: hc.maxHops,
    forwardsPerHour: hc.forwardsPerHour,
    routesFile: `${hc.table}.routes.json`,
    allowPrivateAddresses: hc.allowPrivateAddresses,
    policy: { capacity: hc.tableCapacity, expiryMs: hc.expiryMs },
    onEvent: options.onEvent,
  });
  const claimLedger = claimLedgerOf(hc, store);
  const host = new Host({
    ...hostPolicyOf(config, hc),
    ...(claimLedger ? { claimLedger } : {}),
    keys,
    source,
    sender,
    store,
    learnHosts: (cards) => sync.learn(cards, { recipients: source.take() }),
    onEvent: options.onEvent,
  });
  const close = async () => {
    await Promise.allSettled([source.close(), sender.close(), store.close()]);
  };
  const representative = hc.forwardTo.length === 0 ? undefined : new Representative({
    network: config.network,
    source,
    sender,
    email: hc.email,
    workers: hc.forwardTo,
    subjectMatch: config.subjectMatch,
    maxMailBytes: hc.maxMailBytes,
    onEvent: options.onEvent,
  });
  // One host process at a time per table: an overlapping cron run waits for the running one
  // to finish (so no request is answered twice), or gives up cleanly after a while. With a
  // shared mailbox, claims keep several processes apart instead.
  const service = new HostService({
    ...(representative ? { representative } : { host, sync }),
    runLock: `${hc.table}.run`,
    sharedMailbox: hc.sharedMailbox,
    storeClaims: claimLedger !== undefined,
    syncIntervalMs: hc.syncIntervalMs,
    ready: readyOf(hc, options.pollIntervalMs),
    onEvent: options.onEvent,
  });
  return { service, host, sync, store, close };
}

/**
 * The host's sender: its `[host.send]` account, or, with caps or `[[host.send_also]]`, every
 * account held to its caps through a ledger beside the table (docs/providers.md "Sending
 * limits").
 */
export async function openHostSender(hc: HostConfig): Promise<MailSender> {
  const accounts = [hc.send, ...hc.sendAlso];
  const capped = accounts.some((a) => a.maxPerHour !== undefined || a.maxPerDay !== undefined);
  if (!capped && accounts.length === 1) return await openSender(hc.send);
  const opened = await Promise.all(accounts.map(async (a) => ({
    sender: await openSender(a),
    name: a.kind === "smtp" ? `smtp ${a.user}@${a.host}:${a.port}` : `maildir ${a.postOffice}`,
    ...(a.maxPerHour !== undefined ? { maxPerHour: a.maxPerHour } : {}),
    ...(a.maxPerDay !== undefined ? { maxPerDay: a.maxPerDay } : {}),
  })));
  const names = new Set<string>();
  for (const [i, a] of opened.entries()) {
    if (names.has(a.name)) {
      await Promise.allSettled(opened.map((o) => o.sender.close()));
      throw new ConfigError(
        "ECONFIG",
        `Cannot read host.send_also[${i - 1}]: it is the same account as one before (${a.name}); ` +
          "list each account once",
      );
    }
    names.add(a.name);
  }
  return new CappedSender(opened, { ledger: `${hc.table}.sent.json` });
}

/** Adds `--status [ADDR]` and `--status-token-env NAME` (docs/status.md). */
export function statusOptions<A extends unknown[], O extends Record<string, unknown>>(
  cmd: Command<A, O>,
) {
  return cmd
    .option(
      "--status [addr]",
      `serve a status page and /metrics while the host runs (default ${STATUS_DEFAULT_ADDRESS})`,
    )
    .option(
      "--status-token-env <name>",
      "the status page's token comes from this environment variable (needed off loopback)",
    );
}

/**
 * The status collector and page a long-running host was asked for with `--status`, or
 * undefined. The token is read from the environment variable `--status-token-env` names; a
 * missing one is a one-line `ECONFIG` before any mailbox is touched.
 */
export function statusFromOptions(
  opts: { status?: string | true; statusTokenEnv?: string },
):
  | { status: HostStatus; start(o: Omit<StatusServerOptions, "status">): Promise<StatusServer> }
  | undefined {
  if (opts.status === undefined) return undefined;
  const address = opts.status === true ? STATUS_DEFAULT_ADDRESS : opts.status;
  parseStatusAddress(address); // a bad address fails now, not after the mailbox login
  let token: string | undefined;
  if (opts.statusTokenEnv !== undefined) {
    token = Deno.env.get(opts.statusTokenEnv);
    if (token === undefined || token === "") {
      throw new ConfigError(
        "ECONFIG",
        `Cannot serve the status page: the environment variable ${opts.statusTokenEnv} ` +
          "(--status-token-env) is not set; export the token in it",
      );
    }
  }
  const status = new HostStatus();
  return {
    status,
    start: (o) => startStatus({ ...o, status, address, ...(token ? { token } : {}) }),
  };
}

/** The `host` subcommand. */
export function hostCommand() {
  return statusOptions(configOption(new Command("host")))
    .description("answer terminal requests from the host mailbox")
    .option("--once", "process what is pending and exit (for cron)")
    .option("--poll-interval <duration>", "poll the mailbox this often instead of waiting for push")
    .option("--bootstrap", "ask the pool's hosts for their tables (a new host)")
    .option("--sync", "with --once: push this host's table to the pool")
    .option(
      "--wait <duration>",
      "with --once: how long to wait for a host run that still holds the table (default 60s)",
    )
    .option("--json", "print events as JSON lines")
    .action(async (opts) => {
      const config = await loadConfigFor(opts.config, { json: opts.json ?? false });
      if (opts.once && opts.status !== undefined) {
        throw new ConfigError(
          "ECONFIG",
          "Cannot serve a status page with --once: the run ends after one pass; drop --status, " +
            "or run the host without --once",
        );
      }
      const statusPage = statusFromOptions(opts);
      const sink = cliSink({ json: opts.json ?? false });
      const onEvent = statusPage ? statusPage.status.wrap(sink) : sink;
      // Keys, passwords and cards are checked before the mailbox is touched: a cron run on an
      // empty mailbox must fail too when the key file is missing (docs/config.md "Pre-flight").
      await preflight(config, { host: true }, { onEvent });
      const hc0 = config.host;
      if (
        opts.once && !opts.bootstrap && !opts.sync && hc0 && !hc0.sharedMailbox &&
        hc0.forwardTo.length === 0 && await imapCertainlyEmpty(hc0.receive, config.network)
      ) {
        // Cron on an empty mailbox: a read-only search found no mailpeer mail, so the run is
        // done without loading the IMAP library (most of such a run's time).
        onEvent({ event: "host-pass", answered: 0, notices: 0, quarantined: 0, stale: 0 });
        return;
      }
      const pollIntervalMs = opts.pollInterval
        ? parseDuration(opts.pollInterval, "--poll-interval")
        : undefined;
      const lockWaitMs = opts.wait !== undefined ? parseDuration(opts.wait, "--wait") : undefined;
      const { service, store, close } = await hostFromConfig(config, {
        onEvent,
        ...(pollIntervalMs ? { pollIntervalMs } : {}),
      });
      let server: StatusServer | undefined;
      try {
        if (statusPage) {
          server = await statusPage.start({
            table: () => store.read(),
            network: config.network,
            email: config.host!.email,
          });
          onEvent({ event: "status-serving", url: server.url });
        }
        if (opts.once) {
          await service.runOnce({
            bootstrap: opts.bootstrap ?? false,
            push: opts.sync ?? false,
            ...(lockWaitMs !== undefined ? { lockWaitMs } : {}),
          });
        } else {
          const stop = onSignals();
          await service.run({
            signal: stop.signal,
            ...(opts.bootstrap ? { bootstrap: true } : {}),
          });
        }
      } finally {
        await server?.close();
        await close();
      }
    });
}
