/**
 * A minimal structured logger: silent unless the CLI (or a library user) configures one.
 *
 * @module
 */

/** Log levels, lowest first. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** Structured log record fields. */
export type LogFields = Record<string, unknown>;

/** Receives log records. */
export interface Logger {
  log(level: LogLevel, message: string, fields?: LogFields): void;
  /**
   * Whether records at `level` are kept, so a caller can skip building one that would be
   * dropped (imapflow serialises every server response for its debug log unless told not to).
   * A logger without it counts as keeping every level.
   */
  enabled?(level: LogLevel): boolean;
}

/** The default logger: drops everything. */
export const silentLogger: Logger = { log: () => {}, enabled: () => false };

const LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];

/**
 * A logger that writes records at `level` and above to stderr, one line each: what the CLI uses
 * when `MAILPEER_LOG` names a level (docs/cli.md), e.g. `MAILPEER_LOG=debug mailpeer client …`.
 */
export function stderrLogger(level: LogLevel): Logger {
  const min = LEVELS.indexOf(level);
  const encoder = new TextEncoder();
  return {
    enabled: (l) => LEVELS.indexOf(l) >= min,
    log(l, message, fields) {
      if (LEVELS.indexOf(l) < min) return;
      const extra = fields && Object.keys(fields).length > 0 ? ` ${JSON.stringify(fields)}` : "";
      Deno.stderr.writeSync(encoder.encode(`mailpeer ${l}: ${message}${extra}\n`));
    },
  };
}

/** The logger `MAILPEER_LOG` asks for (`debug`, `info`, `warn`, `error`), else the silent one. */
export function loggerFromEnv(): Logger {
  let level: string | undefined;
  try {
    level = Deno.env.get("MAILPEER_LOG");
  } catch {
    return silentLogger; // no env permission
  }
  return LEVELS.includes(level as LogLevel) ? stderrLogger(level as LogLevel) : silentLogger;
}
