/**
 * ImapSource against the real Dovecot of the test mail stack (host2@host.test on
 * 127.0.0.13): the MailSource conformance suite over STARTTLS + IDLE and over implicit TLS +
 * NOOP polling, unread ordinary mail, the three kinds of connection failure, and a Dovecot
 * restart in the middle of a run. Skipped when the stack is not running.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ImapFlow } from "imapflow";
import nodemailer from "nodemailer";
import { MailError } from "../../src/errors.ts";
import { composeMail } from "../../src/mail/compose.ts";
import {
  type ImapServerOptions,
  ImapSource,
  type ImapSourceOptions,
} from "../../src/mail/imap_source.ts";
import type { SubjectMatch } from "../../src/mail/types.ts";
import { mailSourceConformance } from "../conformance/mail_source.ts";
import { Host } from "../../src/host/host.ts";
import { MemoryStore } from "../../src/host/memory_store.ts";
import { MaildirPostOffice } from "../../src/mail/maildir_post_office.ts";
import { MaildirSender } from "../../src/mail/maildir_sender.ts";
import { MaildirSource } from "../../src/mail/maildir_source.ts";
import { sealRequest } from "../../src/message/block.ts";
import { generateHostKeys, generateIdentityKeys, hostCardOf } from "../../src/message/key_file.ts";
import { generateX25519 } from "../../src/message/keys.ts";
import { bodyFor, subjectFor } from "../../src/message/mail_text.ts";
import { account, NO_STACK, STACK } from "../support/mailstack.ts";

const ADDRESS = "host2@host.test";
const REQUEST: SubjectMatch = { subject: "[mailpeer] lan request", mode: "exact" };
/**
 * Most tests read this folder, not INBOX: mail that Postfix delivers late (a deferred mail of
 * an earlier run) lands in INBOX and cannot disturb them.
 */
const FOLDER = "mailpeer-test";
/** Guards against a hang (a guard, not a wait): a test that needs it has failed. */
const HANG_GUARD_MS = 20_000;
/** Reconnect fast in tests. */
const FAST: ImapSourceOptions = { backoff: () => 50, connectAttempts: 100 };

/** STARTTLS on 143 with the test CA, verified as mail.host.test. */
function server(overrides: Partial<ImapServerOptions> = {}): ImapServerOptions {
  const { provider, user } = account(ADDRESS);
  return {
    host: provider.ip,
    port: provider.ports.imap,
    tls: "starttls",
    user: user.user,
    password: user.password,
    caFile: provider.caFile,
    servername: provider.hostname,
    ...overrides,
  };
}

/** A plain imapflow session of the same user, as a person's mail client would have. */
async function mailClient(): Promise<ImapFlow> {
  const s = server();
  const client = new ImapFlow({
    host: s.host,
    port: s.port,
    secure: false,
    doSTARTTLS: true,
    servername: s.servername!,
    tls: { ca: [await Deno.readTextFile(s.caFile!)], servername: s.servername! },
    auth: { user: s.user, pass: s.password },
    logger: false,
    disableAutoIdle: true,
  });
  client.on("error", () => {});
  await client.connect();
  return client;
}

/** Empties INBOX, removes every other folder of the test user and creates {@link FOLDER}. */
async function emptyMailbox(client: ImapFlow): Promise<void> {
  const box = await client.mailboxOpen("INBOX");
  if (box.exists > 0) await client.messageDelete("1:*");
  for (const folder of await client.list()) {
    if (folder.path !== "INBOX") await client.mailboxDelete(folder.path);
  }
  await client.mailboxCreate(FOLDER);
}

let counter = 0;

async function mail(subject: string): Promise<Uint8Array> {
  const { raw } = await composeMail({
    from: "alice@a.test",
    to: [ADDRESS],
    subject,
    text: `IMAP test mail ${counter++}\r\n`,
  });
  return raw;
}

/** The flags of every message in `folder`, by subject. */
async function flagsBySubject(client: ImapFlow, folder: string): Promise<Map<string, string[]>> {
  await client.mailboxOpen(folder);
  const out = new Map<string, string[]>();
  for (const msg of await client.fetchAll("1:*", { envelope: true, flags: true })) {
    out.set(msg.envelope?.subject ?? "", [...(msg.flags ?? [])].sort());
  }
  return out;
}

function fixture(options: ImapSourceOptions, overrides: Partial<ImapServerOptions> = {}) {
  return async () => {
    const client = await mailClient();
    await emptyMailbox(client);
    const source = new ImapSource(server(overrides), { ...FAST, mailbox: FOLDER, ...options });
    return {
      source,
      deliver: async (raw: Uint8Array) => {
        await client.append(FOLDER, raw);
      },
      cleanup: async () => {
        await source.close();
        await client.logout();
      },
    };
  };
}

if (!NO_STACK) {
  mailSourceConformance("imap (STARTTLS, IDLE)", fixture({ idle: true }));
  const { provider } = account(ADDRESS);
  mailSourceConformance(
    "imap (implicit TLS, NOOP polling)",
    fixture({ idle: false, pollIntervalMs: 25 }, { tls: "implicit", port: provider.ports.imaps }),
  );
}

/** A test with a fresh mailbox, a mail client of the same user and a source. */
function imapTest(
  name: string,
  fn: (client: ImapFlow, source: ImapSource) => Promise<void>,
  options: ImapSourceOptions = {},
): void {
  Deno.test({
    name,
    ignore: NO_STACK,
    fn: async () => {
      const client = await mailClient();
      await emptyMailbox(client);
      const source = new ImapSource(server(), { ...FAST, mailbox: FOLDER, ...options });
      try {
        await fn(client, source);
      } finally {
        await source.close();
        await client.logout().catch(() => client.close());
      }
    },
  });
}

imapTest(
  "ordinary mail stays unread and untouched while mailpeer mail is processed",
  async (client, source) => {
    await client.append(FOLDER, await mail("Lunch on Friday?"));
    await client.append(FOLDER, await mail("Re: [mailpeer] lan request"));
    await client.append(FOLDER, await mail("[mailpeer] lan request"));
    await client.append(FOLDER, await mail("[mailpeer] lan request (hostile)"));
    const [processed] = await source.list(REQUEST);
    assert.ok(processed !== undefined);
    await source.fetch(processed);
    await source.delete(processed);
    const [hostile] = await source.list({ subject: "[mailpeer] lan request (", mode: "prefix" });
    assert.ok(hostile !== undefined);
    await source.fetch(hostile);
    await source.quarantine(hostile, "bad coded block");

    const inbox = await flagsBySubject(client, FOLDER);
    assert.deepEqual(
      inbox,
      new Map([["Lunch on Friday?", []], ["Re: [mailpeer] lan request", []]]),
    );
    const quarantined = await flagsBySubject(client, "Quarantine");
    assert.deepEqual([...quarantined.keys()], ["[mailpeer] lan request (hostile)"]);
  },
);

imapTest(
  "deleting a processed mail leaves mail another client marked deleted alone",
  async (client, source) => {
    await client.append(FOLDER, await mail("Old newsletter"), ["\\Deleted"]);
    await client.append(FOLDER, await mail("[mailpeer] lan request"));
    const [ref] = await source.list(REQUEST);
    assert.ok(ref !== undefined);
    await source.delete(ref);
    assert.deepEqual(await source.list(REQUEST), []);
    const inbox = await flagsBySubject(client, FOLDER);
    assert.deepEqual(inbox, new Map([["Old newsletter", ["\\Deleted"]]]));
  },
);

imapTest(
  "a mail listed before its mailbox was recreated counts as gone",
  async (client, source) => {
    await client.mailboxCreate("Scratch");
    await client.append("Scratch", await mail("[mailpeer] lan request"));
    const scratch = new ImapSource(server(), { ...FAST, mailbox: "Scratch" });
    try {
      const [old] = await scratch.list(REQUEST);
      assert.ok(old !== undefined);
      await client.mailboxDelete("Scratch");
      await client.mailboxCreate("Scratch");
      await client.append("Scratch", await mail("[mailpeer] lan request"));
      await assert.rejects(scratch.fetch(old), (err: unknown) => {
        assert.ok(err instanceof MailError);
        assert.equal(err.code, "EMAIL");
        assert.match(err.message, /no longer in the mailbox; list the mailbox again$/);
        return true;
      });
      await scratch.delete(old); // gone: nothing to do
      const [fresh] = await scratch.list(REQUEST);
      assert.ok(fresh !== undefined && fresh.id !== old.id);
    } finally {
      await scratch.close();
    }
    void source;
  },
);

imapTest("an aborted wait leaves the connection usable", async (client, source) => {
  await source.list(REQUEST);
  const controller = new AbortController();
  const waiting = source.waitForMail({ signal: controller.signal });
  controller.abort();
  await waiting;
  await client.append(FOLDER, await mail("[mailpeer] lan request"));
  assert.equal((await source.list(REQUEST)).length, 1);
});

imapTest(
  "a waiting host still hears of new mail after listing in between",
  async (client, source) => {
    await source.list(REQUEST);
    const waiting = source.waitForMail({ signal: AbortSignal.timeout(HANG_GUARD_MS) });
    assert.deepEqual(await source.list(REQUEST), []); // ends the IDLE the wait started
    await client.append(FOLDER, await mail("[mailpeer] lan request"));
    await waiting;
    assert.equal((await source.list(REQUEST)).length, 1);
  },
);

Deno.test({
  name: "IDLE wakes the host when a mail arrives through Postfix",
  ignore: NO_STACK,
  fn: async () => {
    const key = `[mailpeer] idle-${crypto.randomUUID()} request`;
    const source = new ImapSource(server(), FAST);
    try {
      await source.list({ subject: key, mode: "exact" });
      const guard = AbortSignal.timeout(HANG_GUARD_MS);
      const waiting = source.waitForMail({ signal: guard });
      await submitToPort25(await mail(key));
      await waiting;
      assert.equal(guard.aborted, false, "waitForMail did not notice the delivery");
      // other mail of the user may have woken it first: then this one's EXISTS is to come
      let refs = await source.list({ subject: key, mode: "exact" });
      while (refs.length === 0 && !guard.aborted) {
        await source.waitForMail({ signal: guard });
        refs = await source.list({ subject: key, mode: "exact" });
      }
      assert.equal(refs.length, 1);
      await source.delete(refs[0]!);
    } finally {
      await source.close();
    }
  },
});

/** Asserts a one-line MailError with `code` that names the server and `fix`. */
async function assertFails(
  promise: Promise<unknown>,
  code: string,
  where: string,
  fix: RegExp,
): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof MailError, String(err));
    assert.equal(err.code, code, err.message);
    assert.ok(!err.message.includes("\n"), err.message);
    assert.ok(err.message.startsWith("Cannot "), err.message);
    assert.ok(err.message.includes(where), err.message);
    assert.match(err.message, fix);
    return true;
  });
}

Deno.test({
  name: "a wrong password gives a one-line EAUTH naming the server and password_env",
  ignore: NO_STACK,
  fn: async () => {
    const source = new ImapSource(server({ password: "not-the-password" }), {
      ...FAST,
      configKey: "host.receive",
    });
    await assertFails(
      source.list(REQUEST),
      "EAUTH",
      `IMAP server 127.0.0.13:143 as ${ADDRESS}`,
      /refused the password; check host\.receive\.password_env/,
    );
    await source.close();
  },
});

Deno.test({
  name: "an unreachable server gives a one-line ECONNECT after a few quick retries",
  ignore: NO_STACK,
  fn: async () => {
    let retries = 0;
    const source = new ImapSource(server({ port: 1 }), {
      connectAttempts: 3,
      backoff: () => (retries++, 0),
    });
    await assertFails(source.list(REQUEST), "ECONNECT", "127.0.0.13:1", /refused.*; check/);
    assert.equal(retries, 2);
    await source.close();
  },
});

Deno.test({
  name: "a certificate from an untrusted CA gives a one-line ETLS asking for ca_file",
  ignore: NO_STACK,
  fn: async () => {
    const source = new ImapSource(server({ caFile: undefined }), FAST);
    await assertFails(source.list(REQUEST), "ETLS", "127.0.0.13:143", /set receive\.ca_file/);
    await source.close();
  },
});

Deno.test({
  name: "a certificate for another name gives a one-line ETLS asking for servername",
  ignore: NO_STACK,
  fn: async () => {
    const source = new ImapSource(
      server({ servername: "mail.a.test", tls: "implicit", port: 993 }),
      FAST,
    );
    await assertFails(
      source.list(REQUEST),
      "ETLS",
      "127.0.0.13:993",
      /not valid for mail\.a\.test; set receive\.servername/,
    );
    await source.close();
  },
});

Deno.test({
  name: "tls none against a server that wants TLS says to turn TLS on",
  ignore: NO_STACK,
  fn: async () => {
    const source = new ImapSource(server({ tls: "none", caFile: undefined }), FAST);
    await assertFails(source.list(REQUEST), "EAUTH", "127.0.0.13:143", /tls = "starttls"/);
    await source.close();
  },
});

/** Submits raw mail to host.test's Postfix on port 25 (local delivery needs no login). */
async function submitToPort25(raw: Uint8Array): Promise<void> {
  const { provider } = account(ADDRESS);
  const transport = nodemailer.createTransport({
    host: provider.ip,
    port: provider.ports.smtp,
    secure: false,
    ignoreTLS: true,
    logger: false,
  });
  try {
    await transport.sendMail({
      envelope: { from: "alice@a.test", to: [ADDRESS] },
      raw: new TextDecoder().decode(raw),
    });
  } finally {
    transport.close();
  }
}

/**
 * Runs a command to its end. Its output is not captured: a daemon (dovecot) keeps inherited
 * pipes open for good, so its errors are read from the provider's log instead.
 */
async function run(cmd: string, args: string[]): Promise<void> {
  const status = await new Deno.Command(cmd, {
    args,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).output();
  if (!status.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed (exit ${status.code}); see the stack logs`);
  }
}

/**
 * Stops a Dovecot and waits until its master is gone for good (reaped, so a new master does
 * not find it "already running"): `tail --pid` does the waiting.
 */
async function stopDovecot(conf: string, pidFile: string): Promise<void> {
  const pid = (await Deno.readTextFile(pidFile)).trim();
  await run("doveadm", ["-c", conf, "stop"]);
  await run("timeout", ["20", "tail", `--pid=${pid}`, "-s", "0.05", "-f", "/dev/null"]);
  await Deno.remove(pidFile).catch(() => {}); // left behind when the master took long to exit
}

/** A free TCP port on `ip`. */
function freePort(ip: string): number {
  const listener = Deno.listen({ hostname: ip, port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/**
 * A private Dovecot (IMAP only, on a free port of 127.0.0.13) that serves the same users and
 * Maildirs as host.test's own: restarting it leaves the shared stack healthy, so a parallel
 * `mailstack.sh start` does not see a dead provider and cold-restart every server.
 */
async function privateDovecot(): Promise<
  { port: number; start(): Promise<void>; stop(): Promise<void>; remove(): Promise<void> }
> {
  const { provider } = account(ADDRESS);
  const shared = await Deno.readTextFile(
    join(STACK!.stateDir, provider.domain, "dovecot", "dovecot.conf"),
  );
  const tmp = await Deno.makeTempDir({ prefix: "mpimap" });
  await Deno.chmod(tmp, 0o755); // Dovecot's unprivileged processes reach their sockets here
  await Deno.mkdir(join(tmp, "state"));
  const port = freePort(provider.ip);
  const common = shared.slice(0, shared.indexOf("service imap-login {"))
    .replace(/^instance_name = .*$/m, `instance_name = mailpeer-imaptest-${port}`)
    .replace(/^base_dir = .*$/m, `base_dir = ${tmp}/run`)
    .replace(/^state_dir = .*$/m, `state_dir = ${tmp}/state`)
    .replace(/^protocols = .*$/m, "protocols = imap")
    .replace(/^(info_)?log_path = .*$/gm, `$1log_path = ${tmp}/dovecot.log`);
  const conf = join(tmp, "dovecot.conf");
  await Deno.writeTextFile(
    conf,
    common + `service imap-login {\n  inet_listener imap {\n    port = ${port}\n  }\n` +
      "  inet_listener imaps {\n    port = 0\n  }\n}\n" +
      "protocol imap {\n  mail_max_userip_connections = 500\n}\n",
  );
  const pidFile = join(tmp, "run", "master.pid");
  return {
    port,
    start: () => run("dovecot", ["-c", conf]),
    stop: async () => {
      // a stopping master may leave a session running for a while: end ours first
      await run("doveadm", ["-c", conf, "kick", ADDRESS]);
      await stopDovecot(conf, pidFile);
    },
    remove: async () => {
      if (await Deno.stat(pidFile).then(() => true, () => false)) await stopDovecot(conf, pidFile);
      await Deno.remove(tmp, { recursive: true });
    },
  };
}

Deno.test({
  name: "an IMAP source survives its server being restarted mid-run and loses no mail",
  ignore: NO_STACK,
  fn: async () => {
    const key: SubjectMatch = {
      subject: `[mailpeer] restart-${crypto.randomUUID()} request`,
      mode: "exact",
    };
    const dovecot = await privateDovecot();
    let retries = 0;
    let retried = () => {};
    const firstRetry = new Promise<void>((resolve) => (retried = resolve));
    const source = new ImapSource(server({ port: dovecot.port }), {
      ...FAST,
      logger: {
        log: (_level, message) => {
          if (!message.includes("retrying")) return;
          retries++;
          retried();
        },
      },
    });
    const client = await mailClient();
    try {
      await dovecot.start();
      await client.append("INBOX", await mail(key.subject));
      const [before] = await source.list(key);
      assert.ok(before !== undefined);

      await dovecot.stop();
      await submitToPort25(await mail(key.subject)); // delivered while the host's server is down
      retries = 0;
      const listing = source.list(key); // fails to connect, retries with backoff
      await Promise.race([firstRetry, listing]);
      assert.ok(retries > 0, "the source retried while its server was down");
      await dovecot.start();
      const afterRestart = await listing;
      assert.equal(afterRestart[0]?.id, before.id, "the mail from before is still there");

      const guard = AbortSignal.timeout(HANG_GUARD_MS);
      let refs = afterRestart;
      while (refs.length < 2 && !guard.aborted) {
        await source.waitForMail({ signal: guard });
        refs = await source.list(key);
      }
      assert.equal(refs.length, 2, "the mail delivered during the restart was listed");
      await source.fetch(refs[1]!);
      for (const ref of refs) await source.delete(ref);
    } finally {
      await source.close();
      await client.logout();
      await dovecot.remove();
    }
  },
});

Deno.test({
  name: "a running host whose IMAP server restarts answers the request mailed meanwhile",
  ignore: NO_STACK,
  fn: async () => {
    const network = `restart-${crypto.randomUUID().slice(0, 8)}`;
    const dir = await Deno.makeTempDir({ prefix: "mailpeer-restart-" });
    const po = new MaildirPostOffice(dir);
    const hostKeys = await generateHostKeys(ADDRESS);
    const dovecot = await privateDovecot();
    const source = new ImapSource(server({ port: dovecot.port }), {
      ...FAST,
      idle: false,
      pollIntervalMs: 50,
    });
    const host = new Host({
      keys: hostKeys,
      network,
      source,
      sender: new MaildirSender(po), // replies land in a local Maildir, read below
      store: new MemoryStore(),
      allowPrivateAddresses: true,
    });
    const alice = new MaildirSource(await po.ensureMailbox("alice@a.test"), { pollIntervalMs: 50 });
    const requestMail = async (userId: string) => {
      const identity = await generateIdentityKeys(userId);
      const block = await sealRequest({
        network,
        userId,
        identityKey: identity.ed25519.publicKey,
        endpoints: [{ transport: "tcp", address: "192.0.2.5", port: 5000 }],
        sessionId: crypto.getRandomValues(new Uint8Array(16)),
        createdAt: Date.now(),
        replyKey: (await generateX25519()).publicKey,
        hostCards: [],
      }, { identity, hostCard: hostCardOf(hostKeys) });
      return (await composeMail({
        from: "alice@a.test",
        to: [ADDRESS],
        subject: subjectFor(network, "request"),
        text: bodyFor(network, "request", block),
      })).raw;
    };
    const replies = async (n: number) => {
      const guard = AbortSignal.timeout(60_000); // a guard against a hang, not a wait
      let refs = await alice.list({ subject: subjectFor(network, "reply"), mode: "exact" });
      while (refs.length < n && !guard.aborted) {
        await alice.waitForMail({ signal: guard });
        refs = await alice.list({ subject: subjectFor(network, "reply"), mode: "exact" });
      }
      return refs.length;
    };
    const stop = new AbortController();
    let running: Promise<void> | undefined;
    try {
      await dovecot.start();
      running = host.run({ signal: stop.signal, retryDelayMs: 50 });
      await submitToPort25(await requestMail("before"));
      assert.equal(await replies(1), 1, "answered before the restart");

      await dovecot.stop();
      await submitToPort25(await requestMail("during")); // arrives while the server is down
      await dovecot.start();
      assert.equal(await replies(2), 2, "the request mailed during the restart is answered");
    } finally {
      stop.abort();
      await running;
      await source.close();
      await alice.close();
      await dovecot.remove();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
