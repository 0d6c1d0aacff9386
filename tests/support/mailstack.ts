/**
 * The real mail stack (scripts/mailstack) as tests see it: providers, accounts, TLS CA.
 * Tests that need it are skipped (ignored) when it is not running; the README's test command
 * starts it, so CI always runs them.
 */
import { join } from "node:path";
import type { MailLogin } from "../../src/mail/types.ts";

export interface StackUser {
  address: string;
  user: string;
  password: string;
  maildir: string;
}

export interface StackProvider {
  domain: string;
  ip: string;
  /** The provider's NAT-lab address, present while the stack listens there (docs/mailstack.md). */
  labIp?: string;
  hostname: string;
  ports: {
    smtp: number;
    submission: number;
    smtps: number;
    imap: number;
    imaps: number;
    pop3: number;
    pop3s: number;
  };
  caFile: string;
  users: StackUser[];
}

export interface Stack {
  stateDir: string;
  caFile: string;
  providers: StackProvider[];
}

const DEFAULT_DIR = new URL("../../.mailstack", import.meta.url).pathname;

/** Reads stack.json of the running stack, or undefined when there is none. */
export function loadStack(): Stack | undefined {
  const dir = Deno.env.get("MAILSTACK_DIR") ?? DEFAULT_DIR;
  try {
    return JSON.parse(Deno.readTextFileSync(join(dir, "stack.json"))) as Stack;
  } catch {
    return undefined;
  }
}

/** The stack, loaded once per test module. */
export const STACK: Stack | undefined = loadStack();

if (!STACK && Deno.env.get("MAILPEER_REQUIRE_STACK")) {
  throw new Error(
    "MAILPEER_REQUIRE_STACK is set but the mail stack is not running: scripts/test starts it",
  );
}

/** True when mail tests must be skipped: no stack (and MAILPEER_REQUIRE_STACK unset). */
export const NO_STACK: boolean = STACK === undefined;

/** The provider and user of an address, e.g. `alice@a.test`. */
export function account(address: string): { provider: StackProvider; user: StackUser } {
  if (!STACK) {
    throw new Error(
      "the mail stack is not running: start it with scripts/mailstack/mailstack.sh start",
    );
  }
  for (const provider of STACK.providers) {
    const user = provider.users.find((u) => u.address === address);
    if (user) return { provider, user };
  }
  throw new Error(`no account ${address} in the mail stack`);
}

/** The IMAP or SMTP (submission) login of a stack address, STARTTLS with the stack's CA. */
export function loginOf(address: string, kind: "imap" | "smtp"): MailLogin {
  const { provider, user } = account(address);
  return {
    host: provider.ip,
    port: kind === "imap" ? provider.ports.imap : provider.ports.submission,
    tls: "starttls",
    user: user.user,
    password: user.password,
    caFile: STACK!.caFile,
    servername: provider.hostname,
  };
}
