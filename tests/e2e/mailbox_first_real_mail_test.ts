/**
 * A terminal opens its own mailbox before it mails its request (docs/decisions.md "The
 * terminal opens its mailbox before it mails"): with a receive password the real Dovecot
 * refuses, `mailpeer client` ends with one clear error and a non-zero exit, and no request was
 * mailed, so no host answers a terminal that could never read the answer.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { events, mailpeer } from "../support/cli.ts";
import { account, NO_STACK } from "../support/mailstack.ts";
import { makeSite } from "../support/site.ts";

for (const receive of ["imap", "pop3"] as const) {
  Deno.test({
    name:
      `a terminal whose ${receive.toUpperCase()} password is refused says so and mails no request`,
    ignore: NO_STACK,
    fn: async () => {
      const site = await makeSite({ receive: "imap" });
      try {
        // bob's [terminal.receive] logs in with a password of its own, a wrong one; sending
        // keeps the right one, so only opening the mailbox first can stop the request
        const path = join(site.dir, "bob.toml");
        const lines = (await Deno.readTextFile(path)).split("\n");
        const at = lines.indexOf("[terminal.receive]");
        assert.ok(at >= 0);
        const receiveLines = lines.slice(at + 1, lines.indexOf("[terminal.send]"))
          .map((l) => l.startsWith("password_env") ? 'password_env = "MP_WRONG"' : l)
          .map((l) => l.startsWith("kind") ? `kind = "${receive}"` : l);
        if (receive === "pop3") {
          const port = account("bob@b.test").provider.ports.pop3;
          receiveLines.splice(
            receiveLines.findIndex((l) => l.startsWith("port")),
            1,
            `port = ${port}`,
          );
        }
        await Deno.writeTextFile(
          path,
          [
            ...lines.slice(0, at + 1),
            ...receiveLines,
            ...lines.slice(lines.indexOf("[terminal.send]")),
          ]
            .join("\n"),
        );
        const bob = await mailpeer(["client", "--config", "bob.toml", "--json", "-m", "hi"], {
          cwd: site.dir,
          env: { ...site.env, MP_WRONG: "not-the-password" },
        });
        assert.notEqual(bob.code, 0, bob.stdout);
        const told = events(bob.stdout);
        const errors = told.filter((e) => e.event === "error");
        assert.equal(errors.length, 1, bob.stdout);
        assert.equal(errors[0]!.code, "EAUTH");
        assert.match(
          String(errors[0]!.message),
          /refused the password.*; check terminal\.receive\.password_env/,
        );
        const kinds = told.map((e) => e.event);
        assert.ok(!kinds.includes("request-sent"), `no request was mailed: ${kinds.join(", ")}`);
      } finally {
        await site.cleanup();
      }
    },
  });
}
