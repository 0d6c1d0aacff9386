/**
 * The peer benchmark's two-process measurement: raw loopback TCP and a mailpeer TCP session
 * with the sender and the receiver in two processes (`peer_end.ts`), as two peers on two hosts.
 * Sessions run twice: "CLI default", both ends holding exactly the permissions of deno.json's
 * `mailpeer` task (`cli_permissions.ts`: OpenSSL where libcrypto 3 is at a usual path), and
 * WebCrypto, both ends without ffi. Each kind keeps one receiver and one sender process for all its
 * runs (warm JIT, like the single-process bench); runs of the kinds interleave.
 *
 * Needs `--allow-run` for this Deno binary (scripts/bench-peer grants it).
 *
 * @module
 */
import type { EndReport } from "./peer_end.ts";
import { projectCliPermissions } from "./cli_permissions.ts";

const MiB = 1024 * 1024;
const END = new URL("./peer_end.ts", import.meta.url).pathname;
const PERMS = ["--allow-net=127.0.0.1"];

/** Options of {@link twoProcess}. */
export interface TwoProcessOptions {
  /** MiB per run. */
  mib: number;
  /** Measured runs per kind (after one warm-up run of at most 32 MiB). */
  runs: number;
  /** Session message size in bytes; default the ends' `MAX_FRAGMENT_BYTES`. */
  messageBytes?: number;
}

/** Per kind: MB/s of every run and the CPU share (CPU ms / wall ms) of each end, per run. */
export interface KindRuns {
  /** The AES-GCM both ends reported ("raw" for raw TCP). */
  aes_gcm: string;
  mb_s: number[];
  sender_cpu: number[];
  receiver_cpu: number[];
}

/** What {@link twoProcess} measured. */
export interface TwoProcessRuns {
  raw: KindRuns;
  /** Ends with the CLI's permissions; `aes_gcm` says which cipher they got. */
  cli: KindRuns;
  /** The `--allow-*` flags the CLI ends ran with (deno.json's `mailpeer` task). */
  cliPermissions: string[];
  webcrypto: KindRuns;
}

/** A child process speaking JSON lines on stdout, requests on stdin. */
class End {
  readonly #child: Deno.ChildProcess;
  readonly #lines: string[] = [];
  #waiting: (() => void) | null = null;
  #ended = false;
  #stderr = "";
  readonly #reading: Promise<void>;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;

  constructor(readonly name: string, args: string[], perms: string[]) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", ...perms, END, ...args],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#writer = this.#child.stdin.getWriter();
    this.#reading = Promise.all([this.#readLines(), this.#readStderr()]).then(() => {});
  }

  async #readLines(): Promise<void> {
    let buf = "";
    for await (const chunk of this.#child.stdout.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        this.#lines.push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
      this.#waiting?.();
    }
    this.#ended = true;
    this.#waiting?.();
  }

  async #readStderr(): Promise<void> {
    for await (const chunk of this.#child.stderr.pipeThrough(new TextDecoderStream())) {
      this.#stderr += chunk;
    }
  }

  /** The next report; throws with the child's stderr when it ended instead. */
  async next(): Promise<EndReport> {
    while (this.#lines.length === 0) {
      if (this.#ended) {
        await this.#reading;
        throw new Error(`Cannot run the ${this.name}: it ended early; stderr:\n${this.#stderr}`);
      }
      await new Promise<void>((resolve) => this.#waiting = resolve);
      this.#waiting = null;
    }
    return JSON.parse(this.#lines.shift()!);
  }

  request(line: unknown): Promise<void> {
    return this.#writer.write(new TextEncoder().encode(JSON.stringify(line) + "\n"));
  }

  /** Closes stdin (the end stops) and waits for the exit. */
  async stop(): Promise<void> {
    await this.#writer.close().catch(() => {});
    const status = await this.#child.status;
    await this.#reading;
    if (!status.success) {
      throw new Error(`Cannot finish the ${this.name}: exit ${status.code}; ${this.#stderr}`);
    }
  }

  kill(): void {
    try {
      this.#child.kill("SIGTERM");
    } catch {
      // already ended
    }
  }
}

/** A receiver and a sender process of one kind. */
class Pair {
  readonly runs: KindRuns = { aes_gcm: "", mb_s: [], sender_cpu: [], receiver_cpu: [] };
  #receiver: End;
  #sender: End | null = null;

  constructor(
    readonly name: string,
    readonly kind: "raw" | "session",
    readonly perms: string[] = PERMS,
  ) {
    this.#receiver = new End(`${name} receiver`, ["receive", "--kind", kind], perms);
  }

  async start(messageBytes?: number): Promise<void> {
    const { port } = await this.#receiver.next();
    const extra = messageBytes ? ["--message-bytes", String(messageBytes)] : [];
    this.#sender = new End(
      `${this.name} sender`,
      ["send", "--kind", this.kind, "--port", String(port), ...extra],
      this.perms,
    );
  }

  /** One transfer of `mib` MiB; recorded unless `warmUp`. */
  async run(mib: number, warmUp = false): Promise<void> {
    const sender = this.#sender!;
    await sender.request({ mib });
    const [sent, received] = await Promise.all([sender.next(), this.#receiver.next()]);
    const total = Math.round(mib * MiB);
    if (received.bytes !== total) {
      throw new Error(`${this.name}: received ${received.bytes} of ${total} bytes`);
    }
    if (sent.aes_gcm !== received.aes_gcm) {
      throw new Error(`${this.name}: sender uses ${sent.aes_gcm}, receiver ${received.aes_gcm}`);
    }
    this.runs.aes_gcm = sent.aes_gcm!;
    if (warmUp) return;
    this.runs.mb_s.push(total / MiB / (sent.ms! / 1000));
    this.runs.sender_cpu.push(sent.cpu_ms! / sent.ms!);
    this.runs.receiver_cpu.push(received.cpu_ms! / received.ms!);
  }

  async stop(): Promise<void> {
    await this.#sender?.stop();
    await this.#receiver.stop();
  }

  kill(): void {
    this.#sender?.kill();
    this.#receiver.kill();
  }
}

/** True when this process may start this Deno binary (the measurement's precondition). */
export function canRunEnds(): boolean {
  try {
    return Deno.permissions.querySync({ name: "run", command: Deno.execPath() }).state ===
      "granted";
  } catch {
    return false;
  }
}

/**
 * Raw TCP, and sessions with the CLI's permissions and with WebCrypto, between two processes:
 * `runs` interleaved runs of `mib` MiB each, timed by the sender from its first write to the
 * receiver's 1-byte ack.
 */
export async function twoProcess(options: TwoProcessOptions): Promise<TwoProcessRuns> {
  const cliPermissions = projectCliPermissions();
  const pairs = [
    new Pair("raw TCP", "raw"),
    new Pair("CLI default session", "session", cliPermissions),
    new Pair("WebCrypto session", "session"),
  ];
  try {
    for (const pair of pairs) await pair.start(options.messageBytes);
    for (const pair of pairs) await pair.run(Math.min(32, options.mib), true);
    for (let i = 0; i < options.runs; i++) {
      for (const pair of pairs) await pair.run(options.mib);
    }
    for (const pair of pairs) await pair.stop();
  } catch (err) {
    for (const pair of pairs) pair.kill();
    throw err;
  }
  const [raw, cli, webcrypto] = pairs.map((p) => p.runs);
  return { raw: raw!, cli: cli!, cliPermissions, webcrypto: webcrypto! };
}

const round = (x: number, digits = 1) => Number(x.toFixed(digits));
const best = (xs: number[]) => Math.max(...xs);
function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}
const cpu = (k: KindRuns) => ({
  sender: round(median(k.sender_cpu), 2),
  receiver: round(median(k.receiver_cpu), 2),
});

/** The `two_process` JSON of the peer bench (a `note` alone when it was skipped). */
export type TwoProcessSummary = ReturnType<typeof twoProcessSummary> | { note: string };

/**
 * Best and median MB/s per kind, session/raw ratios (best/best, median/median) and the median
 * CPU share of each end (CPU ms per wall ms; WebCrypto's worker threads can push it above 1).
 */
export function twoProcessSummary(
  r: TwoProcessRuns,
  o: { bytesPerRun: number; messageBytes: number },
) {
  const raw = r.raw.mb_s;
  const cli = r.cli.mb_s;
  const web = r.webcrypto.mb_s;
  return {
    bytes_per_run: o.bytesPerRun,
    runs: raw.length,
    message_bytes: o.messageBytes,
    raw_tcp_mb_s: round(best(raw)),
    raw_tcp_median_mb_s: round(median(raw)),
    cli_cipher: r.cli.aes_gcm,
    cli_permissions: r.cliPermissions,
    session_cli_mb_s: round(best(cli)),
    session_cli_median_mb_s: round(median(cli)),
    session_webcrypto_mb_s: round(best(web)),
    session_webcrypto_median_mb_s: round(median(web)),
    ratio_cli: round(best(cli) / best(raw), 3),
    ratio_cli_median: round(median(cli) / median(raw), 3),
    ratio_webcrypto: round(best(web) / best(raw), 3),
    ratio_webcrypto_median: round(median(web) / median(raw), 3),
    cpu_share: { raw: cpu(r.raw), cli: cpu(r.cli), webcrypto: cpu(r.webcrypto) },
    all_runs_mb_s: {
      raw: raw.map((x) => round(x)),
      cli: cli.map((x) => round(x)),
      webcrypto: web.map((x) => round(x)),
    },
  };
}

/** The bench table's rows for the two-process figures. */
export function twoProcessRows(s: TwoProcessSummary): [string, string][] {
  if ("note" in s) return [["two processes", s.note]];
  const share = (c: { sender: number; receiver: number }) =>
    `, CPU sender ${c.sender} / receiver ${c.receiver}`;
  return [[
    `2 processes: raw Deno TCP loopback (best / median of ${s.runs})`,
    `${s.raw_tcp_mb_s} / ${s.raw_tcp_median_mb_s} MB/s${share(s.cpu_share.raw)}`,
  ], [
    `2 processes: CLI default session (${s.cli_cipher}), ${s.message_bytes}-byte messages`,
    `${s.session_cli_mb_s} / ${s.session_cli_median_mb_s} MB/s${share(s.cpu_share.cli)}`,
  ], [
    "2 processes: CLI default / raw Deno TCP (best, median)",
    `${s.ratio_cli}, ${s.ratio_cli_median}`,
  ], [
    `2 processes: session (webcrypto), ${s.message_bytes}-byte messages`,
    `${s.session_webcrypto_mb_s} / ${s.session_webcrypto_median_mb_s} MB/s` +
    share(s.cpu_share.webcrypto),
  ], [
    "2 processes: session (webcrypto) / raw Deno TCP (best, median)",
    `${s.ratio_webcrypto}, ${s.ratio_webcrypto_median}`,
  ]];
}
