/**
 * A text progress bar: a pure function from how far a transfer got to one printable line.
 *
 * @module
 */

/** How far a transfer got. */
export interface ProgressState {
  /** Bytes done so far. */
  done: number;
  /**
   * Bytes in total; 0 means an empty transfer (shown as complete); absent for a stream of
   * unknown length (shown as bytes so far, rate and time, with no bar).
   */
  total?: number;
  /** Milliseconds since the transfer started. */
  elapsedMs: number;
}

/** Options of {@link renderProgress}. */
export interface RenderProgressOptions {
  /** Characters between the brackets of the bar; default 24. */
  width?: number;
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

/**
 * Formats a byte count with a binary unit: `512 B`, `1.5 KiB`, `100.0 MiB`.
 *
 * @example
 * ```ts
 * formatBytes(1536); // "1.5 KiB"
 * ```
 */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return "? B";
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${Math.round(value)} B` : `${value.toFixed(1)} ${UNITS[unit]}`;
}

/** Formats seconds as `m:ss`, or `h:mm:ss` from one hour on. */
function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/**
 * Renders one progress line: bar, percentage, bytes done of total, rate and time left.
 * `done` beyond `total` is shown as complete; no time has passed yet → no rate and no ETA.
 *
 * @example
 * ```ts
 * renderProgress({ done: 50 * 1024 * 1024, total: 100 * 1024 * 1024, elapsedMs: 2000 });
 * // "[############------------]  50.0%  50.0 MiB / 100.0 MiB  25.0 MiB/s  ETA 0:02"
 * renderProgress({ done: 50 * 1024 * 1024, elapsedMs: 2000 }); // a stream of unknown length
 * // "50.0 MiB so far  25.0 MiB/s  0:02"
 * ```
 */
export function renderProgress(state: ProgressState, options: RenderProgressOptions = {}): string {
  const seconds = state.elapsedMs / 1000;
  if (state.total === undefined) {
    const done = Math.max(0, state.done);
    const rate = seconds > 0 && done > 0 ? `${formatBytes(done / seconds)}/s` : "--/s";
    return `${formatBytes(done)} so far  ${rate}  ${formatDuration(seconds)}`;
  }
  const width = Math.max(1, Math.floor(options.width ?? 24));
  const total = Math.max(0, state.total);
  const done = Math.min(Math.max(0, state.done), total);
  const fraction = total === 0 ? 1 : done / total;
  const filled = Math.floor(fraction * width);
  const bar = "#".repeat(filled) + "-".repeat(width - filled);
  const percent = `${(fraction * 100).toFixed(1)}%`.padStart(6);
  let tail: string;
  if (fraction === 1) {
    tail = seconds > 0
      ? `${formatBytes(done / seconds)}/s  done in ${formatDuration(seconds)}`
      : "done";
  } else if (seconds > 0 && done > 0) {
    const rate = done / seconds;
    tail = `${formatBytes(rate)}/s  ETA ${formatDuration((total - done) / rate)}`;
  } else {
    tail = "--/s  ETA --:--";
  }
  return `[${bar}] ${percent}  ${formatBytes(done)} / ${formatBytes(total)}  ${tail}`;
}
