/**
 * The configuration file (TOML): parsing, validation and defaults. Every key is documented in
 * docs/config.md. Relative paths are resolved against the directory of the file.
 *
 * The shape of a configuration is in config_schema.ts and its validation in
 * config_validate.ts; both are re-exported here.
 *
 * @module
 */
import { parse as parseToml } from "smol-toml";
import { dirname, resolve } from "node:path";
import { ConfigError } from "../errors.ts";
import type { Config } from "./config_schema.ts";
import { configFromObject } from "./config_validate.ts";

/** Parses TOML text into a validated configuration. */
export function parseConfig(text: string, options: { base?: string; path?: string } = {}): Config {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (err) {
    const where = options.path ?? "the configuration";
    const first = String((err as Error).message).split("\n")[0];
    throw new ConfigError(
      "ECONFIG",
      `Cannot read ${where}: it is not valid TOML (${first}); fix the syntax`,
      {
        cause: err,
      },
    );
  }
  return configFromObject(doc, options);
}

/** Reads and validates a configuration file. */
export async function loadConfig(path: string): Promise<Config> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw new ConfigError(
      "ECONFIG",
      `Cannot read the configuration ${path}: ${(err as Error).message}; check the --config path`,
      {
        cause: err,
      },
    );
  }
  const abs = resolve(path);
  return parseConfig(text, { base: dirname(abs), path: abs });
}
