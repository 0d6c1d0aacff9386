/**
 * The peer benchmark's anchors (issue 18): js-libp2p (TCP + Noise + yamux) and hyperdht (UDX +
 * secret-stream) between two Node processes on 127.0.0.1, with Node raw TCP from the same run as
 * their baseline. Each is a receiver and a sender process (`anchors/<name>.mjs`, the transfer
 * protocol of `anchors/bulk.mjs`, as `peer_end.ts`): bulk MB/s over one stream per run (a
 * warm-up run first) and handshake times (connect until the link is encrypted; raw TCP: connect).
 *
 * The anchors' npm packages live under `scripts/benchmarks/anchors/` (package.json and its
 * lockfile; `npm ci` there on first use), never among mailpeer's dependencies. An anchor that
 * cannot run is a `note` ("not measured: why"), not a failed bench.
 *
 * Needs `--allow-run=node,npm` (scripts/bench-peer grants it).
 *
 * @module
 */
const DIR = new URL("./anchors/", import.meta.url).pathname;
const ANCHORS = ["node_tcp", "libp2p", "hyperdht"] as const;
/** An anchor's name: a script `anchors/<name>.mjs`. */
export type AnchorName = typeof ANCHORS[number];

/** Options of {@link anchors}. */
export interface AnchorOptions {
  /** MiB per run. */
  mib: number;
  /** Measured runs (after one warm-up of at most 32 MiB). */
  runs: number;
  /** Timed handshakes (after 3 warm-up ones). */
  handshakes: number;
  /** Per anchor; default 120 s. */
  timeoutMs?: number;
}

/** One anchor's figures, or why it was not measured. */
export type AnchorResult = {
  mb_s: number;
  median_mb_s: number;
  handshake_p50_ms: number;
  handshake_p90_ms: number;
  all_runs_mb_s: number[];
} | { note: string };

const round = (x: number, digits = 1) => Number(x.toFixed(digits));
function percentile(xs: number[], p: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.max(1, Math.ceil((p / 100) * sorted.length)) - 1]!;
}

async function output(cmd: string, args: string[], cwd: string) {
  const r = await new Deno.Command(cmd, {
    args,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  return { ok: r.success, text: new TextDecoder().decode(r.stderr).trim().split("\n").slice(-3) };
}

/** Installs the anchors' packages (`npm ci`) unless they are there and current; null or why not. */
export async function installAnchors(): Promise<string | null> {
  try {
    // npm writes node_modules/.package-lock.json on install: older than the lockfile, reinstall
    const installed = await Deno.stat(`${DIR}node_modules/.package-lock.json`);
    const wanted = await Deno.stat(`${DIR}package-lock.json`);
    if ((installed.mtime?.getTime() ?? 0) >= (wanted.mtime?.getTime() ?? 0)) return null;
  } catch {
    // not installed yet
  }
  try {
    const r = await output("npm", ["ci", "--no-audit", "--no-fund"], DIR);
    return r.ok ? null : `npm ci failed: ${r.text.join(" ")}`;
  } catch (err) {
    return `cannot run npm: ${(err as Error).message}`;
  }
}

/** Lines of a child's stdout. */
async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buf = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      yield buf.slice(0, nl);
      buf = buf.slice(nl + 1);
    }
  }
  if (buf.trim()) yield buf;
}

async function stderrOf(child: Deno.ChildProcess): Promise<string> {
  let text = "";
  for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) text += chunk;
  return text.trim().split("\n").slice(-3).join(" ");
}

function node(args: string[], stdin: "piped" | "null"): Deno.ChildProcess {
  return new Deno.Command("node", { args, cwd: DIR, stdin, stdout: "piped", stderr: "piped" })
    .spawn();
}

function kill(child: Deno.ChildProcess): void {
  try {
    child.kill("SIGKILL");
  } catch {
    // already ended
  }
}

/** One anchor: its receiver, then its sender's single result line. */
export async function anchor(name: AnchorName, o: AnchorOptions): Promise<AnchorResult> {
  let receiver: Deno.ChildProcess;
  try {
    receiver = node([`${name}.mjs`, "receive"], "piped");
  } catch (err) {
    return { note: `not measured: cannot run node: ${(err as Error).message}` };
  }
  const receiverErr = stderrOf(receiver);
  let sender: Deno.ChildProcess | null = null;
  let draining: Promise<void> = Promise.resolve();
  const timer = setTimeout(() => {
    kill(receiver);
    if (sender) kill(sender);
  }, o.timeoutMs ?? 120_000);
  try {
    const out = lines(receiver.stdout);
    const first = await out.next();
    draining = (async () => {
      for await (const _ of out) { /* nothing more is expected */ }
    })();
    if (first.done) return { note: `not measured: the receiver ended: ${await receiverErr}` };
    const { address } = JSON.parse(first.value);
    sender = node(
      [`${name}.mjs`, "send", address, String(o.mib), String(o.runs), String(o.handshakes)],
      "null",
    );
    const senderErr = stderrOf(sender);
    let result: { mb_s: number[]; handshake_ms: number[] } | null = null;
    for await (const line of lines(sender.stdout)) {
      const r = JSON.parse(line);
      if (r.event === "result") result = r;
    }
    const status = await sender.status;
    if (!status.success || !result) {
      return { note: `not measured: the sender failed (exit ${status.code}): ${await senderErr}` };
    }
    const xs = result.mb_s;
    return {
      mb_s: round(Math.max(...xs)),
      median_mb_s: round(percentile(xs, 50)),
      handshake_p50_ms: round(percentile(result.handshake_ms, 50), 2),
      handshake_p90_ms: round(percentile(result.handshake_ms, 90), 2),
      all_runs_mb_s: xs.map((x) => round(x)),
    };
  } catch (err) {
    return { note: `not measured: ${(err as Error).message}` };
  } finally {
    clearTimeout(timer);
    await receiver.stdin.close().catch(() => {});
    const ended = await Promise.race([
      receiver.status.then(() => true),
      new Promise<false>((r) => setTimeout(() => r(false), 5000)),
    ]);
    if (!ended) kill(receiver);
    await receiver.status;
    await Promise.all([draining.catch(() => {}), receiverErr.catch(() => "")]);
  }
}

/** Every anchor, one after the other (each pair alone on the machine's cores). */
export async function anchors(o: AnchorOptions): Promise<Record<AnchorName, AnchorResult>> {
  const why = await installAnchors();
  const results = {} as Record<AnchorName, AnchorResult>;
  for (const name of ANCHORS) {
    results[name] = why ? { note: `not measured: ${why}` } : await anchor(name, o);
  }
  return results;
}

/** The bench table's rows for the anchors, each beside Node raw TCP from the same run. */
export function anchorRows(a: Record<AnchorName, AnchorResult>): [string, string][] {
  const base = a.node_tcp;
  const label: Record<AnchorName, string> = {
    node_tcp: "Node raw TCP",
    libp2p: "js-libp2p (TCP + Noise + yamux)",
    hyperdht: "hyperdht (UDX + secret-stream)",
  };
  return ANCHORS.map((name): [string, string] => {
    const r = a[name];
    const title = `2 Node processes: ${label[name]} (best / median)`;
    if ("note" in r) return [title, r.note];
    const vsBase = name !== "node_tcp" && !("note" in base)
      ? `, ${round(r.median_mb_s / base.median_mb_s, 3)}× Node raw TCP (median)`
      : "";
    return [
      title,
      `${r.mb_s} / ${r.median_mb_s} MB/s${vsBase}; handshake p50 ${r.handshake_p50_ms} ms`,
    ];
  });
}
