/**
 * A host process that can be killed at a chosen step, for the crash-safety tests. Run it as a
 * real subprocess:
 *
 * ```sh
 * deno run --no-prompt -A tests/support/crash_host.ts <post-office> <host-key-file> <table> \
 *   [--kill-at <step>:<n>] [--now <ms>] [--network <id>]
 * ```
 *
 * It builds a Host over the local post office (its own Maildir as the source, the post office
 * as the sender, the JSON file store on `<table>`, private addresses allowed) and runs one
 * pass. With `--kill-at fetched:3` it sends itself SIGKILL right after the 3rd "fetched" step
 * (counted across all mails), so it dies there with no chance to clean up; otherwise it exits
 * 0 after the pass and prints the pass counts as one JSON line. `--now` fixes the host's clock
 * (timers still run on the system clock), so two runs select the same peers.
 *
 * A second mode kills the store in the middle of a table write:
 *
 * ```sh
 * deno run --no-prompt -A tests/support/crash_host.ts --write-loop <table> <rows>
 * ```
 *
 * rewrites `<table>` forever with `<rows>` rows (a different table each time) and prints one
 * line per write; the test kills it from outside at an arbitrary moment.
 */
import { Host } from "../../src/host/host.ts";
import type { HostStep } from "../../src/host/host.ts";
import { JsonFileStore } from "../../src/host/store/json_file_store.ts";
import type { PeerRow } from "../../src/host/types.ts";
import { MaildirPostOffice } from "../../src/mail/maildir/post_office.ts";
import { MaildirSender } from "../../src/mail/maildir/sender.ts";
import { MaildirSource } from "../../src/mail/maildir/source.ts";
import { decodeHostKeys } from "../../src/message/key_file.ts";
import { type Clock, systemClock } from "../../src/runtime.ts";

const STEPS: readonly HostStep["step"][] = ["fetched", "table-saved", "reply-sent", "deleted"];
const encoder = new TextEncoder();

function usage(problem: string): never {
  Deno.stderr.writeSync(encoder.encode(`crash_host: ${problem}\n`));
  Deno.exit(2);
}

/** Parses `<step>:<n>`. */
function parseKillAt(spec: string): { step: HostStep["step"]; n: number } {
  const [step, count] = spec.split(":");
  const n = Number(count);
  if (!STEPS.includes(step as HostStep["step"]) || !Number.isInteger(n) || n < 1) {
    usage(`bad --kill-at ${JSON.stringify(spec)}; give <${STEPS.join("|")}>:<n ≥ 1>`);
  }
  return { step: step as HostStep["step"], n };
}

async function processOnce(args: string[]): Promise<void> {
  const positional: string[] = [];
  let killAt: { step: HostStep["step"]; n: number } | undefined;
  let now: number | undefined;
  let network = "testnet";
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--kill-at" || arg === "--now" || arg === "--network") {
      const value = args[++i];
      if (value === undefined) usage(`${arg} needs a value`);
      if (arg === "--kill-at") killAt = parseKillAt(value);
      else if (arg === "--now") now = Number(value);
      else network = value;
    } else {
      positional.push(arg);
    }
  }
  const [postOfficeDir, keyFile, tablePath] = positional;
  if (tablePath === undefined || positional.length !== 3) {
    usage("give <post-office> <host-key-file> <table>");
  }
  const keys = await decodeHostKeys(await Deno.readTextFile(keyFile!));
  const postOffice = new MaildirPostOffice(postOfficeDir!);
  const clock: Clock = now === undefined ? systemClock : {
    now: () => now,
    sleep: systemClock.sleep,
  };
  const source = new MaildirSource(postOffice.maildirOf(keys.email), { clock });
  const seen = new Map<HostStep["step"], number>();
  const host = new Host({
    keys,
    network,
    source,
    sender: new MaildirSender(postOffice, { now: () => clock.now() }),
    store: new JsonFileStore(tablePath),
    clock,
    allowPrivateAddresses: true,
    onStep: ({ step }) => {
      const count = (seen.get(step) ?? 0) + 1;
      seen.set(step, count);
      // No await, no finally, no unload handler runs after this: the process is gone.
      if (killAt && killAt.step === step && killAt.n === count) Deno.kill(Deno.pid, "SIGKILL");
    },
  });
  const result = await host.processPending();
  await source.close();
  Deno.stdout.writeSync(encoder.encode(JSON.stringify(result) + "\n"));
}

/** Rewrites the table forever with `rows` rows, a new session id in every write. */
async function writeLoop(tablePath: string, rows: number): Promise<never> {
  const store = new JsonFileStore(tablePath);
  for (let round = 0;; round++) {
    await store.update(() => ({ rows: bigTable(rows, round), result: undefined }));
    Deno.stdout.writeSync(encoder.encode(`${round}\n`));
  }
}

function bigTable(count: number, round: number): PeerRow[] {
  const rows: PeerRow[] = [];
  for (let i = 0; i < count; i++) {
    rows.push({
      userId: `user-${i}`,
      network: "testnet",
      identityKey: "A".repeat(43),
      endpoints: [{ transport: "tcp", address: "192.0.2.10", port: 1024 + (i % 60000) }],
      email: `user-${i}@player.test`,
      sessionId: `round-${round}-${i}`.padEnd(22, "x"),
      requestedAt: 1_700_000_000_000 + round,
      failures: 0,
    });
  }
  return rows;
}

if (import.meta.main) {
  const args = Deno.args;
  if (args[0] === "--write-loop") {
    const [, table, rows] = args;
    if (table === undefined || !(Number(rows) > 0)) usage("give --write-loop <table> <rows>");
    await writeLoop(table, Number(rows));
  } else {
    await processOnce(args);
  }
}
