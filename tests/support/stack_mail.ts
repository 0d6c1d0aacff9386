/**
 * Looking at real mailboxes from tests, independently of the code under test: imapflow
 * directly, and nodemailer on the unauthenticated local port 25 for injecting ordinary mail.
 */
import { ImapFlow } from "imapflow";
import nodemailer from "nodemailer";
import { account, STACK } from "./mailstack.ts";

function ca(): string {
  return Deno.readTextFileSync(STACK!.caFile);
}

/** An IMAP connection to `address`'s mailbox (STARTTLS, test CA). */
export async function imapOf(address: string): Promise<ImapFlow> {
  const { provider, user } = account(address);
  const client = new ImapFlow({
    host: provider.ip,
    port: provider.ports.imap,
    secure: false,
    doSTARTTLS: true,
    auth: { user: user.user, pass: user.password },
    tls: { ca: [ca()], servername: provider.hostname },
    logger: false,
  });
  await client.connect();
  await client.mailboxOpen("INBOX");
  return client;
}

/** Messages in `address`'s INBOX whose subject contains `subject`, with their flags. */
export async function messagesOf(
  address: string,
  subject: string,
): Promise<{ uid: number; subject: string; seen: boolean }[]> {
  const client = await imapOf(address);
  try {
    const uids = await client.search({ subject }, { uid: true });
    const out: { uid: number; subject: string; seen: boolean }[] = [];
    if (uids && uids.length > 0) {
      for await (const m of client.fetch(uids, { envelope: true, flags: true }, { uid: true })) {
        out.push({
          uid: m.uid,
          subject: m.envelope?.subject ?? "",
          seen: m.flags?.has("\\Seen") ?? false,
        });
      }
    }
    return out;
  } finally {
    await client.logout();
  }
}

/** Delivers an ordinary mail to `to` through its provider's port 25 (local delivery, no auth). */
export async function deliverOrdinary(
  to: string,
  subject: string,
  extra: { date?: Date; text?: string } = {},
): Promise<void> {
  const { provider } = account(to);
  const transport = nodemailer.createTransport({
    host: provider.ip,
    port: provider.ports.smtp,
    secure: false,
    ignoreTLS: true,
    logger: false,
  });
  try {
    await transport.sendMail({
      from: "friend@else.test",
      to,
      subject,
      text: extra.text ?? "see you at noon\n",
      ...(extra.date ? { date: extra.date } : {}),
    });
  } finally {
    transport.close();
  }
}

/** The In-Reply-To of every message in `address`'s INBOX whose subject contains `subject`. */
export async function inReplyToOf(address: string, subject: string): Promise<string[]> {
  const client = await imapOf(address);
  try {
    const uids = await client.search({ subject }, { uid: true });
    const out: string[] = [];
    if (uids && uids.length > 0) {
      for await (const m of client.fetch(uids, { envelope: true }, { uid: true })) {
        out.push(m.envelope?.inReplyTo ?? "");
      }
    }
    return out;
  } finally {
    await client.logout();
  }
}

/**
 * Resolves once `address`'s INBOX holds at least `n` messages whose subject contains `subject`.
 * Between looks it waits in IDLE for the server to announce new mail (an EXISTS), so it takes no
 * wall time of its own and needs no polling; a relay that never delivers hangs the test, which
 * then names this wait.
 */
export async function untilMessages(address: string, subject: string, n: number): Promise<void> {
  const client = await imapOf(address);
  client.on("error", () => {});
  try {
    for (;;) {
      // Listen before looking, so mail that arrives during the SEARCH is not missed.
      const grew = new Promise<void>((resolve) => client.once("exists", () => resolve()));
      const uids = await client.search({ subject }, { uid: true });
      if ((uids || []).length >= n) return;
      client.idle().catch(() => {}); // the next SEARCH ends the IDLE
      await grew;
    }
  } finally {
    await client.logout().catch(() => client.close());
  }
}

/** Deletes every message in `address`'s INBOX whose subject contains `subject`. */
export async function deleteMessages(address: string, subject: string): Promise<void> {
  const client = await imapOf(address);
  try {
    const uids = await client.search({ subject }, { uid: true });
    if (uids && uids.length > 0) await client.messageDelete(uids, { uid: true });
  } finally {
    await client.logout();
  }
}

/** How long {@link takeMessages} waits for mail before it counts as lost (a guard, not a wait). */
const TAKE_GUARD_MS = 30_000;

/**
 * The raw bytes of the messages in `address`'s INBOX whose subject contains `subject`, once
 * at least `count` of them arrived (IMAP IDLE tells of each delivery), oldest first; deletes
 * them. Rejects when they have not all arrived after a generous guard time.
 */
export async function takeMessages(
  address: string,
  subject: string,
  count: number,
): Promise<Uint8Array[]> {
  const client = await imapOf(address);
  let guard: ReturnType<typeof setTimeout> | undefined;
  const lost = new Promise<never>((_, reject) => {
    guard = setTimeout(
      () => reject(new Error(`${count} mails "${subject}" did not reach ${address}`)),
      TAKE_GUARD_MS,
    );
  });
  const take = async (): Promise<Uint8Array[]> => {
    for (;;) {
      // listening before the search: a delivery during it still wakes us
      const arrived = new Promise<void>((resolve) => client.once("exists", () => resolve()));
      const uids = (await client.search({ subject }, { uid: true })) || [];
      if (uids.length >= count) {
        const found: { uid: number; source: Uint8Array }[] = [];
        for await (const m of client.fetch(uids, { source: true }, { uid: true })) {
          found.push({ uid: m.uid, source: new Uint8Array(m.source!) });
        }
        await client.messageDelete(uids, { uid: true });
        return found.sort((a, b) => a.uid - b.uid).map((m) => m.source);
      }
      client.idle().catch(() => {}); // ended by the next command
      await arrived;
    }
  };
  const taking = take();
  taking.catch(() => {}); // when the guard fired first, the logout below ends it
  try {
    return await Promise.race([taking, lost]);
  } finally {
    clearTimeout(guard);
    await client.logout().catch(() => client.close());
  }
}
