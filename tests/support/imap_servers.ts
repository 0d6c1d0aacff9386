/**
 * Courier IMAP and Cyrus IMAP beside the mail stack (scripts/imapservers, docs/imap-servers.md)
 * as tests see them: their servers.json, logins, a plain imapflow session of a user, and a
 * forwarder that hands a network's requests from the stack's host@host.test to one of them, as a
 * provider's forwarding rule would (the stack's Postfix delivers only to Dovecot): to Cyrus over
 * LMTP, to Courier by IMAP APPEND. Tests that need the servers are ignored when they are not running,
 * unless MAILPEER_REQUIRE_STACK is set.
 */
import { join } from "node:path";
import { ImapFlow } from "imapflow";
import type { MailLogin } from "../../src/mail/types.ts";
import { imapOf } from "./stack_mail.ts";

/** One server of servers.json. */
export interface ImapServer {
  name: "courier" | "cyrus";
  software: string;
  ip: string;
  hostname: string;
  ports: { imap: number; imaps: number };
  /** Cyrus: lmtpd's Unix socket (no authentication there, as an MTA delivers). */
  lmtpSocket?: string;
  users: { user: string; password: string }[];
}

/** What scripts/imapservers/imapservers.sh start writes. */
export interface ImapServers {
  stateDir: string;
  caFile: string;
  servers: ImapServer[];
}

const DEFAULT_DIR = new URL("../../.imapservers", import.meta.url).pathname;

function load(): ImapServers | undefined {
  const dir = Deno.env.get("IMAPSERVERS_DIR") ?? DEFAULT_DIR;
  try {
    return JSON.parse(Deno.readTextFileSync(join(dir, "servers.json"))) as ImapServers;
  } catch {
    return undefined;
  }
}

/** The running servers, loaded once per test module. */
export const IMAP_SERVERS: ImapServers | undefined = load();

if (!IMAP_SERVERS && Deno.env.get("MAILPEER_REQUIRE_STACK")) {
  throw new Error(
    "MAILPEER_REQUIRE_STACK is set but Courier and Cyrus are not running: scripts/test starts " +
      "them (scripts/imapservers/imapservers.sh start)",
  );
}

/** True when these tests must be ignored: the servers are not running. */
export const NO_IMAP_SERVERS: boolean = IMAP_SERVERS === undefined;

/** The server called `name`. */
export function imapServerNamed(name: ImapServer["name"]): ImapServer {
  const server = IMAP_SERVERS?.servers.find((s) => s.name === name);
  if (!server) {
    throw new Error(`${name} is not running: scripts/imapservers/imapservers.sh start`);
  }
  return server;
}

/**
 * How a source reaches `user` on `server`: STARTTLS on 143 (default) or implicit TLS on 993,
 * checked against the test CA.
 */
export function loginOf(
  server: ImapServer,
  user: string,
  tls: "starttls" | "implicit" = "starttls",
): MailLogin {
  const account = server.users.find((u) => u.user === user);
  if (!account) throw new Error(`no user ${user} on ${server.name}`);
  return {
    host: server.ip,
    port: tls === "implicit" ? server.ports.imaps : server.ports.imap,
    tls,
    user,
    password: account.password,
    caFile: IMAP_SERVERS!.caFile,
    servername: server.hostname,
  };
}

/** A plain imapflow session of `user` on `server`, as a person's mail client would have. */
export async function clientOf(server: ImapServer, user: string): Promise<ImapFlow> {
  const login = loginOf(server, user);
  const client = new ImapFlow({
    host: login.host,
    port: login.port,
    secure: login.tls === "implicit",
    doSTARTTLS: login.tls === "starttls" ? true : undefined,
    servername: login.servername!,
    tls: { ca: [await Deno.readTextFile(login.caFile!)], servername: login.servername! },
    auth: { user, pass: login.password },
    logger: false,
    disableAutoIdle: true,
  });
  client.on("error", () => {});
  await client.connect();
  return client;
}

/** Removes every mail of INBOX and every other folder of `client`'s user. */
export async function emptyAccount(client: ImapFlow): Promise<void> {
  const box = await client.mailboxOpen("INBOX");
  if (box.exists > 0) await client.messageDelete("1:*");
  const folders = (await client.list()).filter((f) => f.path !== "INBOX");
  // children first (Courier refuses to delete a folder that has some)
  folders.sort((a, b) => b.path.length - a.path.length);
  for (const folder of folders) {
    await client.mailboxDelete(folder.path).catch((err) => {
      throw new Error(`cannot delete ${folder.path}: ${err.responseText ?? err.message}`);
    });
  }
}

/**
 * How many mails `folder` holds now. NOOP first: Courier answers STATUS of the selected mailbox
 * with what this session was last told, so expunges by other sessions would still count.
 */
export async function countOf(client: ImapFlow, folder: string): Promise<number | undefined> {
  await client.noop();
  const status = await client.status(folder, { messages: true });
  return status ? status.messages : undefined;
}

/** Full names of `client`'s folders other than INBOX, sorted. */
export async function foldersOf(client: ImapFlow): Promise<string[]> {
  return (await client.list()).map((f) => f.path).filter((p) => p !== "INBOX").sort();
}

/**
 * Delivers `raw` to `user` over LMTP (RFC 2033) on the Unix socket `path`, as an MTA hands mail
 * to Cyrus; rejects unless the server accepts it for that user.
 */
export async function lmtpDeliver(path: string, user: string, raw: Uint8Array): Promise<void> {
  const conn = await Deno.connect({ transport: "unix", path });
  const encoder = new TextEncoder();
  const reader = conn.readable.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  /** The next complete reply (its last line), checked against the expected code. */
  const reply = async (code: string) => {
    for (;;) {
      const m = /^(\d{3})([ -]).*\r\n/m.exec(buffered);
      if (m && m[2] === " ") {
        const end = buffered.indexOf("\r\n", m.index) + 2;
        const line = buffered.slice(m.index, end);
        buffered = buffered.slice(end);
        if (m[1] !== code) throw new Error(`LMTP: expected ${code}, got ${line.trim()}`);
        return;
      }
      if (m) { // a continuation line: drop it
        buffered = buffered.slice(buffered.indexOf("\r\n", m.index) + 2);
        continue;
      }
      const { value, done } = await reader.read();
      if (done) throw new Error("LMTP: the server closed the connection");
      buffered += value;
    }
  };
  const send = (text: string) => conn.write(encoder.encode(text));
  try {
    await reply("220");
    for (
      const [line, code] of [["LHLO test", "250"], ["MAIL FROM:<>", "250"], [
        `RCPT TO:<${user}>`,
        "250",
      ], ["DATA", "354"]]
    ) {
      await send(`${line}\r\n`);
      await reply(code!);
    }
    const text = new TextDecoder().decode(raw).replace(/\r?\n/g, "\r\n").replace(/^\./gm, "..");
    await send(`${text.endsWith("\r\n") ? text : text + "\r\n"}.\r\n`);
    await reply("250"); // one reply per recipient: one recipient
    await send("QUIT\r\n");
  } finally {
    reader.cancel().catch(() => {});
    try {
      conn.close();
    } catch {
      // already closed
    }
  }
}

/**
 * How mail reaches `user` on `server` in the FIG. 4 tests: Cyrus over LMTP (as Postfix would
 * deliver), Courier by IMAP APPEND into its INBOX (`client`, a session of that user).
 */
export function deliveryTo(server: ImapServer, user: string, client: ImapFlow) {
  if (server.lmtpSocket !== undefined) {
    const socket = server.lmtpSocket;
    return (raw: Uint8Array) => lmtpDeliver(socket, user, raw);
  }
  return async (raw: Uint8Array) => {
    await client.append("INBOX", raw);
  };
}

/**
 * Moves mail whose subject contains `subject` from the stack's host@host.test INBOX to
 * `deliver` (then expunges it there), now and on every later arrival until `stop()`; `moved`
 * counts the mails handed over. Waits on IDLE, never on a timer.
 */
export async function forwardMail(subject: string, deliver: (raw: Uint8Array) => Promise<void>) {
  const from = await imapOf("host@host.test");
  let stopped = false;
  let moved = 0;
  let wake = () => {};
  from.on("exists", () => wake());
  const once = async () => {
    const uids = await from.search({ subject, deleted: false }, { uid: true });
    if (!uids || uids.length === 0) return;
    for await (const m of from.fetch(uids, { uid: true, source: true }, { uid: true })) {
      if (m.source) await deliver(new Uint8Array(m.source));
    }
    await from.messageDelete(uids, { uid: true });
    moved += uids.length;
  };
  let firstDone = () => {};
  const first = new Promise<void>((resolve) => (firstDone = resolve));
  const loop = (async () => {
    while (!stopped) {
      // armed before the pass: a mail arriving during it runs another pass
      const arrived = new Promise<void>((resolve) => (wake = resolve));
      await once();
      firstDone();
      if (stopped) break;
      // the next command (the next pass) ends this IDLE
      from.idle().catch(() => {});
      await arrived;
    }
  })();
  loop.catch(() => firstDone());
  await first;
  return {
    get moved() {
      return moved;
    },
    async stop() {
      stopped = true;
      wake();
      await from.logout().catch(() => from.close());
      await loop.catch(() => {});
    },
  };
}
