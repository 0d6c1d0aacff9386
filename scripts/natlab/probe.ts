/**
 * probe.ts — the NAT lab's own UDP reflector and prober (see docs/natlab.md). Every mode runs in
 * one lab namespace, e.g. `ip netns exec mpl-a scripts/deno run -A scripts/natlab/probe.ts classify`.
 *
 *   serve       reflector + rendezvous on 198.18.0.10/.11, ports 3490/3491 (run in mpl-srv)
 *   classify    mapping (EIM/ADM/APDM) and filtering (EIF/ADF/APDF) behaviour of the NAT in front
 *   punch       UDP hole punching with a peer through the rendezvous
 *   stun        one STUN Binding request to coturn: the mapped address
 *   pcp-map     one PCP MAP request (RFC 6887) to a router: the external address
 *   tcp-listen  accept one TCP connection and greet it (inbound checks of port mappings)
 *   tcp-connect connect, print the greeting; exit 0 when it came
 *   udp-listen  wait for one UDP datagram (inbound checks of a firewall); exit 0 when it came
 *   udp-send    send a few UDP datagrams from an optional fixed port
 *   udp-punch   hole punching with a peer whose address is known (IPv6: no NAT, no rendezvous)
 *
 * Addresses are IP:PORT, IPv6 in brackets ([2001:db8:4d50::10]:3478).
 *
 * Wire format: one JSON object per datagram. Each mode prints one JSON line; exit 0 = success,
 * 1 = the check failed, 2 = usage.
 *
 * @module
 */

/** Defaults of the lab's topology (scripts/natlab/natlab.sh). */
const LAB = {
  server: "198.18.0.10",
  alt: "198.18.0.11",
  port: 3490,
  altPort: 3491,
} as const;

/** Timing of the probes, in milliseconds. */
const TIMING = {
  resend: 150, // a request is sent again after this long without an answer
  tries: 4, // requests per question before giving up
  straggler: 300, // how long to wait for replies from the other sockets
  register: 100, // rendezvous registration interval
  registerFor: 5000, // give up when the peer has not registered by then
  punch: 50, // PUNCH interval
  punchFor: 4000, // give up punching after this long
  linger: 400, // keep answering the peer this long after success
};

const MAX_DATAGRAM = 2048;
const enc = new TextEncoder();
const dec = new TextDecoder();

type Msg = Record<string, unknown> & { t: string };
type Addr = Deno.NetAddr;

function out(value: unknown): void {
  const bytes = enc.encode(JSON.stringify(value) + "\n");
  for (let at = 0; at < bytes.length;) at += Deno.stdout.writeSync(bytes.subarray(at));
}

function fail(message: string, code = 2): never {
  Deno.stderr.writeSync(enc.encode(`probe: ${message}\n`));
  Deno.exit(code);
}

/** IP:PORT, or [IPv6]:PORT. */
const key = (a: { hostname: string; port: number }): string =>
  a.hostname.includes(":") ? `[${a.hostname}]:${a.port}` : `${a.hostname}:${a.port}`;

/** Parses IP:PORT or [IPv6]:PORT. */
function parseHostPort(s: string): Addr {
  const i = s.lastIndexOf(":");
  const port = Number(s.slice(i + 1));
  let host = s.slice(0, i);
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  if (i <= 0 || !host || !Number.isInteger(port) || port <= 0 || port > 65535) {
    fail(`Cannot parse '${s}': expected IP:PORT or [IPv6]:PORT`);
  }
  return { transport: "udp", hostname: host, port };
}

/** The wildcard address of the family of `ip`. */
const anyFor = (ip: string): string => (ip.includes(":") ? "::" : "0.0.0.0");

/** --name value options after the mode; a bare word is kept as a positional. */
function parseArgs(args: string[]): { opts: Map<string, string>; rest: string[] } {
  const opts = new Map<string, string>();
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a.startsWith("--")) {
      const v = args[i + 1];
      if (v === undefined) fail(`Cannot parse ${a}: it needs a value`);
      opts.set(a.slice(2), v);
      i++;
    } else rest.push(a);
  }
  return { opts, rest };
}

const num = (opts: Map<string, string>, name: string, dflt: number): number => {
  const v = opts.get(name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n)) fail(`Cannot parse --${name} ${v}: not a number`);
  return n;
};

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function decode(data: Uint8Array): Msg | null {
  try {
    const m = JSON.parse(dec.decode(data));
    return m && typeof m === "object" && typeof m.t === "string" ? m as Msg : null;
  } catch {
    return null;
  }
}

/** A UDP socket with a background receive loop that hands every message to `onMessage`. */
class Socket {
  readonly conn: Deno.DatagramConn;
  onMessage: (m: Msg, from: Addr) => void = () => {};
  #closed = false;

  constructor(hostname: string, port: number) {
    this.conn = Deno.listenDatagram({ transport: "udp", hostname, port });
    this.#loop();
  }

  get local(): Addr {
    return this.conn.addr as Addr;
  }

  async #loop(): Promise<void> {
    while (!this.#closed) {
      let got: [Uint8Array, Deno.Addr];
      try {
        got = await this.conn.receive(new Uint8Array(MAX_DATAGRAM));
      } catch {
        return; // closed
      }
      const m = decode(got[0]);
      if (m) this.onMessage(m, got[1] as Addr);
    }
  }

  send(m: Msg, to: Addr): void {
    this.conn.send(enc.encode(JSON.stringify(m)), { ...to, transport: "udp" }).catch(() => {});
  }

  close(): void {
    this.#closed = true;
    this.conn.close();
  }
}

// ---------------------------------------------------------------------------------------
// serve: reflector + rendezvous
// ---------------------------------------------------------------------------------------

function serve(opts: Map<string, string>): Promise<never> {
  const ips = (opts.get("ips") ?? `${LAB.server},${LAB.alt}`).split(",");
  const ports = (opts.get("ports") ?? `${LAB.port},${LAB.altPort}`).split(",").map(Number);
  const sockets = new Map<string, Socket>();
  // session -> name -> observed address
  const sessions = new Map<string, Map<string, string>>();
  for (const ip of ips) {
    for (const port of ports) {
      const s = new Socket(ip, port);
      const via = `${ip}:${port}`;
      sockets.set(via, s);
      s.onMessage = (m, from) => {
        const seen = key(from);
        if (m.t === "reflect") {
          s.send({ t: "seen", id: m.id, seen, via }, from);
          // Answers from sockets the client has never sent to: the filtering test.
          for (const other of Array.isArray(m.ask) ? m.ask : []) {
            sockets.get(String(other))?.send(
              { t: "seen", id: m.id, seen, via: String(other) },
              from,
            );
          }
        } else if (m.t === "register") {
          const session = String(m.session);
          let names = sessions.get(session);
          if (!names) sessions.set(session, names = new Map());
          names.set(String(m.name), seen);
          s.send(
            { t: "registered", id: m.id, seen, peer: names.get(String(m.peer)) ?? null },
            from,
          );
        }
      };
    }
  }
  out({ t: "ready", sockets: [...sockets.keys()] });
  return new Promise<never>(() => {});
}

// ---------------------------------------------------------------------------------------
// classify: RFC 4787 mapping and filtering behaviour
// ---------------------------------------------------------------------------------------

/** ask: send `m` to `to` until a reply with the same id arrives from there; null after `tries`. */
async function ask(
  sock: Socket,
  inbox: Array<{ m: Msg; from: Addr }>,
  m: Msg,
  to: Addr,
): Promise<Msg | null> {
  for (let i = 0; i < TIMING.tries; i++) {
    sock.send(m, to);
    const deadline = Date.now() + TIMING.resend;
    while (Date.now() < deadline) {
      const hit = inbox.find((e) => e.m.id === m.id && key(e.from) === key(to));
      if (hit) return hit.m;
      await sleep(5);
    }
  }
  return null;
}

async function classify(opts: Map<string, string>): Promise<number> {
  const server = opts.get("server") ?? LAB.server;
  const alt = opts.get("alt") ?? LAB.alt;
  const port = num(opts, "port", LAB.port);
  const altPort = num(opts, "alt-port", LAB.altPort);
  const udp = (hostname: string, p: number): Addr => ({ transport: "udp", hostname, port: p });
  const sock = new Socket("0.0.0.0", 0);
  const inbox: Array<{ m: Msg; from: Addr }> = [];
  sock.onMessage = (m, from) => inbox.push({ m, from });

  // 1. Primary address; replies asked for from the other port and from the other address,
  //    which this socket has never sent to.
  const otherPort = `${server}:${altPort}`, otherAddr = `${alt}:${altPort}`;
  const r1 = await ask(
    sock,
    inbox,
    { t: "reflect", id: "t1", ask: [otherPort, otherAddr] },
    udp(server, port),
  );
  if (!r1) {
    sock.close();
    out({ ok: false, error: `no answer from ${server}:${port}` });
    return 1;
  }
  await sleep(TIMING.straggler);
  const inFrom = (via: string) => inbox.some((e) => e.m.id === "t1" && key(e.from) === via);
  const inOtherPort = inFrom(otherPort), inOtherAddr = inFrom(otherAddr);
  // 2. The mapping seen from the other port, then from the other address.
  const r2 = await ask(sock, inbox, { t: "reflect", id: "t2" }, udp(server, altPort));
  const r3 = await ask(sock, inbox, { t: "reflect", id: "t3" }, udp(alt, port));
  sock.close();
  const m1 = String(r1.seen), m2 = String(r2?.seen ?? "?"), m3 = String(r3?.seen ?? "?");
  const local = sock.local.port;
  const ownIps = Deno.networkInterfaces().filter((i) => i.family === "IPv4").map((i) => i.address);
  const nat = !ownIps.includes(m1.slice(0, m1.lastIndexOf(":")));
  const mapping = m1 === m2 && m1 === m3 ? "EIM" : m1 !== m2 ? "APDM" : "ADM";
  const filtering = inOtherAddr ? "EIF" : inOtherPort ? "ADF" : "APDF";
  out({
    ok: true,
    nat,
    mapping,
    filtering,
    local_port: local,
    mapped: m1,
    mapped_other_port: m2,
    mapped_other_addr: m3,
    in_from_other_port: inOtherPort,
    in_from_other_addr: inOtherAddr,
    port_preserved: Number(m1.slice(m1.lastIndexOf(":") + 1)) === local,
  });
  return 0;
}

// ---------------------------------------------------------------------------------------
// punch: UDP hole punching through the rendezvous
// ---------------------------------------------------------------------------------------

async function punch(opts: Map<string, string>): Promise<number> {
  const name = opts.get("name"), peer = opts.get("peer"), session = opts.get("session");
  if (!name || !peer || !session) fail("Cannot punch: --session, --name and --peer are required");
  const server = parseHostPort(opts.get("server") ?? `${LAB.server}:${LAB.port}`);
  const punchFor = num(opts, "duration", TIMING.punchFor);
  const sock = new Socket("0.0.0.0", 0);
  let announced: string | null = null, peerAnnounced: string | null = null;
  let peerObserved: string | null = null, gotPunch = false, gotAck = false;
  sock.onMessage = (m, from) => {
    if (key(from) === key(server)) {
      if (m.t === "registered") {
        announced = String(m.seen);
        if (m.peer) peerAnnounced = String(m.peer);
      }
      return;
    }
    if (m.t === "punch" && m.name === peer) {
      gotPunch = true;
      peerObserved ??= key(from);
      // Answer the observed source: a symmetric peer shows another port than it announced.
      sock.send({ t: "ack", name }, from);
    } else if (m.t === "ack" && m.name === peer) {
      gotAck = true;
    }
  };

  const regDeadline = Date.now() + TIMING.registerFor;
  while (!peerAnnounced && Date.now() < regDeadline) {
    sock.send({ t: "register", id: `r-${name}`, session, name, peer }, server);
    await sleep(TIMING.register);
  }
  if (!peerAnnounced) {
    sock.close();
    out({ ok: false, name, error: "the peer did not register", announced });
    return 1;
  }
  const started = performance.now();
  let doneAt: number | null = null;
  while (performance.now() - started < punchFor) {
    const targets = new Set([peerAnnounced as string]);
    if (peerObserved) targets.add(peerObserved);
    for (const t of targets) sock.send({ t: "punch", name }, parseHostPort(t));
    if (gotPunch && gotAck) {
      doneAt ??= performance.now();
      if (performance.now() - doneAt >= TIMING.linger) break;
    }
    await sleep(TIMING.punch);
  }
  sock.close();
  const ok = gotPunch && gotAck;
  out({
    ok,
    name,
    local_port: sock.local.port,
    announced,
    peer_announced: peerAnnounced,
    peer_observed: peerObserved,
    got_punch: gotPunch,
    got_ack: gotAck,
    ms: doneAt === null ? null : Math.round(doneAt - started),
  });
  return ok ? 0 : 1;
}

// ---------------------------------------------------------------------------------------
// stun: one RFC 8489 Binding request to coturn, the XOR-MAPPED-ADDRESS it saw
// ---------------------------------------------------------------------------------------

const STUN_COOKIE = 0x2112a442;

async function stun(opts: Map<string, string>): Promise<number> {
  const server = parseHostPort(opts.get("server") ?? `${LAB.server}:3478`);
  const conn = Deno.listenDatagram({
    transport: "udp",
    hostname: anyFor(server.hostname),
    port: 0,
  });
  const req = new Uint8Array(20);
  const view = new DataView(req.buffer);
  view.setUint16(0, 0x0001); // Binding request, no attributes
  view.setUint32(4, STUN_COOKIE);
  const tid = crypto.getRandomValues(new Uint8Array(12));
  req.set(tid, 8);
  let mapped: string | null = null;
  for (let i = 0; i < TIMING.tries && !mapped; i++) {
    await conn.send(req, server);
    const got = await Promise.race([
      conn.receive(new Uint8Array(MAX_DATAGRAM)).then(([d]) => d, () => null),
      sleep(TIMING.resend).then(() => null),
    ]);
    if (got && got.length >= 20 && got[0] === 0x01 && got[1] === 0x01) {
      if (got.subarray(8, 20).every((b, j) => b === tid[j])) mapped = xorMapped(got);
    }
  }
  const local = (conn.addr as Addr).port;
  conn.close();
  out({ ok: mapped !== null, local_port: local, mapped });
  return mapped ? 0 : 1;
}

/** The XOR-MAPPED-ADDRESS (0x0020) of a STUN success response, as IP:PORT or [IPv6]:PORT. */
function xorMapped(msg: Uint8Array): string | null {
  const view = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
  for (let at = 20; at + 4 <= msg.length;) {
    const type = view.getUint16(at), len = view.getUint16(at + 2);
    if (type === 0x0020 && len >= 8 && msg[at + 5] === 0x01) {
      const port = view.getUint16(at + 6) ^ (STUN_COOKIE >>> 16);
      const ip = (view.getUint32(at + 8) ^ STUN_COOKIE) >>> 0;
      return `${ip >>> 24}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}:${port}`;
    }
    if (type === 0x0020 && len >= 20 && msg[at + 5] === 0x02) {
      const port = view.getUint16(at + 6) ^ (STUN_COOKIE >>> 16);
      // XORed with the magic cookie and the transaction id (RFC 8489 §14.2).
      const groups: string[] = [];
      for (let g = 0; g < 8; g++) {
        const x = (msg[at + 8 + 2 * g]! ^ msg[4 + 2 * g]!) * 256 +
          (msg[at + 9 + 2 * g]! ^ msg[5 + 2 * g]!);
        groups.push(x.toString(16));
      }
      return key({ hostname: compressV6(groups), port });
    }
    at += 4 + len + ((4 - (len % 4)) % 4);
  }
  return null;
}

/** Eight hex groups as the RFC 5952 text form (longest run of two or more zero groups as ::). */
function compressV6(groups: string[]): string {
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  if (best < 0) return groups.join(":");
  return `${groups.slice(0, best).join(":")}::${groups.slice(best + bestLen).join(":")}`;
}

// ---------------------------------------------------------------------------------------
// pcp-map: one RFC 6887 MAP request (Debian ships no PCP client)
// ---------------------------------------------------------------------------------------

const PCP_VERSION = 2;
const PCP_OPCODE_MAP = 1;
const PCP_PORT = 5351;
const PROTOCOLS: Record<string, number> = { tcp: 6, udp: 17 };

/** An IPv4 address as the 16-byte IPv4-mapped IPv6 address PCP carries. */
function mappedV6(ip: string): Uint8Array {
  const a = new Uint8Array(16);
  a[10] = a[11] = 0xff;
  ip.split(".").forEach((b, i) => a[12 + i] = Number(b));
  return a;
}

async function pcpMap(opts: Map<string, string>): Promise<number> {
  const gateway = opts.get("gateway");
  const internal = num(opts, "internal", 0), external = num(opts, "external", 0);
  const protocol = PROTOCOLS[opts.get("protocol") ?? "tcp"];
  if (!gateway || !internal || !protocol) {
    fail("Cannot map: --gateway IP and --internal PORT are required, --protocol is tcp or udp");
  }
  const lifetime = num(opts, "lifetime", 3600);
  // The client address field must be the request's source address, or the server answers
  // ADDRESS_MISMATCH: the first non-loopback IPv4 address unless --client says otherwise.
  const client = opts.get("client") ??
    Deno.networkInterfaces().find((i) => i.family === "IPv4" && !i.address.startsWith("127."))
      ?.address;
  if (!client) fail("Cannot map: no IPv4 address found; give --client IP", 1);
  const req = new Uint8Array(60);
  const view = new DataView(req.buffer);
  req[0] = PCP_VERSION;
  req[1] = PCP_OPCODE_MAP;
  view.setUint32(4, lifetime);
  req.set(mappedV6(client), 8);
  const nonce = crypto.getRandomValues(new Uint8Array(12));
  req.set(nonce, 24);
  req[36] = protocol;
  view.setUint16(40, internal);
  view.setUint16(42, external);
  req.set(mappedV6("0.0.0.0"), 44);
  const conn = Deno.listenDatagram({ transport: "udp", hostname: client, port: 0 });
  let answer: Uint8Array | null = null;
  for (let i = 0; i < TIMING.tries && !answer; i++) {
    await conn.send(req, { transport: "udp", hostname: gateway, port: PCP_PORT });
    const got = await Promise.race([
      conn.receive(new Uint8Array(MAX_DATAGRAM)).then(([d]) => d, () => null),
      sleep(TIMING.resend * 2).then(() => null),
    ]);
    if (got && got.length >= 60 && got[1] === (0x80 | PCP_OPCODE_MAP)) {
      if (got.subarray(24, 36).every((b, j) => b === nonce[j])) answer = got;
    }
  }
  conn.close();
  if (!answer) {
    out({ ok: false, error: `no PCP answer from ${gateway}:${PCP_PORT}` });
    return 1;
  }
  const a = new DataView(answer.buffer, answer.byteOffset, answer.byteLength);
  const result = answer[3]!;
  out({
    ok: result === 0,
    result, // 0 SUCCESS, 2 NOT_AUTHORIZED, 12 ADDRESS_MISMATCH, … (RFC 6887 §7.4)
    lifetime: a.getUint32(4),
    external: `${[...answer.subarray(56, 60)].join(".")}:${a.getUint16(42)}`,
    nonce: [...nonce].map((b) => b.toString(16).padStart(2, "0")).join(""),
  });
  return result === 0 ? 0 : 1;
}

// ---------------------------------------------------------------------------------------
// tcp-listen / tcp-connect: inbound checks of UPnP / NAT-PMP / PCP mappings
// ---------------------------------------------------------------------------------------

async function tcpListen(opts: Map<string, string>): Promise<number> {
  const port = num(opts, "port", 0);
  const timeout = num(opts, "timeout", 10000);
  const listener = Deno.listen({ hostname: opts.get("host") ?? "0.0.0.0", port });
  out({ t: "listening", port: (listener.addr as Addr).port });
  const timer = setTimeout(() => listener.close(), timeout);
  try {
    const conn = await listener.accept();
    const remote = key(conn.remoteAddr as Addr);
    await conn.write(enc.encode(`hello ${remote}\n`));
    conn.close();
    out({ ok: true, accepted: remote });
    return 0;
  } catch {
    out({ ok: false, error: `no connection within ${timeout} ms` });
    return 1;
  } finally {
    clearTimeout(timer);
    try {
      listener.close();
    } catch { /* already closed by the timer */ }
  }
}

async function tcpConnect(target: string | undefined, opts: Map<string, string>): Promise<number> {
  if (!target) fail("Cannot connect: give HOST:PORT");
  const to = parseHostPort(target);
  const timeout = num(opts, "timeout", 3000);
  try {
    const connecting = Deno.connect({ hostname: to.hostname, port: to.port });
    const conn = await Promise.race([
      connecting,
      sleep(timeout).then(() => {
        connecting.then((c) => c.close(), () => {});
        throw new Error(`no connection within ${timeout} ms`);
      }),
    ]);
    const buf = new Uint8Array(256);
    const n = await Promise.race([conn.read(buf), sleep(timeout).then(() => null)]);
    conn.close();
    const line = n ? dec.decode(buf.subarray(0, n)).trim() : "";
    out({ ok: line.startsWith("hello "), greeting: line });
    return line.startsWith("hello ") ? 0 : 1;
  } catch (e) {
    out({ ok: false, error: e instanceof Error ? e.message : String(e) });
    return 1;
  }
}

// ---------------------------------------------------------------------------------------
// udp-listen / udp-send / udp-punch: a firewall's inbound filtering and a direct punch (IPv6)
// ---------------------------------------------------------------------------------------

/**
 * `udp-listen --port P [--bind IP] [--first IP:PORT] [--timeout MS]`: prints
 * `{"t":"listening"}`, sends one datagram to `--first` (to open a firewall's state for it),
 * then waits for a datagram from anyone else.
 */
async function udpListen(opts: Map<string, string>): Promise<number> {
  const first = opts.get("first");
  const to = first ? parseHostPort(first) : undefined;
  const bind = opts.get("bind") ?? (to ? anyFor(to.hostname) : "::");
  const timeout = num(opts, "timeout", 1500);
  const sock = new Socket(bind, num(opts, "port", 0));
  let from: string | null = null;
  sock.onMessage = (m, addr) => {
    if (m.t === "probe") from ??= key(addr);
  };
  out({ t: "listening", port: sock.local.port });
  if (to) sock.send({ t: "first" }, to);
  const deadline = performance.now() + timeout;
  while (!from && performance.now() < deadline) await sleep(10);
  sock.close();
  out({ ok: from !== null, from });
  return from ? 0 : 1;
}

/**
 * `udp-send --to IP:PORT [--bind IP] [--port P] [--count N]`: N probe datagrams, 50 ms apart.
 * Bind the source address where a host has several (mpl-srv): the kernel picks one otherwise.
 */
async function udpSend(opts: Map<string, string>): Promise<number> {
  const target = opts.get("to");
  if (!target) fail("Cannot send: give --to IP:PORT");
  const to = parseHostPort(target);
  const sock = new Socket(opts.get("bind") ?? anyFor(to.hostname), num(opts, "port", 0));
  const count = num(opts, "count", 5);
  for (let i = 0; i < count; i++) {
    sock.send({ t: "probe", i }, to);
    await sleep(TIMING.punch);
  }
  const port = sock.local.port;
  sock.close();
  out({ ok: true, sent: count, from_port: port });
  return 0;
}

/**
 * `udp-punch --name N --peer IP:PORT --port P [--duration MS]`: both sides at once, each from
 * its fixed port to the other's (known without a rendezvous: IPv6 has no NAT). PUNCH every
 * 50 ms, every PUNCH answered with an ACK to its source; OK when both arrived.
 */
async function udpPunch(opts: Map<string, string>): Promise<number> {
  const name = opts.get("name"), target = opts.get("peer");
  if (!name || !target) fail("Cannot punch: --name and --peer IP:PORT are required");
  const peer = parseHostPort(target);
  const punchFor = num(opts, "duration", TIMING.punchFor);
  const sock = new Socket(anyFor(peer.hostname), num(opts, "port", 0));
  let gotPunch = false, gotAck = false, seen: string | null = null, sent = 0;
  sock.onMessage = (m, from) => {
    if (m.t === "punch") {
      gotPunch = true;
      seen ??= key(from);
      sock.send({ t: "ack", name }, from);
    } else if (m.t === "ack") gotAck = true;
  };
  const started = performance.now();
  let doneAt: number | null = null;
  while (performance.now() - started < punchFor) {
    sock.send({ t: "punch", name }, peer);
    sent++;
    if (gotPunch && gotAck) {
      doneAt ??= performance.now();
      if (performance.now() - doneAt >= TIMING.linger) break;
    }
    await sleep(TIMING.punch);
  }
  sock.close();
  const ok = gotPunch && gotAck;
  out({
    ok,
    name,
    local_port: sock.local.port,
    peer: key(peer),
    peer_seen: seen,
    got_punch: gotPunch,
    got_ack: gotAck,
    sent,
    ms: doneAt === null ? null : Math.round(doneAt - started),
  });
  return ok ? 0 : 1;
}

// ---------------------------------------------------------------------------------------

const [mode, ...args] = Deno.args;
const { opts, rest } = parseArgs(args);
switch (mode) {
  case "serve":
    await serve(opts);
    break;
  case "classify":
    Deno.exit(await classify(opts));
    break;
  case "punch":
    Deno.exit(await punch(opts));
    break;
  case "stun":
    Deno.exit(await stun(opts));
    break;
  case "pcp-map":
    Deno.exit(await pcpMap(opts));
    break;
  case "tcp-listen":
    Deno.exit(await tcpListen(opts));
    break;
  case "tcp-connect":
    Deno.exit(await tcpConnect(rest[0], opts));
    break;
  case "udp-listen":
    Deno.exit(await udpListen(opts));
    break;
  case "udp-send":
    Deno.exit(await udpSend(opts));
    break;
  case "udp-punch":
    Deno.exit(await udpPunch(opts));
    break;
  default:
    fail(
      "usage: probe.ts serve|classify|punch|stun|pcp-map|tcp-listen|tcp-connect|udp-listen|udp-send|udp-punch [--options]; see docs/natlab.md",
    );
}
