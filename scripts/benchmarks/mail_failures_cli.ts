/**
 * The command line's part of `mail_failures.ts`: what a person running mailpeer waits for.
 * A site on the stack (`tests/support/site.ts`: host@host.test reading IMAP, alice@a.test as a
 * terminal) is run as subprocesses of main.ts with a wrong password (`host --once`; `client`
 * with both passwords wrong, and with only the mailbox's wrong) and with STARTTLS on port 993,
 * beside `main.ts --version` (the process start) and a good `host --once` of the same round.
 * Only the client whose mailbox alone is refused mails its request (the terminal lists its
 * mailbox while the request goes out); the good `host --once` runs on another network, so it
 * answers none of them, and they are deleted from host@host.test's INBOX at the end (as is any
 * other mail of the site's network, in alice@a.test's INBOX too).
 *
 * @module
 */
import { ImapSource } from "../../src/mail/imap/source.ts";
import { account } from "../../tests/support/mailstack.ts";
import { makeSite } from "../../tests/support/site.ts";
import { deleteMessages } from "../../tests/support/stack_mail.ts";

/**
 * A good IMAP login of `address`: Dovecot delays failed logins more after each one from the
 * same address until a login succeeds, so every failing run starts from a clean slate.
 */
async function goodLogin(address: string): Promise<void> {
  const { provider, user } = account(address);
  const source = new ImapSource({
    host: provider.ip,
    port: provider.ports.imap,
    tls: "starttls",
    user: user.user,
    password: user.password,
    caFile: provider.caFile,
    servername: provider.hostname,
  });
  try {
    await source.list({ subject: "[mailpeer] bench-mail-failures", mode: "exact" });
  } finally {
    await source.close();
  }
}

/** One measured command line. */
export interface CliCase {
  name: string;
  args: string[];
  /** Environment on top of the site's (a wrong password). */
  env?: Record<string, string>;
  /** The baseline rows: not a failure. */
  baseline?: boolean;
}

/** The outcome of one run. */
export interface CliOutcome {
  ms: number;
  code: number;
  /** The last line of stderr (the one-line message). */
  line: string;
}

export const CLI_CASES: CliCase[] = [
  { name: "main.ts --version", args: ["--version"], baseline: true },
  {
    name: "host --once, good",
    args: ["host", "--once", "--config", "host-other.toml"],
    baseline: true,
  },
  {
    name: "host --once, wrong password",
    args: ["host", "--once", "--config", "host.toml"],
    env: { MP_PASS_HOST_HOST_TEST: "wrong" },
  },
  {
    name: "client, wrong password (receive and send)",
    args: ["client", "--config", "alice.toml"],
    env: { MP_PASS_ALICE_A_TEST: "wrong" },
  },
  {
    name: "client, wrong mailbox password (send works)",
    args: ["client", "--config", "alice-receive.toml"],
    env: { MP_PASS_ALICE_RECEIVE: "wrong" },
  },
  {
    name: 'host --once, tls = "starttls" on 993',
    args: ["host", "--once", "--config", "host993.toml"],
  },
];

/** Runs every case `runs` times, round by round; returns the times by case name. */
export async function measureCli(
  runs: number,
  note: (line: string) => void,
): Promise<Map<string, { times: number[]; last: CliOutcome }>> {
  const main = new URL("../../main.ts", import.meta.url).pathname;
  const site = await makeSite({ receive: "imap" });
  const out = new Map<string, { times: number[]; last: CliOutcome }>();
  try {
    const alice = await Deno.readTextFile(`${site.dir}/alice.toml`);
    const [head, receive] = alice.split("[terminal.receive]");
    await Deno.writeTextFile(
      `${site.dir}/alice-receive.toml`,
      `${head}[terminal.receive]${
        receive!.replace(/password_env = "[^"]*"/, 'password_env = "MP_PASS_ALICE_RECEIVE"')
      }`,
    );
    const host = await Deno.readTextFile(`${site.dir}/host.toml`);
    await Deno.writeTextFile(
      `${site.dir}/host-other.toml`,
      host.replace(`network = "${site.network}"`, `network = "${site.network}-other"`),
    );
    await Deno.writeTextFile(
      `${site.dir}/host993.toml`,
      host.replace("port = 143", "port = 993"),
    );
    for (let i = 0; i < runs; i++) {
      for (const c of CLI_CASES) {
        await goodLogin("host@host.test");
        await goodLogin("alice@a.test");
        const t0 = performance.now();
        const result = await new Deno.Command(Deno.execPath(), {
          args: ["run", "--no-prompt", "--cached-only", "-A", main, ...c.args],
          cwd: site.dir,
          env: { NO_COLOR: "1", ...site.env, ...c.env },
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).output();
        const ms = performance.now() - t0;
        const line = new TextDecoder().decode(result.stderr).trim().split("\n").pop() ?? "";
        const entry = out.get(c.name) ?? { times: [], last: { ms, code: result.code, line } };
        entry.times.push(ms);
        entry.last = { ms, code: result.code, line };
        out.set(c.name, entry);
        note(`cli ${c.name}: ${ms.toFixed(0)} ms, exit ${result.code}`);
      }
    }
  } finally {
    for (const address of ["host@host.test", "alice@a.test"]) {
      await deleteMessages(address, `[mailpeer] ${site.network} `).catch(() => {});
    }
    await site.cleanup();
  }
  return out;
}
