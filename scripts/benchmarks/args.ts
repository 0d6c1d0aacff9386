/**
 * Command-line options of the benchmarks: `--name value` pairs, with a clear error for a
 * missing or malformed value.
 *
 * @module
 */

/** The value after `--name`, or undefined when the option is absent. */
export function arg(name: string): string | undefined {
  const at = Deno.args.indexOf(`--${name}`);
  if (at < 0) return undefined;
  const value = Deno.args[at + 1];
  if (value === undefined || value.startsWith("--")) {
    throw new TypeError(`--${name} needs a value`);
  }
  return value;
}

/** A whole number given as `--name N` (at least `min`), or `fallback` when absent. */
export function num(name: string, fallback: number, min = 0): number {
  const raw = arg(name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) {
    throw new TypeError(`--${name} needs a whole number of at least ${min}, not ${raw}`);
  }
  return value;
}

/** A number given as `--name X` (at least `min`, fractions allowed), or `fallback` when absent. */
export function real(name: string, fallback: number, min = 0): number {
  const raw = arg(name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min) {
    throw new TypeError(`--${name} needs a number of at least ${min}, not ${raw}`);
  }
  return value;
}
