/**
 * `mailpeer doctor` as a user runs it, against the real Postfix + Dovecot stack (ignored
 * without it, unless MAILPEER_REQUIRE_STACK=1): a good configuration passes; a wrong password,
 * a wrong port, an untrusted or expired certificate, a missing Junk folder and a skewed clock
 * are each named in one line with what to do.
 */
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { join } from "node:path";
import { events, mailpeer } from "../support/cli.ts";
import { ImapFlow } from "imapflow";
import { account, NO_STACK, STACK } from "../support/mailstack.ts";
import { makeSite } from "../support/site.ts";
import { FakeUpnpGateway } from "../terminal/port_mapping/fake_upnp_gateway.ts";
import { decodeBindingRequest, encodeBindingResponse } from "../../src/net/stun_message.ts";

/** The checklist lines of one status (`PASS`, `WARN`, `FAIL`, `SKIP`). */
function lines(stdout: string, mark: string): string[] {
  return stdout.split("\n").filter((l) => l.startsWith(mark));
}

/** Rewrites the `[section]` of a TOML file: `edit` gets the section's lines. */
async function editSection(path: string, section: string, edit: (lines: string[]) => string[]) {
  const text = await Deno.readTextFile(path);
  const parts = text.split(/(?=^\[)/m);
  const i = parts.findIndex((p) => p.startsWith(`[${section}]`));
  assert.ok(i >= 0, `no [${section}] in ${path}`);
  parts[i] = edit(parts[i]!.split("\n")).join("\n");
  await Deno.writeTextFile(path, parts.join(""));
}

/** Sets `key = value` in a section's lines. */
function set(key: string, value: string) {
  return (
    ls: string[],
  ) => [...ls.filter((l) => !l.startsWith(`${key} =`)), `${key} = ${value}`, ""];
}

/** Removes `key` from a section's lines. */
function unset(key: string) {
  return (ls: string[]) => ls.filter((l) => !l.startsWith(`${key} =`));
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd, stdout: "null", stderr: "piped" })
    .output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
}

/**
 * A CA of the test's own and a certificate for 127.0.0.1 it signed, valid from `from` to
 * `to` (openssl's YYYYMMDDHHMMSSZ): the files ca.crt, server.crt, server.key in `dir`.
 */
async function makeCertificate(dir: string, from: string, to: string): Promise<void> {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await openssl(
    [
      "req",
      "-x509",
      ...ec,
      "-keyout",
      "ca.key",
      "-out",
      "ca.crt",
      "-subj",
      "/CN=doctor test CA",
      "-days",
      "2",
    ],
    dir,
  );
  await openssl(
    ["req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"],
    dir,
  );
  await Deno.writeTextFile(join(dir, "index.txt"), "");
  await Deno.writeTextFile(join(dir, "serial"), "01\n");
  await Deno.writeTextFile(join(dir, "ext.cnf"), "[san]\nsubjectAltName = IP:127.0.0.1\n");
  await Deno.writeTextFile(
    join(dir, "ca.cnf"),
    `[ca]
default_ca = test
[test]
database = ${dir}/index.txt
new_certs_dir = ${dir}
serial = ${dir}/serial
default_md = sha256
policy = anything
unique_subject = no
[anything]
commonName = supplied
`,
  );
  await openssl([
    "ca",
    "-batch",
    "-config",
    "ca.cnf",
    "-cert",
    "ca.crt",
    "-keyfile",
    "ca.key",
    "-startdate",
    from,
    "-enddate",
    to,
    "-extfile",
    "ext.cnf",
    "-extensions",
    "san",
    "-in",
    "server.csr",
    "-out",
    "server.crt",
  ], dir);
}

/** An implicit-TLS "IMAP server" on 127.0.0.1 that greets after the handshake and hangs up. */
function tlsListener(dir: string) {
  const listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: Deno.readTextFileSync(join(dir, "server.crt")),
    key: Deno.readTextFileSync(join(dir, "server.key")),
  });
  const serving = (async () => {
    for await (const conn of listener) {
      (async () => {
        try {
          await conn.handshake();
          await conn.write(new TextEncoder().encode("* OK doctor test\r\n"));
          await conn.read(new Uint8Array(64));
        } catch {
          // the client refused the certificate
        } finally {
          try {
            conn.close();
          } catch { /* closed */ }
        }
      })();
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    close: async () => {
      listener.close();
      await serving;
    },
  };
}

Deno.test({
  name: "doctor passes a good terminal and host configuration: every server, the self-mail " +
    "round trip and the clock; the missing Junk folder is a warning with what to do",
  ignore: NO_STACK,
  async fn() {
    const site = await makeSite({ receive: "imap" });
    try {
      for (const role of ["alice", "host"]) {
        const r = await mailpeer(["doctor", "-c", `${role}.toml`], {
          cwd: site.dir,
          env: site.env,
        });
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.deepEqual(lines(r.stdout, "FAIL"), []);
        const section = role === "host" ? "host" : "terminal";
        for (const check of ["tls", "login", "self-mail", "clock-skew"]) {
          assert.match(r.stdout, new RegExp(`^PASS ${section}\\.receive ${check}: `, "m"));
        }
        assert.match(
          r.stdout,
          new RegExp(`^PASS ${section}\\.send login: logged in to SMTP`, "m"),
        );
        assert.match(
          r.stdout,
          new RegExp(
            `^PASS ${section}\\.receive self-mail: a mail to itself .* after \\d+ ms and was deleted$`,
            "m",
          ),
        );
        // The stack's Dovecot has no Junk folder: a warning, not a failure.
        assert.deepEqual(
          lines(r.stdout, "WARN").filter((l) => l.includes("junk-folder")),
          [
            `WARN ${section}.receive junk-folder: no Junk folder (none flagged \\Junk, none ` +
            "named Junk or Spam): if the provider's spam filter sets mail aside elsewhere, " +
            "mailpeer cannot see it; check that the filter delivers to INBOX, or create a " +
            "Junk folder so that doctor can look into it",
          ],
        );
        assert.match(r.stdout, /^\d+ passed, \d+ warnings?, 0 failed, \d+ skipped$/m);
      }
      const json = await mailpeer(["doctor", "-c", "alice.toml", "--json"], {
        cwd: site.dir,
        env: site.env,
      });
      assert.equal(json.code, 0, json.stderr);
      const all = events(json.stdout);
      assert.ok(all.every((e) => e.event === "doctor-check" || e.event === "doctor-done"));
      const mail = all.find((e) => e.check === "self-mail")!;
      assert.equal(mail.status, "pass");
      assert.equal(typeof (mail.details as { ms: number }).ms, "number");
      assert.deepEqual(all.at(-1)!.fail, 0);
    } finally {
      await site.cleanup();
    }
  },
});

Deno.test({
  name: "doctor names a wrong password on IMAP and SMTP in one line each and exits 1",
  ignore: NO_STACK,
  async fn() {
    const site = await makeSite({ receive: "imap" });
    try {
      const r = await mailpeer(["doctor", "-c", "alice.toml"], {
        cwd: site.dir,
        env: { ...site.env, MP_PASS_ALICE_A_TEST: "wrong" },
      });
      assert.equal(r.code, 1);
      assert.deepEqual(lines(r.stdout, "FAIL"), [
        "FAIL terminal.receive login: Cannot log in to IMAP server 127.0.0.11:143 as " +
        "alice@a.test: the server refused the password; check terminal.receive.password_env " +
        "(or terminal.receive.password_file) and terminal.receive.user",
        "FAIL terminal.send login: SMTP 127.0.0.11:587 refused the login of alice@a.test " +
        "(535 5.7.8 Error: authentication failed: (reason unavailable)); check " +
        "terminal.send.user and the password that terminal.send.password_env / password_file " +
        "gives",
      ]);
      assert.match(r.stdout, /^SKIP terminal\.receive self-mail: not tried/m);
      assert.equal(
        r.stderr,
        "mailpeer: Cannot pass the checks: 2 failed (terminal.receive login, terminal.send " +
          "login); fix what each FAIL line says\n",
      );
    } finally {
      await site.cleanup();
    }
  },
});

Deno.test({
  name: "doctor names a wrong port (nothing listens, or a port of the other TLS mode)",
  ignore: NO_STACK,
  async fn() {
    const site = await makeSite({ receive: "imap" });
    try {
      const path = join(site.dir, "alice.toml");
      await editSection(path, "terminal.receive", set("port", "144"));
      await editSection(path, "terminal.send", set("port", "465"));
      const r = await mailpeer(["doctor", "-c", path], { env: site.env });
      assert.equal(r.code, 1);
      assert.deepEqual(lines(r.stdout, "FAIL"), [
        "FAIL terminal.receive tcp: Cannot connect to IMAP server 127.0.0.11:144: the " +
        "connection was refused: nothing listens on port 144 there; check " +
        "terminal.receive.port (IMAP: 143 for STARTTLS, 993 for implicit TLS) and " +
        "terminal.receive.host, and that the server runs",
        "FAIL terminal.send tls: Cannot connect to SMTP server 127.0.0.11:465: the port speaks " +
        'TLS from the start (implicit TLS), but terminal.send.tls is "starttls"; set ' +
        'terminal.send.tls = "implicit", or keep "starttls" and set terminal.send.port = 587',
      ]);
    } finally {
      await site.cleanup();
    }
  },
});

Deno.test({
  name: "doctor names an untrusted certificate (no ca_file for a private CA, or another CA's " +
    "file) and a certificate for another name",
  ignore: NO_STACK,
  async fn() {
    const site = await makeSite({ receive: "imap" });
    const certs = await Deno.makeTempDir({ prefix: "mailpeer-doctor-ca-" });
    try {
      await makeCertificate(certs, "20200101000000Z", "20300101000000Z");
      const path = join(site.dir, "alice.toml");
      await editSection(path, "terminal.receive", unset("ca_file"));
      await editSection(
        path,
        "terminal.send",
        set("ca_file", JSON.stringify(join(certs, "ca.crt"))),
      );
      const r = await mailpeer(["doctor", "-c", path], { env: site.env });
      assert.equal(r.code, 1);
      const fails = lines(r.stdout, "FAIL");
      assert.equal(fails.length, 2, r.stdout);
      assert.match(
        fails[0]!,
        /^FAIL terminal\.receive tls: the certificate of 127\.0\.0\.11:143 \(CN=mail\.a\.test, issued by CN=mailpeer test CA\) is not trusted \(.+\): set terminal\.receive\.ca_file to the PEM of the CA that signed it \(a private CA\), or install a certificate from a public CA on the server$/,
      );
      assert.match(
        fails[1]!,
        new RegExp(
          "^FAIL terminal\\.send tls: the certificate of 127\\.0\\.0\\.11:587 \\(CN=mail\\.a\\.test, " +
            "issued by CN=mailpeer test CA\\) is not trusted \\(.+\\): it is not signed by the CA in " +
            `${
              join(certs, "ca.crt").replaceAll(".", "\\.")
            }; set terminal\\.send\\.ca_file to the PEM of the CA that signed it$`,
        ),
      );

      // The right CA, but the certificate is not for the name servername says.
      await editSection(path, "terminal.receive", set("ca_file", JSON.stringify(STACK!.caFile)));
      await editSection(path, "terminal.receive", set("servername", '"mail.b.test"'));
      await editSection(path, "terminal.send", set("ca_file", JSON.stringify(STACK!.caFile)));
      const named = await mailpeer(["doctor", "-c", path, "--no-self-mail"], { env: site.env });
      assert.equal(named.code, 1);
      assert.deepEqual(lines(named.stdout, "FAIL"), [
        "FAIL terminal.receive tls: the certificate of 127.0.0.11:143 (CN=mail.a.test, issued " +
        "by CN=mailpeer test CA) is not valid for the name mail.b.test (Hostname/IP does not " +
        "match certificate's altnames); set terminal.receive.servername to a name it lists " +
        "(DNS:a.test, DNS:mail.a.test, IP Address:127.0.0.11, IP Address:198.18.0.251)",
      ]);
    } finally {
      await Deno.remove(certs, { recursive: true });
      await site.cleanup();
    }
  },
});

Deno.test({
  name: "doctor names an expired certificate with the day it expired and what to do, and " +
    "warns of one that expires within 14 days",
  ignore: NO_STACK,
  async fn() {
    const site = await makeSite({ receive: "imap" });
    const certs = await Deno.makeTempDir({ prefix: "mailpeer-doctor-expired-" });
    let server: ReturnType<typeof tlsListener> | undefined;
    try {
      await makeCertificate(certs, "20200101000000Z", "20200201000000Z");
      server = tlsListener(certs);
      const path = join(site.dir, "alice.toml");
      await editSection(path, "terminal.receive", (ls) => {
        for (
          const [k, v] of [
            ["host", '"127.0.0.1"'],
            ["port", String(server!.port)],
            ["tls", '"implicit"'],
            ["ca_file", JSON.stringify(join(certs, "ca.crt"))],
          ]
        ) ls = set(k!, v!)(ls);
        return unset("servername")(ls);
      });
      const r = await mailpeer(["doctor", "-c", path], { env: site.env });
      assert.equal(r.code, 1);
      const fails = lines(r.stdout, "FAIL");
      assert.equal(fails.length, 1, r.stdout);
      assert.match(
        fails[0]!,
        new RegExp(
          `^FAIL terminal\\.receive tls: the certificate of 127\\.0\\.0\\.1:${server.port} ` +
            "\\(CN=127\\.0\\.0\\.1, issued by CN=doctor test CA\\) expired on 2020-02-01 \\(\\d+ " +
            "days ago\\): clients refuse it; renew it on the server \\(or ask the mail provider to\\)$",
        ),
      );
      assert.match(
        r.stdout,
        /^SKIP terminal\.receive self-mail: not tried: terminal\.receive failed above$/m,
      );

      // A certificate that expires in 5 days (by this machine's clock, which openssl shares).
      await server.close();
      const soon = await Deno.makeTempDir({ dir: certs });
      const stamp = (ms: number) =>
        new Date(ms).toISOString().replace(/[-:T]/g, "").replace(/\.\d+Z$/, "Z");
      await makeCertificate(soon, "20200101000000Z", stamp(Date.now() + 5 * 86_400_000 + 60_000));
      server = tlsListener(soon);
      const port = server.port;
      await editSection(
        path,
        "terminal.receive",
        (ls) => set("ca_file", JSON.stringify(join(soon, "ca.crt")))(set("port", String(port))(ls)),
      );
      const warned = await mailpeer(["doctor", "-c", path], { env: site.env });
      assert.match(
        warned.stdout,
        new RegExp(
          `^WARN terminal\\.receive tls: the certificate of 127\\.0\\.0\\.1:${port} ` +
            "\\(CN=127\\.0\\.0\\.1, issued by CN=doctor test CA\\) expires in 5 days " +
            "\\(\\d{4}-\\d\\d-\\d\\d\\); renew it on the server \\(or ask the mail provider to\\) soon$",
          "m",
        ),
      );
    } finally {
      await server?.close();
      await Deno.remove(certs, { recursive: true });
      await site.cleanup();
    }
  },
});

Deno.test({
  // Both offsets run ahead: a clock set behind would also find the stack's certificate (made
  // at the stack's start, maybe seconds ago) not yet valid, and that is another line.
  name: "doctor measures the clock against the server: 20 minutes ahead fails, 2 minutes " +
    "ahead warns, each with what to do",
  ignore: NO_STACK,
  async fn() {
    const site = await makeSite({ receive: "imap" });
    try {
      const ahead = await mailpeer(["doctor", "-c", "alice.toml", "--clock-offset", "20m"], {
        cwd: site.dir,
        env: site.env,
      });
      assert.equal(ahead.code, 1);
      // The server stamps whole seconds: the estimate is 20m00s give or take one.
      const fails = lines(ahead.stdout, "FAIL");
      assert.equal(fails.length, 1, ahead.stdout);
      assert.match(
        fails[0]!,
        /^FAIL terminal\.receive clock-skew: this machine's clock is (19m59s|20m00s|20m01s) ahead of the clock of IMAP 127\.0\.0\.11:143: hosts refuse requests dated more than 10m00s ahead of their clock; set the clock right: enable NTP \(timedatectl set-ntp true, or chrony\/ntpd\)$/,
      );
      const near = await mailpeer(
        ["doctor", "-c", "alice.toml", "--clock-offset=2m", "--json"],
        { cwd: site.dir, env: site.env },
      );
      assert.equal(near.code, 0, near.stderr);
      const skew = events(near.stdout).find((e) => e.check === "clock-skew")!;
      assert.equal(skew.status, "warn");
      assert.match(
        skew.message as string,
        /^this machine's clock is (1m59s|2m00s|2m01s) ahead of the clock of IMAP 127\.0\.0\.11:143: within the 10m00s a host accepts, but drifting; set the clock right/,
      );
      const measured = (skew.details as { skewMs: number }).skewMs;
      assert.ok(Math.abs(measured + 120_000) <= 2_000, `skew ${measured}`);
    } finally {
      await site.cleanup();
    }
  },
});

Deno.test({
  name: "doctor finds mailpeer mail in the Junk folder and says to mark it not spam",
  ignore: NO_STACK,
  async fn() {
    // alice2@a.test: the connection failure tests log in there but never look at its folders.
    const { provider, user } = account("alice2@a.test");
    const site = await makeSite({ receive: "imap" });
    const client = new ImapFlow({
      host: provider.ip,
      port: provider.ports.imap,
      secure: false,
      doSTARTTLS: true,
      servername: provider.hostname,
      tls: { ca: [await Deno.readTextFile(provider.caFile)], servername: provider.hostname },
      auth: { user: user.user, pass: user.password },
      logger: false,
      disableAutoIdle: true,
    });
    client.on("error", () => {});
    await client.connect();
    try {
      if (!(await client.list()).some((f) => f.path === "Junk")) await client.mailboxCreate("Junk");
      await client.append(
        "Junk",
        `From: bob@b.test\r\nTo: alice2@a.test\r\nSubject: [mailpeer] ${site.network} reply\r\n` +
          "Date: Fri, 04 Dec 2026 12:00:00 +0000\r\n\r\nA reply the spam filter took.\r\n",
      );
      const path = join(site.dir, "alice.toml");
      await editSection(
        path,
        "terminal.receive",
        (ls) => set("password_env", '"MP_PASS_ALICE2"')(set("user", '"alice2@a.test"')(ls)),
      );
      const r = await mailpeer(["doctor", "-c", path, "--no-self-mail"], {
        env: { ...site.env, MP_PASS_ALICE2: user.password },
      });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.deepEqual(lines(r.stdout, "WARN").filter((l) => l.includes("junk-folder")), [
        "WARN terminal.receive junk-folder: 1 mailpeer mail sits in the Junk folder Junk: the " +
        "provider's spam filter took it, and mailpeer never reads it; mark it \"not " +
        `spam" and add a filter rule for subjects "[mailpeer] ${site.network} "`,
      ]);
    } finally {
      await client.mailboxDelete("Junk").catch(() => {});
      await client.logout();
      await site.cleanup();
    }
  },
});

Deno.test({
  name: "doctor checks a host reading POP3; without TLS it names the servers that refuse a " +
    "login in clear",
  ignore: NO_STACK,
  async fn() {
    const site = await makeSite({ receive: "pop3" });
    try {
      const path = join(site.dir, "host.toml");
      const good = await mailpeer(["doctor", "-c", path], { env: site.env });
      assert.equal(good.code, 0, good.stdout + good.stderr);
      assert.match(good.stdout, /^PASS host\.receive login: logged in to POP3 127\.0\.0\.13:110 /m);
      assert.match(
        good.stdout,
        /^PASS host\.receive self-mail: a mail to itself \(host@host\.test\) arrived in POP3 127\.0\.0\.13:110 after \d+ ms and was deleted$/m,
      );
      await editSection(path, "host.receive", set("tls", '"none"'));
      await editSection(path, "host.send", set("tls", '"none"'));
      const clear = await mailpeer(["doctor", "-c", path], { env: site.env });
      assert.equal(clear.code, 1);
      assert.deepEqual(lines(clear.stdout, "FAIL"), [
        "FAIL host.receive login: POP3 127.0.0.13:110 refuses to log in without TLS (-ERR " +
        "[AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.); " +
        'set host.receive.tls = "starttls" (or "implicit" with the implicit-TLS port)',
        "FAIL host.send login: SMTP 127.0.0.13:587 refuses to log in without TLS (530 5.7.0 " +
        'Must issue a STARTTLS command first); set host.send.tls = "starttls" (or "implicit" ' +
        "with the implicit-TLS port)",
      ]);
      assert.equal(lines(clear.stdout, "WARN").filter((l) => l.includes(" tls: ")).length, 2);
    } finally {
      await site.cleanup();
    }
  },
});

/** A STUN server on 127.0.0.1 that answers every Binding request with `mapped()`. */
async function fakeStun(mapped: () => { address: string; port: number }) {
  const socket = dgram.createSocket("udp4");
  socket.on("message", (packet, from) => {
    const id = decodeBindingRequest(new Uint8Array(packet));
    if (!id) return;
    socket.send(
      encodeBindingResponse(id, { family: "IPv4", ...mapped() }),
      from.port,
      from.address,
    );
  });
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  return {
    server: `127.0.0.1:${socket.address().port}`,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

Deno.test({
  name: "doctor says what STUN sees of the terminal: a public address passes, a loopback one " +
    "warns that peers cannot reach it; router mapping off is said as skipped",
  ignore: NO_STACK,
  async fn() {
    const site = await makeSite({ receive: "imap" });
    let answer = { address: "8.8.4.4", port: 40_000 };
    const stun = await fakeStun(() => answer);
    try {
      const path = join(site.dir, "alice.toml");
      await editSection(path, "terminal", set("stun_servers", `["${stun.server}"]`));
      const run = () => mailpeer(["doctor", "-c", path, "--no-self-mail"], { env: site.env });
      const good = await run();
      assert.equal(good.code, 0, good.stdout + good.stderr);
      assert.match(
        good.stdout,
        new RegExp(
          `^PASS terminal\\.stun_servers stun: ${stun.server} sees this machine's UDP port \\d+ ` +
            "as 8\\.8\\.4\\.4:40000 \\(a public address\\)$",
          "m",
        ),
      );
      assert.match(good.stdout, /^SKIP terminal\.port_mapping port-mapping: port_mapping = "off"/m);
      answer = { address: "127.0.0.1", port: 40_001 };
      const loopback = await run();
      assert.equal(loopback.code, 0);
      assert.match(
        loopback.stdout,
        /^WARN terminal\.stun_servers stun: .* as 127\.0\.0\.1:40001, a loopback address: peers on the internet cannot reach it; use a STUN server on the internet$/m,
      );
    } finally {
      await stun.close();
      await site.cleanup();
    }
  },
});

Deno.test(
  "doctor on a local post office: a good file passes with the self-mail; an identity others " +
    "can read and a host card with other keys than the host's are each named with the fix",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "mailpeer-doctor-local-" });
    try {
      const keygen = async (args: string[]) => {
        const r = await mailpeer(["keygen", ...args, "--json"], { cwd: dir });
        assert.equal(r.code, 0, r.stderr);
        return events(r.stdout)[0];
      };
      const card = (await keygen(["--host", "host@lan.local", "-o", "host.keys.json"]))!
        .card as string;
      const other = (await keygen(["--host", "host@lan.local", "-o", "other.keys.json"]))!
        .card as string;
      await keygen(["--user", "alice", "-o", "alice.json"]);
      const config = (hosts: string) =>
        Deno.writeTextFile(
          join(dir, "mailpeer.toml"),
          `network = "lan"
post_office = "po"
[host]
email = "host@lan.local"
keys = "host.keys.json"
[terminal]
user_id = "alice"
email = "alice@lan.local"
identity = "alice.json"
hosts = ["${hosts}"]
address = "127.0.0.1"
`,
        );
      await config(card);
      // A mail an earlier run left behind (it came after that run stopped waiting).
      await Deno.mkdir(join(dir, "po", "alice@lan.local", "new"), { recursive: true });
      await Deno.writeTextFile(
        join(dir, "po", "alice@lan.local", "new", "1.left.doctor"),
        "From: alice@lan.local\r\nTo: alice@lan.local\r\nSubject: [mailpeer-doctor] earlier\r\n" +
          "Date: Fri, 04 Dec 2026 12:00:00 +0000\r\n\r\nleft behind\r\n",
      );
      const good = await mailpeer(["doctor"], { cwd: dir });
      assert.equal(good.code, 0, good.stdout + good.stderr);
      assert.match(
        good.stdout,
        /^PASS terminal\.hosts host-card: terminal\.hosts\[0\] matches the keys in /m,
      );
      assert.match(
        good.stdout,
        /^PASS terminal\.receive self-mail: a mail to itself \(alice@lan\.local\) arrived in the Maildir .* and was deleted \(and 1 left by an earlier run, which came after its wait\)$/m,
      );
      for (const who of ["host@lan.local", "alice@lan.local"]) {
        assert.deepEqual([...Deno.readDirSync(join(dir, "po", who, "new"))], [], "no mail left");
      }

      await config(other);
      await Deno.chmod(join(dir, "alice.json"), 0o644);
      const bad = await mailpeer(["doctor"], { cwd: dir });
      assert.equal(bad.code, 1);
      const identity = join(dir, "alice.json");
      const keys = join(dir, "host.keys.json");
      assert.deepEqual(lines(bad.stdout, "FAIL"), [
        `FAIL terminal.identity key-file: Cannot use the key file ${identity}: it has mode 0644, ` +
        "so other users of this machine can read or replace its private keys; run chmod 600 " +
        identity,
        `FAIL terminal.hosts host-card: terminal.hosts[0] names host@lan.local with other keys ` +
        `than ${keys} holds: the host cannot open this terminal's requests, and its replies ` +
        `fail the signature check; replace it with what \`mailpeer keygen --card ${keys}\` prints`,
      ]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

/**
 * A plain-text IMAP server on 127.0.0.1 with only the capabilities `caps`: it accepts any
 * login, lists INBOX and answers OK to everything else.
 */
function fakeImap(caps: string) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const encoder = new TextEncoder();
  const conns = new Set<Deno.Conn>();
  const serve = async (conn: Deno.Conn) => {
    conns.add(conn);
    const say = (text: string) => conn.write(encoder.encode(text + "\r\n"));
    try {
      await say(`* OK [CAPABILITY IMAP4rev1 ${caps}] fake IMAP ready`);
      let buffer = "";
      for await (const chunk of conn.readable.pipeThrough(new TextDecoderStream())) {
        buffer += chunk;
        let nl: number;
        while ((nl = buffer.indexOf("\n")) >= 0) {
          const [tag, command] = buffer.slice(0, nl).trim().split(" ");
          buffer = buffer.slice(nl + 1);
          switch (command?.toUpperCase()) {
            case "CAPABILITY":
              await say(`* CAPABILITY IMAP4rev1 ${caps}`);
              break;
            case "LIST":
              await say('* LIST (\\HasNoChildren) "/" INBOX');
              break;
            case "LOGOUT":
              await say("* BYE");
              await say(`${tag} OK done`);
              conn.close();
              return;
          }
          await say(`${tag} OK done`);
        }
      }
    } catch {
      // the client went away
    } finally {
      conns.delete(conn);
    }
  };
  const serving = (async () => {
    for await (const conn of listener) serve(conn);
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    close: async () => {
      listener.close();
      for (const conn of conns) {
        try {
          conn.close();
        } catch { /* closed */ }
      }
      await serving;
    },
  };
}

Deno.test(
  "doctor says what mailpeer falls back to without IDLE, MOVE, CONDSTORE and SPECIAL-USE",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "mailpeer-doctor-caps-" });
    const imap = fakeImap("UIDPLUS");
    try {
      const r0 = await mailpeer(["keygen", "--user", "alice", "-o", "alice.json"], { cwd: dir });
      assert.equal(r0.code, 0, r0.stderr);
      await Deno.writeTextFile(
        join(dir, "mailpeer.toml"),
        `network = "lan"
post_office = "po"
[terminal]
user_id = "alice"
email = "alice@lan.local"
identity = "alice.json"
hosts = ["mailpeer1:host@lan.local:Xy1BBbcr6K_whZUwgm-wkf67sTV8vWRa9Y4pUuDajAg:E1KfZ7vQSHvuHQqhZZRDtAvmR9b95Wf6Gts6s7JNgqQ"]
address = "127.0.0.1"
[terminal.receive]
kind = "imap"
host = "127.0.0.1"
port = ${imap.port}
tls = "none"
user = "alice"
password_env = "MP_FAKE_IMAP"
idle = true
`,
      );
      const r = await mailpeer(["doctor", "--no-self-mail"], {
        cwd: dir,
        env: { MP_FAKE_IMAP: "anything" },
      });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const imapLines = r.stdout.split("\n").filter((l) => / terminal\.receive imap-/.test(l));
      assert.deepEqual(imapLines, [
        "WARN terminal.receive imap-idle: IDLE is missing: mailpeer polls with NOOP every " +
        "poll_interval: replies come later",
        "WARN terminal.receive imap-move: MOVE is missing: imapflow moves by COPY, then flag " +
        "and expunge: not atomic, so keep one host process per mailbox",
        "PASS terminal.receive imap-uidplus: UIDPLUS: deletes expunge exactly mailpeer's own mails",
        "PASS terminal.receive imap-condstore: CONDSTORE is missing (mailpeer does without): " +
        "claims are plain MOVEs, safe for one host process per mailbox only",
        "PASS terminal.receive imap-special-use: SPECIAL-USE is missing (mailpeer does " +
        "without): the Junk folder is looked for by its usual names (Junk, Spam)",
      ]);
      assert.match(
        r.stdout,
        /^WARN terminal\.receive tls: IMAP 127\.0\.0\.1:\d+ is used without TLS/m,
      );
      assert.match(
        r.stdout,
        /^PASS terminal\.receive login: logged in to IMAP 127\.0\.0\.1:\d+ as alice /m,
      );
    } finally {
      await imap.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "doctor asks the router for a mapping and releases it; a router that maps nothing is a " +
    "warning that says what peers fall back to",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "mailpeer-doctor-router-" });
    const router = new FakeUpnpGateway();
    try {
      const r0 = await mailpeer(["keygen", "--user", "alice", "-o", "alice.json"], { cwd: dir });
      assert.equal(r0.code, 0, r0.stderr);
      const config = (url: string) =>
        Deno.writeTextFile(
          join(dir, "mailpeer.toml"),
          `network = "lan"
post_office = "po"
[terminal]
user_id = "alice"
email = "alice@lan.local"
identity = "alice.json"
hosts = ["mailpeer1:host@lan.local:Xy1BBbcr6K_whZUwgm-wkf67sTV8vWRa9Y4pUuDajAg:E1KfZ7vQSHvuHQqhZZRDtAvmR9b95Wf6Gts6s7JNgqQ"]
address = "127.0.0.1"
port = 4100
port_mapping = { upnp_url = "${url}", protocols = ["upnp"] }
`,
        );
      await config(router.rootUrl);
      const mapped = await mailpeer(["doctor", "--no-self-mail"], { cwd: dir });
      assert.equal(mapped.code, 0, mapped.stdout + mapped.stderr);
      assert.match(
        mapped.stdout,
        /^PASS terminal\.port_mapping port-mapping: the router maps 203\.0\.113\.9:\d+ to port 4100\/tcp \(released again\)$/m,
      );
      assert.equal(router.mappings.size, 0, "the router forgot the mapping");
      assert.ok(router.calls.some((call) => call.action === "DeletePortMapping"));

      // Nothing listens on port 1 of the loopback: the "router" refuses every connection.
      await config("http://127.0.0.1:1/rootDesc.xml");
      const refused = await mailpeer(["doctor", "--no-self-mail"], { cwd: dir });
      assert.equal(refused.code, 0, refused.stdout + refused.stderr);
      assert.match(
        refused.stdout,
        /^WARN terminal\.port_mapping port-mapping: .+; without a mapping peers reach this terminal only by hole punching or a relay$/m,
      );
    } finally {
      await router.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test("doctor without a [host] or [terminal] section says what to add", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "mailpeer.toml"), 'network = "x"\n');
    const r = await mailpeer(["doctor"], { cwd: dir });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /has neither a \[host\] nor a \[terminal\] section; add one/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// STACK is read so that MAILPEER_REQUIRE_STACK=1 fails this file when the stack is absent.
void STACK;
