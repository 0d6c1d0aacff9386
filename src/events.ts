/**
 * Events that the host and terminal report while they work.
 *
 * The CLI prints them as one JSON object per line with `--json`, or narrates them for a person.
 * Library users pass an `onEvent` callback. Every event names the `actor` that emitted it
 * (e.g. `host`, `terminal`, or the demo's `terminal-1`).
 *
 * @module
 */
import type { Candidate, Endpoint, TransportKind } from "./message/types.ts";
import type { PathKind } from "./peer/types.ts";

/** A peer as events show it: never an e-mail address. */
export interface EventPeer {
  userId: string;
  endpoints: Endpoint[];
  /** The peer's typed candidates, when its request carried them. */
  candidates?: Candidate[];
  lastSeen: number;
  failures: number;
}

/** Everything that can happen, keyed by the `event` field. */
export type MailpeerEvent =
  & { actor?: string; step?: string }
  & (
    | { event: "address-detected"; address: string; source: string }
    | { event: "listening"; endpoint: Endpoint }
    | {
      event: "request-sent";
      to: string[];
      sessionId: string;
      endpoints: Endpoint[];
      candidates: Candidate[];
    }
    | { event: "waiting"; for: string; sinceMs: number; untilMs: number }
    /**
     * `role`: the member that answered in the host role of a group with no standing host, its
     * epoch, lease end and the address later requests go to (docs/protocol.md "Reply
     * extensions"); only when the host said it.
     */
    | {
      event: "reply-received";
      from: string;
      peers: EventPeer[];
      ms: number;
      role?: { holder: string; epoch: number; until: number; address: string };
    }
    | { event: "connecting"; peer: string; endpoint: Endpoint }
    | {
      event: "connected";
      peer: string;
      transport: TransportKind;
      ms: number;
      role: "initiator" | "acceptor";
      /** The peer's side of the winning pair, as this terminal sees it. */
      remote?: Endpoint;
      /** How the session's packets travel (docs/nat.md "Path kinds"). */
      path?: PathKind;
      /**
       * The session's AES-256-GCM implementation: `ipsec-mb` or `openssl` (fast, through FFI), or
       * `webcrypto` (src/peer/aes_gcm.ts).
       */
      cipher?: "ipsec-mb" | "openssl" | "webcrypto" | "node";
    }
    /**
     * A relayed session moved to a direct path while it ran (docs/nat.md "Moving a session to a
     * direct path"): `path` is the new path's kind, `remote` the peer's side of it.
     */
    | { event: "path-changed"; peer: string; from: PathKind; path: PathKind; remote: Endpoint }
    | { event: "connect-failed"; peer: string; code: string; message: string }
    /**
     * A listed peer was not tried: it has no candidate on this terminal's transport
     * (`transports` are the ones it announced). No notice follows: it did not fail.
     */
    | { event: "peer-skipped"; peer: string; transports: TransportKind[]; reason: string }
    | { event: "notice-sent"; to: string[]; failed: string[] }
    | { event: "standby"; endpoint: Endpoint; untilMs: number }
    | { event: "message"; from: string; text: string }
    | { event: "disconnected"; peer: string }
    | { event: "request-received"; userId: string; sessionId: string }
    | { event: "table-updated"; rows: number }
    /** `role`: the reply said this process answered in the host role (holder, epoch). */
    | {
      event: "reply-sent";
      to: string;
      userId: string;
      peers: number;
      role?: { holder: string; epoch: number };
    }
    | { event: "notice-received"; userId: string; failed: string[] }
    | { event: "introduction-sent"; userId: string; peer: string }
    | {
      event: "introduction";
      peer: string;
      candidates: Candidate[];
      punchStart: number;
      punchEnd: number;
    }
    | { event: "request-deleted"; userId: string; reason: string }
    | { event: "quarantined"; subject: string; code: string; reason: string }
    | { event: "host-pass"; answered: number; notices: number; quarantined: number; stale: number }
    | { event: "transfer-progress"; name: string; done: number; total?: number }
    | {
      event: "file-transferred";
      direction: "sent" | "received";
      name: string;
      size: number;
      sha256: string;
    }
    | { event: "host-busy"; message: string }
    /**
     * A long-running host read its mailbox once (so it logged in) and now waits for mail:
     * `wait` says how (IMAP IDLE push, a Maildir watch, or polling every `pollIntervalMs`).
     */
    | {
      event: "host-ready";
      email: string;
      /** `imap`, `pop3` or `local`, and the server (`host:port`) or Maildir it reads. */
      receive: "imap" | "pop3" | "local";
      mailbox: string;
      wait: "idle" | "watch" | "poll";
      pollIntervalMs: number;
    }
    | { event: "sync-sent"; to: string; kind: "table-request" | "snapshot"; rows: number }
    | { event: "sync-merged"; from: string; rows: number; changed: number }
    /**
     * A member of a group with no standing host took the host role, deferred to the member
     * holding it, lost it to an earlier taker, mailed its lease with its table, or merged the
     * table of a role mail (docs/decisions.md "First receiver becomes host").
     */
    | { event: "role-taken" | "role-deferred" | "role-lost"; epoch: number; holder: string }
    /** The holder mailed its lease (`until`: when it ends unless renewed) with `rows` rows. */
    | { event: "role-sent"; epoch: number; holder: string; until: number; rows: number }
    | {
      event: "role-merged";
      holder: string;
      epoch: number;
      /** When the lease of the role mail read ends unless renewed. */
      until: number;
      rows: number;
      changed: number;
    }
    | { event: "sync-answered"; to: string; snapshots: number }
    | { event: "sync-forwarded"; to: string; from: string; rows: number }
    | { event: "host-learned"; email: string; trusted: boolean }
    | { event: "forwarded"; kind: "request" | "notice"; to: string; resentId: string }
    | { event: "representative-pass"; forwarded: number; quarantined: number }
    /**
     * `combined`: the chat ended and the host part goes on answering until a signal stops it
     * (docs/cli.md "combined").
     */
    | { event: "host-serving" }
    /** `host --status`: the status page and `/metrics` are served at `url` (docs/status.md). */
    | { event: "status-serving"; url: string }
    /**
     * The CLI's last event when Ctrl-C (SIGINT) or SIGTERM stopped the run (docs/cli.md
     * "Stopping").
     */
    | { event: "stopped"; reason: "signal"; signal: "SIGINT" | "SIGTERM" }
    | { event: "error"; code: string; message: string }
    | { event: "warning"; message: string }
  );

/** Name of an event. */
export type EventName = MailpeerEvent["event"];

/** Receives events. */
export type EventSink = (event: MailpeerEvent) => void;

/** A sink that drops everything. */
export const silentSink: EventSink = () => {};

/** Returns a sink that stamps `actor` on every event before passing it to `sink`. */
export function withActor(sink: EventSink, actor: string): EventSink {
  return (event) => sink({ ...event, actor });
}

/**
 * The step of the patent's FIG. 4 flow that each event marks (numbering documented in
 * docs/protocol.md).
 */
export const FIG4_STEPS: Partial<Record<EventName, string>> = {
  "listening": "S10",
  "request-sent": "S12",
  "waiting": "S14",
  "request-received": "S16",
  "table-updated": "S18",
  "reply-sent": "S20",
  "reply-received": "S22",
  "connecting": "S24",
  "connect-failed": "S26",
  "notice-sent": "S28",
  "notice-received": "S30",
  "standby": "S32",
  "connected": "S34",
  "message": "S36",
  "disconnected": "S38",
};

/** Stamps the FIG. 4 step on an event that has one. */
export function withStep(event: MailpeerEvent): MailpeerEvent {
  const step = FIG4_STEPS[event.event];
  return step && !event.step ? { ...event, step } : event;
}
