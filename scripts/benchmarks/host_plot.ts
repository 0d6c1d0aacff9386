/**
 * The host scaling plot of docs/performance.md: answered requests per second against the
 * number of processes (1, 2, 3), host beside echo (the stack's own capacity), drawn as plain
 * SVG text from one or more `scripts/bench-host` JSON files. With several runs each point is
 * the median and a bar spans the lowest to the highest run, so the spread the machine's load
 * causes stays visible.
 *
 * Usage (several runs into the docs):
 *   scripts/deno run --allow-read --allow-write scripts/benchmarks/host_plot.ts \
 *     --out docs/host-scaling.svg bench-results/host-a.json bench-results/host-b.json …
 * `scripts/bench-host` writes the plot of its own run beside its JSON.
 *
 * @module
 */

/** Answered per second by process count, for one series, over the runs given. */
export interface SeriesPoint {
  processes: number;
  /** One figure per run. */
  values: number[];
}

/** What a bench-host JSON holds that the plot reads. */
interface HostJson {
  started?: string;
  modes?: Record<string, { perSecond?: number } | undefined>;
}

/** The points of `kind` (`host` or `echo`) over `runs`, for 1, 2 and 3 processes. */
export function seriesOf(runs: readonly HostJson[], kind: "host" | "echo"): SeriesPoint[] {
  return [1, 2, 3].map((processes) => ({
    processes,
    values: runs.map((r) => r.modes?.[`${kind}-${processes}`]?.perSecond)
      .filter((v): v is number => typeof v === "number" && Number.isFinite(v)),
  })).filter((p) => p.values.length > 0);
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const escape = (text: string) =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/**
 * The SVG text of the plot. `title` goes on top; `note` (e.g. the runs' dates) below the
 * axis.
 */
export function scalingSvg(
  runs: readonly HostJson[],
  o: { title?: string; note?: string } = {},
): string {
  const W = 720, H = 400, left = 64, right = 230, top = 48, bottom = 72;
  const series = [
    { name: "host (mailpeer host processes)", kind: "host" as const, color: "#c0392b" },
    { name: "echo (stack capacity)", kind: "echo" as const, color: "#2c6fbb" },
  ].map((s) => ({ ...s, points: seriesOf(runs, s.kind) }));
  const all = series.flatMap((s) => s.points.flatMap((p) => p.values));
  const step = all.length === 0 ? 50 : Math.max(...all) > 300 ? 100 : 50;
  const yMax = Math.max(step, Math.ceil((Math.max(0, ...all) * 1.1) / step) * step);
  const x = (n: number) => left + ((n - 1) / 2) * (W - left - right);
  const y = (v: number) => top + (1 - v / yMax) * (H - top - bottom);
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${left}" y="24" font-size="15" font-weight="bold">${
      escape(o.title ?? "Answered requests per second against process count")
    }</text>`,
  );
  for (let v = 0; v <= yMax; v += step) {
    out.push(
      `<line x1="${left}" x2="${W - right}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`,
      `<text x="${left - 8}" y="${y(v) + 4}" text-anchor="end">${v}</text>`,
    );
  }
  for (const n of [1, 2, 3]) {
    out.push(
      `<text x="${x(n)}" y="${H - bottom + 20}" text-anchor="middle">${n}</text>`,
    );
  }
  out.push(
    `<line x1="${left}" x2="${left}" y1="${top}" y2="${H - bottom}" stroke="#333"/>`,
    `<line x1="${left}" x2="${W - right}" y1="${H - bottom}" y2="${H - bottom}" stroke="#333"/>`,
    `<text x="${(left + W - right) / 2}" y="${
      H - bottom + 40
    }" text-anchor="middle">processes (host) / sessions (echo) on one mailbox</text>`,
    `<text transform="translate(16 ${
      (top + H - bottom) / 2
    }) rotate(-90)" text-anchor="middle">answered per second</text>`,
  );
  for (const [i, s] of series.entries()) {
    const pts = s.points.map((p) => ({ ...p, m: median(p.values) }));
    if (pts.length > 1) {
      out.push(
        `<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${
          pts.map((p) => `${x(p.processes)},${y(p.m).toFixed(1)}`).join(" ")
        }"/>`,
      );
    }
    for (const p of pts) {
      const [lo, hi] = [Math.min(...p.values), Math.max(...p.values)];
      const dx = (i - 0.5) * 6; // the two series' bars side by side
      if (hi > lo) {
        out.push(
          `<line x1="${x(p.processes) + dx}" x2="${x(p.processes) + dx}" y1="${
            y(lo).toFixed(1)
          }" y2="${y(hi).toFixed(1)}" stroke="${s.color}" stroke-width="1.5"/>`,
        );
      }
      out.push(
        `<circle cx="${x(p.processes)}" cy="${y(p.m).toFixed(1)}" r="4" fill="${s.color}"/>`,
        `<text x="${x(p.processes) + 8}" y="${
          y(p.m) + (s.kind === "host" ? 16 : -8)
        }" fill="${s.color}">${p.m.toFixed(0)}</text>`,
      );
    }
    const ly = top + 10 + i * 20;
    out.push(
      `<line x1="${W - right + 12}" x2="${
        W - right + 32
      }" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"/>`,
      `<text x="${W - right + 38}" y="${ly + 4}" font-size="11">${escape(s.name)}</text>`,
    );
  }
  const runsNote = runs.length > 1
    ? `${runs.length} runs: median, bar from lowest to highest`
    : "one run";
  out.push(
    `<text x="${left}" y="${H - 12}" font-size="11" fill="#555">${
      escape(o.note ? `${runsNote}; ${o.note}` : runsNote)
    }</text>`,
    `</svg>`,
  );
  return out.join("\n") + "\n";
}

if (import.meta.main) {
  const args = [...Deno.args];
  const at = args.indexOf("--out");
  if (at < 0 || args[at + 1] === undefined) {
    throw new TypeError("Usage: host_plot.ts --out FILE.svg RUN.json [RUN.json …]");
  }
  const outFile = args.splice(at, 2)[1]!;
  if (args.length === 0) throw new TypeError("host_plot.ts: give at least one bench-host JSON");
  const runs = await Promise.all(
    args.map(async (f) => JSON.parse(await Deno.readTextFile(f)) as HostJson),
  );
  const dates = runs.map((r) => r.started?.slice(0, 16).replace("T", " ")).filter(Boolean);
  const note = dates.length > 0
    ? `scripts/bench-host, ${dates[0]}${
      dates.length > 1 ? ` … ${dates.at(-1)!.slice(11)}` : ""
    } UTC`
    : "scripts/bench-host";
  await Deno.writeTextFile(outFile, scalingSvg(runs, { note }));
}
