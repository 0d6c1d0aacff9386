/**
 * Helpers of the host benchmark: a temporary site (host keys, one TOML configuration per host
 * mode, talking to the real stack), sealed requests mailed into host@host.test ahead of a
 * measurement, host child processes whose JSON events are timed as they arrive, the CPU time
 * of a process from /proc, and the sweep of every mail a run leaves.
 *
 * @module
 */
import { join } from "node:path";
import { SmtpSender } from "../../src/mail/smtp/sender.ts";
import { sealRequest } from "../../src/message/block.ts";
import { formatHostCard, type HostCard } from "../../src/message/host_card.ts";
import {
  encodeHostKeys,
  generateHostKeys,
  generateIdentityKeys,
  hostCardOf,
} from "../../src/message/key_file.ts";
import { generateX25519 } from "../../src/message/keys.ts";
import { bodyFor, subjectFor } from "../../src/message/mail_text.ts";
import { imapFor, now, RawBox, sleep, smtpFor } from "./rendezvous_stack.ts";

export const ALICE = "alice@a.test";
export const HOST = "host@host.test";
const MAIN = new URL("../../main.ts", import.meta.url).pathname;
/** The permissions of `deno task mailpeer`. */
export const PERMS = [
  "--allow-read",
  "--allow-write",
  "--allow-net",
  "--allow-env",
  "--allow-sys=hostname,networkInterfaces",
];

/** A temporary directory with host keys; configurations are added per mode. */
export interface Site {
  dir: string;
  card: HostCard;
  cardText: string;
  /** Environment for the host processes (the passwords named by `password_env`). */
  env: Record<string, string>;
}

/** Makes the site: host keys for host@host.test in a new temporary directory. */
export async function makeSite(): Promise<Site> {
  const dir = await Deno.makeTempDir({ prefix: "mailpeer-bench-host-" });
  const keys = await generateHostKeys(HOST);
  await Deno.writeTextFile(join(dir, "host.keys.json"), encodeHostKeys(keys), { mode: 0o600 });
  const card = hostCardOf(keys);
  const imap = imapFor(HOST);
  const smtp = smtpFor(HOST);
  return {
    dir,
    card,
    cardText: formatHostCard(card),
    env: { NO_COLOR: "1", MP_BENCH_IMAP_PASS: imap.password!, MP_BENCH_SMTP_PASS: smtp.password! },
  };
}

/**
 * Writes `<name>.toml`: an IMAP host for host@host.test polling every `pollMs` (NOOP), sending
 * by SMTP submission, answering private addresses, no per-sender limit (all requests come from
 * alice). `extra` goes into `[host]` (e.g. `shared_mailbox = true`) and may add sections.
 */
export async function writeHostConfig(
  site: Site,
  name: string,
  o: {
    network: string;
    pollMs: number;
    extra?: string;
    /** `implicit-1.2`: IMAP on 993 with implicit TLS, both servers capped at TLS 1.2. */
    tls?: "starttls" | "implicit-1.2";
  },
): Promise<string> {
  const fast = o.tls === "implicit-1.2";
  const imap = imapFor(HOST, fast ? "implicit" : "starttls");
  const smtp = smtpFor(HOST);
  const server = (
    s: { host: string; port: number; user: string; caFile?: string; servername?: string },
    env: string,
  ) =>
    [
      `host = "${s.host}"`,
      `port = ${s.port}`,
      `tls = "${s.port === 993 ? "implicit" : "starttls"}"`,
      ...(fast ? [`tls_max_version = "1.2"`] : []),
      `user = "${s.user}"`,
      `password_env = "${env}"`,
      `ca_file = "${s.caFile}"`,
      `servername = "${s.servername}"`,
    ].join("\n");
  const path = join(site.dir, `${name}.toml`);
  await Deno.writeTextFile(
    path,
    `network = "${o.network}"
[host]
email = "${HOST}"
keys = "host.keys.json"
table = "${name}-table.json"
hosts_file = "${name}-hosts.json"
allow_private_addresses = true
requests_per_sender_per_hour = 1000000
requests_per_hour = 10000000
new_rows_per_hour = 1000000
poll_interval = "${o.pollMs}ms"
${o.extra ?? ""}
[host.receive]
kind = "imap"
${server(imap, "MP_BENCH_IMAP_PASS")}
idle = false
[host.send]
kind = "smtp"
${server(smtp, "MP_BENCH_SMTP_PASS")}
`,
  );
  return path;
}

/** One outgoing mail, ready to submit. */
export interface Prepared {
  subject: string;
  text: string;
}

/** Seals `n` requests of distinct users (`player<i>`) for the host, as terminals would. */
export async function sealRequests(
  site: Site,
  network: string,
  n: number,
  user = "player",
): Promise<Prepared[]> {
  const out: Prepared[] = [];
  for (let i = 0; i < n; i++) {
    const identity = await generateIdentityKeys(`${user}${i}`);
    const block = await sealRequest({
      network,
      userId: identity.userId,
      identityKey: identity.ed25519.publicKey,
      endpoints: [{ transport: "tcp", address: "192.0.2.7", port: 5000 + i }],
      sessionId: crypto.getRandomValues(new Uint8Array(16)),
      createdAt: Date.now(),
      replyKey: (await generateX25519()).publicKey,
      hostCards: [site.cardText],
    }, { identity, hostCard: site.card });
    out.push({
      subject: subjectFor(network, "request"),
      text: bodyFor(network, "request", block),
    });
  }
  return out;
}

/** Submits the mails from alice to the host on one warm pooled connection. */
export async function submitAll(mails: Prepared[]): Promise<number> {
  const sender = new SmtpSender(smtpFor(ALICE));
  const t0 = now();
  try {
    for (const mail of mails) {
      await sender.send({ from: ALICE, to: [HOST], subject: mail.subject, text: mail.text });
    }
  } finally {
    await sender.close();
  }
  return now() - t0;
}

/** Count of mails whose subject contains `token` in the INBOX of `address`. */
export async function countIn(box: RawBox, token: string): Promise<number> {
  await box.client.noop();
  const found = await box.client.search({ subject: token, deleted: false }, { uid: true });
  return found ? found.length : 0;
}

/**
 * Waits (bounded) until `n` mails with `token` in the subject are in `address`'s INBOX.
 * Resolves with the count seen last.
 */
export async function untilDelivered(
  address: string,
  token: string,
  n: number,
  timeoutMs: number,
): Promise<number> {
  const box = await RawBox.open(address, "poll");
  try {
    const deadline = now() + timeoutMs;
    let seen = 0;
    while (now() < deadline) {
      seen = await countIn(box, token);
      if (seen >= n) return seen;
      await sleep(100); // polling a real server for a condition
    }
    return seen;
  } finally {
    await box.close();
  }
}

/** Where waiting requests are held while the host processes start (see {@link stage}). */
export const STAGING = "BenchStaging";

/**
 * Moves the mails of `address`'s INBOX whose subject contains `token` into {@link STAGING}
 * (created when missing), so that host processes can start, connect and say `host-ready` on
 * an empty mailbox; {@link release} puts them back with one `UID MOVE`, all at once, as the
 * echo finds its mails waiting. Resolves with how many were moved.
 */
export async function stage(address: string, token: string): Promise<number> {
  return await moveAll(address, token, "INBOX", STAGING);
}

/** Moves the staged mails back into INBOX in one `UID MOVE` (see {@link stage}). */
export async function release(address: string, token: string): Promise<number> {
  return await moveAll(address, token, STAGING, "INBOX");
}

async function moveAll(address: string, token: string, from: string, to: string) {
  const box = await RawBox.open(address, "poll");
  const client = box.client;
  try {
    const boxes = (await client.list()).map((b) => b.path);
    if (!boxes.includes(STAGING)) await client.mailboxCreate(STAGING);
    await client.mailboxOpen(from);
    const uids = await client.search({ subject: token }, { uid: true });
    if (!uids || uids.length === 0) return 0;
    await client.messageMove(uids.join(","), to, { uid: true });
    return uids.length;
  } finally {
    await box.close();
  }
}

/** A timed JSON event of a host process: `at` is the bench's monotonic clock on arrival. */
export interface Timed {
  at: number;
  event: Record<string, unknown>;
}

/** `mailpeer host --config … --json` as a child process, its events timed as they arrive. */
export class HostProcess {
  readonly events: Timed[] = [];
  readonly pid: number;
  stderr = "";
  readonly #child: Deno.ChildProcess;
  readonly done: Promise<Deno.CommandStatus>;

  constructor(
    args: string[],
    o: { cwd: string; env: Record<string, string>; v8?: string[]; preload?: string },
  ) {
    // a preloaded profiler (proc_profile_preload.ts) needs the inspector: all of --allow-sys
    const perms = o.preload === undefined ? PERMS : [
      ...PERMS.map((p) => p.startsWith("--allow-sys=") ? "--allow-sys" : p),
      "--preload",
      o.preload,
    ];
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", ...perms, ...(o.v8 ?? []), MAIN, ...args],
      cwd: o.cwd,
      env: o.env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.pid = this.#child.pid;
    const reading = Promise.all([this.#readEvents(), this.#readStderr()]);
    this.done = reading.then(() => this.#child.status);
  }

  async #readEvents(): Promise<void> {
    let buf = "";
    for await (const chunk of this.#child.stdout.pipeThrough(new TextDecoderStream())) {
      const at = now();
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.startsWith("{")) this.events.push({ at, event: JSON.parse(line) });
      }
    }
  }

  async #readStderr(): Promise<void> {
    for await (const chunk of this.#child.stderr.pipeThrough(new TextDecoderStream())) {
      this.stderr += chunk;
    }
  }

  /** The events named `name`. */
  named(name: string): Timed[] {
    return this.events.filter((e) => e.event.event === name);
  }

  /** Sends `signal` to the process (nothing when it has ended). */
  signal(signal: Deno.Signal): void {
    try {
      this.#child.kill(signal);
    } catch {
      // already ended
    }
  }

  /** SIGTERM, then waits for the end. */
  async stop(): Promise<Deno.CommandStatus> {
    try {
      this.#child.kill("SIGTERM");
    } catch {
      // already ended
    }
    return await this.done;
  }
}

/**
 * CPU time the whole machine spent in ms, every core summed: the non-idle jiffies of
 * /proc/stat's first line (user, nice, system, irq, softirq, steal). Between two readings it is
 * what the mail stack, Redis and the bench's processes cost together.
 */
export async function machineCpuMs(): Promise<number> {
  // read by `cat`, as cpuMsOf below: Deno grants /proc only with --allow-all
  const r = await new Deno.Command("cat", { args: ["/proc/stat"], stderr: "null" }).output();
  return cpuLine(new TextDecoder().decode(r.stdout).split("\n", 1)[0]!).busy;
}

/**
 * /proc/stat's first line in ms, every core summed: `busy` (user, nice, system, irq, softirq,
 * steal) and `softirq` alone.
 */
function cpuLine(line: string): { busy: number; softirq: number } {
  const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(
    Number,
  );
  const busy = user! + nice! + system! + irq! + softirq! + (steal ?? 0);
  return { busy: busy * 10, softirq: softirq! * 10 }; // USER_HZ is 100
}

/** `ms` per request, to two decimals. */
function perRequest(ms: number, requests: number): number {
  return Math.round((ms / Math.max(1, requests)) * 100) / 100;
}

/**
 * Readings of the machine's CPU that no live thread holds at the end of a drain (see
 * {@link cpuByCommand}): softirq ms (/proc/stat), and each live process's children's time
 * (cutime + cstime of /proc/<pid>/stat, by pid, with the process's name): a process that ends
 * and is reaped adds its whole time to its parent's. {@link unheldCpuMs} takes two readings
 * apart.
 */
export async function unheldCpu(): Promise<
  { softirq: number; children: Map<number, { command: string; ms: number }> }
> {
  // read by `cat`, as cpuOfAll: Deno grants /proc only with --allow-all
  const r = await new Deno.Command("sh", {
    args: ["-c", "cat /proc/stat /proc/[0-9]*/stat 2>/dev/null"],
    stderr: "null",
  }).output();
  const lines = new TextDecoder().decode(r.stdout).split("\n");
  const children = new Map<number, { command: string; ms: number }>();
  for (const line of lines.slice(1)) {
    const stat = statLine(line);
    if (stat) children.set(stat.id, { command: stat.name, ms: stat.childrenMs });
  }
  return { softirq: cpuLine(lines[0]!).softirq, children };
}

/**
 * Softirq ms per request between two {@link unheldCpu} readings, and the CPU ms per request of
 * the processes that ended meanwhile, by the name of the parent that reaped them (Postfix's
 * `master` for its short-lived daemons), largest first. A parent's children's time grows by an
 * ended process's whole life, so the time that process had already spent at the first reading
 * (its main thread's in `threadsBefore`, a {@link cpuOfAll} reading taken with `before`) is
 * taken off; the time of an ended process's other threads before then is not known, and counts.
 * A process's children's time counts from zero when the process is new (or its pid was used
 * again).
 */
export function unheldCpuMs(
  before: Awaited<ReturnType<typeof unheldCpu>>,
  after: Awaited<ReturnType<typeof unheldCpu>>,
  threadsBefore: Map<number, { command: string; ms: number }>,
  requests: number,
): { softirq: number; endedByParent: Record<string, number> } {
  const sums = new Map<string, number>();
  for (const [pid, { command, ms }] of after.children) {
    const was = before.children.get(pid);
    const spent = was !== undefined && was.ms <= ms ? ms - was.ms : ms;
    if (spent > 0) sums.set(command, (sums.get(command) ?? 0) + spent);
  }
  // the ended processes' time before the first reading, taken off their parents' share in
  // proportion (which parent reaped which process is not in /proc any more)
  let earlier = 0;
  for (const pid of before.children.keys()) {
    if (!after.children.has(pid)) earlier += threadsBefore.get(pid)?.ms ?? 0;
  }
  const total = [...sums.values()].reduce((a, b) => a + b, 0);
  const keep = total > 0 ? Math.max(0, total - earlier) / total : 0;
  return {
    softirq: perRequest(after.softirq - before.softirq, requests),
    endedByParent: Object.fromEntries(
      [...sums].sort((a, b) => b[1] - a[1]).map((
        [command, ms],
      ) => [command, perRequest(ms * keep, requests)]),
    ),
  };
}

/**
 * CPU ms (user + system) of every live thread by thread id, with its name: a process's main
 * thread is named as the command (`deno`, `smtpd`), its other threads as they name themselves
 * (`V8 DefaultWorke`: V8's garbage collector and compiler; `tokio-runtime-w`). With `pids`, the
 * threads of those processes only.
 */
export async function cpuOfAll(
  pids?: readonly number[],
): Promise<Map<number, { command: string; ms: number }>> {
  // one `cat` over every thread's stat (Deno grants /proc only with --allow-all); a thread that
  // ends meanwhile is skipped
  const r = await new Deno.Command("sh", {
    args: [
      "-c",
      `cat ${
        pids
          ? pids.map((p) => `/proc/${p}/task/[0-9]*/stat`).join(" ")
          : "/proc/[0-9]*/task/[0-9]*/stat"
      } 2>/dev/null`,
    ],
    stderr: "null",
  }).output();
  const all = new Map<number, { command: string; ms: number }>();
  for (const line of new TextDecoder().decode(r.stdout).split("\n")) {
    const stat = statLine(line);
    if (stat) all.set(stat.id, { command: stat.name, ms: stat.ms });
  }
  return all;
}

/**
 * CPU ms per request by thread name between two {@link cpuOfAll} readings, largest first
 * (postfix's smtpd, cleanup, lmtp; dovecot's imap, lmtp; redis-server; deno and its threads):
 * where a mode's machine CPU goes. A thread that ended in between is missing. A thread is
 * matched by its id, not its name: the kernel's workers (`kworker/…`) rename themselves by
 * task, and counting a renamed one as new counted its whole lifetime (5–10 ms per request of
 * `kworker/1:0-events_freezable` that was never spent in the drain). Its time goes to the
 * name it has at the end.
 */
export function cpuByCommand(
  before: Map<number, { command: string; ms: number }>,
  after: Map<number, { command: string; ms: number }>,
  requests: number,
): Record<string, number> {
  const sums = new Map<string, number>();
  for (const [pid, { command, ms }] of after) {
    const was = before.get(pid);
    // an id used again by a new thread (its time below the old one's) counts from zero
    const spent = was && was.ms <= ms ? ms - was.ms : ms;
    if (spent > 0) sums.set(command, (sums.get(command) ?? 0) + spent);
  }
  return Object.fromEntries(
    [...sums].sort((a, b) => b[1] - a[1]).map(([c, ms]) => [
      c,
      perRequest(ms, requests),
    ]),
  );
}

/**
 * User + system CPU time of a live process in ms (utime + stime of /proc/<pid>/stat, read by
 * `cat`: Deno grants /proc only with --allow-all).
 */
export async function cpuMsOf(pid: number): Promise<number> {
  const r = await new Deno.Command("cat", { args: [`/proc/${pid}/stat`], stderr: "null" })
    .output();
  return statLine(new TextDecoder().decode(r.stdout))?.ms ?? NaN;
}

/**
 * One line of /proc/<pid>/stat or /proc/<pid>/task/<tid>/stat: the id, the name, the user +
 * system CPU time in ms, and that of the reaped children (cutime + cstime); undefined for
 * anything else.
 */
export function statLine(
  line: string,
): { id: number; name: string; ms: number; childrenMs: number } | undefined {
  // the name (field 2) is in parentheses and may hold spaces and parentheses: cut at the last
  const open = line.indexOf(" ("), close = line.lastIndexOf(")");
  if (open < 0 || close < open) return undefined;
  // fields[0] is field 3 (state): utime, stime, cutime, cstime are fields 14 to 17
  const fields = line.slice(close + 2).split(" ").slice(11, 15).map(Number);
  const [utime, stime, cutime, cstime] = fields;
  const ms = (utime! + stime!) * 10; // USER_HZ is 100 on Linux
  const childrenMs = (cutime! + cstime!) * 10;
  if (!Number.isFinite(ms) || !Number.isFinite(childrenMs)) return undefined;
  return { id: Number(line.slice(0, open)), name: line.slice(open + 2, close), ms, childrenMs };
}

/**
 * Writes every dirty page of the machine to disk (`sync`) and resolves with the ms it took. A
 * mode that starts after it pays no writeback of the modes before it: the kernel's flusher
 * threads write dirty pages back 30 s after they were written, in whichever mode runs then.
 */
export async function syncDisk(): Promise<number> {
  const t0 = performance.now();
  const { success } = await new Deno.Command("sync", { stdout: "null", stderr: "null" }).output();
  if (!success) throw new Error("sync failed");
  return Math.round(performance.now() - t0);
}

/**
 * Deletes every mail whose subject contains `token` from INBOX, Quarantine and Processing (the
 * claim folder of shared mailboxes) of each address. Resolves with the count per address.
 */
export async function sweepAll(
  addresses: string[],
  token: string,
): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const address of addresses) {
    let deleted = 0;
    const box = await RawBox.open(address, "poll");
    const client = box.client;
    try {
      const boxes = (await client.list()).map((b) => b.path);
      for (const folder of ["INBOX", "Quarantine", "Processing", STAGING]) {
        if (!boxes.includes(folder)) continue;
        await client.mailboxOpen(folder);
        const uids = await client.search({ subject: token }, { uid: true });
        if (uids && uids.length > 0) {
          await client.messageDelete(uids.join(","), { uid: true });
          deleted += uids.length;
        }
      }
    } finally {
      await box.close();
    }
    out[address] = deleted;
  }
  return out;
}
