/**
 * A host running in the test's process on a mailbox of the real mail stack, as the CLI wires it
 * (IMAP IDLE, SMTP, a memory table) on a shared ManualClock: the e2e tests of the host role and of
 * linked hosts start several, each driven by its own service (RoleService, HostService).
 */
import type { EventSink } from "../../src/events.ts";
import { Host } from "../../src/host/host.ts";
import { MemoryStore } from "../../src/host/store/memory_store.ts";
import { ImapSource } from "../../src/mail/imap/source.ts";
import { SmtpSender } from "../../src/mail/smtp/sender.ts";
import type { HostKeys } from "../../src/message/key_file.ts";
import type { Recorder } from "./event_recorder.ts";
import { loginOf } from "./mailstack.ts";
import type { ManualClock } from "./manual_clock.ts";

/** What a test's host is made of: its seams, its Host, and the sink of its events. */
export interface StackHostParts {
  name: string;
  source: ImapSource;
  sender: SmtpSender;
  store: MemoryStore;
  host: Host;
  onEvent: EventSink;
}

/** A started host: its table, and how to stop it (its service, then its connections). */
export interface StackHost {
  name: string;
  store: MemoryStore;
  stop: () => Promise<void>;
}

/** The seams and the Host of `name` on `mailbox` (IMAP + SMTP of the stack), events recorded. */
export function stackHostParts(
  name: string,
  keys: HostKeys,
  mailbox: string,
  ctx: { network: string; clock: ManualClock; recorder: Recorder },
): StackHostParts {
  const { network, clock, recorder } = ctx;
  const onEvent = recorder.sink(name);
  const source = new ImapSource(loginOf(mailbox, "imap"), { clock });
  const sender = new SmtpSender(loginOf(mailbox, "smtp"), { now: () => clock.now() });
  const store = new MemoryStore();
  const host = new Host({
    keys,
    network,
    source,
    sender,
    store,
    clock,
    allowPrivateAddresses: true,
    onEvent,
  });
  return { name, source, sender, store, host, onEvent };
}

/** Runs `run` (a service's run loop) until the returned host is stopped. */
export function runStackHost(
  parts: StackHostParts,
  run: (signal: AbortSignal) => Promise<unknown>,
): StackHost {
  const abort = new AbortController();
  const running = run(abort.signal);
  return {
    name: parts.name,
    store: parts.store,
    stop: async () => {
      abort.abort();
      await running.catch(() => {});
      await Promise.allSettled([parts.source.close(), parts.sender.close()]);
    },
  };
}
