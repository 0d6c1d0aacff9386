/**
 * A minimal SMTP server on 127.0.0.1 (plain, no AUTH) that records every envelope it is given:
 * enough to see which RCPT TO commands a sender really issues.
 */

/** One SMTP transaction as the server saw it. */
export interface Envelope {
  from: string;
  to: string[];
}

/** Starts the server on a free port; `close()` stops it. */
export function fakeSmtp(): {
  port: number;
  envelopes: Envelope[];
  /** Every RCPT TO argument, including those of transactions that never reached DATA. */
  rcpts: string[];
  close: () => Promise<void>;
} {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const envelopes: Envelope[] = [];
  const rcpts: string[] = [];
  const conns = new Set<Deno.Conn>();
  const serving: Promise<void>[] = [];
  const serve = async (conn: Deno.Conn) => {
    const enc = new TextEncoder();
    const dec = new TextDecoder();
    const say = (line: string) => conn.write(enc.encode(line + "\r\n"));
    let buffer = "";
    let current: Envelope = { from: "", to: [] };
    let inData = false;
    await say("220 fake ESMTP");
    const chunk = new Uint8Array(65536);
    for (;;) {
      let n: number | null;
      try {
        n = await conn.read(chunk);
      } catch {
        return;
      }
      if (n === null) return;
      buffer += dec.decode(chunk.subarray(0, n));
      for (let i = buffer.indexOf("\r\n"); i >= 0; i = buffer.indexOf("\r\n")) {
        const line = buffer.slice(0, i);
        buffer = buffer.slice(i + 2);
        if (inData) {
          if (line === ".") {
            inData = false;
            envelopes.push(current);
            current = { from: "", to: [] };
            await say("250 queued");
          }
          continue;
        }
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === "EHLO") await say("250-fake\r\n250 8BITMIME");
        else if (verb === "HELO") await say("250 fake");
        else if (verb === "MAIL") {
          current = { from: line.replace(/^MAIL FROM:\s*/i, ""), to: [] };
          await say("250 ok");
        } else if (verb === "RCPT") {
          const to = line.replace(/^RCPT TO:\s*/i, "");
          rcpts.push(to);
          current.to.push(to);
          await say("250 ok");
        } else if (verb === "DATA") {
          inData = true;
          await say("354 go on");
        } else if (verb === "RSET") {
          current = { from: "", to: [] };
          await say("250 ok");
        } else if (verb === "QUIT") {
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
      serving.push(serve(conn).finally(() => conns.delete(conn)));
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    envelopes,
    rcpts,
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
