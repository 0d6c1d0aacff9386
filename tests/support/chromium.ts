/**
 * Headless Chromium from tests: Debian's `/usr/bin/chromium` (scripts/chromium/install), run
 * once per page through its command line, with a new profile each time and every flag that
 * keeps it from calling home (the machine refuses such connections). No browser download.
 * Tests that need it are ignored when it is missing, unless MAILPEER_REQUIRE_STACK is set
 * (scripts/test sets it and installs Chromium): then loading this module throws.
 */

/** Where Debian puts Chromium; `MAILPEER_CHROMIUM` overrides it. */
export const CHROMIUM: string = Deno.env.get("MAILPEER_CHROMIUM") ?? "/usr/bin/chromium";

function missing(): string | undefined {
  try {
    const info = Deno.statSync(CHROMIUM);
    return info.isFile ? undefined : `${CHROMIUM} is not a file`;
  } catch {
    return `${CHROMIUM} is missing: run scripts/chromium/install`;
  }
}

/** Why browser tests are ignored here, or undefined when Chromium is there. */
export const NO_CHROMIUM: string | undefined = missing();

if (NO_CHROMIUM && Deno.env.get("MAILPEER_REQUIRE_STACK")) {
  throw new Error(`MAILPEER_REQUIRE_STACK is set but ${NO_CHROMIUM}`);
}

const FLAGS = [
  "--headless",
  "--no-sandbox", // tests run as root, where Chromium's sandbox refuses to start
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--no-default-browser-check",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-extensions",
  "--disable-default-apps",
  "--metrics-recording-only",
  "--hide-scrollbars",
];

async function run(args: string[], timeoutMs: number): Promise<string> {
  const profile = await Deno.makeTempDir({ prefix: "mailpeer-chromium-" });
  try {
    const out = await new Deno.Command(CHROMIUM, {
      args: [...FLAGS, `--user-data-dir=${profile}`, ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(timeoutMs),
    }).output();
    if (!out.success) {
      const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-3).join(" | ");
      throw new Error(`chromium exited with ${out.code}: ${err}`);
    }
    return new TextDecoder().decode(out.stdout);
  } finally {
    await Deno.remove(profile, { recursive: true });
  }
}

/** Loads `url` and returns the DOM as Chromium serializes it after the load event. */
export function dumpDom(url: string, options: { timeoutMs?: number } = {}): Promise<string> {
  return run(["--dump-dom", url], options.timeoutMs ?? 60_000);
}

/** Loads `url` in a window of `width`×`height` and saves a PNG screenshot to `path`. */
export async function screenshot(
  url: string,
  path: string,
  options: { width?: number; height?: number; timeoutMs?: number } = {},
): Promise<void> {
  await run([
    `--screenshot=${path}`,
    `--window-size=${options.width ?? 1200},${options.height ?? 900}`,
    url,
  ], options.timeoutMs ?? 60_000);
}
