/**
 * Issue 18's peer must-show: the CLI's default session between two processes beside raw Deno
 * TCP (≥ 0.5×) and js-libp2p (≥ 3×) measured in the same run, and the session handshake p50
 * (≤ 1.5 ms). Pure: figures in, rows with ratio, target and a pass mark out.
 *
 * @module
 */

/** The figures the must-show compares (MB/s medians; `null` where not measured, with why). */
export interface MustShowInput {
  cliMbS: number | null;
  rawDenoTcpMbS: number | null;
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

/** The three must-show rows (targets: 0.5× raw Deno TCP, 3× libp2p, 1.5 ms). */
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
  return [
    ratio("CLI default ÷ raw Deno TCP", i.cliMbS, i.rawDenoTcpMbS, 0.5, why("cli", "raw")),
    ratio("CLI default ÷ js-libp2p", i.cliMbS, i.libp2pMbS, 3, why("cli", "libp2p")),
    hs,
  ];
}

/** The mark of a row: `pass`, `FAIL`, or `n/a` when not measured. */
export function mark(pass: boolean | null): string {
  return pass === null ? "n/a" : pass ? "pass" : "FAIL";
}
