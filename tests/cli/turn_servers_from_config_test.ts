/** The CLI's reading of `terminal.turn_servers` for the terminal (passwords resolved). */
import assert from "node:assert/strict";
import { turnServersFromConfig } from "../../src/cli/client.ts";

Deno.test("terminal.turn_servers become TURN servers with their passwords read from env or file", async () => {
  const file = await Deno.makeTempFile();
  Deno.env.set("MAILPEER_TEST_TURN_PASSWORD", "from-env");
  try {
    await Deno.writeTextFile(file, "from-file\n");
    const servers = await turnServersFromConfig([
      {
        url: "turn:198.51.100.1:3478",
        host: "198.51.100.1",
        port: 3478,
        user: "alice",
        password: { env: "MAILPEER_TEST_TURN_PASSWORD" },
      },
      {
        url: "turn:198.51.100.2",
        host: "198.51.100.2",
        port: 3478,
        user: "bob",
        password: { file },
        realm: "example.org",
      },
    ]);
    assert.deepStrictEqual(servers, [
      { url: "turn:198.51.100.1:3478", user: "alice", password: "from-env" },
      { url: "turn:198.51.100.2", user: "bob", password: "from-file", realm: "example.org" },
    ]);
  } finally {
    Deno.env.delete("MAILPEER_TEST_TURN_PASSWORD");
    await Deno.remove(file);
  }
});
