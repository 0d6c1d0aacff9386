/**
 * Secrets (passwords) never live in the configuration file itself: it names an environment
 * variable (`password_env`) or a file (`password_file`) that holds them.
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
