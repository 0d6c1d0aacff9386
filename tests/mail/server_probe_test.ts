/**
 * The probe `mailpeer init` runs on every server it finds, against the real stack (alice2@a.test
 * on 127.0.0.11): IMAP, POP3 and SMTP, implicit TLS and STARTTLS, log in; and each way a found
 * server can be wrong is one line with its code: a refused password (EAUTH), an untrusted
 * certificate or a port of the other TLS mode (ETLS), nothing listening (ECONNECT), another
 * protocol on the port (ECONNECT).
 */
import assert from "node:assert/strict";
import { MailError } from "../../src/errors.ts";
import { probeMailServer } from "../../src/mail/server_probe.ts";
import { account, NO_STACK, STACK } from "../support/mailstack.ts";

const ADDRESS = "alice2@a.test";
const OPTIONS = { timeoutMs: 8_000, configKey: "receive" };

function settings() {
  const { provider, user } = account(ADDRESS);
  return {
    provider,
    base: { host: provider.ip, user: user.user, password: user.password, caFile: STACK!.caFile },
  };
}

async function failure(run: Promise<void>): Promise<MailError> {
  try {
    await run;
  } catch (err) {
    assert.ok(err instanceof MailError, String(err));
    assert.ok(!err.message.includes("\n"), err.message);
    return err;
  }
  throw new Error("the probe succeeded");
}

Deno.test({
  name: "the probe logs in to IMAP, POP3 and SMTP, over implicit TLS and STARTTLS",
  ignore: NO_STACK,
  fn: async () => {
    const { provider, base } = settings();
    const p = provider.ports;
    await probeMailServer("IMAP", { ...base, port: p.imaps, tls: "implicit" }, OPTIONS);
    await probeMailServer("IMAP", { ...base, port: p.imap, tls: "starttls" }, OPTIONS);
    await probeMailServer("POP3", { ...base, port: p.pop3s, tls: "implicit" }, OPTIONS);
    await probeMailServer("POP3", { ...base, port: p.pop3, tls: "starttls" }, OPTIONS);
    await probeMailServer("SMTP", { ...base, port: p.submission, tls: "starttls" }, OPTIONS);
    await probeMailServer("SMTP", { ...base, port: p.smtps, tls: "implicit" }, OPTIONS);
    // Without a password: connect, TLS and greeting only.
    const { password: _, ...noPassword } = base;
    await probeMailServer("IMAP", { ...noPassword, port: p.imaps, tls: "implicit" }, OPTIONS);
  },
});

Deno.test({
  name: "a found server that is wrong is one line: password, certificate, TLS mode, port, protocol",
  ignore: NO_STACK,
  fn: async () => {
    const { provider, base } = settings();
    const p = provider.ports;
    const auth = await failure(
      probeMailServer(
        "IMAP",
        { ...base, port: p.imaps, tls: "implicit", password: "wrong" },
        OPTIONS,
      ),
    );
    assert.equal(auth.code, "EAUTH");
    assert.match(auth.message, /refused the password/);
    const smtpAuth = await failure(
      probeMailServer(
        "SMTP",
        { ...base, port: p.submission, tls: "starttls", password: "wrong" },
        OPTIONS,
      ),
    );
    assert.equal(smtpAuth.code, "EAUTH");

    const { caFile: _, ...systemRoots } = base;
    const untrusted = await failure(
      probeMailServer("IMAP", { ...systemRoots, port: p.imaps, tls: "implicit" }, OPTIONS),
    );
    assert.equal(untrusted.code, "ETLS");
    assert.match(untrusted.message, /--ca-file/);

    const plainPort = await failure(
      probeMailServer("IMAP", { ...base, port: p.imap, tls: "implicit" }, OPTIONS),
    );
    assert.equal(plainPort.code, "ETLS");
    assert.match(plainPort.message, /answers in plain text/);

    const closed = await failure(
      probeMailServer("IMAP", { ...base, port: 9, tls: "implicit" }, OPTIONS),
    );
    assert.equal(closed.code, "ECONNECT");
    assert.match(closed.message, /refused/);

    const smtpOnImapPort = await failure(
      probeMailServer("SMTP", { ...base, port: p.imap, tls: "starttls" }, OPTIONS),
    );
    assert.equal(smtpOnImapPort.code, "ECONNECT");
    assert.match(smtpOnImapPort.message, /does not greet as SMTP/);

    const injected = await failure(
      probeMailServer(
        "POP3",
        { ...base, port: p.pop3s, tls: "implicit", password: "x\r\nDELE 1" },
        OPTIONS,
      ),
    );
    assert.equal(injected.code, "EAUTH");
    assert.match(injected.message, /control character/);
  },
});

Deno.test({
  name: "a server that accepts the connection and never greets is given up after the time limit",
  fn: async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const held: Deno.Conn[] = [];
    const accepting = (async () => {
      for await (const conn of listener) held.push(conn);
    })();
    try {
      const silent = await failure(
        probeMailServer("IMAP", {
          host: "127.0.0.1",
          port: (listener.addr as Deno.NetAddr).port,
          tls: "implicit",
          user: "u",
        }, { timeoutMs: 300, configKey: "receive" }),
      );
      assert.equal(silent.code, "ECONNECT");
      assert.match(silent.message, /greeting/);
    } finally {
      listener.close();
      await accepting.catch(() => {});
      for (const c of held) c.close();
    }
  },
});
