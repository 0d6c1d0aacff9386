/**
 * What the NAT lab's punch tests share (`punch_test.ts` for UDP, `tcp_punch_test.ts` for TCP):
 * the running lab, `natlab.sh`, and a pair of `punch_peer.ts` processes, one in mpl-a and one in
 * mpl-b, that swap candidates through the test and punch to each other.
 */
import assert from "node:assert/strict";

const REPO = new URL("../../", import.meta.url).pathname;
const NATLAB = `${REPO}scripts/natlab/natlab.sh`;
const PEER = `${REPO}tests/natlab/punch_peer.ts`;

/** The parts of natlab.json the punch tests read. */
export interface Lab {
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

/** The running lab; undefined without one (the lab tests are then ignored). */
export const LAB: Lab | undefined = runningLab();
if (!LAB && Deno.env.get("MAILPEER_REQUIRE_NATLAB")) {
  throw new Error(
    "MAILPEER_REQUIRE_NATLAB is set but the NAT lab is not running: scripts/test starts it",
  );
}

/** The lab's NAT types, in the order of the matrices in docs/nat.md. */
export const TYPES = ["none", "full-cone", "restricted", "port-restricted", "symmetric"] as const;

/** Runs `natlab.sh` with `args`; asserts that it succeeded. */
export async function natlab(...args: string[]): Promise<void> {
  const out = await new Deno.Command("bash", { args: [NATLAB, ...args], stderr: "piped" })
    .output();
  assert.equal(out.code, 0, `natlab.sh ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
}

/** One punch_peer.ts in a lab namespace, spoken to in JSON lines. */
export class Peer {
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

/** A peer's first line: its key and candidates. */
export interface Hello {
  key: string;
  candidates: { address: string; port: number; kind: string }[];
}

/** A peer's second line: how its punch ended. */
export interface Outcome {
  connected: boolean;
  path?: string;
  role?: string;
  code?: string;
  message?: string;
  ms: number;
  local?: { address: string; port: number };
  remote?: { address: string; port: number };
  via?: "connect" | "listener";
}

/** Starts both peers, swaps their candidates, returns both outcomes (and runs `after`). */
export async function punchPair(
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

/**
 * Behind a symmetric NAT a peer is seen on a port it never announced (its NAT's new port): for
 * each side of `pair` whose NAT is symmetric, asserts that the other side's remote is none of its
 * candidates.
 */
export function assertSymmetricSeenElsewhere(
  pair: string,
  nats: readonly [string, string],
  out: { a: Outcome; b: Outcome; hello: { a: Hello; b: Hello } },
): void {
  const sides = [[nats[0], out.b, out.hello.a], [nats[1], out.a, out.hello.b]] as const;
  for (const [nat, seer, announced] of sides) {
    if (nat !== "symmetric") continue;
    const seen = seer.remote!;
    assert.ok(
      !announced.candidates.some((c) => c.address === seen.address && c.port === seen.port),
      `${pair}: ${JSON.stringify(seen)} is not among ${JSON.stringify(announced.candidates)}`,
    );
  }
}

/** Writes a line of the test's report to stderr. */
export function report(text: string): void {
  Deno.stderr.writeSync(new TextEncoder().encode(text + "\n"));
}
