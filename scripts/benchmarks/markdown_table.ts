/**
 * The Markdown tables the NAT benchmark prints (`nat.ts`, `nat_paths.ts`): columns padded to
 * their widest cell, so the table reads in a terminal and pastes into the docs as it is.
 *
 * @module
 */

/** A Markdown table; `right` names the right-aligned columns (by index). */
export function markdownTable(head: string[], rows: string[][], right: Set<number>): string {
  const widths = head.map((h, i) => Math.max(h.length, 3, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    `| ${
      cells.map((c, i) => right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)).join(" | ")
    } |`;
  const rule = `| ${
    widths.map((w, i) => right.has(i) ? "-".repeat(w - 1) + ":" : "-".repeat(w)).join(" | ")
  } |`;
  return [line(head), rule, ...rows.map(line)].join("\n") + "\n";
}
