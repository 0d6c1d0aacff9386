/**
 * Runs the mailpeer command line as a user does: real subprocesses of main.ts.
 */
const MAIN = new URL("../../main.ts", import.meta.url).pathname;
/** The library paths the `mailpeer` task of deno.json may open: one list, read from there. */
const FFI_PATHS = (() => {
  const deno = JSON.parse(Deno.readTextFileSync(new URL("../../deno.json", import.meta.url)));
  const m = /--allow-ffi=(\S+)/.exec(deno.tasks.mailpeer);
  if (!m) throw new Error("deno.json's mailpeer task names no --allow-ffi paths");
  return m[1]!;
})();
const PERMS = [
  "--allow-read",
  "--allow-write",
  "--allow-net",
  "--allow-env",
  "--allow-sys=hostname,networkInterfaces",
  // token_command (OAuth2) runs the program the configuration names
  "--allow-run",
  // libIPSec_MB and OpenSSL AES-GCM for the session, as the mailpeer task of deno.json allows it
  `--allow-ffi=${FFI_PATHS}`,
];

export interface RunOptions {
  cwd?: string;
  /** Run inside this network namespace (`ip netns exec`, as root): a NAT lab terminal. */
  netns?: string;
  /** `mailpeer`: what the command reads on stdin. `Running`: "piped" to write it as it runs. */
  stdin?: string | Uint8Array | "piped";
  env?: Record<string, string>;
}

/** The command line (program first) that runs `mailpeer args`: this Deno, the mailpeer task's permissions. */
export function mailpeerCommandLine(args: string[]): string[] {
  // --cached-only: scripts/deno fetched every dependency up front; a download here is a bug.
  return [Deno.execPath(), "run", "--no-prompt", "--cached-only", ...PERMS, MAIN, ...args];
}

function command(args: string[], options: RunOptions, piped: boolean): Deno.Command {
  const [deno, ...run] = mailpeerCommandLine(args);
  const netns = options.netns ? ["netns", "exec", options.netns, deno!] : [];
  return new Deno.Command(options.netns ? "ip" : deno!, {
    args: [...netns, ...run],
    ...(options.cwd ? { cwd: options.cwd } : {}),
    stdin: piped ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...options.env },
  });
}

/** Runs one command to its end. */
export async function mailpeer(args: string[], options: RunOptions = {}) {
  const child = command(args, options, options.stdin !== undefined).spawn();
  if (options.stdin !== undefined) {
    const w = child.stdin.getWriter();
    const input = options.stdin;
    await w.write(typeof input === "string" ? new TextEncoder().encode(input) : input);
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Parses a `--json` event stream. */
export function events(stdout: string): Record<string, unknown>[] {
  return stdout.trim().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
}

/** A long-running command whose JSON events can be awaited as they come. */
export class Running {
  readonly events: Record<string, unknown>[] = [];
  readonly #child: Deno.ChildProcess;
  readonly #waiters: {
    pred: (e: Record<string, unknown>) => boolean;
    resolve: (e: Record<string, unknown>) => void;
  }[] = [];
  readonly #reading: Promise<void>;
  readonly #listeners = new Set<(e: Record<string, unknown>) => void>();
  stderr = "";
  readonly status: Promise<Deno.CommandStatus>;
  readonly #input: WritableStreamDefaultWriter<Uint8Array> | undefined;

  constructor(args: string[], options: RunOptions = {}) {
    this.#child = command(args, options, options.stdin === "piped").spawn();
    this.#input = options.stdin === "piped" ? this.#child.stdin.getWriter() : undefined;
    this.#reading = Promise.all([this.#readEvents(), this.#readStderr()]).then(() => {});
    this.status = this.#reading.then(() => this.#child.status);
  }

  async #readEvents(): Promise<void> {
    let buf = "";
    for await (const chunk of this.#child.stdout.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line.startsWith("{")) continue;
        const e = JSON.parse(line) as Record<string, unknown>;
        this.events.push(e);
        for (const listener of this.#listeners) listener(e);
        for (const w of [...this.#waiters]) {
          if (w.pred(e)) {
            this.#waiters.splice(this.#waiters.indexOf(w), 1);
            w.resolve(e);
          }
        }
      }
    }
  }

  async #readStderr(): Promise<void> {
    for await (const chunk of this.#child.stderr.pipeThrough(new TextDecoderStream())) {
      this.stderr += chunk;
    }
  }

  /**
   * Writes to the process's stdin (started with `stdin: "piped"`); resolves once the pipe took
   * the bytes, so a process that reads slowly slows the writer down.
   */
  async write(bytes: Uint8Array): Promise<void> {
    if (!this.#input) throw new Error('write() needs a process started with stdin: "piped"');
    await this.#input.write(bytes);
  }

  /** Closes the process's stdin: the end of what it reads. */
  async endInput(): Promise<void> {
    await this.#input?.close();
  }

  /** Calls `listener` with every event from now on; returns the function that stops it. */
  onEvent(listener: (e: Record<string, unknown>) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Resolves with the first event (past or future) that satisfies `pred`; rejects if the process ends first. */
  waitFor(pred: (e: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
    const seen = this.events.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      this.#waiters.push({ pred, resolve });
      this.status.then((s) =>
        reject(
          new Error(
            `process ended (code ${s.code}) before the awaited event; stderr: ${this.stderr}`,
          ),
        )
      );
    });
  }

  /** Asks the process to stop (SIGTERM, or `signal`: SIGINT is Ctrl-C) and waits for it. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> {
    try {
      this.#child.kill(signal);
    } catch {
      // Already ended.
    }
    return await this.status;
  }
}
