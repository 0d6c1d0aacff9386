/**
 * Pop3Source against the real Dovecot of the test mail stack: bob2@b.test (127.0.0.12), a
 * mailbox no other test uses (the IMAP tests use host2@host.test and restart its Dovecot).
 * Mail is put into the mailbox with `doveadm save`, byte for byte: delivery through Postfix
 * would add trace headers, and the conformance suite compares exact bytes.
 */
import type { MailLogin } from "../../src/mail/types.ts";
import assert from "node:assert/strict";
import { join } from "node:path";
import { MailError } from "../../src/errors.ts";
import { Pop3Client } from "../../src/mail/pop3/client.ts";
import { Pop3Source } from "../../src/mail/pop3/source.ts";
import { account, NO_STACK, STACK } from "../support/mailstack.ts";
import { mailSourceConformance } from "../conformance/mail_source.ts";
import { composeMail } from "../../src/mail/rfc5322/compose.ts";

const MAILBOX = "bob2@b.test";
const REQUEST = { subject: "[mailpeer] lan request", mode: "exact" } as const;

/** POP3 with STLS on 110, verified against the test CA as mail.host.test. */
function server(overrides: Partial<MailLogin> = {}): MailLogin {
  const { provider, user } = account(MAILBOX);
  return {
    host: provider.ip,
    port: provider.ports.pop3,
    tls: "starttls",
    user: user.user,
    password: user.password,
    caFile: provider.caFile,
    servername: provider.hostname,
    ...overrides,
  };
}

/** Deletes every mail of the mailbox (DELE all + QUIT). */
async function emptyMailbox(): Promise<void> {
  const s = server();
  const client = await Pop3Client.connect({
    host: s.host,
    port: s.port,
    tls: s.tls,
    caCerts: [await Deno.readTextFile(s.caFile!)],
    servername: s.servername!,
  });
  try {
    await client.login(s.user, s.password!);
    const { count } = await client.stat();
    for (let n = 1; n <= count; n++) await client.dele(n);
    await client.quit();
  } finally {
    client.close();
  }
}

/** Stores raw bytes into the mailbox unchanged; visible to POP3 once this resolves. */
async function save(raw: Uint8Array): Promise<void> {
  const conf = join(STACK!.stateDir, "b.test", "dovecot", "dovecot.conf");
  const child = new Deno.Command("doveadm", {
    args: ["-c", conf, "save", "-u", MAILBOX],
    stdin: "piped",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(raw);
  await writer.close();
  const { code, stderr } = await child.output();
  if (code !== 0) throw new Error(`doveadm save failed: ${new TextDecoder().decode(stderr)}`);
}

async function request(n: number): Promise<Uint8Array> {
  const { raw } = await composeMail({
    from: "alice@a.test",
    to: [MAILBOX],
    subject: REQUEST.subject,
    text: `request ${n}\r\n.leading dot\r\n`,
  });
  return raw;
}

/** A TCP port on the stack's address where nothing listens. */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.12", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

if (NO_STACK) {
  Deno.test({ name: "pop3: conformance (needs the mail stack)", ignore: true, fn() {} });
} else {
  mailSourceConformance("pop3", async () => {
    await emptyMailbox();
    const source = new Pop3Source(server(), { pollIntervalMs: 50 });
    return { source, deliver: save, cleanup: () => source.close() };
  });
}

Deno.test({
  name: "pop3: implicit TLS on 995 lists and fetches the same mail as STLS on 110",
  ignore: NO_STACK,
  async fn() {
    await emptyMailbox();
    const raw = await request(1);
    await save(raw);
    const tls = new Pop3Source(
      server({ port: account(MAILBOX).provider.ports.pop3s, tls: "implicit" }),
    );
    const stls = new Pop3Source(server());
    try {
      const [a] = await tls.list(REQUEST);
      const [b] = await stls.list(REQUEST);
      assert.ok(a && b);
      assert.equal(a.id, b.id);
      assert.deepEqual(await tls.fetch(a), raw);
      assert.deepEqual(await stls.fetch(b), raw);
    } finally {
      await tls.close();
      await stls.close();
    }
  },
});

Deno.test({
  name: "pop3: a deleted mail is gone for every other reader once delete() resolves",
  ignore: NO_STACK,
  async fn() {
    await emptyMailbox();
    await save(await request(1));
    await save(await request(2));
    const host = new Pop3Source(server());
    const other = new Pop3Source(server());
    try {
      const [first, second] = await host.list(REQUEST);
      assert.ok(first && second);
      await host.delete(first);
      assert.deepEqual((await other.list(REQUEST)).map((r) => r.id), [second.id]);
      // the next call of the deleting source reconnects and still works
      assert.deepEqual(await host.fetch(second), await other.fetch(second));
      await host.quarantine(second, "test");
      assert.deepEqual(await other.list(REQUEST), []);
    } finally {
      await host.close();
      await other.close();
    }
  },
});

Deno.test({
  name: "pop3: a mail larger than the limit is refused by fetch and can still be deleted",
  ignore: NO_STACK,
  async fn() {
    await emptyMailbox();
    await save(await request(1));
    const source = new Pop3Source(server(), { maxMailBytes: 100 });
    try {
      const [ref] = await source.list(REQUEST);
      assert.ok(ref?.size !== undefined && ref.size > 100);
      await assert.rejects(source.fetch(ref), (err: MailError) => err.code === "EMAIL");
      await source.quarantine(ref, "too large");
      assert.deepEqual(await source.list(REQUEST), []);
    } finally {
      await source.close();
    }
  },
});

Deno.test({
  name: "pop3: insecure accepts the server certificate without a CA",
  ignore: NO_STACK,
  async fn() {
    await emptyMailbox();
    await save(await request(1));
    for (const tls of ["starttls", "implicit"] as const) {
      const port = tls === "implicit" ? 995 : 110;
      const source = new Pop3Source(server({ tls, port, caFile: undefined, insecure: true }));
      try {
        assert.equal((await source.list(REQUEST)).length, 1);
      } finally {
        await source.close();
      }
    }
  },
});

/** Asserts a one-line MailError with `code` that names the server. */
async function rejectsWith(
  promise: Promise<unknown>,
  code: string,
  where: string,
): Promise<MailError> {
  let caught: unknown;
  await promise.catch((err) => (caught = err));
  assert.ok(caught instanceof MailError, `expected a MailError, got ${caught}`);
  assert.equal(caught.code, code, caught.message);
  assert.ok(!caught.message.includes("\n"), caught.message);
  assert.ok(caught.message.includes(where), caught.message);
  assert.match(caught.message, /^Cannot .+: .+; .+/);
  return caught;
}

Deno.test({
  name: "pop3: a wrong password is EAUTH, in one line that names the server and the user",
  ignore: NO_STACK,
  async fn() {
    const source = new Pop3Source(server({ password: "wrong" }));
    try {
      const err = await rejectsWith(source.list(REQUEST), "EAUTH", "127.0.0.12:110");
      assert.ok(err.message.includes(MAILBOX));
      assert.ok(!err.message.includes("wrong"), "the password must not be echoed");
    } finally {
      await source.close();
    }
  },
});

Deno.test({
  name: "pop3: an unreachable server is ECONNECT",
  ignore: NO_STACK,
  async fn() {
    const port = closedPort();
    const source = new Pop3Source(server({ port }));
    try {
      await rejectsWith(source.list(REQUEST), "ECONNECT", `127.0.0.12:${port}`);
    } finally {
      await source.close();
    }
  },
});

Deno.test({
  name: "pop3: a certificate from an unknown CA is ETLS, with STLS and with implicit TLS",
  ignore: NO_STACK,
  async fn() {
    for (const [tls, port] of [["starttls", 110], ["implicit", 995]] as const) {
      const source = new Pop3Source(server({ tls, port, caFile: undefined }));
      try {
        await rejectsWith(source.list(REQUEST), "ETLS", `127.0.0.12:${port}`);
      } finally {
        await source.close();
      }
    }
  },
});

Deno.test({
  name: "pop3: a certificate for another name is ETLS",
  ignore: NO_STACK,
  async fn() {
    const source = new Pop3Source(server({ servername: "mail.host.test" }));
    try {
      await rejectsWith(source.list(REQUEST), "ETLS", "127.0.0.12:110");
    } finally {
      await source.close();
    }
  },
});

Deno.test({
  name: "pop3: waitForMail resolves at once when the source is closed",
  ignore: NO_STACK,
  async fn() {
    const source = new Pop3Source(server(), { pollIntervalMs: 60_000 });
    const waiting = source.waitForMail();
    await source.close();
    await waiting;
  },
});

/**
 * A scripted plain-text POP3 server on 127.0.0.1 (no stack needed): serves `mails`, commits
 * DELE at QUIT, closes the connection instead of answering the first `dropOn` command, and
 * reports `listedSize` as every mail's size in LIST when given (a lying server).
 */
function fakePop3(mails: string[], dropOn?: string, listedSize?: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const sessions: Promise<void>[] = [];
  let dropped = false;
  const serve = async (conn: Deno.Conn) => {
    const enc = new TextEncoder();
    const send = (text: string) => conn.write(enc.encode(text.replaceAll("\n", "\r\n")));
    const marked = new Set<number>();
    const stuffed = (m: string) => m.replace(/^\./gm, "..") + ".\n";
    await send("+OK fake ready\n");
    const lines = conn.readable.pipeThrough(new TextDecoderStream()).values();
    let pending = "";
    for await (const chunk of lines) {
      pending += chunk;
      let at;
      while ((at = pending.indexOf("\r\n")) >= 0) {
        const [cmd = "", arg] = pending.slice(0, at).split(" ");
        pending = pending.slice(at + 2);
        if (cmd === dropOn && !dropped) {
          dropped = true;
          conn.close();
          return;
        }
        const n = Number(arg);
        const each = (f: (m: string, i: number) => string) => mails.map(f).join("");
        if (cmd === "UIDL") await send(`+OK\n${each((_, i) => `${i + 1} uid-${i}\n`)}.\n`);
        else if (cmd === "LIST") {
          await send(
            `+OK\n${
              each((m, i) => `${i + 1} ${listedSize ?? m.replaceAll("\n", "\r\n").length}\n`)
            }.\n`,
          );
        } else if (cmd === "TOP") {
          await send(`+OK\n${stuffed(mails[n - 1]!.split("\n\n")[0]! + "\n\n")}`);
        } else if (cmd === "RETR") await send(`+OK\n${stuffed(mails[n - 1]!)}`);
        else if (cmd === "DELE") (marked.add(n - 1), await send("+OK\n"));
        else if (cmd === "QUIT") {
          mails = mails.filter((_, i) => !marked.has(i));
          await send("+OK bye\n");
          conn.close();
          return;
        } else await send("+OK\n");
      }
    }
  };
  const accepting = (async () => {
    for await (const conn of listener) sessions.push(serve(conn).catch(() => {}));
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    mails: () => mails,
    async close() {
      listener.close();
      await accepting.catch(() => {});
      await Promise.all(sessions);
    },
  };
}

function fakeSource(port: number, options: { maxMailBytes?: number } = {}): Pop3Source {
  return new Pop3Source(
    { host: "127.0.0.1", port, tls: "none", user: "u", password: "p" },
    options,
  );
}

const FAKE_MAIL =
  "Subject: [mailpeer] lan request\nFrom: a@b\n\n.starts with a dot\n..two dots\nend\n";

Deno.test("pop3: a connection dropped during fetch is reopened and the mail still arrives", async () => {
  const server = fakePop3([FAKE_MAIL], "RETR");
  const source = fakeSource(server.port);
  try {
    const [ref] = await source.list(REQUEST);
    assert.ok(ref);
    const raw = new TextDecoder().decode(await source.fetch(ref));
    assert.equal(raw, FAKE_MAIL.replaceAll("\n", "\r\n"), "dot-unstuffed, CRLF line ends");
  } finally {
    await source.close();
    await server.close();
  }
});

Deno.test("pop3: a connection dropped before QUIT is retried, so delete really deletes", async () => {
  const other = "Subject: holiday\n\nhi\n";
  const server = fakePop3([other, FAKE_MAIL], "QUIT");
  const source = fakeSource(server.port);
  try {
    const [ref] = await source.list(REQUEST);
    assert.ok(ref);
    await source.delete(ref);
    assert.deepEqual(server.mails(), [other], "only the listed mail is gone");
  } finally {
    await source.close();
    await server.close();
  }
});

Deno.test("pop3: a mail over the size limit is refused, even when LIST understates it", async () => {
  const big = FAKE_MAIL + "x".repeat(1000) + "\n";
  for (const listedSize of [undefined, 10]) {
    const server = fakePop3([big], undefined, listedSize);
    const source = fakeSource(server.port, { maxMailBytes: 500 });
    try {
      const [ref] = await source.list(REQUEST);
      assert.ok(ref);
      await assert.rejects(source.fetch(ref), (err: MailError) => err.code === "EMAIL");
      assert.equal((await source.list(REQUEST)).length, 1, "the next session works");
    } finally {
      await source.close();
      await server.close();
    }
  }
});

Deno.test("pop3: delete leaves alone a mail that list never returned as matching", async () => {
  const ordinary = "Subject: holiday\n\nhi\n";
  const server = fakePop3([ordinary, FAKE_MAIL]);
  const source = fakeSource(server.port);
  try {
    assert.equal((await source.list(REQUEST)).length, 1);
    await source.delete({ id: "uid-0", subject: "holiday" });
    await source.quarantine({ id: "uid-0", subject: "holiday" }, "forged ref");
    assert.equal(server.mails().length, 2);
  } finally {
    await source.close();
    await server.close();
  }
});
