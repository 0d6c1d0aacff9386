/**
 * What a peer's chat text can do to the user's terminal: nothing. Escape sequences, control
 * characters and bidi overrides never reach the screen as such; `--json` keeps the text as a
 * JSON string (the exact text, escaped). Captures what the CLI writes to stdout and stderr.
 */
import assert from "node:assert/strict";
import { chatOver } from "../../src/cli/client.ts";
import { cliSink, narrate } from "../../src/cli/output.ts";
import { fakeLinkPair } from "../apps/fake_link.ts";

const EVIL = "hi\x1b]0;owned\x07\x1b[2J\x1b[31mred\rfake\x00\x08\x7f\u009b31m\u202eevil\u2066x" +
  "\x1bPdcs\x1b\\\tok\nline2";

/** Runs `fn` with Deno.stdout / Deno.stderr writes captured; returns what was written. */
async function captured(fn: () => Promise<void>): Promise<{ stdout: string; stderr: string }> {
  const out: Uint8Array[] = [];
  const err: Uint8Array[] = [];
  const stdoutWrite = Deno.stdout.writeSync;
  const stderrWrite = Deno.stderr.writeSync;
  Deno.stdout.writeSync = (b: Uint8Array) => (out.push(b.slice()), b.length);
  Deno.stderr.writeSync = (b: Uint8Array) => (err.push(b.slice()), b.length);
  try {
    await fn();
  } finally {
    Deno.stdout.writeSync = stdoutWrite;
    Deno.stderr.writeSync = stderrWrite;
  }
  const text = (parts: Uint8Array[]) => parts.map((p) => new TextDecoder().decode(p)).join("");
  return { stdout: text(out), stderr: text(err) };
}

/** Anything a terminal would act on rather than print: C0 but tab and newline, DEL, C1, bidi. */
// deno-lint-ignore no-control-regex
const ACTIVE = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/;

async function chatWithEvilPeer(json: boolean) {
  const { a, b } = fakeLinkPair();
  const peerSide = (async () => {
    await b.receive();
    await b.send(new TextEncoder().encode(EVIL));
    await b.receive();
  })();
  const result = await captured(() =>
    chatOver(a, { onEvent: cliSink({ json }), json, message: "hello" })
  );
  await peerSide;
  return result;
}

Deno.test("a peer's chat text cannot send escape sequences or control characters to the terminal", async () => {
  const { stdout, stderr } = await chatWithEvilPeer(false);
  for (const [name, text] of [["stdout", stdout], ["stderr", stderr]] as const) {
    assert.ok(!ACTIVE.test(text), `${name} holds ${JSON.stringify(text)}`);
  }
  // The readable part survives, tab and newline included.
  assert.match(stdout, /hi.*red.*fake.*evil.*x.*\tok\nline2/s);
});

Deno.test("with --json the chat text stays a JSON string with the exact text, and is terminal-safe", async () => {
  const { stdout } = await chatWithEvilPeer(true);
  assert.ok(!ACTIVE.test(stdout), JSON.stringify(stdout));
  const message = stdout.trim().split("\n").map((l) => JSON.parse(l)).find((e) =>
    e.event === "message"
  );
  assert.equal(message?.text, EVIL);
});

Deno.test("the connected line says how the peers met: the path kind and the peer's end", () => {
  const line = narrate({
    event: "connected",
    peer: "bob",
    transport: "udp",
    ms: 412,
    role: "initiator",
    remote: { transport: "udp", address: "198.18.0.2", port: 40123 },
    path: "punched",
  });
  assert.match(line ?? "", /^connected to bob over UDP, punched path to 198\.18\.0\.2:40123 /);
});
