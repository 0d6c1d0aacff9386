/**
 * Mailing many requests to a host of the real stack, as terminals would, from alice@a.test.
 */
import { SmtpSender } from "../../src/mail/smtp/sender.ts";
import { sealRequest } from "../../src/message/block.ts";
import { parseHostCard } from "../../src/message/host_card.ts";
import { generateIdentityKeys } from "../../src/message/key_file.ts";
import { generateX25519 } from "../../src/message/keys.ts";
import { bodyFor, subjectFor } from "../../src/message/mail_text.ts";
import { account, STACK } from "./mailstack.ts";
import { untilMessages } from "./stack_mail.ts";

/** Mails `n` requests from alice@a.test (distinct user ids) to the site's host. */
export async function mailRequests(
  site: { network: string; card: string },
  n: number,
  options: { date?: Date } = {},
) {
  const { provider, user } = account("alice@a.test");
  const sender = new SmtpSender({
    host: provider.ip,
    port: provider.ports.submission,
    tls: "starttls",
    user: user.user,
    password: user.password,
    caFile: STACK!.caFile,
    servername: provider.hostname,
  });
  const card = parseHostCard(site.card);
  try {
    for (let i = 0; i < n; i++) {
      const identity = await generateIdentityKeys(`player${i}`);
      const block = await sealRequest({
        network: site.network,
        userId: identity.userId,
        identityKey: identity.ed25519.publicKey,
        endpoints: [{ transport: "tcp", address: "192.0.2.7", port: 5000 + i }],
        sessionId: crypto.getRandomValues(new Uint8Array(16)),
        createdAt: Date.now(),
        replyKey: (await generateX25519()).publicKey,
        hostCards: [site.card],
      }, { identity, hostCard: card });
      await sender.send({
        from: "alice@a.test",
        to: [card.email],
        subject: subjectFor(site.network, "request"),
        text: bodyFor(site.network, "request", block),
        ...(options.date ? { date: options.date } : {}),
      });
    }
  } finally {
    await sender.close();
  }
}

/** Waits until the host mailbox holds `n` requests of the network (relay takes a moment). */
export async function untilDelivered(network: string, n: number): Promise<void> {
  await untilMessages("host@host.test", `[mailpeer] ${network} request`, n);
}
