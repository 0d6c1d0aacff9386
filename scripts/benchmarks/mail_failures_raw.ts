/**
 * The server's own share of a refused login, for `mail_failures.ts`: a bare client on Deno's
 * TLS (implicit-TLS port) sends a wrong password and times only the wait between sending it
 * and the refusal. Dovecot holds every failed login (`auth_failure_delay`, 2 s, for IMAP, POP3
 * and the SMTP AUTH Postfix asks it for), so this is the floor no client can go below.
 *
 * @module
 */
import type { Protocol } from "./mail_failures_cases.ts";

/** Where and as whom to fail a login. */
export interface RawLogin {
  host: string;
  /** The implicit-TLS port (993, 995, 465). */
  port: number;
  servername: string;
  caFile: string;
  user: string;
  password: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Milliseconds between sending a wrong password and the server's refusal. */
export async function serverRefusalMs(protocol: Protocol, login: RawLogin): Promise<number> {
  const tcp = await Deno.connect({ hostname: login.host, port: login.port });
  const conn = await Deno.startTls(tcp, {
    hostname: login.servername,
    caCerts: [await Deno.readTextFile(login.caFile)],
  });
  const lines = lineReader(conn);
  const send = (line: string) => conn.write(encoder.encode(`${line}\r\n`));
  /** Reads lines until one that `done` accepts. */
  const until = async (done: (line: string) => boolean) => {
    for (;;) {
      const line = await lines.next();
      if (line.done) throw new Error("the server closed the connection");
      if (done(line.value)) return line.value;
    }
  };
  try {
    await until(() => true); // greeting
    let t0: number;
    if (protocol === "imap") {
      t0 = performance.now();
      await send(`a LOGIN "${login.user}" "${login.password}"`);
      await until((l) => l.startsWith("a "));
    } else if (protocol === "pop3") {
      await send(`USER ${login.user}`);
      await until(() => true);
      t0 = performance.now();
      await send(`PASS ${login.password}`);
      await until(() => true);
    } else {
      await send("EHLO bench.invalid");
      await until((l) => /^\d{3} /.test(l));
      const plain = btoa(`\0${login.user}\0${login.password}`);
      t0 = performance.now();
      await send(`AUTH PLAIN ${plain}`);
      await until((l) => /^\d{3} /.test(l));
    }
    return performance.now() - t0;
  } finally {
    try {
      conn.close();
    } catch {
      // closed by the server
    }
  }
}

async function* lineReader(conn: Deno.Conn): AsyncGenerator<string> {
  let buffer = "";
  const chunk = new Uint8Array(16_384);
  for (;;) {
    let end = buffer.indexOf("\n");
    while (end >= 0) {
      yield buffer.slice(0, end).replace(/\r$/, "");
      buffer = buffer.slice(end + 1);
      end = buffer.indexOf("\n");
    }
    const n = await conn.read(chunk);
    if (n === null) return;
    buffer += decoder.decode(chunk.subarray(0, n), { stream: true });
  }
}
