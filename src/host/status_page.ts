/**
 * The host's status page as one self-contained HTML document (docs/status.md "The page"):
 * server-rendered, no script, no external asset, reloading itself with `<meta http-equiv=refresh>`.
 * Every string written into it goes through {@link escapeHtml}; the only style is the one
 * `<style>` block whose hash the server's Content-Security-Policy names.
 *
 * Stable ids and classes for tests and scrapers: `#replies-sent`, `#peers tr.peer`,
 * `#latency-plot` with `polyline.latency-line` and `circle.latency-point`, `#recent-requests`,
 * `#recent-replies`, `#recent-quarantined`, `#health`, `#sync-forwarded`, and for a group member
 * `#role` with `#role-holder`, `#role-epoch` and `#role-until`.
 *
 * @module
 */
import { STATUS_ID_MAX_CHARS, STATUS_PAGE_ROWS, STATUS_TEXT_MAX_CHARS } from "../limits.ts";
import { clip, type StatusSnapshot } from "./status.ts";
import type { PeerRow } from "./types.ts";

/** The page's only style; the server allows exactly this block by its hash. */
export const STATUS_PAGE_CSS = `
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d2330;background:#f7f8fa}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .4em}
.sub{color:#5a6272;margin:0 0 1em}
.cards{display:flex;flex-wrap:wrap;gap:.6em}
.card{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:.5em .9em;min-width:8em}
.card b{display:block;font-size:1.5em}
table{border-collapse:collapse;background:#fff;border:1px solid #dde1e8;min-width:30em}
th,td{padding:.25em .7em;text-align:left;border-bottom:1px solid #eef0f4;vertical-align:top}
th{background:#eef1f6;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#137333}.failing{color:#b3261e}.starting{color:#8a6d00}
.empty{color:#5a6272;font-style:italic}
svg{background:#fff;border:1px solid #dde1e8;border-radius:6px}
.latency-line{fill:none;stroke:#3367d6;stroke-width:1.5}
.latency-point{fill:#3367d6}
.rate-bar{fill:#34a853}
.axis{stroke:#9aa3b2;stroke-width:1}
.label{font-size:11px;fill:#5a6272}
.cols{display:flex;flex-wrap:wrap;gap:1.5em}
`;

/** What the page shows. */
export interface StatusPageInput {
  snapshot: StatusSnapshot;
  /** The control table's rows, or why they could not be read. */
  table: PeerRow[] | { error: string };
  /** The reader presented the operator's token: e-mail addresses are shown. */
  operator: boolean;
  /** Query string (with `?`) that links and the reload carry, e.g. the token; default none. */
  query?: string;
  refreshSeconds: number;
  /** The network the host serves, for the title. */
  network?: string;
  /** The host's own address, for the title; default the snapshot's. */
  email?: string;
}

/** Escapes `& < > " '` so a string is inert in HTML text and in quoted attributes. */
export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const e = escapeHtml;

/** Renders the page. */
export function renderStatusPage(input: StatusPageInput): string {
  const { snapshot: s, operator } = input;
  const q = input.query ?? "";
  const email = input.email ?? s.email;
  const title = `mailpeer host${email ? ` ${email}` : ""}`;
  const health = s.health;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="${input.refreshSeconds};url=./${e(q)}">
<meta name="referrer" content="no-referrer">
<title>${e(title)}</title>
<style>${STATUS_PAGE_CSS}</style>
</head>
<body>
<h1>${e(title)}</h1>
<p class="sub">${input.network ? `network ${e(input.network)} · ` : ""}up ${
    e(age(s.now - s.startedAt))
  } · as of ${e(iso(s.now))} · reloads every ${input.refreshSeconds} s · <a href="status.json${
    e(q)
  }">status.json</a> · <a href="metrics${e(q)}">metrics</a></p>
<div class="cards">
${card("requests received", s.counters.requestsReceived, "requests-received")}
${card("replies sent", s.counters.repliesSent, "replies-sent")}
${card("replies / min (hour)", round(s.rates.repliesPerMinute), "replies-per-minute")}
${card("notices", s.counters.noticesReceived, "notices-received")}
${card("quarantined", sum(s.counters.quarantinedByCode), "quarantined")}
${card("errors", sum(s.counters.errorsByCode), "errors")}
${card("passes", s.counters.passes, "passes")}
${card("sync forwarded", s.counters.syncForwarded, "sync-forwarded")}
</div>
${roleTable(s)}
<h2>Mailbox connection</h2>
<table id="health">
<tr><th>state</th><td class="${e(health.state)}" id="health-state">${e(health.state)}</td></tr>
<tr><th>reads</th><td>${
    health.receive
      ? `${e(health.receive)} ${e(health.mailbox ?? "")} (${e(health.wait ?? "")})`
      : '<span class="empty">not ready yet</span>'
  }</td></tr>
<tr><th>last successful pass</th><td>${when(s.now, health.lastPassAt)}</td></tr>
<tr><th>last error</th><td>${
    health.lastError
      ? `${when(s.now, health.lastErrorAt)}: ${e(health.lastError.code)} ${
        e(health.lastError.message)
      }`
      : '<span class="empty">none</span>'
  }</td></tr>
<tr><th>errors in a row</th><td class="num">${health.consecutiveErrors}</td></tr>
</table>
<h2>Control table</h2>
${peerTable(input.table, s.now, operator)}
<div class="cols">
<div>
<h2>Reply latency (request received → reply sent)</h2>
${latencyPlot(s)}
<p class="sub">${latencySummary(s)}</p>
</div>
<div>
<h2>Replies per minute</h2>
${ratePlot(s)}
</div>
</div>
<h2>Recent requests</h2>
${
    list(
      "recent-requests",
      ["when", "user id", "session"],
      s.recent.requests,
      (r) => [when(s.now, r.at), e(r.userId), e(r.sessionId)],
    )
  }
<h2>Recent replies</h2>
${
    list(
      "recent-replies",
      ["when", "user id", "peers listed", "latency"],
      s.recent.replies,
      (r) => [
        when(s.now, r.at),
        e(r.userId),
        String(r.peers),
        r.latencyMs === undefined ? "" : `${r.latencyMs} ms`,
      ],
    )
  }
<h2>Recent quarantined mail</h2>
${
    list(
      "recent-quarantined",
      ["when", "code", "reason", "subject"],
      s.recent.quarantined,
      (r) => [when(s.now, r.at), e(r.code), e(r.reason), e(r.about ?? "")],
    )
  }
<h2>Recent requests deleted unanswered</h2>
${
    list(
      "recent-deleted",
      ["when", "user id", "reason"],
      s.recent.deleted,
      (r) => [when(s.now, r.at), e(r.about ?? ""), e(r.reason)],
    )
  }
<h2>Recent errors</h2>
${
    list(
      "recent-errors",
      ["when", "code", "message"],
      s.recent.errors,
      (r) => [when(s.now, r.at), e(r.code), e(r.reason)],
    )
  }
</body>
</html>
`;
}

/** The host role lease of a group member (docs/decisions.md "First receiver becomes host"). */
function roleTable(s: StatusSnapshot): string {
  const role = s.role;
  if (role === undefined) return "";
  const until = role.until === undefined
    ? '<span class="empty">no role mail seen</span>'
    : `<time datetime="${e(iso(role.until))}">${e(iso(role.until))}</time> (${
      role.until > s.now ? `in ${e(age(role.until - s.now))}` : `${e(age(s.now - role.until))} ago`
    })`;
  return `<h2>Host role</h2>
<table id="role">
<tr><th>holder</th><td id="role-holder">${e(role.holder)}${
    role.self ? " (this member)" : ""
  }</td></tr>
<tr><th>epoch</th><td class="num" id="role-epoch">${e(role.epoch)}</td></tr>
<tr><th>lease until</th><td id="role-until">${until}</td></tr>
</table>`;
}

function card(label: string, value: number, id: string): string {
  return `<div class="card"><b id="${id}">${e(value)}</b>${e(label)}</div>`;
}

function peerTable(table: StatusPageInput["table"], now: number, operator: boolean): string {
  if (!Array.isArray(table)) {
    return `<p class="empty" id="peers-error">table unavailable: ${e(table.error)}</p>`;
  }
  const rows = [...table].sort((a, b) => b.requestedAt - a.requestedAt);
  const shown = rows.slice(0, STATUS_PAGE_ROWS);
  const head = ["user id", "asked", "failures", "last failure", "candidates"];
  if (operator) head.push("e-mail");
  const body = shown.map((row) => {
    const cells = [
      `<td class="user">${e(clip(row.userId, STATUS_ID_MAX_CHARS))}</td>`,
      `<td>${when(now, row.requestedAt)}</td>`,
      `<td class="num">${e(row.failures)}</td>`,
      `<td>${row.lastFailureAt === undefined ? "" : when(now, row.lastFailureAt)}</td>`,
      `<td class="num">${e((row.candidates ?? row.endpoints).length)}</td>`,
    ];
    if (operator) cells.push(`<td>${e(clip(row.email, STATUS_TEXT_MAX_CHARS))}</td>`);
    return `<tr class="peer">${cells.join("")}</tr>`;
  });
  const more = rows.length > shown.length
    ? `<p class="sub">and ${rows.length - shown.length} more rows, not listed</p>`
    : "";
  return `<table id="peers">
<tr>${head.map((h) => `<th>${e(h)}</th>`).join("")}</tr>
${
    body.length === 0
      ? `<tr><td colspan="${head.length}" class="empty">no terminal asked recently</td></tr>`
      : body.join("\n")
  }
</table>
<p class="sub" id="peers-count">${rows.length} rows${
    operator ? "" : " · e-mail addresses are shown only with the operator's token"
  }</p>${more}`;
}

function list<T>(id: string, head: string[], entries: T[], cells: (entry: T) => string[]): string {
  if (entries.length === 0) return `<p class="empty" id="${id}">none yet</p>`;
  const rows = [...entries].reverse().map((entry) =>
    `<tr>${cells(entry).map((c) => `<td>${c}</td>`).join("")}</tr>`
  );
  return `<table id="${id}">
<tr>${head.map((h) => `<th>${e(h)}</th>`).join("")}</tr>
${rows.join("\n")}
</table>`;
}

const PLOT_W = 480;
const PLOT_H = 180;
const PAD = 36;

/** Recent latency samples, oldest left: a polyline and one circle per sample. */
function latencyPlot(s: StatusSnapshot): string {
  const samples = s.latency.samples;
  const maxMs = Math.max(1, ...samples.map((x) => x.ms));
  const step = samples.length > 1 ? (PLOT_W - 2 * PAD) / (samples.length - 1) : 0;
  const points = samples.map((x, i) => ({
    x: round(PAD + i * step),
    y: round(PLOT_H - PAD - (x.ms / maxMs) * (PLOT_H - 2 * PAD)),
    sample: x,
  }));
  const line = points.length > 1
    ? `<polyline class="latency-line" points="${points.map((p) => `${p.x},${p.y}`).join(" ")}"/>`
    : "";
  const dots = points.map((p) =>
    `<circle class="latency-point" cx="${p.x}" cy="${p.y}" r="3"><title>${
      e(`${p.sample.userId}: ${p.sample.ms} ms at ${iso(p.sample.at)}`)
    }</title></circle>`
  ).join("");
  const empty = samples.length === 0
    ? `<text class="label" x="${PAD + 8}" y="${PLOT_H / 2}">no replies yet</text>`
    : "";
  return `<svg id="latency-plot" xmlns="http://www.w3.org/2000/svg" width="${PLOT_W}" height="${PLOT_H}" viewBox="0 0 ${PLOT_W} ${PLOT_H}" role="img" aria-label="reply latency of the last ${samples.length} replies">
${axes(`${maxMs} ms`, "0", `last ${samples.length} replies →`)}${line}${dots}${empty}</svg>`;
}

/** The last hour's replies per minute, one bar a minute. */
function ratePlot(s: StatusSnapshot): string {
  const buckets = s.rates.perMinute;
  const max = Math.max(1, ...buckets.map((b) => b.replies));
  const width = (PLOT_W - 2 * PAD) / Math.max(1, buckets.length);
  const bars = buckets.map((b, i) => {
    const h = (b.replies / max) * (PLOT_H - 2 * PAD);
    return `<rect class="rate-bar" x="${round(PAD + i * width)}" y="${
      round(PLOT_H - PAD - h)
    }" width="${round(Math.max(1, width - 1))}" height="${round(h)}"><title>${
      e(`${iso(b.minute)}: ${b.replies} replies, ${b.requests} requests`)
    }</title></rect>`;
  }).join("");
  return `<svg id="rate-plot" xmlns="http://www.w3.org/2000/svg" width="${PLOT_W}" height="${PLOT_H}" viewBox="0 0 ${PLOT_W} ${PLOT_H}" role="img" aria-label="replies per minute">
${axes(String(max), "0", `last ${buckets.length} min →`)}${bars}</svg>`;
}

function axes(top: string, bottom: string, along: string): string {
  const b = PLOT_H - PAD;
  return `<line class="axis" x1="${PAD}" y1="${PAD}" x2="${PAD}" y2="${b}"/>` +
    `<line class="axis" x1="${PAD}" y1="${b}" x2="${PLOT_W - PAD}" y2="${b}"/>` +
    `<text class="label" x="2" y="${PAD - 6}">${e(top)}</text>` +
    `<text class="label" x="${PAD - 12}" y="${b + 4}">${e(bottom)}</text>` +
    `<text class="label" x="${PLOT_W - PAD - 110}" y="${b + 20}">${e(along)}</text>`;
}

function latencySummary(s: StatusSnapshot): string {
  const l = s.latency;
  if (l.p50Ms === undefined) return "no samples yet";
  return e(
    `${l.samples.length} recent samples: min ${l.minMs} ms, median ${l.p50Ms} ms, p90 ${l.p90Ms} ms, max ${l.maxMs} ms (${l.count} since start)`,
  );
}

function when(now: number, at: number | undefined): string {
  if (at === undefined) return `<span class="empty">never</span>`;
  return `<time datetime="${e(iso(at))}">${e(age(now - at))} ago</time>`;
}

function iso(ms: number): string {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? "?" : d.toISOString();
}

function age(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86_400)} d`;
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

function sum(counts: Record<string, number>): number {
  return Object.values(counts).reduce((a, b) => a + b, 0);
}
