/**
 * What the CLI prints: with `--json` one JSON object per line on stdout (an event stream);
 * otherwise one narrated line per event for a person, on stderr for progress and stdout for
 * chat text. The FIG. 4 step codes (S10 … S38) are in every JSON event and in the demo's
 * narration, not in other narration (docs/cli.md "Output").
 *
 * @module
 */
import { formatDuration } from "../duration.ts";
import { type EventSink, type MailpeerEvent, withStep } from "../events.ts";
import type { Endpoint } from "../message/types.ts";
import { jsonLine, printable } from "./terminal_text.ts";

const encoder = new TextEncoder();

function ep(e: Endpoint): string {
  const host = e.address.includes(":") ? `[${e.address}]` : e.address;
  return `${host}:${e.port}/${e.transport}`;
}

/** A duration for a person: whole seconds ("45s", "2m05s"), or "under a second". */
function span(ms: number): string {
  if (ms < 1000) return "under a second";
  const total = Math.round(ms / 1000);
  if (total < 60) return `${total}s`;
  return `${Math.floor(total / 60)}m${String(total % 60).padStart(2, "0")}s`;
}

/**
 * What narration remembers between events, for an acceptor's `connected` line: when standby
 * began and when the peer's introduction came (ms, the narrator's clock).
 */
export interface NarrationContext {
  standbySinceMs?: number;
  introductions?: Map<string, number>;
}

/**
 * One line for a person, or undefined for events not worth a line. `now` is the narrator's
 * clock (ms), against which `context`'s times and the events' deadlines are read.
 */
export function narrate(
  e: MailpeerEvent,
  now = Date.now(),
  context: NarrationContext = {},
): string | undefined {
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
        // The first report comes as the wait starts; later ones every few seconds.
        return now - e.sinceMs < 1000
          ? `waits for the host's ${e.for} mail (up to ${span(e.untilMs - e.sinceMs)})`
          : `still waits for the host's ${e.for} mail: ${span(now - e.sinceMs)} so far, ${
            e.untilMs - now < 1000 ? "less than a second" : span(e.untilMs - now)
          } left`;
      case "request-received":
        return `opened a valid request from ${e.userId}`;
      case "table-updated":
        return `updated the control table (${e.rows} row${e.rows === 1 ? "" : "s"})`;
      case "reply-sent":
        return `mailed ${e.userId} a signed reply with ${e.peers} peer${e.peers === 1 ? "" : "s"}${
          e.role ? `, saying it holds the host role (epoch ${e.role.epoch})` : ""
        }`;
      case "reply-received": {
        // docs/protocol.md "Reply extensions": a group member answered in the host role
        const by = e.role
          ? ` (answered by member ${e.role.holder}, host role epoch ${e.role.epoch})`
          : "";
        return e.peers.length === 0
          ? `got the host's reply after ${formatDuration(e.ms)}${by}: no peers yet`
          : `got the host's reply after ${formatDuration(e.ms)}${by}: ${
            e.peers.map((p) => p.userId).join(", ")
          }`;
      }
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
        return `was introduced to ${e.peer} by the host: ${e.candidates.length} candidate${
          e.candidates.length === 1 ? "" : "s"
        }, punching for ${span(e.punchEnd - e.punchStart)}`;
      case "standby":
        return `stands by: waits up to ${
          span(Math.max(0, e.untilMs - now))
        } for a peer to connect to ${ep(e.endpoint)}`;
      case "connected": {
        const how = e.path === undefined
          ? ""
          : `, ${e.path} path${e.remote ? ` to ${e.remote.address}:${e.remote.port}` : ""}`;
        const over = `over ${e.transport.toUpperCase()}${how} (CONNECT, CONNECT+ACK, ACK)`;
        if (e.role === "initiator") {
          return `connected to ${e.peer} ${over}, ${formatDuration(e.ms)} after the start`;
        }
        // An acceptor's `ms` counts its whole standby: say what the wait was after instead.
        const introduced = context.introductions?.get(e.peer);
        const since = introduced !== undefined
          ? `, ${formatDuration(now - introduced)} after the host introduced ${e.peer}`
          : context.standbySinceMs !== undefined
          ? `, ${formatDuration(now - context.standbySinceMs)} into standby`
          : "";
        return `${e.peer} connected ${over}${since}`;
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
      case "role-taken":
        return `took the host role (epoch ${e.epoch}): answers the group's requests now`;
      case "role-deferred":
        return `leaves the group's requests to ${e.holder}, who holds the host role (epoch ${e.epoch})`;
      case "role-lost":
        return `gave the host role up to ${e.holder}, who took it first (epoch ${e.epoch})`;
      case "role-sent":
        return `renewed its host role lease (epoch ${e.epoch}) with ${e.rows} table rows`;
      case "role-merged":
        return `merged ${e.rows} rows from the role mail of ${e.holder} (epoch ${e.epoch}, ${e.changed} changed)`;
      case "sync-answered":
        return `answered ${e.to}'s table request`;
      case "sync-forwarded":
        return `forwarded ${e.rows} new rows from ${e.from} to ${e.to}`;
      case "host-learned":
        return `learned of host ${e.email}${e.trusted ? " (trusted)" : ""}`;
      case "forwarded":
        return `forwarded a ${e.kind} to ${e.to}, sender unchanged`;
      case "representative-pass":
        return e.forwarded + e.quarantined === 0
          ? undefined
          : `forwarded ${e.forwarded} mails, quarantined ${e.quarantined}`;
      case "host-serving":
        return "the chat ended; the host goes on answering requests until Ctrl-C";
      case "status-serving":
        return `serves its status page on ${e.url} (and ${e.url}metrics)`;
      case "stopped":
        return `stopped by ${e.signal === "SIGINT" ? "Ctrl-C" : e.signal}`;
      case "error":
        return `error ${e.code}: ${e.message}`;
      case "warning":
        return `warning: ${e.message}`;
    }
  })();
  return text === undefined ? undefined : `${step}${who}${text}`;
}

/**
 * Writes to stdout or stderr, and says nothing once the reader is gone: `mailpeer … --json |
 * head -1` ends quietly, as Unix tools do on a closed pipe, instead of with a stack trace.
 */
export function writeQuietly(to: typeof Deno.stdout | typeof Deno.stderr, bytes: Uint8Array): void {
  try {
    to.writeSync(bytes);
  } catch (err) {
    if (!(err instanceof Deno.errors.BrokenPipe)) throw err;
  }
}

/**
 * The CLI's event sink: JSON lines on stdout, or narration on stderr. Events carry text from
 * peers and mail (chat lines, user ids, reasons), so both go through terminal_text.ts. JSON
 * events always carry their FIG. 4 `step`; narration shows it only with `steps` (the demo).
 */
export function cliSink(
  options: { json: boolean; quiet?: boolean; steps?: boolean; now?: () => number },
): EventSink {
  const now = options.now ?? Date.now;
  const context: NarrationContext = { introductions: new Map() };
  return (raw) => {
    if (options.json) {
      writeQuietly(
        Deno.stdout,
        encoder.encode(jsonLine({ time: new Date().toISOString(), ...withStep(raw) }) + "\n"),
      );
      return;
    }
    const at = now();
    if (raw.event === "standby") context.standbySinceMs = at;
    if (raw.event === "introduction") context.introductions!.set(raw.peer, at);
    if (options.quiet) return;
    const line = narrate(options.steps ? withStep(raw) : raw, at, context);
    if (line !== undefined) writeQuietly(Deno.stderr, encoder.encode(printable(line) + "\n"));
  };
}
