/**
 * The probes' line reader (src/mail/line_reader.ts) against a server written by the test: lines
 * split across packets arrive whole, a line past the bound and a server that hangs up mid-line
 * are errors, never an endless buffer.
 */
import assert from "node:assert/strict";
import { imapQuote, LineReader, writeAll } from "../../src/mail/line_reader.ts";

/** A loopback connection whose other end the test writes to. */
async function pair() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [client, server] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: (listener.addr as Deno.NetAddr).port }),
    listener.accept(),
  ]);
  listener.close();
  return { client, server };
}

const bytes = (text: string) => new TextEncoder().encode(text);

Deno.test("lines split across writes arrive whole, CRLF or LF, in order", async () => {
  const { client, server } = await pair();
  try {
    const reader = new LineReader(client);
    await writeAll(server, bytes("* OK rea"));
    const first = reader.line();
    await writeAll(server, bytes("dy\r\na1 OK done\nlast\r\n"));
    assert.equal(await first, "* OK ready");
    assert.equal(await reader.line(), "a1 OK done");
    assert.equal(await reader.line(), "last");
  } finally {
    client.close();
    server.close();
  }
});

Deno.test("a server that sends an endless line is cut off at the bound, not buffered on", async () => {
  const { client, server } = await pair();
  try {
    const reader = new LineReader(client, { maxBytes: 1_000 });
    const reading = reader.line();
    await writeAll(server, new Uint8Array(40_000).fill(0x41)); // no line end, ever
    await assert.rejects(reading, /a line too long/);
  } finally {
    client.close();
    server.close();
  }
});

Deno.test("a server that hangs up mid-line is an error, not a half line", async () => {
  const { client, server } = await pair();
  try {
    const reader = new LineReader(client);
    await writeAll(server, bytes("* OK half"));
    server.close();
    await assert.rejects(reader.line(), /the server closed the connection/);
  } finally {
    client.close();
  }
});

Deno.test("an IMAP quoted string escapes quotes and backslashes", () => {
  assert.equal(imapQuote('a"b\\c'), '"a\\"b\\\\c"');
});
