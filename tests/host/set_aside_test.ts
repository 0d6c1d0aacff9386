/**
 * A refused mail that cannot be set aside (the server refuses the quarantine folder, say) never
 * stops the host from answering the others (host.ts `#dispose`, docs/providers.md "IMAP
 * servers"); a mailbox that cannot be reached still fails the pass, leaving every mail for the
 * next one. A shared-mailbox host on a source that cannot claim is refused with one line.
 */
import assert from "node:assert/strict";
import { ConfigError, MailError } from "../../src/errors.ts";
import { Host } from "../../src/host/host.ts";
import { HostService } from "../../src/host/host_service.ts";
import { wrapSource } from "../support/source_wrap.ts";
import { NETWORK, World } from "../support/world.ts";

/** A host on the world's mailbox whose quarantine fails with `code`; counts the attempts. */
function refusingQuarantine(w: World, code: "EMAIL" | "ECONNECT") {
  const attempts: string[] = [];
  const source = wrapSource(w.hostSource, {
    quarantine: (ref) => {
      attempts.push(ref.id);
      return Promise.reject(
        new MailError(
          code,
          "Cannot create folder Quarantine on IMAP server x: NO refused; check it",
        ),
      );
    },
  });
  const host = new Host({
    keys: w.hostKeys,
    network: NETWORK,
    source,
    sender: w.sender,
    store: w.store,
    clock: w.clock,
    allowPrivateAddresses: true,
    onEvent: (e) => w.events.push(e),
  });
  return { host, attempts };
}

Deno.test("a garbage mail the server will not let the host quarantine does not stop it answering the others", async () => {
  const w = await World.create();
  try {
    const p = await w.player("p0", 4000);
    await w.mailBlock(p, new TextEncoder().encode("garbage"));
    const r = await w.request(p);
    const { host, attempts } = refusingQuarantine(w, "EMAIL");
    const first = await host.processPending();
    assert.equal(first.answered, 1, "the real request is answered");
    assert.equal(attempts.length, 1);
    assert.equal((await w.replies(p, r.replyPrivateKey)).length, 1);
    const errors = w.events.filter((e) => e.event === "error");
    assert.equal(errors.length, 1);
    assert.match(String((errors[0] as { message: string }).message), /Quarantine/);
    // the garbage stays in the mailbox, and this process does not try it again
    const second = await host.processPending();
    assert.deepEqual(second, { answered: 0, notices: 0, quarantined: 0, stale: 0 });
    assert.equal(attempts.length, 1);
    assert.equal(
      (await w.hostSource.list({ subject: `[mailpeer] ${NETWORK} request`, mode: "exact" })).length,
      1,
    );
  } finally {
    await w.close();
  }
});

Deno.test("a mailbox that drops the connection while a mail is quarantined fails the pass as before", async () => {
  const w = await World.create();
  try {
    const p = await w.player("p0", 4000);
    await w.mailBlock(p, new TextEncoder().encode("garbage"));
    await w.request(p);
    const { host } = refusingQuarantine(w, "ECONNECT");
    await assert.rejects(
      host.processPending(),
      (err: unknown) => err instanceof MailError && err.code === "ECONNECT",
    );
  } finally {
    await w.close();
  }
});

Deno.test("a shared-mailbox host on a source that cannot claim stops with one line and answers nothing", async () => {
  const w = await World.create();
  try {
    const p = await w.player("p0", 4000);
    await w.request(p);
    const source = wrapSource(w.hostSource, { claims: false });
    const host = new Host({
      keys: w.hostKeys,
      network: NETWORK,
      source,
      sender: w.sender,
      store: w.store,
      clock: w.clock,
      allowPrivateAddresses: true,
      sharedMailbox: true,
    });
    const service = new HostService({ host, sharedMailbox: true, clock: w.clock });
    const refused = (err: unknown) =>
      err instanceof ConfigError && !err.message.includes("\n") &&
      /CONDSTORE.*; keep the claims in a Redis table .*, or set shared_mailbox = false/.test(
        err.message,
      );
    await assert.rejects(service.runOnce(), refused);
    // a long-running host ends too, instead of retrying a setting that cannot work
    await assert.rejects(service.run({ signal: new AbortController().signal }), refused);
    assert.equal(
      (await w.hostSource.list({ subject: `[mailpeer] ${NETWORK} request`, mode: "exact" }))
        .length,
      1,
    );
  } finally {
    await w.close();
  }
});
