/** Folder names in the server's personal namespace (mail/imap/namespace.ts). */
import assert from "node:assert/strict";
import { personalFolder } from "../../src/mail/imap/namespace.ts";

Deno.test("a folder the host creates goes below Courier's INBOX. prefix, and stays as named on Dovecot and Cyrus", () => {
  const courier = { prefix: "INBOX.", delimiter: "." };
  assert.equal(personalFolder("Quarantine", courier), "INBOX.Quarantine");
  assert.equal(personalFolder("INBOX.Quarantine", courier), "INBOX.Quarantine");
  assert.equal(personalFolder("inbox", courier), "INBOX");
  assert.equal(personalFolder("Quarantine", { prefix: "", delimiter: "/" }), "Quarantine");
  assert.equal(personalFolder("Quarantine", { prefix: "", delimiter: "." }), "Quarantine");
  assert.equal(personalFolder("Quarantine", undefined), "Quarantine");
  assert.equal(personalFolder("Quarantine", { prefix: null, delimiter: null }), "Quarantine");
});
