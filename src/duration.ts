/**
 * Durations as people write and read them: `500ms`, `30s`, `5m`, `12h`, `2d`, or a bare number
 * of seconds (`parseDuration`, for the configuration), and `formatDuration` for messages. A shared
 * file at the top of `src/` (docs/design.md "Folders of src/ and what may import what").
 *
 * @module
 */
import { ConfigError } from "./errors.ts";

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses a duration into milliseconds; `key` names the setting in errors. */
export function parseDuration(value: unknown, key: string): number {
  if (typeof value === "number" && Number.isFinite(value) && value >= 0) return value * 1000;
  if (typeof value === "string") {
    const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(value);
    if (m) return Math.round(Number(m[1]) * UNITS[m[2] ?? "s"]!);
  }
  throw new ConfigError(
    "ECONFIG",
    `Cannot read ${key}: ${
      JSON.stringify(value)
    } is not a duration; write e.g. "500ms", "30s", "5m" or "12h"`,
  );
}

/** Formats milliseconds as a short human duration (`850ms`, `12.3s`, `4m05s`). */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  // Round to whole seconds first: 1_199_600 ms is 20m00s, not 19m60s.
  const total = Math.round(ms / 1000);
  const m = Math.floor(total / 60);
  const s = total % 60;
  return `${m}m${String(s).padStart(2, "0")}s`;
}
