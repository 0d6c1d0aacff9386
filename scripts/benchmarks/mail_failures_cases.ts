/**
 * The cases `mail_failures.ts` measures: for IMAP, POP3 and SMTP, a good login (the baseline)
 * and each way a new user's mail settings fail (issue 15): a wrong password, a closed port, a
 * name that does not resolve, an address nothing answers for, a listener that never speaks,
 * and each TLS mode against the other mode's port. Every server is on this machine: the stack
 * on 127.0.0.x, a silent listener on 127.0.0.1, and the unreachable address on the NAT lab's
 * bridge (that row is skipped when the lab is down).
 *
 * @module
 */
import type { ReceiveConfig, SendConfig, ServerConfig } from "../../src/config/config_schema.ts";

/** A protocol's ports on the stack and how one operation is run through the CLI's wiring. */
export type Protocol = "imap" | "pop3" | "smtp";

/** One case: how the server settings differ from the good ones. */
export interface FailureCase {
  /** Short name, e.g. `wrong password`. */
  name: string;
  /** What the user did wrong, for the table. */
  what: string;
  /** Changes to the good settings (host, port, tls, password). */
  change(good: ServerConfig, ports: Ports, env: CaseEnv): Partial<ServerConfig> | undefined;
  /** True when the server answers (the refusal should come within ~2 s), false when nothing does. */
  answers: boolean;
}

/** The stack ports of one protocol: STARTTLS and implicit TLS. */
export interface Ports {
  starttls: number;
  implicit: number;
}

/** Addresses the cases point at. */
export interface CaseEnv {
  /** A loopback port nothing listens on. */
  closedPort: number;
  /** A loopback port that accepts connections and never sends a byte. */
  silentPort: number;
  /** An address on a local link that no machine has (EHOSTUNREACH), when the NAT lab is up. */
  unreachable?: string;
}

export const CASES: FailureCase[] = [
  {
    name: "good login",
    what: "baseline: the right settings",
    answers: true,
    change: () => ({}),
  },
  {
    name: "wrong password",
    what: "password_env holds a wrong password",
    answers: true,
    change: () => ({ password: { env: "MAILPEER_BENCH_WRONG_PASSWORD" } }),
  },
  {
    name: "connection refused",
    what: "a port nothing listens on",
    answers: true,
    change: (_g, _p, env) => ({ host: "127.0.0.1", port: env.closedPort }),
  },
  {
    name: "unknown host name",
    what: "host = nonexistent.invalid",
    answers: true,
    change: () => ({ host: "nonexistent.invalid" }),
  },
  {
    name: "starttls on the implicit-TLS port",
    what: 'tls = "starttls" with port 993 / 995 / 465',
    answers: true,
    change: (_g, ports) => ({ tls: "starttls", port: ports.implicit }),
  },
  {
    name: "implicit TLS on the STARTTLS port",
    what: 'tls = "implicit" with port 143 / 110 / 587',
    answers: true,
    change: (_g, ports) => ({ tls: "implicit", port: ports.starttls }),
  },
  {
    name: "unreachable address",
    what: "an address no machine on the link has (EHOSTUNREACH)",
    answers: false,
    change: (_g, _p, env) => env.unreachable === undefined ? undefined : { host: env.unreachable },
  },
  {
    name: "server never speaks",
    what: "a listener that accepts and stays silent",
    answers: false,
    change: (_g, _p, env) => ({ host: "127.0.0.1", port: env.silentPort }),
  },
];

/** The receive or send section of a role for `protocol`, from server settings. */
export function sectionFor(
  protocol: Protocol,
  server: ServerConfig,
): ReceiveConfig | SendConfig {
  if (protocol === "imap") {
    return {
      kind: "imap",
      ...server,
      mailbox: "INBOX",
      quarantine: "Quarantine",
      idle: false,
      junk: "off",
    };
  }
  if (protocol === "pop3") return { kind: "pop3", ...server };
  return { kind: "smtp", ...server };
}

/** A loopback listener that accepts connections and never sends anything; close() ends it. */
export function silentListener(): { port: number; close(): void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  (async () => {
    try {
      for await (const conn of listener) held.push(conn);
    } catch {
      // closed
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    close() {
      listener.close();
      for (const conn of held) {
        try {
          conn.close();
        } catch {
          // closed by the client already
        }
      }
    },
  };
}

/** A loopback port that was just free (bound, then released). */
export function closedPort(): number {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  return port;
}

/**
 * An unused address on the NAT lab's bridge `mpl-root` (a local link: connecting makes the
 * kernel ask by ARP, nobody answers, and the connect fails with EHOSTUNREACH after ~3 s), or
 * undefined when the lab is down.
 */
export async function unreachableAddress(): Promise<string | undefined> {
  try {
    const out = await new Deno.Command("ip", { args: ["-4", "addr", "show", "dev", "mpl-root"] })
      .output();
    if (!out.success) return undefined;
    const m = /inet (198\.18\.0)\.\d+\/24/.exec(new TextDecoder().decode(out.stdout));
    return m ? `${m[1]}.199` : undefined;
  } catch {
    return undefined;
  }
}
