/**
 * A mail client for lab_mail_test.ts, run inside a NAT-lab namespace
 * (`ip netns exec mpl-a deno run … lab_mail_client.ts send …`): there 127.0.0.x is the
 * namespace's own loopback, so it reaches the mail stack only on the providers' lab addresses
 * (stack.json `labIp`), verifying each server as `mail.<domain>` against the stack's test CA.
 *
 *   send STACK_JSON FROM TO SUBJECT    submit on FROM's provider, port 587, STARTTLS + AUTH
 *   receive STACK_JSON USER SUBJECT    wait (IMAP IDLE, port 143, STARTTLS) for a mail with
 *                                      exactly SUBJECT in USER's INBOX, delete it
 *   rcpt STACK_JSON DOMAIN FROM TO     without logging in, ask DOMAIN's port 25 to take a mail
 *                                      FROM -> TO; QUIT before any data
 *
 * Prints one JSON line: `{"messageId": …}`, `{"raw": …}` once received, or `{"rcpt": "<the
 * server's answer to RCPT TO>"}`. `receive` prints `{"listening": true}` first, once its first
 * listing is done. Exit 1 with `{"error": …}` otherwise.
 */
import { ImapSource } from "../../src/mail/imap/source.ts";
import { SmtpSender } from "../../src/mail/smtp/sender.ts";

interface Provider {
  domain: string;
  labIp?: string;
  hostname: string;
  ports: { submission: number; imap: number };
  users: { address: string; user: string; password: string }[];
}
interface Stack {
  caFile: string;
  providers: Provider[];
}

/** The provider and account of `address`, which must listen on its lab address. */
function account(stack: Stack, address: string) {
  for (const provider of stack.providers) {
    const user = provider.users.find((u) => u.address === address);
    if (!user) continue;
    if (!provider.labIp) {
      throw new Error(`${provider.domain} does not listen on a lab address (stack.json)`);
    }
    return { provider, user, labIp: provider.labIp };
  }
  throw new Error(`no account ${address} in the mail stack`);
}

function print(value: unknown): void {
  Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(value) + "\n"));
}

async function send(stack: Stack, from: string, to: string, subject: string): Promise<void> {
  const { provider, user, labIp } = account(stack, from);
  const sender = new SmtpSender({
    host: labIp,
    port: provider.ports.submission,
    tls: "starttls",
    user: user.user,
    password: user.password,
    caFile: stack.caFile,
    servername: provider.hostname,
  });
  try {
    print(await sender.send({ from, to: [to], subject, text: "from behind NAT A\n" }));
  } finally {
    await sender.close();
  }
}

async function receive(stack: Stack, address: string, subject: string): Promise<void> {
  const { provider, user, labIp } = account(stack, address);
  const source = new ImapSource({
    host: labIp,
    port: provider.ports.imap,
    tls: "starttls",
    user: user.user,
    password: user.password,
    caFile: stack.caFile,
    servername: provider.hostname,
  }, { idle: true, connectAttempts: 1 });
  try {
    const match = { subject, mode: "exact" as const };
    let announced = false;
    for (;;) {
      const refs = await source.list(match);
      if (!announced) print({ listening: true });
      announced = true;
      const ref = refs[0];
      if (ref) {
        const raw = new TextDecoder().decode(await source.fetch(ref));
        await source.delete(ref);
        print({ raw });
        return;
      }
      await source.waitForMail();
    }
  } finally {
    await source.close();
  }
}

/** One plain SMTP dialog on DOMAIN's lab address, port 25: the answer to RCPT TO. */
async function rcpt(stack: Stack, domain: string, from: string, to: string): Promise<void> {
  const provider = stack.providers.find((p) => p.domain === domain);
  if (!provider?.labIp) throw new Error(`${domain} does not listen on a lab address`);
  const conn = await Deno.connect({ hostname: provider.labIp, port: 25 });
  const reader = conn.readable.pipeThrough(new TextDecoderStream()).getReader();
  let pending = "";
  /** The next complete reply (the last line of a multi-line one). */
  const reply = async (): Promise<string> => {
    for (;;) {
      const match = /^(\d{3}) .*$/m.exec(pending);
      if (match) {
        pending = pending.slice(match.index + match[0].length + 1);
        return match[0].trimEnd();
      }
      const { value, done } = await reader.read();
      if (done) throw new Error(`${domain}:25 closed the connection`);
      pending += value;
    }
  };
  const command = async (line: string): Promise<string> => {
    await conn.write(new TextEncoder().encode(`${line}\r\n`));
    return await reply();
  };
  try {
    await reply(); // greeting
    await command("EHLO lab.test");
    await command(`MAIL FROM:<${from}>`);
    print({ rcpt: await command(`RCPT TO:<${to}>`) });
    await command("QUIT");
  } finally {
    reader.releaseLock();
    conn.close();
  }
}

const [mode, stackFile, ...rest] = Deno.args;
try {
  const stack = JSON.parse(await Deno.readTextFile(stackFile ?? "")) as Stack;
  if (mode === "send" && rest.length === 3) await send(stack, rest[0]!, rest[1]!, rest[2]!);
  else if (mode === "receive" && rest.length === 2) await receive(stack, rest[0]!, rest[1]!);
  else if (mode === "rcpt" && rest.length === 3) await rcpt(stack, rest[0]!, rest[1]!, rest[2]!);
  else throw new TypeError("usage: send | receive | rcpt (see the head of lab_mail_client.ts)");
} catch (err) {
  print({ error: err instanceof Error ? err.message : String(err) });
  Deno.exit(1);
}
