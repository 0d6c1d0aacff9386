// TCP simultaneous open through the real NAT lab (scripts/natlab/natlab.sh, docs/nat.md "TCP
// simultaneous open"): for every pair of NAT types, two peers (tests/natlab/punch_peer.ts
// --transport tcp, one in mpl-a, one in mpl-b) listen on TCP, announce a host candidate and the
// STUN address with the listener's port, swap candidates through this test, punch from their
// listeners' ports, and chat. Ignored without a running lab; this file changes the NAT types
// and puts back port-restricted / port-restricted at the end.
//
// Run it alone, holding the lab's lock (the lab is shared):
//   flock /tmp/mailpeer-natlab.lock scripts/deno test -A tests/natlab/tcp_punch_test.ts
import assert from "node:assert/strict";
import {
  assertSymmetricSeenElsewhere,
  LAB,
  natlab,
  punchPair,
  report,
  TYPES,
} from "./punch_pair.ts";

/**
 * What the lab's routers do to TCP (docs/natlab.md "NAT types"): every type but `none` keeps
 * the port and filters by address and port (conntrack), `symmetric` takes a new random port per
 * connection. So a symmetric side's SYN comes from a port the other side never dialled: it only
 * gets in where nothing filters (`none`, whose listener accepts it). These pairs cannot open.
 */
const UNOPENABLE = new Set(
  ["full-cone", "restricted", "port-restricted", "symmetric"].flatMap((t) => [
    `${t}/symmetric`,
    `symmetric/${t}`,
  ]),
);
const WINDOW_MS = 4_000;
const ARGS = ["--transport", "tcp", "--window", String(WINDOW_MS), "--chat"];

Deno.test({
  name:
    "TCP peers open a connection through every pair of NAT types whose routers let it, and chat",
  ignore: !LAB,
  sanitizeResources: false,
  async fn() {
    const rows: string[] = [];
    const failures: string[] = [];
    try {
      for (const natA of TYPES) {
        const cells: string[] = [];
        for (const natB of TYPES) {
          await natlab("setnat", natA, natB);
          const chats: unknown[] = [];
          const { a, b, hello } = await punchPair({ a: ARGS, b: ARGS }, 30_000, async (a, b) => {
            chats.push(await a.line(), await b.line());
          });
          const pair = `${natA}/${natB}`;
          const ms = Math.max(a.ms, b.ms);
          if (UNOPENABLE.has(pair)) {
            // A clear PeerError at the end of the window, on both sides: never a hang.
            for (const side of [a, b]) {
              if (
                side.connected || side.code !== "ETIMEOUT" ||
                !/^Cannot open a TCP connection to peer .*; use a relay/.test(side.message!) ||
                side.ms < WINDOW_MS || side.ms > WINDOW_MS + 2_000
              ) {
                failures.push(`${pair}: ${JSON.stringify(side)}`);
              }
            }
            cells.push(`FAIL ${ms} ms`);
          } else if (!a.connected || !b.connected) {
            failures.push(`${pair}: ${JSON.stringify({ a, b })}`);
            cells.push(`**unexpected FAIL** ${ms} ms`);
          } else {
            assert.deepEqual(chats, [{ chat: "hello from bob" }, { chat: "hello from alice" }]);
            assert.notEqual(a.role, b.role, `${pair}: one side controls`);
            // Each side's link runs from its listener's own port.
            assert.equal(a.local!.port, hello.a.candidates[0]!.port, `${pair}: A's port`);
            assert.equal(b.local!.port, hello.b.candidates[0]!.port, `${pair}: B's port`);
            assertSymmetricSeenElsewhere(pair, [natA, natB], { a, b, hello });
            // Both connects completed: a simultaneous open (S/O); else one side's listener took
            // the other's connect (L).
            const how = a.via === "connect" && b.via === "connect" ? "S/O" : "L";
            cells.push(`OK ${how} ${ms} ms`);
          }
          report(`${pair}: A ${JSON.stringify(a)} B ${JSON.stringify(b)}`);
        }
        rows.push(`| **${natA}** | ${cells.join(" | ")} |`);
      }
    } finally {
      await natlab("setnat", "port-restricted", "port-restricted");
    }
    report(`| A \\ B | ${TYPES.join(" | ")} |\n|---|---|---|---|---|---|\n${rows.join("\n")}`);
    assert.deepEqual(failures, []);
  },
});
