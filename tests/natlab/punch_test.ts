// UDP hole punching through the real NAT lab (scripts/natlab/natlab.sh, docs/nat.md): for every
// pair of NAT types, two peers (tests/natlab/punch_peer.ts, one in mpl-a, one in mpl-b) learn
// their mapping from the lab's coturn over their listener's socket, swap candidates through this
// test, punch, and chat; then a 20 MiB file crosses a port-restricted pair with 5 % of datagrams
// dropped by router A. Ignored without a running lab; this file changes the NAT types and the
// loss, and puts back port-restricted / port-restricted and no loss at the end.
import assert from "node:assert/strict";

const REPO = new URL("../../", import.meta.url).pathname;
const NATLAB = `${REPO}scripts/natlab/natlab.sh`;
const PEER = `${REPO}tests/natlab/punch_peer.ts`;

interface Lab {
  namespaces: { rta: string };
  hosts: Record<"a" | "b", { ns: string; ip: string }>;
  coturn: { host: string; port: number };
}

/** natlab.json of a running lab ($NATLAB_DIR, else <repo>/.natlab), if this user may read it. */
function runningLab(): Lab | undefined {
  const dir = Deno.env.get("NATLAB_DIR") ?? `${REPO}.natlab`;
  try {
    return JSON.parse(Deno.readTextFileSync(`${dir}/natlab.json`));
  } catch {
    return undefined;
  }
}
const LAB = runningLab();
if (!LAB && Deno.env.get("MAILPEER_REQUIRE_NATLAB")) {
  throw new Error(
    "MAILPEER_REQUIRE_NATLAB is set but the NAT lab is not running: scripts/test starts it",
  );
}

const TYPES = ["none", "full-cone", "restricted", "port-restricted", "symmetric"] as const;
/** The lab facts (docs/natlab.md): only these pairs cannot be punched. */
const UNPUNCHABLE = new Set([
  "port-restricted/symmetric",
  "symmetric/port-restricted",
  "symmetric/symmetric",
]);
const WINDOW_MS = 4_000;

async function natlab(...args: string[]): Promise<void> {
  const out = await new Deno.Command("bash", { args: [NATLAB, ...args], stderr: "piped" })
    .output();
  assert.equal(out.code, 0, `natlab.sh ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
}

/** One punch_peer.ts in a lab namespace, spoken to in JSON lines. */
class Peer {
  #child: Deno.ChildProcess;
  #reader: ReadableStreamDefaultReader<string>;
  #buffer = "";
  #stdin: WritableStreamDefaultWriter<Uint8Array>;

  constructor(ns: string, name: string, extra: string[], killAfterMs: number) {
    const lab = LAB!;
    this.#child = new Deno.Command("ip", {
      args: [
        "netns",
        "exec",
        ns,
        Deno.execPath(),
        "run",
        "-A",
        "--quiet",
        PEER,
        "--stun",
        `${lab.coturn.host}:${lab.coturn.port}`,
        "--name",
        name,
        "--window",
        String(WINDOW_MS),
        ...extra,
      ],
      cwd: REPO,
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
      signal: AbortSignal.timeout(killAfterMs), // a safety net only: the peer ends by itself
    }).spawn();
    this.#reader = this.#child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    this.#stdin = this.#child.stdin.getWriter();
  }

  async line<T = Record<string, unknown>>(): Promise<T> {
    while (!this.#buffer.includes("\n")) {
      const { value, done } = await this.#reader.read();
      if (done) throw new Error(`peer ended early; got ${JSON.stringify(this.#buffer)}`);
      this.#buffer += value;
    }
    const i = this.#buffer.indexOf("\n");
    const line = this.#buffer.slice(0, i);
    this.#buffer = this.#buffer.slice(i + 1);
    return JSON.parse(line) as T;
  }

  async write(line: unknown): Promise<void> {
    await this.#stdin.write(new TextEncoder().encode(JSON.stringify(line) + "\n"));
    await this.#stdin.close();
  }

  async end(): Promise<number> {
    this.#reader.releaseLock();
    await this.#child.stdout.cancel().catch(() => {});
    return (await this.#child.status).code;
  }
}

interface Hello {
  key: string;
  candidates: { address: string; port: number; kind: string }[];
}

interface Outcome {
  connected: boolean;
  path?: string;
  role?: string;
  code?: string;
  message?: string;
  ms: number;
  remote?: { address: string; port: number };
}

/** Starts both peers, swaps their candidates, returns both outcomes (and runs `after`). */
async function punchPair(
  extra: { a: string[]; b: string[] },
  killAfterMs: number,
  after?: (a: Peer, b: Peer) => Promise<void>,
): Promise<{ a: Outcome; b: Outcome; hello: { a: Hello; b: Hello } }> {
  const lab = LAB!;
  const a = new Peer(lab.hosts.a.ns, "alice", extra.a, killAfterMs);
  const b = new Peer(lab.hosts.b.ns, "bob", extra.b, killAfterMs);
  try {
    const [helloA, helloB] = await Promise.all([a.line<Hello>(), b.line<Hello>()]);
    await Promise.all([a.write(helloB), b.write(helloA)]);
    const [outA, outB] = await Promise.all([a.line<Outcome>(), b.line<Outcome>()]);
    if (after && outA.connected && outB.connected) await after(a, b);
    return { a: outA, b: outB, hello: { a: helloA, b: helloB } };
  } finally {
    const codes = await Promise.all([a.end(), b.end()]);
    assert.deepEqual(codes, [0, 0], "both peers exit by themselves");
  }
}

function report(text: string): void {
  Deno.stderr.writeSync(new TextEncoder().encode(text + "\n"));
}

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
          { a: ["--chat"], b: ["--chat"] },
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
            // Behind a symmetric NAT a peer is seen on a port it never announced: the other
            // side answered the source it saw.
            for (
              const [nat, seer, announced] of [[natA, b, hello.a], [natB, a, hello.b]] as const
            ) {
              if (nat !== "symmetric") continue;
              const seen = seer.remote!;
              assert.ok(
                !announced.candidates.some((c) =>
                  c.address === seen.address && c.port === seen.port
                ),
                `${pair}: ${JSON.stringify(seen)} is not among ${
                  JSON.stringify(announced.candidates)
                }`,
              );
            }
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
        { a: ["--send", "20"], b: ["--receive", "20"] },
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
