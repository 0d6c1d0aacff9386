/**
 * A {@link StatusSnapshot} in the Prometheus text exposition format, version 0.0.4
 * (docs/status.md "Metrics"): the metric names, types and help texts, written by hand on
 * purpose (docs/status.md says why no client library).
 *
 * @module
 */
import type { StatusSnapshot } from "./status.ts";

/** The `Content-Type` of {@link renderMetrics}' output. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

type Sample = { labels?: Record<string, string>; suffix?: string; value: number };
type Family = {
  name: string;
  type: "counter" | "gauge" | "summary";
  help: string;
  samples: Sample[];
};

/**
 * Renders the snapshot, plus the control table's row count when known, as metric families:
 * each with `# HELP` and `# TYPE`, label values escaped, names fixed here.
 */
export function renderMetrics(snapshot: StatusSnapshot, tableRows?: number): string {
  const { counters, latency, health } = snapshot;
  const one = (value: number): Sample[] => [{ value }];
  const byCode = (counts: Record<string, number>): Sample[] =>
    Object.entries(counts).map(([code, value]) => ({ labels: { code }, value }));
  const families: Family[] = [
    counter(
      "requests_received",
      "Requests the host opened and verified.",
      counters.requestsReceived,
    ),
    counter("replies_sent", "Replies the host mailed.", counters.repliesSent),
    counter(
      "notices_received",
      "Notices (unreachable peers) the host accepted.",
      counters.noticesReceived,
    ),
    counter("introductions_sent", "Introductions the host mailed.", counters.introductionsSent),
    counter("requests_deleted", "Requests deleted unanswered (too old).", counters.requestsDeleted),
    counter("host_passes", "Passes over the mailbox that completed.", counters.passes),
    counter("sync_sent", "Sync mails sent to other hosts of the pool.", counters.syncSent),
    counter(
      "sync_merged",
      "Sync mails from other hosts merged into the table.",
      counters.syncMerged,
    ),
    counter(
      "sync_forwarded",
      "Sync mails that sent new rows on to a partner at once (linked hosts).",
      counters.syncForwarded,
    ),
    counter("forwarded", "Mails a representative host forwarded to a worker.", counters.forwarded),
    {
      name: "mailpeer_quarantined_total",
      type: "counter",
      help: "Mails quarantined unanswered, by error code.",
      samples: byCode(counters.quarantinedByCode),
    },
    {
      name: "mailpeer_errors_total",
      type: "counter",
      help: "Errors of the host loop (mailbox, table, sending), by error code.",
      samples: byCode(counters.errorsByCode),
    },
    {
      name: "mailpeer_reply_latency_seconds",
      type: "summary",
      help: "Request received to reply sent, per user id; quantiles over the recent samples.",
      samples: [
        ...([[0.5, latency.p50Ms], [0.9, latency.p90Ms], [0.99, latency.p99Ms]] as const)
          .filter(([, ms]) => ms !== undefined)
          .map(([q, ms]) => ({ labels: { quantile: String(q) }, value: ms! / 1000 })),
        { suffix: "_sum", value: latency.sumMs / 1000 },
        { suffix: "_count", value: latency.count },
      ],
    },
    {
      name: "mailpeer_replies_per_minute",
      type: "gauge",
      help: "Replies per minute over the last hour (or since start when shorter).",
      samples: one(snapshot.rates.repliesPerMinute),
    },
    {
      name: "mailpeer_mailbox_up",
      type: "gauge",
      help: "1 when the last mailbox pass succeeded after any error, else 0.",
      samples: one(health.state === "ok" ? 1 : 0),
    },
    {
      name: "mailpeer_mailbox_consecutive_errors",
      type: "gauge",
      help: "Errors since the last successful pass over the mailbox.",
      samples: one(health.consecutiveErrors),
    },
    {
      name: "mailpeer_last_pass_timestamp_seconds",
      type: "gauge",
      help: "When the last pass over the mailbox completed (0: none yet).",
      samples: one((health.lastPassAt ?? 0) / 1000),
    },
    {
      name: "mailpeer_status_start_time_seconds",
      type: "gauge",
      help: "When the status collector started.",
      samples: one(snapshot.startedAt / 1000),
    },
  ];
  if (snapshot.role !== undefined) {
    families.push({
      name: "mailpeer_role_epoch",
      type: "gauge",
      help: "Epoch of the group's host role lease this member sees (group members only).",
      samples: one(snapshot.role.epoch),
    }, {
      name: "mailpeer_role_held",
      type: "gauge",
      help: "1 while this member holds the group's host role, else 0 (group members only).",
      samples: one(snapshot.role.self ? 1 : 0),
    });
  }
  if (tableRows !== undefined) {
    families.push({
      name: "mailpeer_table_rows",
      type: "gauge",
      help: "Rows in the control table.",
      samples: one(tableRows),
    });
  }
  return families.map(family).join("");
}

function counter(name: string, help: string, value: number): Family {
  return { name: `mailpeer_${name}_total`, type: "counter", help, samples: [{ value }] };
}

function family(f: Family): string {
  let out = `# HELP ${f.name} ${escapeHelp(f.help)}\n# TYPE ${f.name} ${f.type}\n`;
  for (const s of f.samples) {
    const labels = Object.entries(s.labels ?? {});
    const set = labels.length === 0
      ? ""
      : `{${labels.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}`;
    out += `${f.name}${s.suffix ?? ""}${set} ${number(s.value)}\n`;
  }
  return out;
}

function number(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

/** Label values: backslash, double quote and line feed escaped (the format's only escapes). */
function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function escapeHelp(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}
