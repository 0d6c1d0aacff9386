/**
 * `host --once` from cron checks its key file and passwords before it looks at the mailbox: a
 * missing key file or password fails the run at once, also while the mailbox is empty (when
 * the quick empty-mailbox check would otherwise end the run with success, and the mistake
 * would show only when the first request arrives).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { mailpeer } from "../support/cli.ts";
import { NO_STACK } from "../support/mailstack.ts";
import { makeSite } from "../support/site.ts";

Deno.test({
  name: "host --once on an empty mailbox fails at once when the host key file is missing",
  ignore: NO_STACK,
  fn: async () => {
    const site = await makeSite({ receive: "imap" });
    try {
      await Deno.remove(join(site.dir, "host.keys.json"));
      const r = await mailpeer(["host", "--once", "--config", "host.toml"], {
        cwd: site.dir,
        env: site.env,
      });
      assert.equal(r.code, 1, r.stderr);
      assert.match(
        r.stderr,
        /^mailpeer: Cannot read the host key file \S+host\.keys\.json: .*; create it with `mailpeer keygen`\n$/,
      );
    } finally {
      await site.cleanup();
    }
  },
});

Deno.test({
  name: "host --once on an empty mailbox fails at once when the SMTP password file is missing",
  ignore: NO_STACK,
  fn: async () => {
    const site = await makeSite({ receive: "imap" });
    try {
      const path = join(site.dir, "host.toml");
      const text = await Deno.readTextFile(path);
      const send = text.indexOf("[host.send]");
      await Deno.writeTextFile(
        path,
        text.slice(0, send) +
          text.slice(send).replace(/password_env = "\w+"/, 'password_file = "smtp.pass"'),
      );
      const r = await mailpeer(["host", "--once", "--config", "host.toml"], {
        cwd: site.dir,
        env: site.env,
      });
      assert.equal(r.code, 1, r.stderr);
      assert.match(
        r.stderr,
        /^mailpeer: Cannot read the SMTP password of \S+ from \S+smtp\.pass: .*; check password_file\n$/,
      );
    } finally {
      await site.cleanup();
    }
  },
});
