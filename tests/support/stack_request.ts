/**
 * One request mailed through the real mail stack as a terminal would send it, to one host card,
 * for tests that run hosts in-process and read their replies themselves.
 */
import { SmtpSender } from "../../src/mail/smtp/sender.ts";
import { sealRequest } from "../../src/message/block.ts";
import { formatHostCard, type HostCard } from "../../src/message/host_card.ts";
import { generateIdentityKeys } from "../../src/message/key_file.ts";
import { generateX25519 } from "../../src/message/keys.ts";
import { bodyFor, subjectFor } from "../../src/message/mail_text.ts";
import { loginOf } from "./mailstack.ts";

/** Mails a request of `userId` (endpoint 127.0.0.1:`port`) from `from` to `to` only. */
export async function mailStackRequest(
  from: string,
  userId: string,
  port: number,
  to: HostCard,
  ctx: { network: string; clock: { now(): number }; reads?: string[] },
): Promise<{ replyPrivateKey: Uint8Array }> {
  const identity = await generateIdentityKeys(userId);
  const reply = await generateX25519();
  const block = await sealRequest({
    network: ctx.network,
    userId,
    identityKey: identity.ed25519.publicKey,
    endpoints: [{ transport: "tcp", address: "127.0.0.1", port }],
    sessionId: crypto.getRandomValues(new Uint8Array(16)),
    createdAt: ctx.clock.now(),
    replyKey: reply.publicKey,
    hostCards: [formatHostCard(to)],
    ...(ctx.reads ? { reads: ctx.reads } : {}),
  }, { identity, hostCard: to });
  const sender = new SmtpSender(loginOf(from, "smtp"));
  try {
    await sender.send({
      from,
      to: [to.email],
      subject: subjectFor(ctx.network, "request"),
      text: bodyFor(ctx.network, "request", block),
    });
  } finally {
    await sender.close();
  }
  return { replyPrivateKey: reply.privateKey };
}
