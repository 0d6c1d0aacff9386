/**
 * A Deno script of the NAT benchmark (`nat_peer.ts`, `nat_paths_peer.ts`) run inside a NAT lab
 * namespace with `ip netns exec`, spoken to in JSON lines on its stdin and stdout.
 *
 * @module
 */

const REPO = new URL("../../", import.meta.url).pathname;

/** Options of {@link NetnsProcess}. */
export interface NetnsProcessOptions {
  /** Stopped after this long, ms: a safety net only, the script ends by itself. */
  killAfterMs: number;
  /** Added to the environment (e.g. a password that must not be on the command line). */
  env?: Record<string, string>;
}

/** One script in a lab namespace; `line()` reads its next JSON line, `write()` sends one. */
export class NetnsProcess {
  readonly #child: Deno.ChildProcess;
  readonly #reader: ReadableStreamDefaultReader<string>;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #script: string;
  #buffer = "";

  constructor(ns: string, script: string, args: string[], options: NetnsProcessOptions) {
    this.#script = script.split("/").at(-1)!;
    this.#child = new Deno.Command("ip", {
      args: [
        "netns",
        "exec",
        ns,
        Deno.execPath(),
        "run",
        "--no-prompt",
        "--cached-only",
        "--quiet",
        "--allow-read",
        "--allow-env",
        "--allow-net",
        "--allow-ffi",
        "--allow-sys=hostname,networkInterfaces",
        "--unstable-net",
        script,
        ...args,
      ],
      cwd: REPO,
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
      ...(options.env ? { env: options.env } : {}),
      signal: AbortSignal.timeout(options.killAfterMs),
    }).spawn();
    this.#reader = this.#child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    this.#stdin = this.#child.stdin.getWriter();
  }

  /** The next JSON line; throws when the script ended first. */
  async line<T = Record<string, unknown>>(): Promise<T> {
    while (!this.#buffer.includes("\n")) {
      const { value, done } = await this.#reader.read();
      if (done) {
        throw new Error(`${this.#script} ended early; got ${JSON.stringify(this.#buffer)}`);
      }
      this.#buffer += value;
    }
    const i = this.#buffer.indexOf("\n");
    const line = this.#buffer.slice(0, i);
    this.#buffer = this.#buffer.slice(i + 1);
    return JSON.parse(line) as T;
  }

  /** Writes one JSON line to the script's stdin. */
  async write(line: unknown): Promise<void> {
    await this.#stdin.write(new TextEncoder().encode(JSON.stringify(line) + "\n"));
  }

  /** Closes stdin, waits for the script to end; its exit code. */
  async end(): Promise<number> {
    await this.#stdin.close().catch(() => {});
    this.#reader.releaseLock();
    await this.#child.stdout.cancel().catch(() => {});
    return (await this.#child.status).code;
  }

  /** Stops the script at once (a run that went wrong). */
  kill(): void {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // already ended
    }
  }
}
