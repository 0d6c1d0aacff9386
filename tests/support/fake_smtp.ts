/**
 * A minimal SMTP server on 127.0.0.1 (plain, no AUTH) that records every envelope it is given:
 * enough to see which RCPT TO commands a sender really issues. With `chunking` it offers
 * PIPELINING and CHUNKING too and takes BDAT, for the SMTP fast lane; its other options play
 * a server that refuses, defers or misbehaves on BDAT (the lane's attacker-side tests).
 */

/** One SMTP transaction as the server saw it. */
export interface Envelope {
  from: string;
  to: string[];
  /** The message bytes as received (DATA: dot-unstuffed; BDAT: as sent), latin1. */
  message: string;
  /** How it came: `DATA` (nodemailer) or `BDAT` (the fast lane). */
  via: "DATA" | "BDAT";
  /** The connection it came on (1 = the first accepted). */
  connection: number;
}

/** How the server behaves. */
export interface FakeSmtpOptions {
  /** Offer PIPELINING and CHUNKING, and take BDAT. */
  chunking?: boolean;
  /** The reply to a RCPT TO of this address (e.g. `550 5.1.1 no such user`); default 250. */
  rcptReply?: (to: string) => string | undefined;
  /**
   * What the server does on BDAT instead of taking it: answer a line that is not SMTP, an
   * endless line, hang up, or go silent (read on, never answer again: see `silenced`).
   */
  hostileBdat?: "garbage" | "endless" | "hangup" | "silent";
  /**
   * Connections from this one on (1 = the first accepted) hold their MAIL and RCPT answers
   * until the transaction's BDAT chunk has arrived in full: only a pipelining client gets
   * answers there.
   */
  holdFrom?: number;
  /** With `chunking`: leave 8BITMIME out of EHLO. */
  no8BitMime?: boolean;
  /** With `chunking`: say `SIZE <n>` in EHLO. */
  size?: number;
}

/** Starts the server on a free port; `close()` stops it. */
export function fakeSmtp(options: FakeSmtpOptions = {}): {
  port: number;
  envelopes: Envelope[];
  /** Every RCPT TO argument, including those of transactions that never reached DATA. */
  rcpts: string[];
  /** Connections accepted so far. */
  connections: () => number;
  /**
   * Resolves once connection `n` (1 = the first accepted) is gone: with `QUIT` when the client
   * said QUIT (the server then answers 221 and closes), else `closed`.
   */
  ended: (n: number) => Promise<"QUIT" | "closed">;
  /** With `hostileBdat: "silent"`: resolves once a connection went silent on a BDAT. */
  silenced: Promise<void>;
  close: () => Promise<void>;
} {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const envelopes: Envelope[] = [];
  const rcpts: string[] = [];
  const conns = new Set<Deno.Conn>();
  const serving: Promise<void>[] = [];
  let accepted = 0;
  const endings = new Map<number, PromiseWithResolvers<"QUIT" | "closed">>();
  const ending = (n: number) => {
    if (!endings.has(n)) endings.set(n, Promise.withResolvers());
    return endings.get(n)!;
  };
  const quitters = new Set<number>(); // connections whose client said QUIT
  const silenced = Promise.withResolvers<void>();
  const serve = async (conn: Deno.Conn, number: number) => {
    const enc = new TextEncoder();
    const latin1 = (bytes: Uint8Array) => String.fromCharCode(...bytes);
    const say = async (line: string) => {
      const bytes = enc.encode(line + "\r\n");
      for (let done = 0; done < bytes.length;) done += await conn.write(bytes.subarray(done));
    };
    const hold = options.holdFrom !== undefined && number >= options.holdFrom;
    const held: string[] = [];
    const answer = (line: string) => hold ? (held.push(line), Promise.resolve()) : say(line);
    const flush = async () => {
      for (const line of held.splice(0)) await say(line);
    };
    let buffer = new Uint8Array(0);
    const blank = (): Envelope => ({
      from: "",
      to: [],
      message: "",
      via: "DATA",
      connection: number,
    });
    let current = blank();
    let accepting = 0; // recipients accepted in this transaction
    let inData = false;
    let chunk: { size: number } | undefined;
    const dataLines: string[] = [];
    const endTransaction = () => {
      envelopes.push(current);
      current = blank();
      accepting = 0;
    };
    await say("220 fake ESMTP");
    const readBuffer = new Uint8Array(65536);
    for (;;) {
      let n: number | null;
      try {
        n = await conn.read(readBuffer);
      } catch {
        return;
      }
      if (n === null) return;
      const next = new Uint8Array(buffer.length + n);
      next.set(buffer);
      next.set(readBuffer.subarray(0, n), buffer.length);
      buffer = next;
      for (;;) {
        if (chunk !== undefined) {
          if (buffer.length < chunk.size) break;
          const body = buffer.subarray(0, chunk.size);
          buffer = buffer.slice(chunk.size);
          chunk = undefined;
          await flush();
          if (accepting === 0) {
            await say("554 5.5.1 Error: no valid recipients");
            current = blank();
            continue;
          }
          current.message = latin1(body);
          current.via = "BDAT";
          endTransaction();
          await say("250 2.0.0 queued");
          continue;
        }
        const end = buffer.indexOf(0x0a);
        if (end < 0) break;
        const line = latin1(buffer.subarray(0, end)).replace(/\r$/, "");
        buffer = buffer.slice(end + 1);
        if (inData) {
          if (line === ".") {
            inData = false;
            current.message = dataLines.splice(0).map((l) => l + "\r\n").join("");
            endTransaction();
            await say("250 queued");
          } else dataLines.push(line.startsWith(".") ? line.slice(1) : line);
          continue;
        }
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === "EHLO") {
          await say(
            options.chunking
              ? "250-fake\r\n250-PIPELINING\r\n" +
                (options.no8BitMime ? "" : "250-8BITMIME\r\n") +
                (options.size !== undefined ? `250-SIZE ${options.size}\r\n` : "") +
                "250 CHUNKING"
              : "250-fake\r\n250 8BITMIME",
          );
        } else if (verb === "HELO") await say("250 fake");
        else if (verb === "MAIL") {
          current = {
            ...blank(),
            from: line.replace(/^MAIL FROM:\s*/i, "").replace(/\s+BODY=\S+$/i, ""),
          };
          accepting = 0;
          await answer("250 ok");
        } else if (verb === "RCPT") {
          const to = line.replace(/^RCPT TO:\s*/i, "");
          rcpts.push(to);
          const reply = options.rcptReply?.(to.replace(/^<|>$/g, "")) ?? "250 ok";
          if (reply.startsWith("2")) {
            current.to.push(to);
            accepting++;
          }
          await answer(reply);
        } else if (verb === "BDAT" && options.chunking) {
          if (options.hostileBdat === "garbage") await say("hello there, not smtp");
          else if (options.hostileBdat === "endless") {
            const junk = enc.encode("2".repeat(65_536));
            for (let i = 0; i < 4; i++) await conn.write(junk).catch(() => 0);
          } else if (options.hostileBdat === "hangup") {
            conn.close();
            return;
          } else if (options.hostileBdat === "silent") {
            silenced.resolve();
            // read on until the client gives up; answer nothing
            while (await conn.read(readBuffer).catch(() => null) !== null);
            return;
          }
          if (options.hostileBdat !== undefined) continue;
          chunk = { size: Number(line.split(/\s+/)[1]) };
        } else if (verb === "DATA") {
          inData = true;
          await say("354 go on");
        } else if (verb === "RSET") {
          current = blank();
          await say("250 ok");
        } else if (verb === "QUIT") {
          quitters.add(number);
          await say("221 bye");
          conn.close();
          return;
        } else await say("250 ok");
      }
    }
  };
  const accepting = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      const n = ++accepted;
      serving.push(
        serve(conn, n).catch(() => {}).finally(() => {
          conns.delete(conn);
          ending(n).resolve(quitters.has(n) ? "QUIT" : "closed");
        }),
      );
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    envelopes,
    rcpts,
    connections: () => accepted,
    ended: (n) => ending(n).promise,
    silenced: silenced.promise,
    close: async () => {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
      await accepting.catch(() => {});
      await Promise.all(serving.map((s) => s.catch(() => {})));
    },
  };
}
