/**
 * What a person reads while a terminal works: plain words, no FIG. 4 step codes (those stay in
 * `--json` and the demo), no "0ms so far", and an acceptor's connect time that does not count
 * its whole standby. The sink's clock is injected; nothing waits.
 */
import assert from "node:assert/strict";
import { cliSink } from "../../src/cli/output.ts";
import type { MailpeerEvent } from "../../src/events.ts";

/** What `cliSink` writes to stderr for `events`, each at its time on the sink's clock. */
function narrated(
  events: [number, MailpeerEvent][],
  options: { steps?: boolean; json?: boolean } = {},
): string[] {
  const lines: string[] = [];
  const out = options.json ? Deno.stdout : Deno.stderr;
  const write = out.writeSync;
  let now = 0;
  out.writeSync = (b: Uint8Array) => (lines.push(new TextDecoder().decode(b).trimEnd()), b.length);
  try {
    const sink = cliSink({ json: options.json ?? false, steps: options.steps, now: () => now });
    for (const [at, event] of events) {
      now = at;
      sink(event);
    }
  } finally {
    out.writeSync = write;
  }
  return lines;
}

const endpoint = { transport: "tcp" as const, address: "192.0.2.7", port: 4100 };

Deno.test("narration has no step codes; the demo and --json keep them", () => {
  const events: [number, MailpeerEvent][] = [
    [0, { event: "listening", endpoint }],
    [1, {
      event: "request-sent",
      to: ["host@lan.test"],
      sessionId: "abcdef0123",
      endpoints: [],
      candidates: [],
    }],
  ];
  const plain = narrated(events);
  assert.deepEqual(plain, [
    "listens for peers at 192.0.2.7:4100/tcp",
    "mailed a sealed request to host@lan.test (session abcdef01…)",
  ]);
  assert.ok(narrated(events, { steps: true }).every((l) => /^S1[02] /.test(l)));
  const json = narrated(events, { json: true }).map((l) => JSON.parse(l).step);
  assert.deepEqual(json, ["S10", "S12"]);
});

Deno.test("waiting for the reply says how long it may take, then how long so far and how long is left", () => {
  const waiting = { event: "waiting", for: "reply", sinceMs: 10_000, untilMs: 70_000 } as const;
  const lines = narrated([[10_000, waiting], [15_000, waiting], [75_000, waiting]]);
  assert.deepEqual(lines, [
    "waits for the host's reply mail (up to 1m00s)",
    "still waits for the host's reply mail: 5s so far, 55s left",
    "still waits for the host's reply mail: 1m05s so far, less than a second left",
  ]);
});

Deno.test("an acceptor's connected line says how long after standby began or the introduction, not since the start", () => {
  const connected = {
    event: "connected",
    peer: "alice",
    transport: "tcp",
    ms: 61_234, // from the terminal's start: the mail round trip and the whole standby
    role: "acceptor",
    path: "host",
    remote: endpoint,
  } as const;
  const standby = { event: "standby", endpoint, untilMs: 100_000 } as const;
  const [standing, afterStandby] = narrated([[40_000, standby], [42_200, connected]]);
  assert.equal(
    standing,
    `stands by: waits up to 1m00s for a peer to connect to 192.0.2.7:4100/tcp`,
  );
  assert.match(afterStandby!, /^alice connected over TCP, host path .*, 2\.2s into standby$/);
  const introduction: MailpeerEvent = {
    event: "introduction",
    peer: "alice",
    candidates: [],
    punchStart: 50_000,
    punchEnd: 60_000,
  };
  const lines = narrated([[40_000, standby], [49_800, introduction], [50_100, connected]]);
  assert.equal(lines[1], "was introduced to alice by the host: 0 candidates, punching for 10s");
  assert.match(lines[2]!, /, 300ms after the host introduced alice$/);
  assert.ok(lines.every((l) => !l.includes("1m01s") && !l.includes("61.2s")), lines.join("\n"));
});

Deno.test("an initiator's connected line counts from its start and says so", () => {
  const [line] = narrated([[0, {
    event: "connected",
    peer: "bob",
    transport: "udp",
    ms: 2_200,
    role: "initiator",
  }]]);
  assert.equal(line, "connected to bob over UDP (CONNECT, CONNECT+ACK, ACK), 2.2s after the start");
});

Deno.test("a reply from a group's role holder is narrated with the member and its epoch", () => {
  const role = { holder: "anna", epoch: 3, until: 600_000, address: "host@lan.test" };
  const lines = narrated([
    [0, { event: "reply-received", from: "host@lan.test", peers: [], ms: 1500, role }],
    [0, { event: "reply-received", from: "host@lan.test", peers: [], ms: 1500 }],
    [0, { event: "reply-sent", to: "bob@lan.test", userId: "bob", peers: 1, role }],
  ]);
  assert.deepEqual(lines, [
    "got the host's reply after 1.5s (answered by member anna, host role epoch 3): no peers yet",
    "got the host's reply after 1.5s: no peers yet",
    "mailed bob a signed reply with 1 peer, saying it holds the host role (epoch 3)",
  ]);
});
