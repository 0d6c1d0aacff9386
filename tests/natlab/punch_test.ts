// UDP hole punching through the real NAT lab (scripts/natlab/natlab.sh, docs/nat.md): for every
// pair of NAT types, two peers (tests/natlab/punch_peer.ts, one in mpl-a, one in mpl-b) learn
// their mapping from the lab's coturn over their listener's socket, swap candidates through this
// test, punch, and chat; then a 20 MiB file crosses a port-restricted pair with 5 % of datagrams
// dropped by router A. Ignored without a running lab; this file changes the NAT types and the
// loss, and puts back port-restricted / port-restricted and no loss at the end.
import assert from "node:assert/strict";
import {
  assertSymmetricSeenElsewhere,
  LAB,
  natlab,
  punchPair,
  report,
  TYPES,
} from "./punch_pair.ts";

/** The lab facts (docs/natlab.md): only these pairs cannot be punched. */
const UNPUNCHABLE = new Set([
  "port-restricted/symmetric",
  "symmetric/port-restricted",
  "symmetric/symmetric",
]);
const WINDOW_MS = 4_000;
const WINDOW = ["--window", String(WINDOW_MS)];

Deno.test({
  name: "peers punch through every pair of NAT types the NAT lab says can be punched, and chat",
  ignore: !LAB,
  sanitizeResources: false,
  async fn() {
    const rows: string[] = [];
    const failures: string[] = [];
    for (const natA of TYPES) {
      const cells: string[] = [];
      for (const natB of TYPES) {
        await natlab("setnat", natA, natB);
        const chats: unknown[] = [];
        const { a, b, hello } = await punchPair(
          { a: [...WINDOW, "--chat"], b: [...WINDOW, "--chat"] },
          30_000,
          async (a, b) => {
            chats.push(await a.line(), await b.line());
          },
        );
        const pair = `${natA}/${natB}`;
        if (UNPUNCHABLE.has(pair)) {
          // A clear PeerError at the end of the window, on both sides: never a hang.
          for (const side of [a, b]) {
            if (side.connected || side.code !== "ETIMEOUT") {
              failures.push(`${pair}: ${JSON.stringify(side)}`);
            } else assert.match(side.message!, /^Cannot punch a hole to peer .*; use a relay/);
          }
          cells.push(`FAIL ${Math.max(a.ms, b.ms)} ms`);
        } else {
          if (!a.connected || !b.connected) failures.push(`${pair}: ${JSON.stringify({ a, b })}`);
          else {
            assert.deepEqual(chats, [{ chat: "hello from bob" }, { chat: "hello from alice" }]);
            // The other side answered the source it saw.
            assertSymmetricSeenElsewhere(pair, [natA, natB], { a, b, hello });
            cells.push(`OK ${Math.max(a.ms, b.ms)} ms`);
          }
        }
        report(`${pair}: A ${JSON.stringify(a)} B ${JSON.stringify(b)}`);
      }
      rows.push(`| **${natA}** | ${cells.join(" | ")} |`);
    }
    report(`| A \\ B | ${TYPES.join(" | ")} |\n|---|---|---|---|---|---|\n${rows.join("\n")}`);
    assert.deepEqual(failures, []);
  },
});

Deno.test({
  name: "a 20 MiB file crosses a punched port-restricted pair intact with 5 % of datagrams lost",
  ignore: !LAB,
  sanitizeResources: false,
  async fn() {
    await natlab("setnat", "port-restricted", "port-restricted");
    await natlab("loss", "5");
    try {
      const files: Record<string, unknown>[] = [];
      const { a, b } = await punchPair(
        { a: [...WINDOW, "--send", "20"], b: [...WINDOW, "--receive", "20"] },
        300_000,
        async (a, b) => {
          files.push(...await Promise.all([a.line(), b.line()]));
        },
      );
      assert.ok(a.connected && b.connected, JSON.stringify({ a, b }));
      assert.equal(a.path, "punched");
      const [sent, received] = files;
      const rules = await new Deno.Command("ip", {
        args: ["netns", "exec", LAB!.namespaces.rta, "nft", "list", "table", "ip", "natlab_loss"],
        stdout: "piped",
      }).output();
      const dropped = Number(
        /counter packets (\d+)/.exec(new TextDecoder().decode(rules.stdout))?.[1],
      );
      report(`router A dropped ${dropped} datagrams`);
      assert.ok(dropped > 1000, `the lab dropped ${dropped} datagrams`);
      report(
        `20 MiB with 5 % loss: sent ${JSON.stringify(sent)} received ${JSON.stringify(received)}`,
      );
      assert.equal(received!.bytes, 20 * 1024 * 1024);
      assert.equal(received!.sha256, sent!.sha256);
    } finally {
      await natlab("loss", "0");
    }
  },
});

Deno.test({
  name: "the lab is left at its defaults: port-restricted twice, no loss",
  ignore: !LAB,
  async fn() {
    await natlab("setnat", "port-restricted", "port-restricted");
    await natlab("loss", "0");
  },
});
