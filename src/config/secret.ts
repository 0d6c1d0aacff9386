/**
 * Secrets (passwords) never live in the configuration file itself: it names an environment
 * variable (`password_env`) or a file (`password_file`) that holds them, or (OAuth2) a command
 * that prints an access token (`token_command`).
 *
 * @module
 */
import { isAbsolute, resolve } from "node:path";
import { ConfigError } from "../errors.ts";

/** Where a secret comes from. */
export type SecretRef = { env: string } | { file: string };

/** Reads `password_env` / `password_file` of a config table; rejects an inline `password`. */
export function secretRef(
  t: Record<string, unknown>,
  prefix: string,
  base = Deno.cwd(),
): SecretRef | undefined {
  if (t["password"] !== undefined) {
    throw new ConfigError(
      "ECONFIG",
      `Cannot read ${prefix}password: passwords are not kept in the configuration; use ${prefix}password_env or ${prefix}password_file`,
    );
  }
  const env = t["password_env"];
  const file = t["password_file"];
  if (typeof env === "string" && env !== "") return { env };
  if (typeof file === "string" && file !== "") {
    return { file: isAbsolute(file) ? file : resolve(base, file) };
  }
  return undefined;
}

/** Resolves a secret to its value (a file's trailing newline is dropped). */
export async function resolveSecret(ref: SecretRef, what: string): Promise<string> {
  if ("env" in ref) {
    const value = Deno.env.get(ref.env);
    if (value === undefined || value === "") {
      throw new ConfigError(
        "ESECRET",
        `Cannot read the ${what}: environment variable ${ref.env} is not set; export it before starting mailpeer`,
      );
    }
    return value;
  }
  try {
    return (await Deno.readTextFile(ref.file)).replace(/\r?\n$/, "");
  } catch (err) {
    throw new ConfigError(
      "ESECRET",
      `Cannot read the ${what} from ${ref.file}: ${(err as Error).message}; check password_file`,
      {
        cause: err,
      },
    );
  }
}

/** Longest an OAuth2 token command may run. */
const TOKEN_COMMAND_TIMEOUT_MS = 30_000;
/** Largest output of a token command (an access token is a few KiB at most). */
const MAX_TOKEN_BYTES = 16 * 1024;

/**
 * An OAuth2 access token from `token_command` (docs/config.md "OAuth2"), as msmtp's
 * `passwordeval` or isync's `PassCmd` do: the program runs without a shell, prints the token on
 * standard output and exits 0. When the server refused the last token (`renew`), it runs with
 * `MAILPEER_TOKEN_RENEW=1` in its environment, so a helper that caches tokens fetches a fresh one.
 * Every failure is one `ESECRET` line naming the command.
 */
export async function runTokenCommand(
  command: readonly string[],
  what: string,
  renew = false,
): Promise<string> {
  const [program, ...args] = command;
  const named = `token_command ${JSON.stringify(command[0])}`;
  const fail = (problem: string, cause?: unknown) =>
    new ConfigError("ESECRET", `Cannot get the ${what}: ${named} ${problem}`, { cause });
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(program!, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: renew ? { MAILPEER_TOKEN_RENEW: "1" } : {},
      signal: AbortSignal.timeout(TOKEN_COMMAND_TIMEOUT_MS),
    }).output();
  } catch (err) {
    throw err instanceof Deno.errors.NotFound
      ? fail("was not found; check the path in token_command", err)
      : fail(`could not run (${(err as Error).message}); check token_command`, err);
  }
  if (output.signal !== null) {
    throw fail(
      `did not finish within ${TOKEN_COMMAND_TIMEOUT_MS / 1000} s; check that it needs no input`,
    );
  }
  if (!output.success) {
    const said = new TextDecoder().decode(output.stderr).trim().split("\n")[0]?.slice(0, 200);
    throw fail(`exited ${output.code}${said ? ` (${said})` : ""}; run it by hand to see why`);
  }
  if (output.stdout.length > MAX_TOKEN_BYTES) {
    throw fail(`printed more than ${MAX_TOKEN_BYTES} bytes; it must print the token alone`);
  }
  const token = new TextDecoder().decode(output.stdout).trim();
  // deno-lint-ignore no-control-regex
  if (token === "" || /[\s\x00-\x1f]/.test(token)) {
    throw fail(
      token === ""
        ? "printed nothing; it must print the access token"
        : "printed more than one word; it must print the token alone",
    );
  }
  return token;
}
