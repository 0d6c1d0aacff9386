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
}

/** The default logger: drops everything. */
export const silentLogger: Logger = { log: () => {} };
