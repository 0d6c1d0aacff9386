/**
 * `mailpeer demo`: a host and two terminals on a temporary local post office (real RFC 5322
 * mails in real Maildirs). Terminal 2 asks first, gets a formal empty reply and stands by;
 * terminal 1 asks, gets terminal 2 and connects over TCP on loopback; they exchange a chat line
 * and disconnect. Succeeds only when the connection was really established.
 *
 * @module
 */
import { Command, Option } from "@commander-js/extra-typings";
import { join } from "node:path";
import { receiveLine, sendLine } from "../apps/chat.ts";
import { type EventSink, withActor } from "../events.ts";
import { Host } from "../host/host.ts";
import { HostService } from "../host/host_service.ts";
import { JsonFileStore } from "../host/store/json_file_store.ts";
import { MaildirPostOffice } from "../mail/maildir/post_office.ts";
import { MaildirSender } from "../mail/maildir/sender.ts";
import { MaildirSource } from "../mail/maildir/source.ts";
import { generateHostKeys, generateIdentityKeys, hostCardOf } from "../message/key_file.ts";
import { TcpTransport } from "../peer/tcp_transport.ts";
import { UdpTransport } from "../peer/udp_transport.ts";
import type { TransportKind } from "../message/types.ts";
import { Terminal } from "../terminal/terminal.ts";
import { onSignals, untilStopped } from "./common.ts";
import { cliSink } from "./output.ts";

/** What the demo proved. */
export interface DemoResult {
  connected: boolean;
  transport: string;
  /** Terminal start → connected, for terminal 1. */
  ms: number;
  exchanged: string[];
}

/**
 * Runs the demo scenario; `dir` is an empty directory for the post office and the table.
 * `signal` (Ctrl-C) stops it at any point, with every socket and mailbox closed, so the caller
 * can remove `dir`.
 */
export async function runDemo(
  dir: string,
  options: {
    onEvent: EventSink;
    network?: string;
    transport?: TransportKind;
    signal?: AbortSignal;
  },
): Promise<DemoResult> {
  const { signal } = options;
  signal?.throwIfAborted();
  const network = options.network ?? "demo";
  const postOffice = new MaildirPostOffice(join(dir, "post-office"));
  const hostKeys = await generateHostKeys("host@mailpeer.local");
  const card = hostCardOf(hostKeys);
  const hostSource = new MaildirSource(await postOffice.ensureMailbox(hostKeys.email), {
    pollIntervalMs: 200,
  });
  const host = new Host({
    keys: hostKeys,
    network,
    source: hostSource,
    sender: new MaildirSender(postOffice),
    store: new JsonFileStore(join(dir, "table.json")),
    allowPrivateAddresses: true, // everyone is on loopback
    onEvent: withActor(options.onEvent, "host"),
  });
  const stopHost = new AbortController();
  const hostRunning = new HostService({ host }).run({
    signal: signal ? AbortSignal.any([signal, stopHost.signal]) : stopHost.signal,
  });

  const transport = options.transport === "udp" ? new UdpTransport() : new TcpTransport();
  const standby = Promise.withResolvers<void>();
  const terminal = async (n: number, onStandby?: () => void) => {
    const email = `terminal${n}@player${n}.local`;
    const sink = withActor(options.onEvent, `terminal-${n}`);
    const source = new MaildirSource(await postOffice.ensureMailbox(email), {
      pollIntervalMs: 200,
    });
    const t = new Terminal({
      identity: await generateIdentityKeys(`player${n}`),
      email,
      network,
      hosts: [card],
      sender: new MaildirSender(postOffice),
      source,
      transport,
      advertise: "127.0.0.1",
      replyTimeoutMs: 30_000,
      standbyTimeoutMs: 30_000,
      onEvent: (e) => {
        sink(e);
        if (e.event === "standby") onStandby?.();
      },
    });
    try {
      return { sink, result: await t.rendezvous(signal ? { signal } : {}) };
    } finally {
      await source.close();
    }
  };

  const lineOptions = signal ? { signal } : {};
  let first: Awaited<ReturnType<typeof terminal>> | undefined;
  let second: ReturnType<typeof terminal> | undefined;
  try {
    second = terminal(2, () => standby.resolve());
    second.catch(() => {}); // awaited below, or settled in finally on an early end
    // Terminal 1 starts once terminal 2 stands by (or failed before that).
    await Promise.race([standby.promise, second.then(() => {}, () => {})]);
    first = await terminal(1);
    const { result: r2, sink: sink2 } = await second;
    const r1 = first.result;
    const exchanged: string[] = [];
    await sendLine(r1.link, "hello from player1");
    const got2 = await receiveLine(r2.link, lineOptions);
    if (got2 !== null) {
      exchanged.push(got2);
      sink2({ event: "message", from: r2.link.remote.userId, text: got2 });
    }
    await sendLine(r2.link, "hello back from player2");
    const got1 = await receiveLine(r1.link, lineOptions);
    if (got1 !== null) {
      exchanged.push(got1);
      first.sink({ event: "message", from: r1.link.remote.userId, text: got1 });
    }
    await r1.link.close();
    first.sink({ event: "disconnected", peer: r1.link.remote.userId });
    const end = await receiveLine(r2.link, lineOptions);
    if (end === null) sink2({ event: "disconnected", peer: r2.link.remote.userId });
    await r2.link.close();
    return { connected: true, transport: r1.link.transport, ms: r1.ms, exchanged };
  } finally {
    // After an early end (Ctrl-C, a failure) close whatever had connected; closing twice is fine.
    await first?.result.link.close().catch(() => {});
    await second?.then((r) => r.result.link.close(), () => {}).catch(() => {});
    stopHost.abort();
    await hostRunning.catch(() => {});
    await hostSource.close();
  }
}

/** The `demo` subcommand. */
export function demoCommand() {
  return new Command("demo")
    .description("run a host and two terminals on a temporary local post office and connect them")
    .option("--json", "print events as JSON lines")
    .option("--keep", "keep the temporary post office for inspection")
    .addOption(
      new Option("--transport <kind>", "peer transport").choices(["tcp", "udp"] as const).default(
        "tcp" as const,
      ),
    )
    .action(async (opts) => {
      const dir = await Deno.makeTempDir({ prefix: "mailpeer-demo-" });
      // The demo shows the patent's FIG. 4 steps (S10 … S38) in its narration too.
      const sink = cliSink({ json: opts.json ?? false, steps: true });
      const stop = onSignals();
      try {
        const result = await untilStopped(
          stop.signal,
          () => runDemo(dir, { onEvent: sink, transport: opts.transport, signal: stop.signal }),
        );
        if (!opts.json) {
          const line =
            `demo: terminals connected over ${result.transport.toUpperCase()} in ${result.ms} ms ` +
            `and exchanged ${result.exchanged.length} chat lines${
              opts.keep ? `; mails kept in ${dir}` : ""
            }\n`;
          await Deno.stderr.write(new TextEncoder().encode(line));
        }
      } finally {
        if (!opts.keep) await Deno.remove(dir, { recursive: true }).catch(() => {});
      }
    });
}
