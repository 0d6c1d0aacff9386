/**
 * What a person learns when their mail settings are wrong (issue 15), for each mail client
 * (ImapSource, Pop3Source, SmtpSender) against the real stack (alice2@a.test on 127.0.0.11):
 * one line with the error code, the server's host:port, the configuration key to fix and what
 * to do, and no retries of settings that never worked. A server that never speaks is a loopback
 * listener of the test's own. Times are not asserted: scripts/bench-mail-failures measures them.
 */
import assert from "node:assert/strict";
import { MailError } from "../../src/errors.ts";
import { FIRST_FAILURE_KEPT_MS } from "../../src/mail/tuning.ts";
import { ManualClock } from "../support/manual_clock.ts";
import { connectError, type ConnectTarget } from "../../src/mail/connect_failure.ts";
import { ImapSource } from "../../src/mail/imap/source.ts";
import { Pop3Source } from "../../src/mail/pop3/source.ts";
import { SmtpSender } from "../../src/mail/smtp/sender.ts";
import { account, NO_STACK } from "../support/mailstack.ts";

const ADDRESS = "alice2@a.test";
const REQUEST = { subject: "[mailpeer] lan request", mode: "exact" } as const;

/** What every client takes: where, which TLS, which login. */
interface Settings {
  host: string;
  port: number;
  tls: "starttls" | "implicit" | "none";
  password: string;
  connectTimeoutMs?: number;
}

interface Client {
  protocol: "IMAP" | "POP3" | "SMTP";
  /**
   * Runs the operation twice on one client, whose clock moves `laterMs` in between; resolves
   * with both errors.
   */
  failTwice(settings: Partial<Settings>, laterMs: number): Promise<[MailError, MailError]>;
  configKey: string;
  starttlsPort: number;
  implicitPort: number;
  /** Runs one operation with these settings; resolves with its error (or throws if none). */
  fail(settings: Partial<Settings>): Promise<MailError>;
  /**
   * Logs in with the right settings (SMTP: to a recipient refused at RCPT, nothing is sent):
   * Dovecot then forgets earlier failed logins, which it answers ever more slowly.
   */
  succeed(): Promise<void>;
  /** Reconnection attempts the client made (IMAP only counts them). */
  retries: () => number;
}

async function errorOf(work: Promise<unknown>): Promise<MailError> {
  try {
    await work;
  } catch (err) {
    assert.ok(err instanceof MailError, `not a MailError: ${err}`);
    return err;
  }
  assert.fail("the operation succeeded");
}

function clients(): Client[] {
  const { provider, user } = account(ADDRESS);
  const base = (port: number, s: Partial<Settings>) => ({
    host: provider.ip,
    port,
    tls: "starttls" as const,
    user: user.user,
    password: user.password,
    caFile: provider.caFile,
    servername: provider.hostname,
    ...s,
  });
  let imapRetries = 0;
  return [
    {
      protocol: "IMAP",
      configKey: "host.receive",
      starttlsPort: provider.ports.imap,
      implicitPort: provider.ports.imaps,
      retries: () => imapRetries,
      async succeed() {
        const source = new ImapSource(base(provider.ports.imap, {}), { configKey: "host.receive" });
        try {
          await source.list(REQUEST);
        } finally {
          await source.close();
        }
      },
      async failTwice(s, laterMs) {
        const clock = new ManualClock();
        const source = new ImapSource(base(provider.ports.imap, s), {
          configKey: "host.receive",
          clock,
        });
        try {
          const first = await errorOf(source.list(REQUEST));
          clock.advance(laterMs);
          return [first, await errorOf(source.waitForMail())];
        } finally {
          await source.close();
        }
      },
      async fail(s) {
        imapRetries = 0;
        const source = new ImapSource(base(provider.ports.imap, s), {
          configKey: "host.receive",
          backoff: () => (imapRetries++, 0),
        });
        try {
          return await errorOf(source.list(REQUEST));
        } finally {
          await source.close();
        }
      },
    },
    {
      protocol: "POP3",
      configKey: "terminal.receive",
      starttlsPort: provider.ports.pop3,
      implicitPort: provider.ports.pop3s,
      retries: () => 0,
      async succeed() {
        const source = new Pop3Source(base(provider.ports.pop3, {}));
        try {
          await source.list(REQUEST);
        } finally {
          await source.close();
        }
      },
      async failTwice(s, laterMs) {
        const clock = new ManualClock();
        const source = new Pop3Source(base(provider.ports.pop3, s), {
          configKey: "terminal.receive",
          clock,
        });
        try {
          const first = await errorOf(source.list(REQUEST));
          clock.advance(laterMs);
          return [first, await errorOf(source.list(REQUEST))];
        } finally {
          await source.close();
        }
      },
      async fail(s) {
        const source = new Pop3Source(base(provider.ports.pop3, s), {
          configKey: "terminal.receive",
        });
        try {
          return await errorOf(source.list(REQUEST));
        } finally {
          await source.close();
        }
      },
    },
    {
      protocol: "SMTP",
      configKey: "terminal.send",
      starttlsPort: provider.ports.submission,
      implicitPort: provider.ports.smtps,
      retries: () => 0,
      async succeed() {
        const sender = new SmtpSender(base(provider.ports.submission, {}));
        try {
          const refused = await errorOf(sender.send({
            from: ADDRESS,
            to: [`nobody-${crypto.randomUUID().slice(0, 8)}@${provider.domain}`],
            subject: "[mailpeer] connect failure test (refused at RCPT)",
            text: "never delivered\r\n",
          }));
          assert.equal(refused.code, "ESEND", refused.message);
        } finally {
          await sender.close();
        }
      },
      async failTwice(s, laterMs) {
        const clock = new ManualClock();
        const sender = new SmtpSender(base(provider.ports.submission, s), {
          configKey: "terminal.send",
          now: () => clock.now(),
        });
        const mail = {
          from: ADDRESS,
          to: [ADDRESS],
          subject: "[mailpeer] connect failure test (never sent)",
          text: "never sent\r\n",
        };
        try {
          const first = await errorOf(sender.send(mail));
          clock.advance(laterMs);
          return [first, await errorOf(sender.send(mail))];
        } finally {
          await sender.close();
        }
      },
      async fail(s) {
        const sender = new SmtpSender(base(provider.ports.submission, s), {
          configKey: "terminal.send",
        });
        try {
          return await errorOf(sender.send({
            from: ADDRESS,
            to: [ADDRESS],
            subject: "[mailpeer] connect failure test (never sent)",
            text: "never sent\r\n",
          }));
        } finally {
          await sender.close();
        }
      },
    },
  ];
}

/** One line, "Cannot …: …; …", naming `where` and matching `says`. */
function assertLine(err: MailError, code: string, where: string, says: RegExp): void {
  assert.equal(err.code, code, err.message);
  assert.ok(!err.message.includes("\n"), err.message);
  assert.match(err.message, /^Cannot .+: .+; .+/);
  assert.ok(err.message.includes(where), `${where} missing from: ${err.message}`);
  assert.match(err.message, says);
}

/** A loopback port that was just free. */
function closedPort(): number {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  return port;
}

/** A loopback listener that accepts and never sends a byte. */
function silentListener(): { port: number; close(): void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  (async () => {
    for await (const conn of listener) held.push(conn);
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    close() {
      listener.close();
      for (const conn of held) {
        try {
          conn.close();
        } catch {
          // the client closed it
        }
      }
    },
  };
}

if (!NO_STACK) {
  for (const c of clients()) {
    const p = c.protocol.toLowerCase();
    const key = c.configKey;

    Deno.test(`${p}: a wrong password is refused at once, naming the password keys`, async () => {
      await c.succeed();
      const err = await c.fail({ password: "not-the-password" });
      assertLine(err, "EAUTH", `127.0.0.11:${c.starttlsPort}`, new RegExp(`${key}\\.password_env`));
      assert.ok(!err.message.includes("not-the-password"), "the password must not be echoed");
      assert.equal(c.retries(), 0);
    });

    Deno.test(`${p}: a closed port is refused at once, naming ${key}.port`, async () => {
      const port = closedPort();
      const err = await c.fail({ host: "127.0.0.1", port });
      assertLine(
        err,
        "ECONNECT",
        `${c.protocol} server 127.0.0.1:${port}`,
        new RegExp(`refused.*check ${key}\\.port`),
      );
      assert.equal(c.retries(), 0);
    });

    Deno.test(`${p}: a host name that does not resolve is said so, naming ${key}.host`, async () => {
      const err = await c.fail({ host: "nonexistent.invalid" });
      assertLine(
        err,
        "ECONNECT",
        `nonexistent.invalid:${c.starttlsPort}`,
        new RegExp(`nonexistent\\.invalid does not resolve.*check ${key}\\.host`),
      );
      assert.equal(c.retries(), 0);
    });

    Deno.test(`${p}: STARTTLS against the implicit-TLS port says to set tls = "implicit"`, async () => {
      const err = await c.fail({ port: c.implicitPort });
      assertLine(
        err,
        "ETLS",
        `127.0.0.11:${c.implicitPort}`,
        new RegExp(`speaks TLS from the start.*set ${key}\\.tls = "implicit"`),
      );
    });

    Deno.test(`${p}: implicit TLS against the STARTTLS port says to set tls = "starttls"`, async () => {
      const err = await c.fail({ tls: "implicit" });
      assertLine(
        err,
        "ETLS",
        `127.0.0.11:${c.starttlsPort}`,
        new RegExp(`answers in plain text.*set ${key}\\.tls = "starttls"`),
      );
    });

    Deno.test(`${p}: a server that never speaks ends at the connect timeout, naming it`, async () => {
      const silent = silentListener();
      try {
        const err = await c.fail({ host: "127.0.0.1", port: silent.port, connectTimeoutMs: 1_000 });
        assertLine(
          err,
          "ECONNECT",
          `127.0.0.1:${silent.port}`,
          new RegExp(`no ${c.protocol} greeting within 1 s.*raise ${key}\\.connect_timeout`),
        );
        assert.equal(c.retries(), 0);
      } finally {
        silent.close();
      }
    });

    Deno.test(`${p}: a server that never answered is not waited for again by the next call`, async () => {
      const silent = silentListener();
      try {
        const settings = { host: "127.0.0.1", port: silent.port, connectTimeoutMs: 1_000 };
        const [first, second] = await c.failTwice(settings, FIRST_FAILURE_KEPT_MS - 1);
        assert.match(first.message, /no .* greeting within 1 s/);
        // the first answer itself (a second attempt would make a new error after a new wait)
        assert.equal(second, first);
      } finally {
        silent.close();
      }
    });

    Deno.test(`${p}: a while later the server is asked again (a host retries each pass)`, async () => {
      const silent = silentListener();
      try {
        const settings = { host: "127.0.0.1", port: silent.port, connectTimeoutMs: 1_000 };
        const [first, second] = await c.failTwice(settings, FIRST_FAILURE_KEPT_MS);
        assert.equal(first.code, "ECONNECT");
        assert.equal(second.code, "ECONNECT");
        assert.notEqual(second, first, "asked the server again");
      } finally {
        silent.close();
      }
    });
  }
}

Deno.test("an unreachable address is said in words, not as a bare EHOSTUNREACH", () => {
  const target: ConnectTarget = {
    protocol: "IMAP",
    host: "192.0.2.7",
    port: 993,
    configKey: "host.receive",
  };
  const raw = [
    Object.assign(new Error("connect EHOSTUNREACH 192.0.2.7:993"), { code: "EHOSTUNREACH" }),
    new Error("No route to host (os error 113)"),
    Object.assign(new Error("connect ENETUNREACH 192.0.2.7:993"), { code: "ENETUNREACH" }),
  ];
  for (const err of raw) {
    const mail = connectError(err, target);
    assertLine(
      mail,
      "ECONNECT",
      "IMAP server 192.0.2.7:993",
      /no route to 192\.0\.2\.7 \(the address is unreachable from this machine\); check host\.receive\.host/,
    );
  }
});
