/**
 * The configuration of linked hosts as `mailpeer host` wires it (src/cli/host.ts): `host.links`
 * reach the sync agent, the routes file sits beside the table, and the host learns the hosts a
 * request was mailed to. Two hosts on a local post office, one cron run each.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { hostFromConfig } from "../../src/cli/host.ts";
import { parseConfig } from "../../src/config/config.ts";
import type { MailpeerEvent } from "../../src/events.ts";
import { MaildirPostOffice } from "../../src/mail/maildir/post_office.ts";
import { MaildirSender } from "../../src/mail/maildir/sender.ts";
import { sealRequest } from "../../src/message/block.ts";
import { formatHostCard } from "../../src/message/host_card.ts";
import {
  encodeHostKeys,
  generateHostKeys,
  generateIdentityKeys,
  hostCardOf,
} from "../../src/message/key_file.ts";
import { generateX25519 } from "../../src/message/keys.ts";
import { bodyFor, subjectFor } from "../../src/message/mail_text.ts";

Deno.test("host.links wires two hosts: a row mailed to A reaches B's table, and A learns the third host the request was mailed to", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mailpeer-links-" });
  const closers: (() => Promise<void>)[] = [];
  try {
    const [a, b, other] = await Promise.all(
      ["a@lan.test", "b@lan.test", "c@lan.test"].map((e) => generateHostKeys(e)),
    );
    const card = (k: typeof a) => formatHostCard(hostCardOf(k!));
    const config = async (name: string, keys: typeof a, link: typeof a) => {
      await Deno.writeTextFile(join(dir, `${name}.keys.json`), encodeHostKeys(keys!), {
        mode: 0o600,
      });
      return parseConfig(
        `network = "lan"\npost_office = "po"\n[host]\nemail = "${keys!.email}"\n` +
          `keys = "${name}.keys.json"\ntable = "${name}.table.json"\n` +
          `hosts_file = "${name}.hosts.json"\nallow_private_addresses = true\n` +
          `links = ["${card(link)}"]\n`,
        { base: dir },
      );
    };
    const events: MailpeerEvent[] = [];
    const onEvent = (e: MailpeerEvent) => events.push(e);
    const hostA = await hostFromConfig(await config("a", a, b), { onEvent });
    closers.push(hostA.close);
    const hostB = await hostFromConfig(await config("b", b, a), { onEvent });
    closers.push(hostB.close);

    // carol mails one request to A and to a third host C, naming both cards.
    const identity = await generateIdentityKeys("carol");
    const block = await sealRequest({
      network: "lan",
      userId: "carol",
      identityKey: identity.ed25519.publicKey,
      endpoints: [{ transport: "tcp", address: "127.0.0.1", port: 7000 }],
      sessionId: crypto.getRandomValues(new Uint8Array(16)),
      createdAt: Date.now(),
      replyKey: (await generateX25519()).publicKey,
      hostCards: [card(a), card(other)],
    }, { identity, hostCard: hostCardOf(a!) });
    const sender = new MaildirSender(new MaildirPostOffice(join(dir, "po")));
    await sender.send({
      from: "carol@lan.test",
      to: [a!.email, other!.email],
      subject: subjectFor("lan", "request"),
      text: bodyFor("lan", "request", block),
    });

    assert.equal(await hostA.service.runOnce({ push: true }), "done");
    assert.equal(await hostB.service.runOnce(), "done");
    assert.deepEqual((await hostB.store.read()).map((r) => r.userId), ["carol"]);
    const learned = JSON.parse(await Deno.readTextFile(join(dir, "a.hosts.json")));
    assert.deepEqual(
      learned.hosts.map((h: { card: string; trusted: boolean }) => [h.card, h.trusted]),
      [[card(other), false]],
    );
    // B remembers that carol came from A, for its next run.
    const routes = JSON.parse(await Deno.readTextFile(join(dir, "b.table.json.routes.json")));
    assert.equal(routes.routes.length, 1);
    assert.equal(routes.routes[0][2], 1, "one hop from A");
  } finally {
    for (const close of closers) await close();
    await Deno.remove(dir, { recursive: true });
  }
});
