/**
 * Runs the mailpeer command line on a pseudo-terminal, as a user at a terminal does: `script`
 * (util-linux) gives the child a pty for its stdin, stdout and stderr, so `Deno.stdin.isTerminal()`
 * holds, `prompt()` and raw mode work, and the terminal echoes what is typed unless the program
 * turned echo off. The test waits for a question's text to show and then types the answer.
 */
import { mailpeerCommandLine, type RunOptions } from "./cli.ts";

/** `script`'s path, when util-linux is installed. */
export const SCRIPT: string | undefined = ["/usr/bin/script", "/bin/script"].find((p) => {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
});

/** How long a wait lasts before the program counts as hung (no step comes near it). */
const LIMIT_MS = 30_000;

/** One word for `sh -c`. */
function shellWord(arg: string): string {
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}

/** `mailpeer args` running on a terminal. */
export class OnTerminal {
  /** Everything the terminal showed so far: stdout, stderr and the echo of what was typed. */
  shown = "";
  /** Where the next `waitFor` starts looking: after the text the last one found. */
  #from = 0;
  /** Wake-ups of the waits, called when more shows or the program ends. */
  readonly #waiting = new Set<() => void>();
  #ended = false;
  readonly #input: WritableStreamDefaultWriter<Uint8Array>;
  readonly #stop: () => void;
  /** The exit status of mailpeer (`script -e` passes it on), once all it showed was read. */
  readonly status: Promise<Deno.CommandStatus>;

  constructor(args: string[], options: Pick<RunOptions, "cwd" | "env"> = {}) {
    if (!SCRIPT) throw new Error("script (util-linux) is not installed");
    // -q: no "Script started" lines; -f: pass output on at once; -e: mailpeer's exit code;
    // /dev/null: keep no typescript file.
    const child = new Deno.Command(SCRIPT, {
      args: ["-qfec", mailpeerCommandLine(args).map(shellWord).join(" "), "/dev/null"],
      ...(options.cwd ? { cwd: options.cwd } : {}),
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", TERM: "xterm", ...options.env },
    }).spawn();
    this.#input = child.stdin.getWriter();
    // script ends its child on SIGTERM ("Session terminated, killing shell...").
    this.#stop = () => {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already ended.
      }
    };
    const reading = (async () => {
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
        this.shown += chunk;
        this.#wake();
      }
    })();
    const stderr = new Response(child.stderr).text();
    this.status = reading.then(async () => {
      const status = await child.status;
      // script's own complaints (the program's stderr is on the terminal).
      this.shown += await stderr;
      this.#ended = true;
      this.#wake();
      await this.#input.close().catch(() => {});
      return status;
    });
  }

  #wake(): void {
    for (const wake of this.#waiting) wake();
    this.#waiting.clear();
  }

  /**
   * Resolves once `text` shows after what the last wait found (what came before it is not
   * looked at again); rejects when the program ends first, with everything it showed.
   */
  waitFor(text: string, limitMs = LIMIT_MS): Promise<void> {
    return this.#bounded(this.#shows(text), `${JSON.stringify(text)} did not show`, limitMs);
  }

  /** The program's exit status once it ended. */
  ended(limitMs = LIMIT_MS): Promise<Deno.CommandStatus> {
    return this.#bounded(this.status, "the program did not end", limitMs);
  }

  async #shows(text: string): Promise<void> {
    for (;;) {
      const at = this.shown.indexOf(text, this.#from);
      if (at >= 0) {
        this.#from = at + text.length;
        return;
      }
      if (this.#ended) {
        throw new Error(
          `the program ended before ${JSON.stringify(text)} showed; it showed:\n${this.shown}`,
        );
      }
      await new Promise<void>((resolve) => this.#waiting.add(resolve));
    }
  }

  /**
   * `work`, unless `limitMs` pass first: then the program is stopped and this rejects once it
   * ended. Only a
   * hang ends that way (a program waiting for an answer the test does not give), so the limit
   * is far above the time any step takes.
   */
  async #bounded<T>(work: Promise<T>, what: string, limitMs: number): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const limit = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.#stop();
        this.status.finally(() =>
          reject(new Error(`${what} in ${limitMs} ms; the terminal showed:\n${this.shown}`))
        );
      }, limitMs);
    });
    work.catch(() => {}); // when the limit won, the end of the program rejects it unheard
    try {
      return await Promise.race([work, limit]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Ends the program (when it still runs) and waits for its end. */
  async stop(): Promise<Deno.CommandStatus> {
    this.#stop();
    return await this.status;
  }

  /** Types `line` and Enter (a carriage return, as a terminal sends it). */
  async type(line: string): Promise<void> {
    await this.#input.write(new TextEncoder().encode(line + "\r"));
  }

  /** What showed after the last wait's text. */
  get rest(): string {
    return this.shown.slice(this.#from);
  }
}
