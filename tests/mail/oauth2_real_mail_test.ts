/**
 * OAuth2 logins (XOAUTH2) against the real Dovecot and Postfix of the test stack (docs/config.md
 * "OAuth2"): Dovecot's oauth2 passdb asks an RFC 7662 introspection endpoint, which this test
 * runs, whether a token is active and whose it is. The token comes from `token_command`, a
 * program the test writes; an expired token is refused, the command runs again with
 * `MAILPEER_TOKEN_RENEW=1`, and the fresh token logs in. IMAP (the source lists) and SMTP (the
 * sender sends, and the mail arrives) both.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runTokenCommand } from "../../src/config/secret.ts";
import { ImapSource } from "../../src/mail/imap/source.ts";
import { SmtpSender } from "../../src/mail/smtp/sender.ts";
import type { AccessToken } from "../../src/mail/types.ts";
import { events, mailpeer } from "../support/cli.ts";
import { account, NO_STACK, STACK } from "../support/mailstack.ts";

const ADDRESS = "alice2@a.test";
const INTROSPECTION = (STACK as { oauth2Introspection?: string } | undefined)?.oauth2Introspection;
const NO_OAUTH2 = NO_STACK || INTROSPECTION === undefined;
if (!NO_STACK && INTROSPECTION === undefined && Deno.env.get("MAILPEER_REQUIRE_STACK")) {
  throw new Error("the running mail stack predates OAuth2: restart it (scripts/mailstack)");
}

/** The introspection endpoint Dovecot asks: `good` tokens are active for ADDRESS, others not. */
function introspection(good: Set<string>) {
  const url = new URL(INTROSPECTION!);
  const asked: string[] = [];
  const server = Deno.serve({
    hostname: url.hostname,
    port: Number(url.port),
    onListen: () => {},
  }, async (request) => {
    const token = new URLSearchParams(await request.text()).get("token") ?? "";
    asked.push(token);
    return Response.json(
      good.has(token) ? { active: true, username: ADDRESS } : { active: false },
    );
  });
  return { asked, close: () => server.shutdown() };
}

/**
 * A token command as a user's OAuth2 helper would be: prints its cached token, or with
 * MAILPEER_TOKEN_RENEW=1 a fresh one; every run is logged.
 */
async function tokenCommand(dir: string, cached: string, fresh: string) {
  const script = join(dir, "token.sh");
  await Deno.writeTextFile(
    script,
    `#!/bin/sh\necho "renew=\${MAILPEER_TOKEN_RENEW:-0}" >> "${dir}/runs"\n` +
      `if [ "$MAILPEER_TOKEN_RENEW" = 1 ]; then echo ${fresh}; else echo ${cached}; fi\n`,
  );
  await Deno.chmod(script, 0o700);
  const accessToken: AccessToken = (renew) => runTokenCommand([script], "OAuth2 token", renew);
  const runs = async () =>
    (await Deno.readTextFile(join(dir, "runs")).catch(() => "")).trim().split("\n").filter(
      (l) => l,
    );
  return { accessToken, runs };
}

/** Waits until the two mails with `subject` are in the mailbox (exactly two), then deletes them. */
async function takeBoth(source: ImapSource, subject: string): Promise<void> {
  const match = { subject, mode: "exact" } as const;
  let refs = await source.list(match);
  while (refs.length < 2) {
    await source.waitForMail();
    refs = await source.list(match);
  }
  assert.equal(refs.length, 2);
  for (const ref of refs) await source.delete(ref);
}

function server(accessToken: AccessToken, kind: "imap" | "submission") {
  const { provider, user } = account(ADDRESS);
  return {
    host: provider.ip,
    port: provider.ports[kind],
    tls: "starttls" as const,
    user: user.user,
    accessToken,
    caFile: provider.caFile,
    servername: provider.hostname,
  };
}

for (const expired of [false, true]) {
  Deno.test({
    name: expired
      ? "an expired OAuth2 token is refused, the token command renews it, and IMAP and SMTP log in"
      : "IMAP and SMTP log in with an OAuth2 token from token_command (XOAUTH2)",
    ignore: NO_OAUTH2,
    async fn() {
      const dir = await Deno.makeTempDir({ prefix: "mailpeer-oauth2-" });
      const endpoint = introspection(new Set(["fresh-token-2"]));
      const token = await tokenCommand(
        dir,
        expired ? "expired-token-1" : "fresh-token-2",
        "fresh-token-2",
      );
      const subject = `[mailpeer] oauth2 ${crypto.randomUUID()}`;
      const sender = new SmtpSender(server(token.accessToken, "submission"));
      const source = new ImapSource(server(token.accessToken, "imap"), { idle: false });
      try {
        await sender.send({ from: ADDRESS, to: [ADDRESS], subject, text: "token login\n" });
        // the second on the SMTP fast lane, which logs in with XOAUTH2 too (renewing once when
        // the token command's unasked token is the expired one)
        await sender.send({ from: ADDRESS, to: [ADDRESS], subject, text: "token lane\n" });
        assert.deepEqual(sender.carried, { lane: 1, nodemailer: 1 });
        await takeBoth(source, subject);
        // Dovecot asked the endpoint; an expired token made both clients ask for a fresh one.
        assert.ok(endpoint.asked.includes("fresh-token-2"));
        assert.equal(endpoint.asked.includes("expired-token-1"), expired);
        const runs = await token.runs();
        assert.equal(runs.includes("renew=1"), expired, runs.join(", "));
      } finally {
        await Promise.allSettled([sender.close(), source.close()]);
        await endpoint.close();
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}

Deno.test({
  name: "a token that expires after nodemailer's login is renewed once by the SMTP fast lane",
  ignore: NO_OAUTH2,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "mailpeer-oauth2-" });
    const good = new Set(["lane-token-a"]);
    const endpoint = introspection(good);
    const token = await tokenCommand(dir, "lane-token-a", "lane-token-b");
    const subject = `[mailpeer] oauth2 lane ${crypto.randomUUID()}`;
    const sender = new SmtpSender(server(token.accessToken, "submission"));
    const source = new ImapSource(server(token.accessToken, "imap"), { idle: false });
    try {
      await sender.send({ from: ADDRESS, to: [ADDRESS], subject, text: "first\n" });
      assert.deepEqual(await token.runs(), ["renew=0"]);
      // the token nodemailer used expires; the lane's login with it is refused, and renewed
      good.delete("lane-token-a");
      good.add("lane-token-b");
      await sender.send({ from: ADDRESS, to: [ADDRESS], subject, text: "second\n" });
      assert.deepEqual(sender.carried, { lane: 1, nodemailer: 1 });
      assert.deepEqual(await token.runs(), ["renew=0", "renew=1"]);
      await takeBoth(source, subject);
    } finally {
      await Promise.allSettled([sender.close(), source.close()]);
      await endpoint.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("a token command that fails, prints nothing or is missing is one ESECRET line naming it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mailpeer-oauth2-" });
  try {
    const script = (body: string) => {
      const path = join(dir, `t${crypto.randomUUID()}.sh`);
      Deno.writeTextFileSync(path, `#!/bin/sh\n${body}\n`);
      Deno.chmodSync(path, 0o700);
      return path;
    };
    const cases: [string[], RegExp][] = [
      [
        [script("echo 'no refresh token' >&2; exit 3")],
        /exited 3 \(no refresh token\); run it by hand/,
      ],
      [[script("true")], /printed nothing; it must print the access token/],
      [[script("echo two words")], /printed more than one word/],
      [[join(dir, "missing")], /was not found; check the path in token_command/],
    ];
    for (const [command, said] of cases) {
      await assert.rejects(runTokenCommand(command, "IMAP OAuth2 token of a@x"), (err: Error) => {
        assert.equal((err as Error & { code?: string }).code, "ESECRET");
        assert.match(err.message, /^Cannot get the IMAP OAuth2 token of a@x: token_command /);
        assert.match(err.message, said);
        assert.ok(!err.message.includes("\n"));
        return true;
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "doctor logs in with token_command over IMAP and SMTP and passes",
  ignore: NO_OAUTH2,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "mailpeer-oauth2-" });
    const endpoint = introspection(new Set(["fresh-token-2"]));
    try {
      const { provider } = account(ADDRESS);
      await tokenCommand(dir, "fresh-token-2", "fresh-token-2"); // writes token.sh
      const host = await mailpeer([
        "keygen",
        "--host",
        "host@host.test",
        "-o",
        "host.keys.json",
        "--json",
      ], { cwd: dir });
      const card = events(host.stdout)[0]?.card as string;
      assert.equal(
        (await mailpeer(["keygen", "--user", "alice2", "-o", "alice2.json"], { cwd: dir })).code,
        0,
      );
      const server = (kind: string, port: number) =>
        `kind = "${kind}"\nhost = "${provider.ip}"\nport = ${port}\ntls = "starttls"\n` +
        `user = "${ADDRESS}"\nca_file = "${provider.caFile}"\nservername = "${provider.hostname}"\n` +
        `token_command = ["${join(dir, "token.sh")}"]\n`;
      await Deno.writeTextFile(
        join(dir, "mailpeer.toml"),
        `network = "oauth2"\n[terminal]\nuser_id = "alice2"\nemail = "${ADDRESS}"\n` +
          `identity = "alice2.json"\nhosts = ["${card}"]\naddress = "127.0.0.1"\n` +
          `[terminal.receive]\n${server("imap", provider.ports.imap)}junk = "off"\n` +
          `[terminal.send]\n${server("smtp", provider.ports.submission)}`,
      );
      const r = await mailpeer(["doctor", "--config", "mailpeer.toml", "--json"], { cwd: dir });
      const checks = events(r.stdout).filter((e) => e.event === "doctor-check");
      const logins = checks.filter((e) => e.check === "login");
      assert.deepEqual(logins.map((e) => e.status), ["pass", "pass"], r.stdout + r.stderr);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.ok(endpoint.asked.includes("fresh-token-2"));
    } finally {
      await endpoint.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
