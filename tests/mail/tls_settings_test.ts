import assert from "node:assert/strict";
import {
  imapflowTlsMode,
  nodemailerTlsMode,
  nodeTlsSettings,
} from "../../src/mail/tls_settings.ts";

Deno.test("a server's TLS settings reach node:tls whole: CA, name, highest version, certificate checks", () => {
  assert.deepEqual(
    nodeTlsSettings({ servername: "mail.a.test", tlsMaxVersion: "1.2", insecure: false }, "PEM"),
    { ca: ["PEM"], servername: "mail.a.test", maxVersion: "TLSv1.2", rejectUnauthorized: true },
  );
  // nothing set: the system roots, the host's own name, any version, certificates checked
  assert.deepEqual(nodeTlsSettings({}), { rejectUnauthorized: true });
  assert.deepEqual(nodeTlsSettings({ insecure: true, tlsMaxVersion: "1.3" }), {
    maxVersion: "TLSv1.3",
    rejectUnauthorized: false,
  });
});

Deno.test("tls = implicit, starttls or none sets each library's switches so that none is left to chance", () => {
  assert.deepEqual(nodemailerTlsMode("implicit"), {
    secure: true,
    requireTLS: false,
    ignoreTLS: false,
  });
  assert.deepEqual(nodemailerTlsMode("starttls"), {
    secure: false,
    requireTLS: true,
    ignoreTLS: false,
  });
  assert.deepEqual(nodemailerTlsMode("none"), {
    secure: false,
    requireTLS: false,
    ignoreTLS: true,
  });
  assert.deepEqual(imapflowTlsMode("implicit"), { secure: true, doSTARTTLS: undefined });
  assert.deepEqual(imapflowTlsMode("starttls"), { secure: false, doSTARTTLS: true });
  assert.deepEqual(imapflowTlsMode("none"), { secure: false, doSTARTTLS: false });
});
