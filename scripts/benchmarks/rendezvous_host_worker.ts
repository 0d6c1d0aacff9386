/**
 * The rendezvous bench's mailpeer {@link Host}, run in a Deno Worker: its own isolate and event
 * loop, so the fresh terminal's TLS handshakes and IMAP login in the main thread do not delay
 * the host's wake-up and processing (in real use the host is another machine).
 *
 * Started by `rendezvous_mailpeer.ts` with
 * `new Worker(new URL("./rendezvous_host_worker.ts", import.meta.url), { type: "module" })`
 * (permissions inherited). Protocol: the main thread sends {@link ToHostWorker} messages, the
 * worker answers with {@link FromHostWorker} ones. Marks carry absolute times
 * (`performance.timeOrigin + performance.now()`), which the main thread turns into its own
 * run-relative times.
 *
 * @module
 */
import type { MailpeerEvent } from "../../src/events.ts";
import type { Logger } from "../../src/log.ts";
import { Host } from "../../src/host/host.ts";
import { HostService } from "../../src/host/host_service.ts";
import { MemoryStore } from "../../src/host/store/memory_store.ts";
import { ImapSource } from "../../src/mail/imap/source.ts";
import { SmtpSender } from "../../src/mail/smtp/sender.ts";
import { subjectFor } from "../../src/message/mail_text.ts";
import type { HostKeys } from "../../src/message/key_file.ts";
import { type Mark, TimedSource } from "./rendezvous_mailpeer.ts";
import { imapFor, sleep, smtpFor } from "./rendezvous_stack.ts";

/** What the main thread tells the host worker. */
export type ToHostWorker =
  | {
    type: "start";
    keys: HostKeys;
    network: string;
    idle: boolean;
    pollMs: number;
  }
  /** Answer `registered` once the host's table holds a row of `userId`. */
  | { type: "waitFor"; userId: string }
  /** Abort the host, close its source and sender, answer `stopped`. */
  | { type: "stop" };

/** What the host worker tells the main thread. */
export type FromHostWorker =
  | { type: "ready" }
  /** `at`: absolute ms, `performance.timeOrigin + performance.now()`. */
  | { type: "mark"; mark: Mark; at: number }
  /** An error event, a warning (an IMAP reconnection) or a failure of the host. */
  | { type: "trouble"; what: string }
  | { type: "registered"; userId: string }
  | { type: "stopped" };

/** Absolute time, comparable across the main thread and workers. */
export const absNow = (): number => performance.timeOrigin + performance.now();

const scope = self as unknown as {
  postMessage(message: FromHostWorker): void;
  onmessage: ((e: MessageEvent<ToHostWorker>) => void) | null;
};
const post = (m: FromHostWorker): void => scope.postMessage(m);
const trouble = (what: string): void => post({ type: "trouble", what });

function logger(who: string): Logger {
  return {
    log: (level, message, fields) => {
      if (level === "warn" || level === "error") {
        trouble(`${who}: ${message} ${JSON.stringify(fields ?? {})}`);
      }
    },
  };
}

const EVENT_MARKS: Partial<Record<MailpeerEvent["event"], Mark>> = {
  "request-received": "hostOpened",
  "reply-sent": "hostReplySent",
};

function onEvent(e: MailpeerEvent): void {
  const mark = EVENT_MARKS[e.event];
  if (mark) post({ type: "mark", mark, at: absNow() });
  if (e.event === "error") trouble(`${e.code}: ${e.message}`);
}

let running:
  | { stop: AbortController; run: Promise<void>; store: MemoryStore; close: () => Promise<unknown> }
  | undefined;

function start(o: Extract<ToHostWorker, { type: "start" }>): void {
  const requestSubject = subjectFor(o.network, "request");
  const source = new TimedSource(
    new ImapSource(imapFor(o.keys.email), {
      idle: o.idle,
      pollIntervalMs: o.pollMs,
      configKey: "host.receive",
      logger: logger("host IMAP"),
    }),
    (_match, _start, refs) => {
      // the host lists every kind at once (prefix); the request is among them once seen
      if (refs.some((r) => r.subject.trim() === requestSubject)) {
        post({ type: "mark", mark: "hostSeen", at: absNow() });
      }
    },
  );
  const sender = new SmtpSender(smtpFor(o.keys.email));
  const store = new MemoryStore();
  const host = new Host({
    logger: logger("host"),
    keys: o.keys,
    network: o.network,
    source,
    sender,
    store,
    // Everyone is on loopback here; and one sender (alice) asks many times in the hour.
    allowPrivateAddresses: true,
    limits: {
      requestsPerUserPerHour: 100_000,
      requestsPerSenderPerHour: 100_000,
      requestsPerHour: 10_000_000,
      newRowsPerHour: 1_000_000,
    },
    onEvent,
  });
  const stop = new AbortController();
  const run = new HostService({ host }).run({ signal: stop.signal }).catch((err) => {
    if (!stop.signal.aborted) trouble(`host: ${(err as Error)?.message ?? err}`);
  });
  running = {
    stop,
    run,
    store,
    close: () => Promise.allSettled([source.close(), sender.close()]),
  };
  post({ type: "ready" });
}

async function waitFor(userId: string): Promise<void> {
  while (running && !running.stop.signal.aborted) {
    if ((await running.store.read()).some((r) => r.userId === userId)) {
      post({ type: "registered", userId });
      return;
    }
    await sleep(10);
  }
}

async function stop(): Promise<void> {
  if (running) {
    running.stop.abort();
    await running.run;
    await running.close();
    running = undefined;
  }
  // the main thread terminates the worker on this answer
  post({ type: "stopped" });
}

scope.onmessage = (e) => {
  const m = e.data;
  if (m.type === "start") start(m);
  else if (m.type === "waitFor") void waitFor(m.userId);
  else if (m.type === "stop") void stop();
};
