/**
 * The capacity model of docs/scaling.md (issue 18): given the rendezvous a network makes per
 * peak hour, how many host accounts (bound by the providers' sending caps), host processes
 * (bound by CPU) and hosts (bound by the accounts one host may hold and its request cap) it needs,
 * and the rendezvous time it then gets, as a seeded Monte Carlo simulation of request delivery,
 * host wake-up, queueing at the host processes, reply delivery and the peer connect.
 *
 * Pure: no I/O, no wall clock; the randomness comes from `seed`. Every default is sourced in
 * docs/scaling.md "Inputs".
 *
 * @module
 */
import {
  DEFAULT_PEERS_PER_REPLY,
  DEFAULT_REQUESTS_PER_HOUR,
  DEFAULT_SYNC_INTERVAL_MS,
  INTRODUCTIONS_PER_HOUR,
  INTRODUCTIONS_PER_TARGET_PER_HOUR,
} from "../../src/limits.ts";

/** How a mailbox learns of new mail: IMAP IDLE push, or a poll every `pollMs`. */
export type Wake = "idle" | "poll";

/** Everything the model takes; docs/scaling.md "Inputs" gives each one's source. */
export interface ModelInputs {
  /** Rendezvous per hour at the peak hour. */
  peakPerHour: number;
  /** Peak hour over the mean hour of the day (a day has 24 × peakPerHour / this rendezvous). */
  peakToMean: number;
  /**
   * Introductions the host mails per answered request, or "auto": derived from the host's
   * rules, {@link introductionsPerRequest}.
   */
  introductionsPerRequest: number | "auto";
  /** Peers a reply lists (host.peers_per_reply). */
  peersPerReply: number;
  /** Messages one host account may send per rolling 24 hours (Gmail: 500). */
  capPerDay: number;
  /** Messages one host account may send per hour; 0: no hourly cap. */
  capPerHour: number;
  /** Fraction of a cap the host is configured to use (max_per_day somewhat below the cap). */
  capHeadroom: number;
  /** Sending accounts one host may hold: [host.send] plus at most 7 [[host.send_also]]. */
  accountsPerHost: number;
  /** Requests one host answers per hour (host.requests_per_hour, default 3000). */
  hostRequestsPerHour: number;
  /** Interval of the pool's table sync pushes, in ms (host.sync_interval, 5 min). */
  syncIntervalMs: number;
  /** Snapshot mails per push to one other host (a large table needs several). */
  syncPages: number;
  /**
   * Hosts per sync pool: each pushes to every other member, so a pool's sync mail grows with
   * the square of its size; a larger network is several pools (or one pool's members only
   * sync with this many neighbours).
   */
  poolSize: number;
  /** Requests one host process answers per second, mail work included (bench-host host-1). */
  perProcessPerSecond: number;
  /** Highest utilisation a process is planned for (the rest absorbs bursts). */
  maxUtilisation: number;
  /** Processes of one host to simulate; 0: the planned count. */
  processes: number;
  /** Median of one mail's delivery delay (accepted → visible in the mailbox), in ms. */
  deliveryP50Ms: number;
  /** 95th percentile of the same (log-normal fit through both). */
  deliveryP95Ms: number;
  /** How host and terminal learn of new mail. */
  wake: Wake;
  /** Poll interval, in ms (wake = "poll"): the wait is uniform in [0, pollMs). */
  pollMs: number;
  /** Delay of an IMAP IDLE notification, in ms (wake = "idle"). */
  idleMs: number;
  /**
   * Everything of a rendezvous that is neither delivery, wake-up nor host service: the
   * terminal's start, seal, SMTP submits, IMAP login and fetches, and the handshake, in ms.
   */
  fixedMs: number;
  /** Round trip between the two peers, in ms: the connect takes two (TCP + handshake). */
  peerRttMs: number;
  /** Rendezvous simulated. */
  samples: number;
  /** Seed of the pseudo-random numbers: the same seed, the same figures. */
  seed: number;
}

/**
 * The loopback measurement the defaults are calibrated on: docs/performance.md, bench run of
 * 2026-11-26 10:14 UTC (bench-rendezvous poll and IDLE, bench-host host-1).
 */
export const LOOPBACK = {
  /** mailpeer rendezvous start → connected, NOOP poll every 25 ms, p50. */
  pollRendezvousP50Ms: 120.6,
  /** The stack's raw request + reply round trip in the same run, poll, p50. */
  pollRawP50Ms: 70.9,
  /** mailpeer rendezvous, IMAP IDLE, p50. */
  idleRendezvousP50Ms: 1106.8,
  /** Raw round trip, IDLE, p50. */
  idleRawP50Ms: 1058.8,
  /** NOOP poll interval of that run. */
  pollMs: 25,
  /** Requests one `mailpeer host` process answered per second (host-1). */
  hostPerSecond: 74.2,
} as const;

/**
 * Dovecot's IDLE notification delay on the loopback stack: the raw IDLE round trip is the raw
 * poll one plus two of them (docs/performance.md: "Dovecot's 2 × 500 ms IDLE delay").
 */
export const LOOPBACK_IDLE_MS = 500;

/**
 * The fixed part of a loopback rendezvous: the poll-mode p50 less the median of the two poll
 * waits (one pollMs) and the median host service (ln 2 / μ).
 */
export const LOOPBACK_FIXED_MS = LOOPBACK.pollRendezvousP50Ms - LOOPBACK.pollMs -
  1000 * Math.LN2 / LOOPBACK.hostPerSecond;

/**
 * Published delivery delay, Gmail (Postmark "time to inbox", all of 2025, 24,160 samples,
 * summarised by github.com/jonasmalacofilho/postmark-tti-histogram): p50 17.0 s, p95 41.7 s.
 */
export const GMAIL_DELIVERY = { p50Ms: 17_000, p95Ms: 41_700 } as const;

/** The defaults: a Gmail-hosted network with IDLE; see docs/scaling.md "Inputs". */
export const DEFAULTS: ModelInputs = {
  peakPerHour: 1000,
  peakToMean: 2,
  introductionsPerRequest: "auto",
  peersPerReply: DEFAULT_PEERS_PER_REPLY,
  capPerDay: 500,
  capPerHour: 0,
  capHeadroom: 0.9,
  accountsPerHost: 8,
  hostRequestsPerHour: DEFAULT_REQUESTS_PER_HOUR,
  syncIntervalMs: DEFAULT_SYNC_INTERVAL_MS,
  syncPages: 1,
  poolSize: 8,
  perProcessPerSecond: LOOPBACK.hostPerSecond,
  maxUtilisation: 0.7,
  processes: 0,
  deliveryP50Ms: GMAIL_DELIVERY.p50Ms,
  deliveryP95Ms: GMAIL_DELIVERY.p95Ms,
  wake: "idle",
  pollMs: 60_000,
  idleMs: LOOPBACK_IDLE_MS,
  fixedMs: LOOPBACK_FIXED_MS,
  peerRttMs: 100,
  samples: 20_000,
  seed: 1,
};

/** Nearest-rank percentiles of a sample, in its unit. */
export interface Quantiles {
  p50: number;
  p95: number;
  p99: number;
  mean: number;
}

/** What the model computes. */
export interface ModelResult {
  /** Rendezvous in the peak hour (the input). */
  peakPerHour: number;
  rendezvousPerDay: number;
  /** Introductions per rendezvous (the input, or derived). */
  introductionsPerRequest: number;
  /** Mails the hosts send per rendezvous: one reply plus the introductions. */
  hostMailsPerRendezvous: number;
  /** Mails the terminal sends per rendezvous (one request per host asked; notices aside). */
  terminalMailsPerRendezvous: number;
  /** Host-sent mails per day: replies, introductions and pool sync. */
  mailsPerDay: number;
  /** Of which pool sync mail. */
  syncMailsPerDay: number;
  /** Host-sent mails in the peak hour. */
  mailsPeakHour: number;
  /** Sending accounts needed: max(ceil(per day / usable day cap), ceil(peak hour / hour cap)). */
  accounts: number;
  /** Hosts (tables, pool members): accounts per host and requests per hour bound them. */
  hosts: number;
  /** Host processes the CPU needs at the planned utilisation, over the whole network. */
  cpuProcesses: number;
  /** Host processes: every host runs at least one, and together at least cpuProcesses. */
  processes: number;
  /** Processes of one host, simulated: ceil(processes / hosts) or the input. */
  processesSimulated: number;
  /** Utilisation of one host's processes at the peak: (λ / hosts) / (c μ). */
  utilisation: number;
  /** Rendezvous time, start → connected, in ms. */
  rendezvousMs: Quantiles;
  /** Its parts, in ms. */
  parts: {
    delivery: Quantiles;
    wake: Quantiles;
    queueWait: Quantiles;
    service: Quantiles;
  };
}

/** A seeded generator of uniform numbers in [0, 1) (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A standard normal draw (Box–Muller). */
function normal(rand: () => number): number {
  const u = 1 - rand();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

/** An exponential draw of the given rate. */
function exponential(rand: () => number, rate: number): number {
  return -Math.log(1 - rand()) / rate;
}

/** z of the 95th percentile of the standard normal. */
const Z95 = 1.6448536269514722;

/**
 * A log-normal draw with the given median and 95th percentile (0 when the median is 0);
 * σ = ln(p95 / p50) / z95.
 */
export function logNormal(rand: () => number, p50: number, p95: number): number {
  if (p50 <= 0) return 0;
  const sigma = Math.log(Math.max(p95, p50) / p50) / Z95;
  return p50 * Math.exp(sigma * normal(rand));
}

/** Nearest-rank quantiles and the mean of `values` (sorted in place). */
export function quantiles(values: number[]): Quantiles {
  values.sort((a, b) => a - b);
  const at = (q: number) => values[Math.max(0, Math.ceil(q * values.length) - 1)] ?? NaN;
  const mean = values.reduce((s, v) => s + v, 0) / Math.max(1, values.length);
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99), mean };
}

/**
 * Introductions a host mails per request it answers, from its rules (docs/protocol.md
 * "Introductions", src/host/introductions.ts): every terminal's request carries an introduction
 * key, and each of the `peersPerReply` rows a reply lists (the newest) is told of the requester,
 * at most INTRODUCTIONS_PER_TARGET_PER_HOUR (6) times an hour per row and
 * INTRODUCTIONS_PER_HOUR (3000) times an hour per host. A row stays among the newest for the next
 * `peersPerReply` requests: when those come within the hour (a host answering at least that many
 * per hour) the per-row cap binds and a row gets 6 instead of 8; in between, the model goes
 * linearly from 8 to 6, which keeps the host's introductions per hour growing with its load.
 * `perHostPerHour` is one host's request rate.
 */
export function introductionsPerRequest(peersPerReply: number, perHostPerHour: number): number {
  const capped = Math.min(peersPerReply, INTRODUCTIONS_PER_TARGET_PER_HOUR);
  const within = Math.min(1, perHostPerHour / Math.max(peersPerReply, 1));
  const perRow = peersPerReply - within * (peersPerReply - capped);
  return Math.min(perRow, INTRODUCTIONS_PER_HOUR / Math.max(perHostPerHour, 1e-9));
}

/**
 * Mail and process counts, without the simulation. Each host pushes its table to every other
 * host of its pool, so the sync mail grows with the host count (with its square up to the pool
 * size), and the host count with the mail: both are found by iterating to the fixed point.
 */
export function capacity(inputs: ModelInputs): Omit<ModelResult, "rendezvousMs" | "parts"> {
  const i = inputs;
  const rendezvousPerDay = 24 * i.peakPerHour / i.peakToMean;
  const usableDay = Math.max(1, Math.floor(i.capPerDay * i.capHeadroom));
  const usableHour = i.capPerHour > 0 ? Math.max(1, Math.floor(i.capPerHour * i.capHeadroom)) : 0;
  const pushesPerDay = 86_400_000 / i.syncIntervalMs;
  // Sync mail one host sends per day once its pool is full; it must leave room for replies.
  const fullPoolSync = (Math.max(1, i.poolSize) - 1) * pushesPerDay * i.syncPages;
  if (
    fullPoolSync >= i.accountsPerHost * usableDay ||
    (usableHour > 0 && fullPoolSync / 24 >= i.accountsPerHost * usableHour)
  ) {
    throw new RangeError(
      `Cannot plan the hosts: a pool of ${i.poolSize} syncing every ${i.syncIntervalMs / 1000} s ` +
        `sends ${fullPoolSync} sync mails per host a day (${
          fullPoolSync / 24
        } an hour), more than its ${i.accountsPerHost} ` +
        `accounts may send (${i.accountsPerHost * usableDay} a day` +
        (usableHour > 0 ? `, ${i.accountsPerHost * usableHour} an hour` : "") +
        `); raise the sync interval or lower the pool size`,
    );
  }
  let hosts = 1;
  let accounts = 0, mailsPerDay = 0, syncMailsPerDay = 0, mailsPeakHour = 0;
  let introductions = 0, hostMailsPerRendezvous = 1;
  // The host count sets the sync mail, which sets the accounts, which set the host count: the
  // loop stops at the fixed point (it exists: a full pool's sync fits in its accounts, above).
  for (;;) {
    const peers = Math.min(hosts, Math.max(1, i.poolSize)) - 1;
    syncMailsPerDay = hosts * peers * pushesPerDay * i.syncPages;
    introductions = i.introductionsPerRequest === "auto"
      ? introductionsPerRequest(i.peersPerReply, i.peakPerHour / hosts)
      : i.introductionsPerRequest;
    hostMailsPerRendezvous = 1 + introductions;
    mailsPerDay = rendezvousPerDay * hostMailsPerRendezvous + syncMailsPerDay;
    mailsPeakHour = i.peakPerHour * hostMailsPerRendezvous + syncMailsPerDay / 24;
    accounts = Math.max(
      1,
      Math.ceil(mailsPerDay / usableDay),
      usableHour > 0 ? Math.ceil(mailsPeakHour / usableHour) : 1,
    );
    const next = Math.max(
      Math.ceil(accounts / i.accountsPerHost),
      Math.ceil(i.peakPerHour / i.hostRequestsPerHour),
      1,
    );
    if (next <= hosts) break;
    hosts = next;
  }
  const lambda = i.peakPerHour / 3600;
  const cpuProcesses = Math.ceil(lambda / (i.perProcessPerSecond * i.maxUtilisation));
  // Hosts share the load evenly (a terminal asks one host, the representative forwards
  // round-robin: docs/design.md "Host pool").
  const perHost = Math.ceil(cpuProcesses / hosts);
  const processes = hosts * Math.max(1, perHost);
  const processesSimulated = i.processes > 0 ? i.processes : Math.max(1, perHost);
  return {
    peakPerHour: i.peakPerHour,
    rendezvousPerDay,
    introductionsPerRequest: introductions,
    hostMailsPerRendezvous,
    terminalMailsPerRendezvous: 1,
    mailsPerDay,
    syncMailsPerDay,
    mailsPeakHour,
    accounts,
    hosts,
    cpuProcesses,
    processes,
    processesSimulated,
    utilisation: lambda / hosts / (processesSimulated * i.perProcessPerSecond),
  };
}

/**
 * The whole model: {@link capacity}, then `samples` rendezvous at one host's share of the peak
 * rate through a FIFO queue of `processesSimulated` servers with exponential service (an M/M/c
 * queue, simulated).
 * Rendezvous time = fixed + request delivery + host wake + queue wait + service + reply delivery
 * + terminal wake + two peer round trips.
 */
export function simulate(inputs: ModelInputs): ModelResult {
  const i = inputs;
  const cap = capacity(i);
  const rand = prng(i.seed);
  const lambdaPerMs = i.peakPerHour / cap.hosts / 3_600_000;
  const muPerMs = i.perProcessPerSecond / 1000;
  const freeAt: number[] = new Array(cap.processesSimulated).fill(0);
  const total: number[] = [], delivery: number[] = [], wake: number[] = [];
  const queueWait: number[] = [], service: number[] = [];
  const wakeOnce = () => i.wake === "poll" ? rand() * i.pollMs : i.idleMs;
  let arrival = 0;
  for (let n = 0; n < i.samples; n++) {
    // The arrival process at the host is Poisson at the peak rate: delivery delays of
    // independent requests do not change that (a Poisson stream through independent delays
    // stays Poisson).
    arrival += exponential(rand, lambdaPerMs);
    const dRequest = logNormal(rand, i.deliveryP50Ms, i.deliveryP95Ms);
    const wHost = wakeOnce();
    let k = 0;
    for (let s = 1; s < freeAt.length; s++) if (freeAt[s]! < freeAt[k]!) k = s;
    const wait = Math.max(0, freeAt[k]! - arrival);
    const serve = exponential(rand, muPerMs);
    freeAt[k] = arrival + wait + serve;
    const dReply = logNormal(rand, i.deliveryP50Ms, i.deliveryP95Ms);
    const wTerminal = wakeOnce();
    delivery.push(dRequest + dReply);
    wake.push(wHost + wTerminal);
    queueWait.push(wait);
    service.push(serve);
    total.push(
      i.fixedMs + dRequest + wHost + wait + serve + dReply + wTerminal + 2 * i.peerRttMs,
    );
  }
  return {
    ...cap,
    rendezvousMs: quantiles(total),
    parts: {
      delivery: quantiles(delivery),
      wake: quantiles(wake),
      queueWait: quantiles(queueWait),
      service: quantiles(service),
    },
  };
}
