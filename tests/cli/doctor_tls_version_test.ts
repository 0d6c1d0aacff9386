/**
 * `mailpeer doctor` logs in as the sender will (src/mail/tls_settings.ts): with
 * `tls_max_version = "1.2"` its SMTP check offers TLS 1.2 at most, so a server that speaks only
 * TLS 1.3 fails the check, as it would fail every mail later. A local implicit-TLS SMTP server
 * with a throwaway certificate stands in for the provider.
 */
import assert from "node:assert/strict";
import { createServer, type TLSSocket } from "node:tls";
import { join } from "node:path";
import { checkSmtpLogin, type SmtpSend } from "../../src/cli/doctor/smtp_check.ts";
import type { CheckResult } from "../../src/cli/doctor/check.ts";

/** A self-signed certificate for 127.0.0.1 (openssl, as the doctor CLI tests make theirs). */
async function certificate(): Promise<{ cert: string; key: string }> {
  const dir = await Deno.makeTempDir({ prefix: "mailpeer-doctor-tls-" });
  try {
    const out = await new Deno.Command("openssl", {
      args: [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        join(dir, "key.pem"),
        "-out",
        join(dir, "cert.pem"),
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
      ],
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    return {
      cert: await Deno.readTextFile(join(dir, "cert.pem")),
      key: await Deno.readTextFile(join(dir, "key.pem")),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** An implicit-TLS SMTP server speaking TLS 1.3 only, that accepts any AUTH PLAIN. */
async function tls13OnlySmtp(): Promise<{ port: number; close(): Promise<void> }> {
  const server = createServer({ ...(await certificate()), minVersion: "TLSv1.3" }, (s) => {
    const socket = s as TLSSocket;
    socket.on("error", () => {});
    socket.write("220 test ESMTP\r\n");
    let buffered = "";
    socket.on("data", (chunk: Buffer) => {
      buffered += chunk.toString("latin1");
      let nl: number;
      while ((nl = buffered.indexOf("\r\n")) >= 0) {
        const line = buffered.slice(0, nl).toUpperCase();
        buffered = buffered.slice(nl + 2);
        if (line.startsWith("EHLO")) socket.write("250-test\r\n250 AUTH PLAIN\r\n");
        else if (line.startsWith("AUTH")) socket.write("235 ok\r\n");
        else if (line.startsWith("QUIT")) socket.end("221 bye\r\n");
        else socket.write("250 ok\r\n");
      }
    });
  });
  server.on("tlsClientError", () => {});
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

Deno.test("doctor's SMTP login check offers no TLS above tls_max_version, as the sender", async () => {
  const server = await tls13OnlySmtp();
  try {
    const config = (tlsMaxVersion?: "1.2") =>
      ({
        kind: "smtp",
        section: "host.send",
        host: "127.0.0.1",
        port: server.port,
        tls: "implicit",
        user: "host@example.org",
        insecure: true, // the throwaway certificate; the version is what this test is about
        connectTimeoutMs: 5_000,
        ...(tlsMaxVersion ? { tlsMaxVersion } : {}),
      }) as SmtpSend;
    const login = async (c: SmtpSend) => {
      const results: CheckResult[] = [];
      const ok = await checkSmtpLogin(c, { password: "secret", report: (r) => results.push(r) });
      return { ok, results };
    };
    // The server itself is fine: without a cap the login goes through (TLS 1.3).
    const open = await login(config());
    assert.equal(open.ok, true, JSON.stringify(open.results));
    // Capped at 1.2, the check fails as the sender would, naming the server.
    const capped = await login(config("1.2"));
    assert.equal(capped.ok, false, JSON.stringify(capped.results));
    assert.equal(capped.results.at(-1)?.status, "fail");
    assert.match(capped.results.at(-1)!.message, /127\.0\.0\.1:\d+/);
  } finally {
    await server.close();
  }
});
