/**
 * One end of the paths part of `scripts/bench-nat` (`nat_paths.ts`), run inside a NAT lab
 * namespace (`ip netns exec mpl-a deno run … nat_paths_peer.ts …`). It talks JSON lines with the
 * bench on stdin / stdout:
 *
 * 1. listens on UDP 0.0.0.0:0 (a mailpeer `UdpTransport` listener) and learns the NAT's mapping
 *    of that socket by STUN over it; with `--map GATEWAY,URL` asks router A for a UDP port
 *    mapping of it (`SessionPortMapper`: PCP, NAT-PMP, UPnP IGD); with `--turn` allocates a TURN
 *    relay on it (the server and credentials in `$MAILPEER_BENCH_TURN`, JSON, so that the
 *    password is on no command line); writes `{"hello": {key, host, port, srflx, mapped?,
 *    relayed?}}`: the bench makes each side's candidate list from both hellos;
 * 2. reads `{"plan": {peerKey, candidates, staggerMs, windowMs, pings, raw?, stream?}}`;
 * 3. with `raw`: raw UDP through the TURN relay, before the relay serves the listener (the
 *    baseline of the relayed stream): `receive` (the relay's owner) lets the peer's address in,
 *    binds a channel to the first source that sends through it and counts what it relays;
 *    `send` blasts `stream` MiB of 1,200-byte datagrams from a socket of its own to the relayed
 *    address as fast as `send()` returns, nothing sent again; writes `{"raw": {…}}`;
 * 4. attaches the relay to the listener (with `--turn`), writes `{"ready": true}`, reads
 *    `{"start": {at}}` (wall-clock ms, the same instant for both ends), waits for it and punches
 *    (`listener.punch()` with the plan's candidates and stagger); writes `{"punch": {…}}`;
 * 5. sends one small message over the link at once and writes `{"first": {at, ms}}` when the
 *    peer's first message arrives (ms from the common start: time to first byte); then `pings`
 *    round trips of a 32-byte message (the controlling end asks, the other answers), and with
 *    `stream` the sender (`stream.role`) sends that many MiB over the reliable stream and the
 *    receiver answers "done"; writes `{"link": {…}}` and `{"done": true}`.
 *
 * Times that span both processes are wall-clock milliseconds (`performance.timeOrigin +
 * performance.now()`): both ends run on the same machine and share that clock.
 *
 * Arguments: `--stun HOST:PORT --name NAME [--turn] [--map GATEWAY,URL]`.
 *
 * @module
 */
import { PeerError } from "../../src/errors.ts";
import { fromBase64, toBase64 } from "../../src/message/base64.ts";
import type { Endpoint } from "../../src/message/types.ts";
import { generateEd25519 } from "../../src/message/keys.ts";
import { autoAesGcmEngine } from "../../src/peer/aes_gcm.ts";
import type { ReliableLink } from "../../src/peer/reliable_link.ts";
import { TurnClient, type TurnServer } from "../../src/peer/turn_client.ts";
import type { PeerLink } from "../../src/peer/types.ts";
import type { PunchCandidate, PunchResult } from "../../src/peer/types.ts";
import { DEFAULT_MAX_DATAGRAM_BYTES, UdpTransport } from "../../src/peer/udp_transport.ts";
import { SessionPortMapper } from "../../src/terminal/port_mapping/session_port_mapper.ts";
import { StunAddress } from "../../src/terminal/stun.ts";
import { arg } from "./args.ts";

const MiB = 1024 * 1024;
const NAME = arg("name") ?? "peer";
const STUN = arg("stun");
if (!STUN) throw new TypeError("--stun HOST:PORT is required");
const TURN = Deno.args.includes("--turn");
const MAP = arg("map")?.split(",");

/** Raw datagram kinds (first byte). */
const HOLE = 1, DATA = 2, END = 3, REPORT = 4;
/** Retransmission interval of the hole and end datagrams, ms. */
const RESEND_MS = 50;
/** Raw UDP gives up when no hole opened, no data came or no report came in this long, ms. */
const RAW_TIMEOUT_MS = 15_000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const wall = () => performance.timeOrigin + performance.now();
const say = (value: unknown) => {
  const bytes = encoder.encode(JSON.stringify(value) + "\n");
  for (let at = 0; at < bytes.length;) at += Deno.stdout.writeSync(bytes.subarray(at));
};

/** Lines of stdin, one at a time. */
class Lines {
  #buffer = "";
  readonly #reader = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).getReader();

  async next<T>(): Promise<T> {
    while (!this.#buffer.includes("\n")) {
      const { value, done } = await this.#reader.read();
      if (done) throw new Error("stdin ended before the bench's next line");
      this.#buffer += value;
    }
    const i = this.#buffer.indexOf("\n");
    const line = this.#buffer.slice(0, i);
    this.#buffer = this.#buffer.slice(i + 1);
    return JSON.parse(line) as T;
  }
}

interface Plan {
  peerKey: string;
  candidates: PunchCandidate[];
  staggerMs: number;
  windowMs: number;
  pings: number;
  /** Raw UDP through the relay first: `receive` on the relay's owner, `send` on the other. */
  raw?: { role: "send" | "receive"; relayed?: Endpoint; peerAddress?: string };
  stream?: { role: "send" | "receive"; mib: number };
}

/** The first non-loopback IPv4 address of this namespace. */
function hostAddress(): string {
  return Deno.networkInterfaces().find((i) => i.family === "IPv4" && !i.address.startsWith("127."))
    ?.address ?? "127.0.0.1";
}

/** Calls `fn` now and every `ms` until the returned function is called. */
function every(ms: number, fn: () => Promise<void>): () => void {
  fn().catch(() => {});
  const id = setInterval(() => fn().catch(() => {}), ms);
  return () => clearInterval(id);
}

/** Rejects with `what` after `ms` unless `promise` settles first. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} in ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, limit]);
  } finally {
    clearTimeout(timer);
  }
}

interface Counted {
  bytes: number;
  datagrams: number;
  firstAt: number;
  lastAt: number;
}

/** The relay's owner: lets the sender in, binds a channel to it, counts what it relays. */
async function rawReceive(turn: TurnClient, peerAddress: string): Promise<unknown> {
  await turn.permit(peerAddress);
  const counted: Counted = { bytes: 0, datagrams: 0, firstAt: 0, lastAt: 0 };
  const reported = Promise.withResolvers<void>();
  let bound: Promise<number> | undefined;
  let channel: number | undefined;
  const off = turn.onData((from, bytes) => {
    const kind = bytes[0];
    if (kind === DATA) {
      if (counted.datagrams === 0) counted.firstAt = wall();
      counted.lastAt = wall();
      counted.bytes += bytes.length;
      counted.datagrams++;
    } else if (kind === HOLE) {
      // ChannelData from here on, as the listener's link gets once its handshake starts.
      bound ??= turn.bindChannel(from);
      bound.then((n) => {
        channel = n;
        return turn.send(from, Uint8Array.of(HOLE));
      }).catch(() => {});
    } else if (kind === END) {
      const report = encoder.encode(JSON.stringify(counted));
      const reply = new Uint8Array(1 + report.length);
      reply[0] = REPORT;
      reply.set(report, 1);
      turn.send(from, reply).catch(() => {});
      reported.resolve();
    }
  });
  try {
    await within(reported.promise, RAW_TIMEOUT_MS * 2, "no raw datagrams came through the relay");
    return { role: "receiver", channel, ...counted };
  } finally {
    off();
  }
}

/** The other end: from a socket of its own, blasts datagrams to the relayed address. */
async function rawSend(relayed: Endpoint, total: number): Promise<unknown> {
  const conn = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port: 0 });
  const heard = Promise.withResolvers<void>();
  const reported = Promise.withResolvers<Counted>();
  const to: Deno.NetAddr = { transport: "udp", hostname: relayed.address, port: relayed.port };
  const reading = (async () => {
    for (;;) {
      let bytes: Uint8Array;
      try {
        [bytes] = await conn.receive();
      } catch {
        return; // closed
      }
      if (bytes[0] === HOLE) heard.resolve();
      if (bytes[0] === REPORT) reported.resolve(JSON.parse(decoder.decode(bytes.subarray(1))));
    }
  })();
  try {
    const stopHole = every(RESEND_MS, async () => void await conn.send(Uint8Array.of(HOLE), to));
    try {
      await within(heard.promise, RAW_TIMEOUT_MS, "the relay's owner did not answer");
    } finally {
      stopHole();
    }
    const datagram = new Uint8Array(DEFAULT_MAX_DATAGRAM_BYTES);
    crypto.getRandomValues(datagram);
    datagram[0] = DATA;
    const startedAt = wall();
    let sent = 0;
    for (; sent < total; sent += datagram.length) await conn.send(datagram, to);
    const sentAt = wall();
    const stopEnd = every(RESEND_MS, async () => void await conn.send(Uint8Array.of(END), to));
    try {
      const received = await within(reported.promise, RAW_TIMEOUT_MS, "no report came");
      return { role: "sender", sentBytes: sent, startedAt, sentAt, received };
    } finally {
      stopEnd();
    }
  } finally {
    conn.close();
    await reading;
  }
}

/** Time to first byte, round trips, and the stream, over a punched link. */
async function overLink(result: PunchResult, plan: Plan, startAt: number): Promise<void> {
  const link: PeerLink = result.link;
  const first = link.receive();
  await link.send(encoder.encode(`first from ${NAME}`));
  await first;
  const firstAt = wall();
  say({ first: { at: firstAt, ms: firstAt - startAt } });
  const rtts: number[] = [];
  const ping = new Uint8Array(32);
  for (let i = 0; i < plan.pings; i++) {
    if (result.role === "controlling") {
      const t = performance.now();
      await link.send(ping);
      await link.receive();
      rtts.push(performance.now() - t);
    } else {
      await link.send((await link.receive()) ?? ping);
    }
  }
  const report: Record<string, unknown> = { rtts };
  if (plan.stream?.role === "send") {
    const total = plan.stream.mib * MiB;
    const message = new Uint8Array(MiB);
    crypto.getRandomValues(message.subarray(0, 65536));
    const startedAt = wall();
    const done = link.receive(); // the receiver says when it has every byte
    for (let sent = 0; sent < total; sent += MiB) {
      await link.send(message.subarray(0, Math.min(MiB, total - sent)));
    }
    const ack = await done;
    const stats = (link as Partial<ReliableLink>).stats;
    report.stream = {
      role: "sender",
      bytes: total,
      startedAt,
      doneAt: wall(),
      ack: ack ? decoder.decode(ack) : null,
      ...(stats ? { stats } : {}),
    };
  } else if (plan.stream?.role === "receive") {
    const total = plan.stream.mib * MiB;
    const into = new Uint8Array(256 * 1024);
    let got = 0;
    while (got < total) {
      const m = await link.receive({ into });
      if (!m) break;
      got += m.length;
    }
    await link.send(encoder.encode("done"));
    report.stream = { role: "receiver", bytes: got, lastAt: wall() };
  }
  say({ link: report });
  await link.close();
}

const lines = new Lines();
const keys = await generateEd25519();
const identity = { userId: NAME, publicKey: keys.publicKey, privateKey: keys.privateKey };
const listener = await new UdpTransport().listen({ address: "0.0.0.0", port: 0 }, { identity });
const mapper = MAP
  ? new SessionPortMapper({
    gateway: MAP[0]!,
    upnpUrl: MAP[1]!,
    protocols: ["pcp", "nat-pmp", "upnp"], // what port_mapping = "auto" reads as
  })
  : undefined;
let turn: TurnClient | undefined;
let attached = false;
try {
  const srflx = await new StunAddress([STUN], { socket: listener.stunSocket() }).query();
  let mappingError: string | undefined;
  const mapped = await mapper?.map({
    transport: "udp",
    internalPort: listener.endpoint.port,
    lifetimeS: 600,
  }).catch((err) => void (mappingError = (err as Error).message));
  if (TURN) {
    const server = JSON.parse(Deno.env.get("MAILPEER_BENCH_TURN") ?? "null") as TurnServer | null;
    if (!server) throw new TypeError("--turn needs $MAILPEER_BENCH_TURN (url, user, password)");
    turn = await TurnClient.allocate(server, { socket: listener.stunSocket() });
  }
  say({
    hello: {
      key: toBase64(keys.publicKey),
      host: hostAddress(),
      port: listener.endpoint.port,
      srflx: { address: srflx.address, port: srflx.port },
      ...(mapped ? { mapped: mapped.external, mapping: mapper?.mapping?.protocol } : {}),
      ...(mappingError ? { mappingError } : {}),
      ...(turn ? { relayed: turn.relayed } : {}),
      aes: autoAesGcmEngine(),
    },
  });
  const { plan } = await lines.next<{ plan: Plan }>();
  if (plan.raw?.role === "receive" && turn) {
    say({
      raw: await rawReceive(turn, plan.raw.peerAddress!).catch((e) => ({ error: String(e) })),
    });
  } else if (plan.raw?.role === "send") {
    say({
      raw: await rawSend(plan.raw.relayed!, (plan.stream?.mib ?? 1) * MiB)
        .catch((e) => ({ error: String(e) })),
    });
  }
  if (turn) {
    listener.attachRelay(turn);
    attached = true;
  }
  say({ ready: true });
  const { start } = await lines.next<{ start: { at: number } }>();
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, start.at - wall())));
  const t0 = wall();
  let result: PunchResult | undefined;
  try {
    result = await listener.punch!({
      peerKey: fromBase64(plan.peerKey),
      candidates: plan.candidates,
      windowMs: plan.windowMs,
      staggerMs: plan.staggerMs,
    });
  } catch (err) {
    say({
      punch: {
        connected: false,
        code: err instanceof PeerError ? err.code : "?",
        message: (err as Error).message,
        ms: wall() - start.at,
      },
    });
  }
  if (result) {
    say({
      punch: {
        connected: true,
        path: result.path,
        role: result.role,
        ms: wall() - start.at,
        lateStartMs: t0 - start.at,
        local: result.local,
        remote: result.remote,
      },
    });
    await overLink(result, plan, start.at);
  }
} finally {
  // The listener owns an attached relay and releases it when it closes.
  if (turn && !attached) await turn.close();
  await listener.close();
  await mapper?.close();
  say({ done: true });
}
