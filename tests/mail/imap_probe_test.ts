/**
 * The read-only look a cron host takes into its IMAP mailbox before loading imapflow
 * (src/mail/imap/probe.ts), against the real Dovecot of the test stack.
 */
import assert from "node:assert/strict";
import { composeMail } from "../../src/mail/rfc5322/compose.ts";
import { MailError } from "../../src/errors.ts";
import { probeImap } from "../../src/mail/imap/probe.ts";
import { flagsBySubject, imapServer, mailClient, removeFolders } from "../support/imap_mailbox.ts";
import { NO_STACK } from "../support/mailstack.ts";
import { LineReader } from "../../src/mail/line_reader.ts";
import { IMAP_PROBE_MAX_RESPONSES } from "../../src/limits.ts";

const FOLDER = "ProbeTest";
const PREFIX = "[mailpeer] lan ";

async function mail(subject: string): Promise<Uint8Array> {
  const { raw } = await composeMail({
    from: "alice@a.test",
    to: ["host2@host.test"],
    subject,
    text: "probe test\r\n",
  });
  return raw;
}

Deno.test({
  name: "the probe says 'nothing' only when no mail carries the prefix, and changes no flag",
  ignore: NO_STACK,
  fn: async () => {
    const client = await mailClient();
    try {
      await removeFolders(client, [FOLDER]);
      await client.mailboxCreate(FOLDER);
      await client.append(FOLDER, await mail("Lunch on Friday?"));
      await client.append(FOLDER, await mail("[mailpeer] other-network request"));
      const options = { mailboxes: [FOLDER], subject: PREFIX, timeoutMs: 10_000 };
      for (const tls of ["starttls", "implicit"] as const) {
        const port = tls === "implicit" ? 993 : 143;
        assert.equal(await probeImap(imapServer({ tls, port }), options), false, tls);
      }
      await client.append(FOLDER, await mail(`${PREFIX}request`));
      assert.equal(await probeImap(imapServer(), options), true);
      // Read-only (EXAMINE): no mail was read-marked or flagged; \Recent is still there for
      // the next session that selects the folder.
      const flags = await flagsBySubject(client, FOLDER);
      assert.equal(flags.size, 3);
      for (const [subject, list] of flags) assert.deepEqual(list, ["\\Recent"], subject);
    } finally {
      await removeFolders(client, [FOLDER]).catch(() => {});
      await client.logout().catch(() => client.close());
    }
  },
});

Deno.test({
  name: "the probe cannot tell (and the host takes the full path) on a missing mailbox",
  ignore: NO_STACK,
  fn: async () => {
    const options = { mailboxes: ["INBOX"], subject: PREFIX, timeoutMs: 10_000 };
    assert.equal(
      await probeImap(imapServer(), { ...options, mailboxes: ["No Such Folder"] }),
      undefined,
    );
    // Certificate checks cannot be switched off for Deno's TLS: `insecure` takes the full path.
    assert.equal(await probeImap(imapServer({ insecure: true }), options), undefined);
  },
});

Deno.test({
  name: "a cron host with a wrong password or a closed port hears it from the probe, once",
  ignore: NO_STACK,
  fn: async () => {
    const options = { mailboxes: ["INBOX"], subject: PREFIX, timeoutMs: 10_000 };
    await assert.rejects(probeImap(imapServer({ password: "wrong" }), options), (err) => {
      assert.ok(err instanceof MailError);
      assert.equal(err.code, "EAUTH");
      assert.match(
        err.message,
        /127\.0\.0\.13:143 .*refused the password; check host\.receive\.password_env/,
      );
      return true;
    });
    await assert.rejects(probeImap(imapServer({ port: 9 }), options), (err) => {
      assert.ok(err instanceof MailError);
      assert.equal(err.code, "ECONNECT");
      assert.match(err.message, /127\.0\.0\.13:9: the connection was refused.*host\.receive\.port/);
      return true;
    });
  },
});

Deno.test({
  name: 'a cron host with STARTTLS on the implicit-TLS port is told to set tls = "implicit"',
  ignore: NO_STACK,
  fn: async () => {
    const options = { mailboxes: ["INBOX"], subject: PREFIX, timeoutMs: 60_000 };
    await assert.rejects(probeImap(imapServer({ port: 993 }), options), (err) => {
      assert.ok(err instanceof MailError);
      assert.equal(err.code, "ETLS");
      assert.match(err.message, /127\.0\.0\.13:993: the port speaks TLS from the start/);
      assert.match(err.message, /set host\.receive\.tls = "implicit"/);
      return true;
    });
  },
});

Deno.test({
  name:
    "with junk = auto the probe also searches the Junk folder the full path would read, and cannot tell between two",
  ignore: NO_STACK,
  fn: async () => {
    const client = await mailClient();
    const subject = `[mailpeer] junkprobe-${crypto.randomUUID().slice(0, 8)} `;
    const options = { mailboxes: ["INBOX"], findJunk: true, subject, timeoutMs: 10_000 };
    try {
      // Only INBOX: no Junk folder to read, so the inbox alone decides.
      const others = (await client.list()).map((f) => f.path).filter((p) => p !== "INBOX");
      await removeFolders(client, others);
      assert.equal(await probeImap(imapServer(), options), false, "INBOX only");

      // A folder named Junk is marked \Junk by the test stack's Dovecot (as at most providers).
      await client.mailboxCreate("Junk");
      await client.append("Junk", await mail(`${subject}request`));
      assert.equal(await probeImap(imapServer(), options), true, "found in Junk");
      assert.equal(
        await probeImap(imapServer(), { ...options, findJunk: false }),
        false,
        "the inbox alone holds none",
      );

      // Unmarked folders are judged by their names, as imapflow judges them: "Receipts" is no
      // Junk folder, "Spam" is one, and two candidates are more than the probe can rank.
      await removeFolders(client, ["Junk"]);
      await client.mailboxCreate("Receipts");
      assert.equal(await probeImap(imapServer(), options), false, "Receipts is no Junk folder");
      await client.mailboxCreate("Spam");
      await client.append("Spam", await mail(`${subject}request`));
      assert.equal(await probeImap(imapServer(), options), true, "found in Spam");
      await client.mailboxCreate("Junk");
      assert.equal(await probeImap(imapServer(), options), undefined, "Junk and Spam");
    } finally {
      await removeFolders(client, ["Junk", "Receipts", "Spam"]).catch(() => {});
      await client.logout().catch(() => client.close());
    }
  },
});

Deno.test("a server that floods the probe's LIST is left after 10,000 lines, and the host takes the full path", async () => {
  // A plain-text IMAP server on loopback that answers LOGIN and CAPABILITY, then sends mailboxes
  // without end (it stops when the probe hangs up).
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let sent = 0;
  const serving = (async () => {
    const conn = await listener.accept();
    const out = (text: string) => conn.write(new TextEncoder().encode(text));
    const lines = new LineReader(conn);
    try {
      await out("* OK fake\r\n");
      for (;;) {
        const [tag, verb] = (await lines.line()).split(" ");
        if (verb === "LOGIN") await out(`${tag} OK logged in\r\n`);
        else if (verb === "CAPABILITY") {
          await out(`* CAPABILITY IMAP4rev1 SPECIAL-USE\r\n${tag} OK done\r\n`);
        } else if (verb === "LIST") {
          for (;; sent++) await out(`* LIST (\\HasNoChildren) "." "Folder${sent}"\r\n`);
        } else await out(`${tag} BAD no\r\n`);
      }
    } catch {
      // the probe hung up
    } finally {
      conn.close();
    }
  })();
  const server = {
    host: "127.0.0.1",
    port: (listener.addr as Deno.NetAddr).port,
    tls: "none" as const,
    user: "host@example.org",
    password: "secret",
  };
  const answer = await probeImap(server, {
    mailboxes: ["INBOX"],
    findJunk: true,
    subject: PREFIX,
    timeoutMs: 30_000,
  });
  await serving;
  listener.close();
  assert.equal(answer, undefined, "cannot tell: the full path decides");
  assert.ok(sent >= IMAP_PROBE_MAX_RESPONSES, `it read ${sent} lines`);
  // it hung up (the server's loop ended) long before socket buffers of any size were full
  assert.ok(sent < 1_000_000, `then hung up, not at ${sent}`);
});
