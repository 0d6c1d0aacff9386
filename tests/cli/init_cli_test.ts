/**
 * `mailpeer init --non-interactive` against the real mail stack: it finds the servers of an
 * address through a local HTTPS autoconfig server (a certificate from the stack's test CA) or
 * through SRV records of a real local DNS server (dnsmasq), probes them, tests the login, and
 * writes a configuration that connects on the first try (a real login and a real submission).
 * `mailpeer init` on a terminal (a pseudo-terminal, tests/support/pty.ts), each answer typed once
 * its question shows: the same answers write the same configuration, the password in a file of
 * mode 0600 and never on the screen; an existing configuration or a wrong answer is one line.
 * The stack tests are ignored without the stack (or dnsmasq), except under
 * MAILPEER_REQUIRE_STACK=1.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadConfig } from "../../src/config/config.ts";
import { openSender, openSource } from "../../src/cli/wire.ts";
import type { ReceiveConfig, SendConfig } from "../../src/config/config_schema.ts";
import { parse } from "smol-toml";
import { events, mailpeer } from "../support/cli.ts";
import { OnTerminal } from "../support/pty.ts";
import { account, NO_STACK, STACK } from "../support/mailstack.ts";
import {
  autoconfigXml,
  makeServerCert,
  startAutoconfigServer,
} from "../support/autoconfig_server.ts";
import { DNSMASQ, type Dnsmasq, startDnsmasq } from "../support/dnsmasq.ts";
import { withTempDir } from "../support/temp_dir.ts";

const REQUIRE = Deno.env.get("MAILPEER_REQUIRE_STACK") !== undefined &&
  Deno.env.get("MAILPEER_REQUIRE_STACK") !== "";

if (REQUIRE && !DNSMASQ) {
  throw new Error(
    "MAILPEER_REQUIRE_STACK is set but dnsmasq is not installed: scripts/test installs it (scripts/dnsmasq/install)",
  );
}

/** The stack's CA key, for signing the autoconfig server's certificate; undefined when unreadable. */
function stackCaKey(): string | undefined {
  if (!STACK) return undefined;
  const key = join(STACK.stateDir, "ca", "ca.key");
  try {
    Deno.readTextFileSync(key);
    return key;
  } catch {
    return undefined;
  }
}

/** init's first two questions, as the terminal shows them. */
const ADDRESS_QUESTION = "E-mail address of the mailbox:";
const ROLE_QUESTION = "Role of this mailbox: host, terminal or both? [terminal]";

/**
 * The lines the terminal showed after the echo of `answer` (the escape sequences around the echo
 * are Deno's line editor's).
 */
function afterEcho(terminal: OnTerminal, answer: string): string[] {
  const rest = terminal.rest;
  const echoed = rest.indexOf(answer);
  assert.ok(echoed >= 0, `the terminal did not echo ${JSON.stringify(answer)}:\n${rest}`);
  return rest.slice(rest.indexOf("\r\n", echoed) + 2).trimEnd().split("\r\n");
}

/** The names in `dir`, sorted. */
function filesIn(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

/**
 * Uses the written configuration's servers as mailpeer will: SMTP submits one mail to the
 * address itself, IMAP sees it arrive (waiting on the source's own wake-ups, at most 30 s) and
 * deletes it again, so the shared test accounts keep no trace.
 */
async function connectsOnFirstTry(
  receive: ReceiveConfig,
  send: SendConfig,
  email: string,
): Promise<void> {
  const subject = `mailpeer init test ${crypto.randomUUID()}`;
  const sender = await openSender(send);
  try {
    await sender.send({
      from: email,
      to: [email],
      subject,
      text: "Sent by tests/cli/init_cli_test.ts.\n",
    });
  } finally {
    await sender.close();
  }
  const source = await openSource(receive, { pollIntervalMs: 50 });
  const signal = AbortSignal.timeout(30_000);
  try {
    for (;;) {
      const listed = await source.list({ subject, mode: "exact" }, { signal });
      if (listed.length > 0) {
        assert.equal(listed.length, 1);
        await source.deleteMany(listed);
        break;
      }
      await source.waitForMail({ signal });
    }
  } finally {
    await source.close();
  }
}

Deno.test({
  name:
    "init --non-interactive finds alice@a.test's servers through HTTPS autoconfig and writes a host configuration that logs in at once",
  ignore: NO_STACK || (!REQUIRE && stackCaKey() === undefined),
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "mailpeer-init-" });
    const { provider, user } = account("alice@a.test");
    const tls = await makeServerCert(dir, { cert: STACK!.caFile, key: stackCaKey()! });
    const server = startAutoconfigServer(tls, (request) => {
      const url = new URL(request.url);
      if (url.pathname !== "/mail/config-v1.1.xml") return new Response("", { status: 404 });
      return new Response(
        autoconfigXml("a.test", [
          // Listed first, but nothing answers there: probed and not offered.
          { kind: "imap", hostname: provider.ip, port: 9, socket: "SSL" },
          { kind: "imap", hostname: provider.ip, port: provider.ports.imaps, socket: "SSL" },
          // A hostile entry: never connected to.
          { kind: "imap", hostname: "evil.test/../x", port: 993, socket: "SSL" },
          {
            kind: "smtp",
            hostname: provider.ip,
            port: provider.ports.submission,
            socket: "STARTTLS",
          },
        ]),
        { headers: { "content-type": "application/xml" } },
      );
    });
    const env = { MP_INIT_ALICE: user.password };
    try {
      const run = await mailpeer([
        "init",
        "--non-interactive",
        "--email",
        "alice@a.test",
        "--role",
        "host",
        "--password-env",
        "MP_INIT_ALICE",
        "--sources",
        "autoconfig",
        "--autoconfig-url",
        `${server.origin}/mail/config-v1.1.xml?emailaddress=%EMAILADDRESS%`,
        "--ca-file",
        STACK!.caFile,
        "--json",
      ], { cwd: dir, env });
      assert.equal(run.code, 0, run.stderr + run.stdout);
      assert.deepEqual(server.requests, ["/mail/config-v1.1.xml?emailaddress=alice%40a.test"]);
      const evs = events(run.stdout);
      const notes = evs.filter((e) => e.event === "discovery").map((e) => String(e.note));
      assert.ok(
        notes.some((n) => n.includes(":9 ") && n.includes("not offered")),
        notes.join("\n"),
      );
      assert.ok(notes.some((n) => n.includes("evil.test/../x")), notes.join("\n"));
      const found = evs.find((e) => e.event === "servers-found")!;
      assert.equal((found.incoming as { port: number }).port, provider.ports.imaps);
      const card = evs.find((e) => e.event === "host-card")?.card;
      assert.match(String(card), /^mailpeer1:alice@a\.test:/);
      assert.equal(evs.at(-1)?.command, "mailpeer host");

      // The password is not in the configuration; the keys are private.
      const text = await Deno.readTextFile(join(dir, "mailpeer.toml"));
      assert.ok(!text.includes(user.password));
      assert.equal((await Deno.stat(join(dir, "host.keys.json"))).mode! & 0o777, 0o600);

      // A cron run of the host logs in with it at once, and so do its IMAP and SMTP clients.
      const once = await mailpeer(["host", "--once", "--json"], { cwd: dir, env });
      assert.equal(once.code, 0, once.stderr + once.stdout);
      assert.equal(events(once.stdout).at(-1)?.event, "host-pass");
      const config = await loadConfig(join(dir, "mailpeer.toml"));
      Deno.env.set("MP_INIT_ALICE", user.password);
      try {
        await connectsOnFirstTry(config.host!.receive, config.host!.send, "alice@a.test");
      } finally {
        Deno.env.delete("MP_INIT_ALICE");
      }
    } finally {
      await server.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/**
 * bob@b.test's servers in SRV records of a local DNS server (dnsmasq), a host card for bob's
 * terminal to ask, and the flags that point init at that DNS server (and the stack's CA) and
 * write bob.toml.
 */
async function bobBehindSrv(dir: string): Promise<{ dns: Dnsmasq; card: string; where: string[] }> {
  const { provider } = account("bob@b.test");
  const dns = await startDnsmasq({
    srv: [
      // The preferred record points at a closed port: probed, not offered.
      { name: "_imaps._tcp.b.test", target: provider.hostname, port: 9, priority: 0 },
      {
        name: "_imaps._tcp.b.test",
        target: provider.hostname,
        port: provider.ports.imaps,
        priority: 10,
      },
      // RFC 6186: "." says the service is not offered.
      { name: "_submissions._tcp.b.test", target: ".", port: 0 },
      {
        name: "_submission._tcp.b.test",
        target: provider.hostname,
        port: provider.ports.submission,
      },
    ],
    hosts: { [provider.hostname]: provider.ip },
  });
  const hostKeys = await mailpeer(
    ["keygen", "--host", "host@host.test", "-o", "h.json", "--json"],
    { cwd: dir },
  );
  if (hostKeys.code !== 0) {
    await dns.close();
    throw new Error(`keygen --host failed: ${hostKeys.stderr}`);
  }
  return {
    dns,
    card: String(events(hostKeys.stdout)[0]?.checked),
    where: [
      "--sources",
      "srv",
      "--dns-server",
      dns.server,
      "--ca-file",
      STACK!.caFile,
      "-o",
      "bob.toml",
    ],
  };
}

Deno.test({
  name:
    "init --non-interactive finds bob@b.test's servers in SRV records of a local DNS server and writes a terminal configuration that logs in at once",
  ignore: NO_STACK || (!REQUIRE && DNSMASQ === undefined),
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "mailpeer-init-" });
    const { provider, user } = account("bob@b.test");
    const { dns, card, where } = await bobBehindSrv(dir);
    try {
      await Deno.writeTextFile(join(dir, "bob.password"), user.password + "\n", { mode: 0o600 });
      const run = await mailpeer([
        "init",
        "--non-interactive",
        "--email",
        "bob@b.test",
        "--role",
        "terminal",
        "--host-card",
        card,
        "--password-file",
        "bob.password",
        ...where,
      ], { cwd: dir });
      assert.equal(run.code, 0, run.stderr + run.stdout);
      assert.match(run.stderr, /srv: 3 server\(s\) in the SRV records of b\.test/);
      assert.match(run.stderr, /:9 .*not offered/);
      assert.match(run.stdout, /next: mailpeer client --config bob\.toml/);

      const config = await loadConfig(join(dir, "bob.toml"));
      const receive = config.terminal!.receive;
      assert.equal(receive.kind, "imap");
      if (receive.kind === "imap") {
        // Our own DNS server resolved the name: the address to connect to, the name for TLS.
        assert.equal(receive.host, provider.ip);
        assert.equal(receive.port, provider.ports.imaps);
        assert.equal(receive.servername, provider.hostname);
      }
      await connectsOnFirstTry(receive, config.terminal!.send, "bob@b.test");
    } finally {
      await dns.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "init on a terminal asks bob@b.test's address, role, host card and password, and writes the configuration the same answers as flags give, with the password in a file of mode 0600 it never showed",
  ignore: NO_STACK || (!REQUIRE && DNSMASQ === undefined),
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "mailpeer-init-" });
    const { user } = account("bob@b.test");
    const { dns, card, where } = await bobBehindSrv(dir);
    try {
      // Each question, the flag that gives its answer instead, and the answer.
      const answers = [
        [ADDRESS_QUESTION, "--email", "bob@b.test"],
        [ROLE_QUESTION, "--role", "terminal"],
        ["Card of the host to ask", "--host-card", card],
      ] as const;
      const asked = join(dir, "asked");
      await Deno.mkdir(asked);
      const terminal = new OnTerminal(["init", ...where], { cwd: asked });
      for (const [question, , answer] of answers) {
        await terminal.waitFor(question);
        await terminal.type(answer);
      }
      const passwordFile = join(asked, "bob.password");
      await terminal.waitFor(`Password of bob@b.test (kept in ${passwordFile}, mode 0600):`);
      await terminal.type(user.password);
      await terminal.waitFor("next: mailpeer client --config bob.toml");
      assert.equal((await terminal.ended()).code, 0, terminal.shown);
      assert.ok(!terminal.shown.includes(user.password), "the terminal showed the password");
      assert.equal((await Deno.stat(passwordFile)).mode! & 0o777, 0o600);
      assert.equal(await Deno.readTextFile(passwordFile), user.password + "\n");
      assert.equal((await Deno.stat(join(asked, "bob.identity.json"))).mode! & 0o777, 0o600);

      // The same answers as flags (the password in a file written beforehand) write the same.
      const flags = join(dir, "flags");
      await Deno.mkdir(flags);
      await Deno.writeTextFile(join(flags, "bob.password"), user.password + "\n", { mode: 0o600 });
      const run = await mailpeer([
        "init",
        "--non-interactive",
        ...answers.flatMap(([, flag, answer]) => [flag, answer]),
        "--password-file",
        "bob.password",
        ...where,
      ], { cwd: flags });
      assert.equal(run.code, 0, run.stderr + run.stdout);
      assert.deepEqual(filesIn(asked), filesIn(flags));
      assert.deepEqual(
        parse(await Deno.readTextFile(join(asked, "bob.toml"))),
        parse(await Deno.readTextFile(join(flags, "bob.toml"))),
      );

      // The password file it wrote logs in.
      const config = await loadConfig(join(asked, "bob.toml"));
      await connectsOnFirstTry(config.terminal!.receive, config.terminal!.send, "bob@b.test");
    } finally {
      await dns.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "init --non-interactive refuses with one line when a flag is missing",
  fn: () =>
    withTempDir("mailpeer-init-", async (dir) => {
      const noRole = await mailpeer(["init", "--non-interactive", "--email", "alice@a.test"], {
        cwd: dir,
      });
      assert.equal(noRole.code, 2);
      assert.equal(noRole.stderr.trim().split("\n").length, 1, noRole.stderr);
      assert.match(noRole.stderr, /^mailpeer init: --role is missing .*see `mailpeer init --help`/);

      const noCard = await mailpeer([
        "init",
        "--non-interactive",
        "--email",
        "alice@a.test",
        "--role",
        "terminal",
      ], { cwd: dir });
      assert.equal(noCard.code, 2);
      assert.match(noCard.stderr, /--host-card is missing/);

      const noPassword = await mailpeer([
        "init",
        "--non-interactive",
        "--email",
        "alice@a.test",
        "--role",
        "host",
      ], { cwd: dir });
      assert.equal(noPassword.code, 2);
      assert.match(noPassword.stderr, /--password-file or --password-env is missing/);

      const unset = await mailpeer([
        "init",
        "--non-interactive",
        "--email",
        "alice@a.test",
        "--role",
        "host",
        "--password-env",
        "MP_INIT_NOT_SET",
      ], { cwd: dir });
      assert.equal(unset.code, 1);
      assert.match(
        unset.stderr,
        /^mailpeer: Cannot test the login of alice@a\.test: environment variable MP_INIT_NOT_SET is not set/,
      );
      // Nothing was written.
      assert.deepEqual([...Deno.readDirSync(dir)], []);
    }),
});

Deno.test({
  name:
    "init on a terminal refuses an existing configuration in one line before its first question, and leaves the file as it was",
  fn: () =>
    withTempDir("mailpeer-init-", async (dir) => {
      const mine = "# bob's own configuration\n";
      await Deno.writeTextFile(join(dir, "mailpeer.toml"), mine);
      const terminal = new OnTerminal(["init"], { cwd: dir });
      const asked = await terminal.waitFor(ADDRESS_QUESTION).then(() => true, () => false);
      const status = await terminal.stop();
      assert.ok(!asked, `it asked before it refused:\n${terminal.shown}`);
      assert.equal(status.code, 1, terminal.shown);
      assert.equal(
        terminal.shown.trim(),
        `mailpeer: Cannot write the configuration ${
          join(dir, "mailpeer.toml")
        }: the file exists; pass --force to replace it, or -o another file`,
      );
      assert.equal(await Deno.readTextFile(join(dir, "mailpeer.toml")), mine);
      assert.deepEqual(filesIn(dir), ["mailpeer.toml"]);
    }),
});

Deno.test({
  name:
    "init on a terminal ends with one line and exit 2 when the address typed is no e-mail address, or the role none of the three",
  fn: () =>
    withTempDir("mailpeer-init-", async (dir) => {
      const noAddress = new OnTerminal(["init"], { cwd: dir });
      await noAddress.waitFor(ADDRESS_QUESTION);
      await noAddress.type("bob.b.test");
      assert.equal((await noAddress.ended()).code, 2, noAddress.shown);
      assert.deepEqual(afterEcho(noAddress, "bob.b.test"), [
        'mailpeer init: the address "bob.b.test" is not an e-mail address (it has no @); see `mailpeer init --help`',
      ]);

      const noRole = new OnTerminal(["init"], { cwd: dir });
      await noRole.waitFor(ADDRESS_QUESTION);
      await noRole.type("bob@b.test");
      await noRole.waitFor(ROLE_QUESTION);
      await noRole.type("client");
      assert.equal((await noRole.ended()).code, 2, noRole.shown);
      assert.deepEqual(afterEcho(noRole, "client"), [
        'mailpeer init: the role "client" is not host, terminal or both; see `mailpeer init --help`',
      ]);
      assert.deepEqual(filesIn(dir), []);
    }),
});

Deno.test({
  name: "init refuses a password file that others may read",
  fn: () =>
    withTempDir("mailpeer-init-", async (dir) => {
      await Deno.writeTextFile(join(dir, "pw"), "secret\n", { mode: 0o644 });
      await Deno.chmod(join(dir, "pw"), 0o644);
      const run = await mailpeer([
        "init",
        "--non-interactive",
        "--email",
        "alice@a.test",
        "--role",
        "host",
        "--password-file",
        "pw",
      ], { cwd: dir });
      assert.equal(run.code, 1);
      assert.match(run.stderr, /it has mode 0644, so others may read it; run chmod 600 /);
    }),
});

Deno.test({
  name:
    "init --non-interactive asks the ISPDB for the provider that runs alice@a.test's MX (both from local servers) and writes a combined configuration",
  ignore: NO_STACK || (!REQUIRE && (DNSMASQ === undefined || stackCaKey() === undefined)),
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "mailpeer-init-" });
    const { provider, user } = account("alice@a.test");
    const dns = await startDnsmasq({ mx: { "a.test": "mx1.provider.test" } });
    const tls = await makeServerCert(dir, { cert: STACK!.caFile, key: stackCaKey()! });
    const ispdb = startAutoconfigServer(
      tls,
      (request) =>
        new URL(request.url).pathname === "/v1.1/provider.test"
          ? new Response(autoconfigXml("provider.test", [
            { kind: "imap", hostname: provider.ip, port: provider.ports.imap, socket: "STARTTLS" },
            { kind: "smtp", hostname: provider.ip, port: provider.ports.smtps, socket: "SSL" },
          ]))
          : new Response("", { status: 404 }),
    );
    const env = { MP_INIT_ALICE: user.password };
    try {
      const run = await mailpeer([
        "init",
        "--non-interactive",
        "--email",
        "alice@a.test",
        "--role",
        "both",
        "--password-env",
        "MP_INIT_ALICE",
        "--sources",
        "mx",
        "--dns-server",
        dns.server,
        "--ispdb-url",
        `${ispdb.origin}/v1.1/%EMAILDOMAIN%`,
        "--ca-file",
        STACK!.caFile,
      ], { cwd: dir, env });
      assert.equal(run.code, 0, run.stderr + run.stdout);
      assert.deepEqual(ispdb.requests, ["/v1.1/provider.test"]);
      assert.match(run.stdout, /next: mailpeer combined/);
      const config = await loadConfig(join(dir, "mailpeer.toml"));
      // The combined terminal asks its own host.
      assert.equal(config.terminal!.hosts.length, 1);
      assert.equal(
        config.terminal!.receive.kind === "imap" && config.terminal!.receive.tls,
        "starttls",
      );
      assert.equal(config.host!.send.kind === "smtp" && config.host!.send.tls, "implicit");
      const once = await mailpeer(["host", "--once", "--json"], { cwd: dir, env });
      assert.equal(once.code, 0, once.stderr + once.stdout);
      assert.equal(events(once.stdout).at(-1)?.event, "host-pass");
    } finally {
      await ispdb.close();
      await dns.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
