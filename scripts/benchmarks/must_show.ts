/**
 * Issue 18's must-show marks, each against figures of the same run:
 *
 * - peer (`mustShow`): the CLI's default session between two processes beside raw Deno TCP
 *   (≥ 0.5×) and js-libp2p (≥ 3×), and the session handshake p50 (≤ 1.5 ms);
 * - host (`hostMustShow`): one process and three processes on one mailbox at ≥ 0.9× echo-3
 *   (the stack's capacity), three never fewer than one, and host-1's CPU per request ≤ 1.1×
 *   echo-1's CPU per message.
 *
 * Where the bench measured several rounds, a ratio is read on paired rounds
 * (`paired_ratios.ts`; the rule and why: docs/decisions.md "Issue 18's marks are judged on
 * paired rounds"). Pure: figures in, rows with value, target and a pass mark out.
 *
 * @module
 */
import { MIN_ROUNDS_FOR_BOUND, pairedRatios } from "./paired_ratios.ts";

/** The figures the peer must-show compares (MB/s medians; `null` where not measured, with why). */
export interface MustShowInput {
  cliMbS: number | null;
  rawDenoTcpMbS: number | null;
  /**
   * MB/s of each run of the CLI session and of raw Deno TCP, in run order: the bench
   * interleaves them, so run i of both is one pair. With 2 runs or more the CLI line reads the
   * median of the per-run ratios.
   */
  cliRunsMbS?: number[];
  rawRunsMbS?: number[];
  libp2pMbS: number | null;
  handshakeP50Ms: number | null;
  /** Why a figure is missing, by the figure's name (`cli`, `raw`, `libp2p`, `handshake`). */
  notes?: Record<string, string>;
}

/** One must-show line. `pass` is null when a figure is missing (`value` then says why). */
export interface MustShowRow {
  check: string;
  value: string;
  target: string;
  pass: boolean | null;
}

const r2 = (x: number) => Math.round(x * 100) / 100;
const r3 = (x: number) => Number(x.toFixed(3));

function ratio(
  check: string,
  a: number | null,
  b: number | null,
  min: number,
  why: string,
): MustShowRow {
  const target = `≥ ${min}`;
  if (a === null || b === null || b <= 0) return { check, value: why, target, pass: null };
  const x = r3(a / b);
  return { check, value: `${x} (${a} / ${b} MB/s)`, target, pass: x >= min };
}

/** ", 95 % bounds L and U" of a paired series's median, or "" without enough rounds. */
function bounds(lower: number | null, upper: number | null, round: (x: number) => number) {
  return lower === null || upper === null
    ? ""
    : `, 95 % bounds ${round(lower)} and ${round(upper)}`;
}

/**
 * The CLI line on paired runs: the median of CLI ÷ raw per run (each pair measured back to
 * back), the runs' spread and the median's 95 % bounds beside it; the mark is on the median.
 */
function pairedCliRatio(i: MustShowInput, min: number, why: string): MustShowRow {
  const check = "CLI default ÷ raw Deno TCP";
  const target = `≥ ${min}`;
  const p = pairedRatios(i.cliRunsMbS!, i.rawRunsMbS!);
  if (p.ratios.length === 0) return { check, value: why, target, pass: null };
  const x = r3(p.median);
  const sorted = [...p.ratios].sort((a, b) => a - b);
  return {
    check,
    value: `${x} (median of ${p.ratios.length} paired runs, each ${r3(sorted[0]!)}–${
      r3(sorted.at(-1)!)
    }${bounds(p.lower, p.upper, r3)}; medians ${i.cliMbS} / ${i.rawDenoTcpMbS} MB/s)`,
    target,
    pass: p.median >= min, // unrounded: 0.4996 is under 0.5
  };
}

/** The three peer must-show rows (targets: 0.5× raw Deno TCP, 3× libp2p, 1.5 ms). */
export function mustShow(i: MustShowInput): MustShowRow[] {
  const notes = i.notes ?? {};
  const why = (...names: string[]) =>
    "not measured: " +
    (names.map((n) => notes[n]?.replace(/^not measured: /, "")).filter(Boolean).join("; ") ||
      "no figure");
  const hs: MustShowRow = i.handshakeP50Ms === null
    ? { check: "handshake p50 (TCP)", value: why("handshake"), target: "≤ 1.5 ms", pass: null }
    : {
      check: "handshake p50 (TCP)",
      value: `${i.handshakeP50Ms} ms`,
      target: "≤ 1.5 ms",
      pass: i.handshakeP50Ms <= 1.5,
    };
  const paired = (i.cliRunsMbS?.length ?? 0) >= 2 &&
    i.cliRunsMbS!.length === i.rawRunsMbS?.length && i.cliMbS !== null &&
    i.rawDenoTcpMbS !== null;
  return [
    paired
      ? pairedCliRatio(i, 0.5, why("cli", "raw"))
      : ratio("CLI default ÷ raw Deno TCP", i.cliMbS, i.rawDenoTcpMbS, 0.5, why("cli", "raw")),
    ratio("CLI default ÷ js-libp2p", i.cliMbS, i.libp2pMbS, 3, why("cli", "libp2p")),
    hs,
  ];
}

/** The mark of a row: `pass`, `FAIL`, or `n/a` when not measured. */
export function mark(pass: boolean | null): string {
  return pass === null ? "n/a" : pass ? "pass" : "FAIL";
}

/** What the host must-show reads of one mode: its medians, and each round's own figures. */
export interface HostFigures {
  perSecond: number;
  cpuMsPerRequest: number;
  rounds?: { perSecond: number; cpuMsPerRequest: number }[];
}

/**
 * One host must-show line. A `control` line is no mark: the same mode measured twice in the
 * run (host-1b, echo-1b), so its ratio shows how far the run's noise alone moves a ratio of two
 * modes.
 */
export interface HostCheck extends MustShowRow {
  control?: boolean;
}

/**
 * Three processes are "never fewer than one" when the 95 % lower bound of the median ratio
 * host-3 ÷ host-1 over paired rounds is at least this: the issue's own tolerance for "as much
 * as the stack carries" (host-1 ≥ 0.9× echo-3). A non-inferiority test, since both figures sit
 * at the machine's capacity (docs/decisions.md).
 */
export const NEVER_FEWER_MARGIN = 0.9;

type Figure = "perSecond" | "cpuMsPerRequest";
type HostModes = Partial<Record<string, HostFigures>>;

/** Round i's figure of a mode (its only figure when it ran one round). */
function perRound(m: HostFigures | undefined, k: Figure): number[] {
  if (m === undefined) return [];
  return m.rounds && m.rounds.length > 0 ? m.rounds.map((r) => r[k]) : [m[k]];
}

/** A ratio of two modes' medians, each round's own ratio listed beside it. */
function medianRatio(
  results: HostModes,
  check: string,
  a: string,
  b: string,
  k: Figure,
  cmp: "≥" | "≤",
  limit: number,
  unit: string,
): HostCheck {
  const target = `${cmp} ${limit}`;
  const [x, y] = [results[a]?.[k] ?? NaN, results[b]?.[k] ?? NaN];
  if (!Number.isFinite(x) || !Number.isFinite(y) || y <= 0) {
    return { check, value: "not measured (mode missing or failed)", target, pass: null };
  }
  const ra = perRound(results[a], k), rb = perRound(results[b], k);
  const each = ra.length > 1 && ra.length === rb.length
    ? `; rounds ${ra.map((v, i) => r2(v / rb[i]!)).join(", ")}`
    : "";
  const q = r2(x / y);
  return {
    check,
    value: `${q} (${r2(x)} / ${r2(y)} ${unit}${each})`,
    target,
    pass: cmp === "≥" ? q >= limit : q <= limit,
  };
}

/**
 * A ratio on paired rounds: `a` ÷ `base` round by round, judged by the 95 % lower bound of the
 * median (≥ {@link NEVER_FEWER_MARGIN}); n/a with fewer than {@link MIN_ROUNDS_FOR_BOUND}
 * rounds.
 */
function pairedLine(
  check: string,
  a: number[],
  base: number[],
  of: string,
): HostCheck {
  const target = `≥ 1: median's 95 % lower bound ≥ ${NEVER_FEWER_MARGIN}`;
  if (a.length === 0 || a.length !== base.length) {
    return { check, value: "not measured (mode missing or failed)", target, pass: null };
  }
  const p = pairedRatios(a, base);
  if (p.ratios.length === 0) {
    return { check, value: "not measured (mode missing or failed)", target, pass: null };
  }
  const value = `${r2(p.median)} (median of ${p.ratios.length} rounds against ${of}: ${
    p.ratios.map(r2).join(", ")
  }${bounds(p.lower, p.upper, r2)})`;
  if (p.lower === null) {
    return {
      check,
      value: `${value}; n/a: a bound needs ≥ ${MIN_ROUNDS_FOR_BOUND} rounds (--rounds)`,
      target,
      pass: null,
    };
  }
  return { check, value, target, pass: p.lower >= NEVER_FEWER_MARGIN };
}

/**
 * "Never fewer": host-3 ÷ the one-process figure of each round. A round's one-process figure
 * is the geometric mean of host-1 and host-1b when both ran (the run measures one process
 * twice, apart in the round, so drift between them cancels), else host-1's.
 */
function neverFewer(results: HostModes): HostCheck {
  const one = perRound(results["host-1"], "perSecond");
  const oneB = perRound(results["host-1b"], "perSecond");
  const both = oneB.length > 0 && oneB.length === one.length;
  return pairedLine(
    "host-3 ÷ host-1 (never fewer)",
    perRound(results["host-3"], "perSecond"),
    both ? one.map((x, i) => Math.sqrt(x * oneB[i]!)) : one,
    both ? "host-1 and host-1b (geometric mean)" : "host-1",
  );
}

/** Issue 18's host must-show rows, then the A/A control lines (where their modes ran). */
export function hostMustShow(results: HostModes): HostCheck[] {
  const control = (check: HostCheck): HostCheck[] =>
    check.value.startsWith("not measured")
      ? []
      : [{ ...check, pass: null, target: "1 (A/A)", control: true }];
  const aa = (check: string, a: string, b: string, k: Figure, cmp: "≥" | "≤") =>
    control(medianRatio(results, check, a, b, k, cmp, 1, k === "perSecond" ? "/s" : "ms"));
  return [
    medianRatio(results, "host-1 ÷ echo-3", "host-1", "echo-3", "perSecond", "≥", 0.9, "/s"),
    medianRatio(results, "host-3 ÷ echo-3", "host-3", "echo-3", "perSecond", "≥", 0.9, "/s"),
    neverFewer(results),
    medianRatio(
      results,
      "host-1 CPU per request ÷ echo-1 CPU per message",
      "host-1",
      "echo-1",
      "cpuMsPerRequest",
      "≤",
      1.1,
      "ms",
    ),
    ...control(
      pairedLine(
        "control: host-1b ÷ host-1 (the same rule)",
        perRound(results["host-1b"], "perSecond"),
        perRound(results["host-1"], "perSecond"),
        "host-1",
      ),
    ),
    ...aa("control: host-1b CPU ÷ host-1 CPU", "host-1b", "host-1", "cpuMsPerRequest", "≤"),
    ...aa("control: echo-1b CPU ÷ echo-1 CPU", "echo-1b", "echo-1", "cpuMsPerRequest", "≤"),
  ];
}
