/**
 * What the CLI prints: with `--json` one JSON object per line on stdout (an event stream);
 * otherwise one narrated line per event for a person, on stderr for progress and stdout for
 * chat text.
 *
 * @module
 */
import { formatDuration } from "../config/duration.ts";
import { type EventSink, type MailpeerEvent, withStep } from "../events.ts";
import type { Endpoint } from "../message/types.ts";
import { jsonLine, printable } from "./terminal_text.ts";

const encoder = new TextEncoder();

function ep(e: Endpoint): string {
  const host = e.address.includes(":") ? `[${e.address}]` : e.address;
  return `${host}:${e.port}/${e.transport}`;
}

function clock(ms: number): string {
  return new Date(ms).toISOString().slice(11, 19);
}

/** One line for a person, or undefined for events not worth a line. */
export function narrate(e: MailpeerEvent, now = Date.now()): string | undefined {
  const who = e.actor ? `${e.actor}: ` : "";
  const step = e.step ? `${e.step} ` : "";
  const text = (() => {
    switch (e.event) {
      case "address-detected":
        return `advertises address ${e.address} (found by ${e.source})`;
      case "listening":
        return `listens for peers at ${ep(e.endpoint)}`;
      case "request-sent":
        return `mailed a sealed request to ${e.to.join(", ")} (session ${
          e.sessionId.slice(0, 8)
        }…)`;
      case "waiting":
        return `waits for the ${e.for} mail, ${formatDuration(now - e.sinceMs)} so far, until ${
          clock(e.untilMs)
        }`;
      case "request-received":
        return `opened a valid request from ${e.userId}`;
      case "table-updated":
        return `updated the control table (${e.rows} row${e.rows === 1 ? "" : "s"})`;
      case "reply-sent":
        return `mailed ${e.userId} a signed reply with ${e.peers} peer${e.peers === 1 ? "" : "s"}`;
      case "reply-received":
        return e.peers.length === 0
          ? `got the host's reply after ${formatDuration(e.ms)}: no peers yet`
          : `got the host's reply after ${formatDuration(e.ms)}: ${
            e.peers.map((p) => p.userId).join(", ")
          }`;
      case "connecting":
        return `sends CONNECT to ${e.peer} at ${ep(e.endpoint)}`;
      case "connect-failed":
        return `could not connect to ${e.peer}: ${e.message}`;
      case "notice-sent":
        return `mailed a notice about ${e.failed.join(", ")} to ${e.to.join(", ")}`;
      case "notice-received":
        return `flagged ${e.failed.join(", ")} as unreachable (reported by ${e.userId})`;
      case "introduction-sent":
        return `mailed ${e.userId} an introduction of ${e.peer}`;
      case "introduction":
        return `was introduced to ${e.peer}: ${e.candidates.length} candidate${
          e.candidates.length === 1 ? "" : "s"
        }, punching ${clock(e.punchStart)} to ${clock(e.punchEnd)}`;
      case "standby":
        return `no peer answered: stands by at ${ep(e.endpoint)} until ${clock(e.untilMs)}`;
      case "connected": {
        const how = e.path === undefined
          ? ""
          : `, ${e.path} path${e.remote ? ` to ${e.remote.address}:${e.remote.port}` : ""}`;
        return `connected to ${e.peer} over ${e.transport.toUpperCase()}${how} (CONNECT, CONNECT+ACK, ACK) in ${
          formatDuration(e.ms)
        }`;
      }
      case "peer-skipped":
        return `did not try ${e.peer}: ${e.reason}`;
      case "path-changed":
        return `moved the session with ${e.peer} from the ${e.from} path to a ${e.path} path to ${
          ep(e.remote)
        }`;
      case "message":
        return `${e.from} says: ${e.text}`;
      case "disconnected":
        return `disconnected from ${e.peer} (DISCONNECT, ACK)`;
      case "request-deleted":
        return `deleted a request unanswered: ${e.reason}`;
      case "quarantined":
        return `quarantined a mail (${e.code}): ${e.reason}`;
      case "host-pass":
        return e.answered + e.notices + e.quarantined + e.stale === 0
          ? undefined
          : `processed the mailbox: ${e.answered} answered, ${e.notices} notices, ${e.quarantined} quarantined, ${e.stale} stale`;
      case "transfer-progress":
        return undefined;
      case "file-transferred":
        return `${e.direction} ${e.name}: ${e.size} bytes, SHA-256 ${
          e.sha256.slice(0, 16)
        }… verified`;
      case "host-busy":
        return e.message;
      case "host-ready": {
        const every = formatDuration(e.pollIntervalMs);
        const how = e.wait === "idle"
          ? `waits for mail by IMAP IDLE (or polls every ${every} if the server lacks IDLE)`
          : e.wait === "watch"
          ? `watches it for new mail and looks every ${every}`
          : `polls it for new mail every ${every}`;
        const read = e.receive === "local"
          ? `read the Maildir ${e.mailbox}`
          : `logged in to ${e.receive.toUpperCase()} ${e.mailbox}`;
        return `${read} for ${e.email}; ${how} (Ctrl-C stops)`;
      }
      case "sync-sent":
        return e.kind === "snapshot"
          ? `mailed a table snapshot of ${e.rows} rows to ${e.to}`
          : `asked ${e.to} for its table`;
      case "sync-merged":
        return `merged ${e.rows} rows from ${e.from} (${e.changed} changed)`;
      case "sync-answered":
        return `answered ${e.to}'s table request`;
      case "host-learned":
        return `learned of host ${e.email}${e.trusted ? " (trusted)" : ""}`;
      case "forwarded":
        return `forwarded a ${e.kind} to ${e.to}, sender unchanged`;
      case "representative-pass":
        return e.forwarded + e.quarantined === 0
          ? undefined
          : `forwarded ${e.forwarded} mails, quarantined ${e.quarantined}`;
      case "error":
        return `error ${e.code}: ${e.message}`;
      case "warning":
        return `warning: ${e.message}`;
    }
  })();
  return text === undefined ? undefined : `${step}${who}${text}`;
}

/**
 * The CLI's event sink: JSON lines on stdout, or narration on stderr. Events carry text from
 * peers and mail (chat lines, user ids, reasons), so both go through terminal_text.ts.
 */
export function cliSink(options: { json: boolean; quiet?: boolean }): EventSink {
  return (raw) => {
    const event = withStep(raw);
    if (options.json) {
      Deno.stdout.writeSync(
        encoder.encode(jsonLine({ time: new Date().toISOString(), ...event }) + "\n"),
      );
      return;
    }
    if (options.quiet) return;
    const line = narrate(event);
    if (line !== undefined) Deno.stderr.writeSync(encoder.encode(printable(line) + "\n"));
  };
}
