/**
 * One peer of `punch_test.ts`, run inside a lab namespace (`ip netns exec mpl-a deno run -A
 * tests/natlab/punch_peer.ts …`). It talks JSON lines with the test:
 *
 * 1. listens on 0.0.0.0:0, learns its mapping from STUN over the listener's own socket, writes
 *    `{"key", "candidates"}` (a `host` candidate and the `srflx` one); with `--transport tcp`
 *    it listens on TCP, and the `srflx` candidate is the STUN address with the listener's port,
 *    as a TCP terminal announces it (a port-preserving NAT keeps it); with `--family 6` it
 *    listens on [::]:0 (UDP or TCP) and announces only its IPv6 `host` candidate: the lab routes
 *    IPv6 without NAT66, so a STUN mapping would be the same address;
 * 2. reads the other peer's line from stdin and punches to it (window `--window` ms);
 * 3. writes `{"connected": true, "path", "role", "ms", "local", "remote"}` (TCP: and `"via"`) or
 *    `{"connected": false, "code", "message", "ms"}` (and exits 0 either way);
 * 4. when connected: `--chat` sends one line and writes `{"chat": <what came back>}`;
 *    `--send MB` sends MB mebibytes of random bytes, `--receive MB` takes them; both write
 *    `{"sha256", "bytes", "ms"}`.
 *
 * Arguments: `--stun HOST:PORT --name NAME [--transport udp|tcp] [--family 4|6] [--window MS]
 * [--chat] [--send MB | --receive MB]`.
 */
import { createHash } from "node:crypto";
import { PeerError } from "../../src/errors.ts";
import { fromBase64, toBase64 } from "../../src/message/base64.ts";
import { generateEd25519 } from "../../src/message/keys.ts";
import { TcpTransport } from "../../src/peer/tcp_transport.ts";
import type { PeerListener } from "../../src/peer/types.ts";
import type { PunchCandidate } from "../../src/peer/types.ts";
import { UdpTransport } from "../../src/peer/udp_transport.ts";
import { StunAddress } from "../../src/terminal/stun.ts";

function arg(name: string): string | undefined {
  const i = Deno.args.indexOf(`--${name}`);
  return i < 0 ? undefined : Deno.args[i + 1] ?? "";
}

const encoder = new TextEncoder();
function say(value: unknown): void {
  Deno.stdout.writeSync(encoder.encode(JSON.stringify(value) + "\n"));
}

async function readLine(): Promise<string> {
  const decoder = new TextDecoder();
  let text = "";
  const buf = new Uint8Array(4096);
  while (!text.includes("\n")) {
    const n = await Deno.stdin.read(buf);
    if (n === null) break;
    text += decoder.decode(buf.subarray(0, n));
  }
  return text.split("\n")[0]!;
}

/**
 * The `host` candidate: the first non-loopback IPv4 address of this namespace, or with IPv6 the
 * first address that is neither loopback nor link-local (the lab's 2001:db8:4d50::/48).
 */
function hostAddress(family: "IPv4" | "IPv6"): string {
  const found = Deno.networkInterfaces().find((i) =>
    i.family === family &&
    (family === "IPv4" ? !i.address.startsWith("127.") : i.address !== "::1" &&
      !/^fe[89ab]/i.test(i.address))
  );
  return found?.address ?? (family === "IPv4" ? "127.0.0.1" : "::1");
}

const name = arg("name") ?? "peer";
const keys = await generateEd25519();
const identity = { userId: name, publicKey: keys.publicKey, privateKey: keys.privateKey };
const transport = arg("transport") === "tcp" ? "tcp" : "udp";
const v6 = arg("family") === "6";
const any = { address: v6 ? "::" : "0.0.0.0", port: 0 };
let listener: PeerListener;
let srflx: { address: string; port: number } | undefined;
if (v6) {
  const t = transport === "tcp" ? new TcpTransport() : new UdpTransport();
  listener = await t.listen(any, { identity });
} else if (transport === "tcp") {
  listener = await new TcpTransport().listen(any, { identity });
  const found = await new StunAddress([arg("stun")!]).query();
  srflx = { address: found.address, port: listener.endpoint.port };
} else {
  listener = await new UdpTransport().listen(any, { identity });
  srflx = await new StunAddress([arg("stun")!], { socket: listener.stunSocket!() }).query();
}
const candidates: PunchCandidate[] = [
  {
    transport,
    address: hostAddress(v6 ? "IPv6" : "IPv4"),
    port: listener.endpoint.port,
    kind: "host",
  },
];
if (srflx && (srflx.address !== candidates[0]!.address || srflx.port !== candidates[0]!.port)) {
  candidates.push({ transport, address: srflx.address, port: srflx.port, kind: "srflx" });
}
say({ key: toBase64(keys.publicKey), candidates });

const peer = JSON.parse(await readLine()) as { key: string; candidates: PunchCandidate[] };
const started = performance.now();
const windowMs = Number(arg("window") ?? 4000);
try {
  const result = await listener.punch!({
    peerKey: fromBase64(peer.key),
    candidates: peer.candidates,
    windowMs,
  });
  say({
    connected: true,
    path: result.path,
    role: result.role,
    ms: Math.round(performance.now() - started),
    local: result.local,
    remote: result.remote,
    ...(result.via ? { via: result.via } : {}),
  });
  const link = result.link;
  if (Deno.args.includes("--chat")) {
    await link.send(encoder.encode(`hello from ${name}`));
    const got = await link.receive();
    say({ chat: got ? new TextDecoder().decode(got) : null });
  }
  const sendMb = arg("send");
  const receiveMb = arg("receive");
  if (sendMb !== undefined) {
    const total = Number(sendMb) * 1024 * 1024;
    const hash = createHash("sha256");
    const t0 = performance.now();
    const chunk = new Uint8Array(64 * 1024);
    for (let sent = 0; sent < total; sent += chunk.length) {
      crypto.getRandomValues(chunk);
      const part = chunk.subarray(0, Math.min(chunk.length, total - sent));
      hash.update(part);
      await link.send(part);
    }
    const done = await link.receive(); // the receiver says when it has everything
    say({
      sha256: hash.digest("hex"),
      bytes: total,
      ms: Math.round(performance.now() - t0),
      ack: done ? new TextDecoder().decode(done) : null,
    });
  } else if (receiveMb !== undefined) {
    const total = Number(receiveMb) * 1024 * 1024;
    const hash = createHash("sha256");
    const t0 = performance.now();
    let got = 0;
    const into = new Uint8Array(256 * 1024);
    while (got < total) {
      const m = await link.receive({ into });
      if (!m) break;
      hash.update(m);
      got += m.length;
    }
    await link.send(encoder.encode("done"));
    say({ sha256: hash.digest("hex"), bytes: got, ms: Math.round(performance.now() - t0) });
  }
  await link.close();
} catch (err) {
  say({
    connected: false,
    code: err instanceof PeerError ? err.code : "?",
    message: (err as Error).message,
    ms: Math.round(performance.now() - started),
  });
}
await listener.close();
