/**
 * ImapSource on IMAP servers other than Dovecot: Courier IMAP (no MOVE, no CONDSTORE, no
 * SPECIAL-USE, personal namespace `INBOX.`) and Cyrus IMAP, run beside the mail stack by
 * scripts/imapservers (docs/imap-servers.md). The MailSource conformance suite over IDLE and
 * over NOOP polling on each, what each server offers (the table of docs/providers.md), folders
 * in the server's namespace found again by the next source, and claims: exactly once where
 * the server can lock (CONDSTORE), the refs themselves where it cannot. Ignored when the
 * servers are not running (unless MAILPEER_REQUIRE_STACK is set).
 */
import assert from "node:assert/strict";
import type { ImapFlow } from "imapflow";
import { composeMail } from "../../src/mail/rfc5322/compose.ts";
import { ImapSource, type ImapSourceOptions } from "../../src/mail/imap/source.ts";
import type { SubjectMatch } from "../../src/mail/types.ts";
import { mailSourceConformance } from "../conformance/mail_source.ts";
import {
  clientOf,
  countOf,
  emptyAccount,
  foldersOf,
  IMAP_SERVERS,
  type ImapServer,
  imapServerNamed,
  loginOf,
  NO_IMAP_SERVERS,
} from "../support/imap_servers.ts";
import { imapOf } from "../support/stack_mail.ts";
import { NO_STACK } from "../support/mailstack.ts";

/** The source tests' user on both servers (the e2e tests use `host`). */
const USER = "host2";
const FOLDER = "mailpeer-test";
const REQUEST: SubjectMatch = { subject: "[mailpeer] lan request", mode: "exact" };
const FAST: ImapSourceOptions = { backoff: () => 50, connectAttempts: 100 };

let counter = 0;

async function mail(subject: string): Promise<Uint8Array> {
  const { raw } = await composeMail({
    from: "alice@a.test",
    to: ["host2@host.test"],
    subject,
    text: `IMAP server test mail ${counter++}\r\n`,
  });
  return raw;
}

/** A fresh account with {@link FOLDER} (imapflow puts it below the namespace prefix). */
async function freshClient(server: ImapServer): Promise<ImapFlow> {
  const client = await clientOf(server, USER);
  await emptyAccount(client);
  await client.mailboxCreate(FOLDER);
  return client;
}

function fixture(server: ImapServer, options: ImapSourceOptions, tls: "starttls" | "implicit") {
  return async () => {
    const client = await freshClient(server);
    const source = new ImapSource(loginOf(server, USER, tls), {
      ...FAST,
      mailbox: FOLDER,
      ...options,
    });
    return {
      source,
      deliver: async (raw: Uint8Array) => {
        await client.append(FOLDER, raw);
      },
      cleanup: async () => {
        await source.close();
        await client.logout().catch(() => client.close());
      },
    };
  };
}

for (const server of IMAP_SERVERS?.servers ?? []) {
  mailSourceConformance(
    `${server.name} (STARTTLS, IDLE)`,
    fixture(server, { idle: true }, "starttls"),
  );
  mailSourceConformance(
    `${server.name} (implicit TLS, NOOP polling)`,
    fixture(server, { idle: false, pollIntervalMs: 25 }, "implicit"),
  );
}

/** What a server offers after login, as imapflow sees it. */
function offered(client: ImapFlow) {
  return {
    capabilities: new Set(client.capabilities.keys()),
    namespace: client.namespace?.prefix ?? "",
    delimiter: client.namespace?.delimiter ?? "",
  };
}

Deno.test({
  name: "each server offers what docs/providers.md says (capabilities, personal namespace)",
  ignore: NO_IMAP_SERVERS || NO_STACK,
  fn: async () => {
    const expected = {
      dovecot: { has: ["IDLE", "MOVE", "UIDPLUS", "CONDSTORE", "NAMESPACE", "SAVEDATE"] },
      cyrus: {
        has: ["IDLE", "MOVE", "UIDPLUS", "CONDSTORE", "SPECIAL-USE", "NAMESPACE", "SAVEDATE"],
      },
      courier: {
        has: ["IDLE", "UIDPLUS", "NAMESPACE"],
        lacks: ["MOVE", "CONDSTORE", "SPECIAL-USE", "SAVEDATE"],
      },
    };
    const dovecot = await imapOf("host2@host.test");
    try {
      const seen = offered(dovecot);
      for (const cap of expected.dovecot.has) {
        assert.ok(seen.capabilities.has(cap), `dovecot ${cap}`);
      }
      assert.deepEqual([seen.namespace, seen.delimiter], ["", "."]);
    } finally {
      await dovecot.logout();
    }
    for (const name of ["courier", "cyrus"] as const) {
      const client = await clientOf(imapServerNamed(name), USER);
      try {
        const seen = offered(client);
        for (const cap of expected[name].has) {
          assert.ok(seen.capabilities.has(cap), `${name} ${cap}`);
        }
        for (const cap of (expected[name] as { lacks?: string[] }).lacks ?? []) {
          assert.ok(!seen.capabilities.has(cap), `${name} lacks ${cap}`);
        }
        assert.deepEqual(
          [seen.namespace, seen.delimiter],
          name === "courier" ? ["INBOX.", "."] : ["", "/"],
        );
      } finally {
        await client.logout();
      }
    }
  },
});

for (const name of ["courier", "cyrus"] as const) {
  Deno.test({
    name:
      `${name}: the quarantine folder is made in the server's namespace and found again by the next run`,
    ignore: NO_IMAP_SERVERS,
    fn: async () => {
      const server = imapServerNamed(name);
      const client = await freshClient(server);
      const quarantine = name === "courier" ? "INBOX.Quarantine" : "Quarantine";
      try {
        for (let run = 0; run < 2; run++) {
          await client.append(FOLDER, await mail("[mailpeer] lan request"));
          // a new source per run, as a new `host --once` process
          const source = new ImapSource(loginOf(server, USER), { ...FAST, mailbox: FOLDER });
          try {
            const [bad] = await source.list(REQUEST);
            assert.ok(bad !== undefined);
            await source.quarantine(bad, "garbage");
            assert.deepEqual(await source.list(REQUEST), []);
          } finally {
            await source.close();
          }
          assert.ok((await foldersOf(client)).includes(quarantine), `run ${run}: ${quarantine}`);
        }
        const box = await countOf(client, quarantine);
        assert.equal(box, 2, "both runs' mails are in the one quarantine folder");
      } finally {
        await client.logout();
      }
    },
  });
}

Deno.test({
  name:
    "courier: without CONDSTORE the source says it cannot claim and hands back the refs themselves",
  ignore: NO_IMAP_SERVERS,
  fn: async () => {
    const server = imapServerNamed("courier");
    const client = await freshClient(server);
    const source = new ImapSource(loginOf(server, USER), { ...FAST, mailbox: FOLDER });
    try {
      await client.append(FOLDER, await mail("[mailpeer] lan request"));
      const refs = await source.list(REQUEST);
      assert.equal(source.claims, false);
      assert.deepEqual(await source.claimMany(refs), refs);
      assert.equal(await source.recoverClaims(0), 0);
      assert.deepEqual(await foldersOf(client), ["INBOX." + FOLDER], "no processing folder made");
    } finally {
      await source.close();
      await client.logout();
    }
  },
});

Deno.test({
  name: "cyrus: three sources claiming the same 30 mails at once win each exactly once",
  ignore: NO_IMAP_SERVERS,
  fn: async () => {
    const server = imapServerNamed("cyrus");
    const client = await freshClient(server);
    const sources = ["a", "b", "c"].map((claimer) =>
      new ImapSource(loginOf(server, USER), { ...FAST, mailbox: FOLDER, claimer })
    );
    try {
      for (let i = 0; i < 30; i++) {
        await client.append(FOLDER, await mail("[mailpeer] lan request"));
      }
      const listings = await Promise.all(sources.map((s) => s.list(REQUEST)));
      for (const listing of listings) assert.equal(listing.length, 30);
      assert.ok(sources.every((s) => s.claims));
      const won = await Promise.all(sources.map((s, i) => s.claimMany(listings[i]!)));
      const bodies = await Promise.all(
        won.flatMap((refs, i) => refs.map((ref) => sources[i]!.fetch(ref))),
      );
      const texts = new Set(bodies.map((b) => new TextDecoder().decode(b)));
      assert.equal(bodies.length, 30, "30 claims won in all");
      assert.equal(texts.size, 30, "no mail won twice");
      assert.ok((await foldersOf(client)).includes("Processing"));
      for (const [i, refs] of won.entries()) await sources[i]!.deleteMany(refs);
      const processing = await countOf(client, "Processing");
      assert.equal(processing, 0);
    } finally {
      await Promise.all(sources.map((s) => s.close()));
      await client.logout();
    }
  },
});
