import assert from "node:assert/strict";
import dgram from "node:dgram";
import { SSDP_MAX_ANSWER_BYTES } from "../../../src/limits.ts";
import type { LogLevel } from "../../../src/log.ts";
import { ManualClock } from "../../support/manual_clock.ts";
import {
  defaultGateway,
  discoverUpnpUrl,
  guessGateway,
  IGD_SEARCH_TARGETS,
  parseDefaultGateway,
  parseSsdpAnswer,
  ssdpSearchRequest,
} from "../../../src/terminal/port_mapping/gateway_discovery.ts";

const HEADER =
  "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\t\t\n";

// ---- /proc/net/route ----

Deno.test("the default gateway is read from /proc/net/route as the kernel prints it", () => {
  const text = HEADER +
    "wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n" +
    "wlan0\t0001A8C0\t00000000\t0001\t0\t0\t600\t00FFFFFF\t0\t0\t0\n";
  assert.equal(parseDefaultGateway(text, { littleEndian: true }), "192.168.1.1");
  // A big-endian kernel prints the address in network order.
  const be = HEADER + "eth0\t00000000\tC0A80101\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
  assert.equal(parseDefaultGateway(be, { littleEndian: false }), "192.168.1.1");
});

Deno.test("with two default routes the one with the lowest metric is the gateway", () => {
  const text = HEADER +
    "wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n" +
    "eth0\t00000000\t0100000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n" +
    "eth0\t0000000A\t00000000\t0001\t0\t0\t100\t000000FF\t0\t0\t0\n";
  assert.equal(parseDefaultGateway(text, { littleEndian: true }), "10.0.0.1");
});

Deno.test("no usable default route gives no gateway, whatever the file holds", () => {
  const le = { littleEndian: true };
  assert.equal(parseDefaultGateway("", le), undefined);
  assert.equal(parseDefaultGateway(HEADER, le), undefined);
  // Only a LAN route; a default route that is down (no RTF_UP) or has no gateway (RTF_GATEWAY).
  assert.equal(
    parseDefaultGateway(
      HEADER +
        "eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n" +
        "eth0\t00000000\t0101A8C0\t0002\t0\t0\t0\t00000000\t0\t0\t0\n" +
        "ppp0\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\n",
      le,
    ),
    undefined,
  );
  // Garbage lines are skipped, not fatal.
  assert.equal(
    parseDefaultGateway(
      "not a table\n\teth0 zz\neth0\t00000000\tXYZ\t0003\t0\t0\t0\t00000000\n" + HEADER,
      le,
    ),
    undefined,
  );
});

/** A logger that keeps its records. */
function recorder() {
  const records: { level: LogLevel; message: string }[] = [];
  return {
    records,
    logger: { log: (level: LogLevel, message: string) => void records.push({ level, message }) },
  };
}

Deno.test("a missing routing table or another OS, and no LAN interface, means no gateway, said in the log, no crash", async () => {
  const log = recorder();
  assert.equal(
    await defaultGateway({
      readRoutes: () => Promise.reject(new Deno.errors.NotFound("No such file")),
      interfaces: () => [],
      logger: log.logger,
    }),
    undefined,
  );
  assert.match(log.records[0]!.message, /^no default gateway: cannot read the routing table/);
  assert.equal(
    await defaultGateway({ os: "darwin", interfaces: () => [], logger: log.logger }),
    undefined,
  );
  assert.match(
    log.records[1]!.message,
    /darwin does not have; set terminal\.port_mapping\.gateway/,
  );
  assert.equal(
    await defaultGateway({
      readRoutes: () =>
        Promise.resolve(HEADER + "eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"),
    }),
    parseDefaultGateway(HEADER + "eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"),
  );
});

const LAN = (address: string, netmask = "255.255.255.0") => ({
  name: "eth0",
  family: "IPv4" as const,
  address,
  netmask,
});

Deno.test("a routing table Deno may not read (it needs --allow-all for /proc) gives a guess from the LAN interface", async () => {
  const log = recorder();
  const gateway = await defaultGateway({
    readRoutes: () =>
      Promise.reject(new Deno.errors.NotCapable('Requires all access to "/proc/net/route"')),
    interfaces: () => [LAN("192.168.178.23")],
    logger: log.logger,
  });
  assert.equal(gateway, "192.168.178.1");
  assert.match(
    log.records[0]!.message,
    /^guessed the gateway 192\.168\.178\.1 from the interfaces/,
  );
  // The lab's LAN: 198.19.1.10/24 behind router A at 198.19.1.1.
  assert.equal(
    await defaultGateway({ os: "darwin", interfaces: () => [LAN("198.19.1.10")] }),
    "198.19.1.1",
  );
});

Deno.test("the gateway is guessed only on a LAN: never from loopback, link-local, global or IPv6 addresses, or a subnet without room", () => {
  assert.equal(
    guessGateway([
      { name: "lo", family: "IPv4", address: "127.0.0.1", netmask: "255.0.0.0" },
      LAN("169.254.3.4", "255.255.0.0"),
      LAN("203.0.114.9"),
      { name: "eth0", family: "IPv6", address: "fd00::5", netmask: "ffff:ffff:ffff:ffff::" },
      LAN("10.1.2.3", "255.255.255.254"),
    ]),
    undefined,
  );
  assert.equal(guessGateway([LAN("10.1.2.3", "255.0.0.0")]), "10.0.0.1");
  assert.equal(guessGateway([LAN("100.64.7.9", "255.255.255.0")]), "100.64.7.1");
  // This machine is the first host: it is the router itself, nothing to ask.
  assert.equal(guessGateway([LAN("192.168.1.1")]), undefined);
});

// ---- SSDP ----

Deno.test("the M-SEARCH is the one UPnP Device Architecture 1.1 defines", () => {
  assert.equal(
    ssdpSearchRequest(IGD_SEARCH_TARGETS[0], { address: "239.255.255.250", port: 1900 }),
    'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\nMX: 1\r\n' +
      "ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\r\n",
  );
  // Unicast: no MX (the device answers at once).
  assert.equal(
    ssdpSearchRequest(IGD_SEARCH_TARGETS[1], { address: "192.168.1.1", port: 1900 }),
    'M-SEARCH * HTTP/1.1\r\nHOST: 192.168.1.1:1900\r\nMAN: "ssdp:discover"\r\n' +
      "ST: urn:schemas-upnp-org:device:InternetGatewayDevice:2\r\n\r\n",
  );
});

function answer(location: string, st: string = IGD_SEARCH_TARGETS[0]): string {
  return `HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: ${st}\r\n` +
    `USN: uuid:1234::${st}\r\nEXT:\r\nSERVER: Linux UPnP/1.1 MiniUPnPd/2.3.1\r\n` +
    `Location: ${location}\r\n\r\n`;
}

Deno.test("an SSDP answer gives its LOCATION only when it is http: on the gateway", () => {
  const st = IGD_SEARCH_TARGETS[0];
  const gw = "192.168.1.1";
  assert.deepEqual(parseSsdpAnswer(answer("http://192.168.1.1:5000/rootDesc.xml"), st, gw), {
    location: "http://192.168.1.1:5000/rootDesc.xml",
  });
  assert.deepEqual(parseSsdpAnswer(answer("http://192.168.1.66:5000/rootDesc.xml"), st, gw), {
    refused: 'LOCATION "http://192.168.1.66:5000/rootDesc.xml" is not on the gateway 192.168.1.1',
  });
  assert.deepEqual(parseSsdpAnswer(answer("http://192.168.1.1.evil.example/x"), st, gw), {
    refused: 'LOCATION "http://192.168.1.1.evil.example/x" is not on the gateway 192.168.1.1',
  });
  assert.deepEqual(parseSsdpAnswer(answer("http://evil@192.168.1.66/x"), st, gw), {
    refused: 'LOCATION "http://evil@192.168.1.66/x" is not on the gateway 192.168.1.1',
  });
  assert.deepEqual(parseSsdpAnswer(answer("file:///etc/passwd"), st, gw), {
    refused: 'LOCATION "file:///etc/passwd" is not http:',
  });
  assert.deepEqual(parseSsdpAnswer(answer("http://192.168.1.1\x1b[2J/"), st, gw), {
    refused: 'LOCATION "http://192.168.1.1?[2J/" is not a URL',
  });
  // Not an answer to this search: another status, another ST, a NOTIFY, no LOCATION.
  const ok = "http://192.168.1.1:5000/rootDesc.xml";
  assert.equal(parseSsdpAnswer(answer(ok).replace("200 OK", "404 Not Found"), st, gw), undefined);
  assert.equal(parseSsdpAnswer(answer(ok, "upnp:rootdevice"), st, gw), undefined);
  assert.equal(parseSsdpAnswer(`NOTIFY * HTTP/1.1\r\nLOCATION: ${ok}\r\n\r\n`, st, gw), undefined);
  assert.equal(parseSsdpAnswer("HTTP/1.1 200 OK\r\nST: x\r\n\r\n", "x", gw), undefined);
});

/** A fake SSDP responder on 127.0.0.1: records searches and answers them as told. */
class FakeSsdpResponder {
  readonly requests: { text: string; from: dgram.RemoteInfo }[] = [];
  #waiters: { n: number; resolve: () => void }[] = [];
  private constructor(
    readonly socket: dgram.Socket,
    answer: (text: string, from: dgram.RemoteInfo, socket: dgram.Socket) => void,
  ) {
    socket.on("message", (bytes: Uint8Array, from: dgram.RemoteInfo) => {
      const text = new TextDecoder().decode(bytes);
      this.requests.push({ text, from });
      answer(text, from, socket);
      const ready = this.#waiters.filter((w) => this.requests.length >= w.n);
      this.#waiters = this.#waiters.filter((w) => this.requests.length < w.n);
      for (const w of ready) w.resolve();
    });
  }

  static async start(
    answer: (text: string, from: dgram.RemoteInfo, socket: dgram.Socket) => void,
    address = "127.0.0.1",
  ): Promise<FakeSsdpResponder> {
    const socket = dgram.createSocket("udp4");
    await new Promise<void>((resolve) => socket.bind(0, address, resolve));
    return new FakeSsdpResponder(socket, answer);
  }

  get port(): number {
    return this.socket.address().port;
  }

  /** Resolves once `n` searches arrived. */
  received(n: number): Promise<void> {
    if (this.requests.length >= n) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ n, resolve }));
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

function send(socket: dgram.Socket, text: string, to: dgram.RemoteInfo): void {
  socket.send(new TextEncoder().encode(text), to.port, to.address);
}

/** The ST of a search. */
function stOf(text: string): string {
  return /\r\nST: (.*)\r\n/.exec(text)![1]!;
}

function search(responder: FakeSsdpResponder, extra: Parameters<typeof discoverUpnpUrl>[1] = {}) {
  const clock = new ManualClock();
  const log = recorder();
  const result = discoverUpnpUrl("127.0.0.1", {
    targets: [{ address: "127.0.0.1", port: responder.port }],
    localAddress: "127.0.0.1",
    clock,
    logger: log.logger,
    ...extra,
  });
  return { clock, log, result };
}

Deno.test("SSDP: the router's answer gives the UPnP URL at once", async () => {
  const responder = await FakeSsdpResponder.start((text, from, socket) => {
    send(socket, answer("http://127.0.0.1:5000/rootDesc.xml", stOf(text)), from);
  });
  try {
    const { clock, result } = search(responder);
    assert.equal(await result, "http://127.0.0.1:5000/rootDesc.xml");
    assert.equal(clock.now(), new ManualClock().now(), "no time passed");
    assert.match(responder.requests[0]!.text, /^M-SEARCH \* HTTP\/1\.1\r\n/);
    assert.deepEqual(
      responder.requests.map((r) => stOf(r.text)).sort(),
      [...IGD_SEARCH_TARGETS],
      "asked for IGD v1 and v2",
    );
  } finally {
    await responder.close();
  }
});

Deno.test("SSDP: a LAN host's answer pointing elsewhere is refused; the router's is used", async () => {
  const responder = await FakeSsdpResponder.start((text, from, socket) => {
    // The attacker answers first, with its own description server.
    send(socket, answer("http://127.0.0.2:5000/rootDesc.xml", stOf(text)), from);
    send(socket, answer("http://127.0.0.1:5000/rootDesc.xml", stOf(text)), from);
  });
  try {
    const { log, result } = search(responder);
    assert.equal(await result, "http://127.0.0.1:5000/rootDesc.xml");
    assert.ok(log.records.some((r) =>
      r.level === "warn" &&
      r.message ===
        'SSDP answer refused: LOCATION "http://127.0.0.2:5000/rootDesc.xml" is not on the gateway 127.0.0.1'
    ));
  } finally {
    await responder.close();
  }
});

Deno.test("SSDP: only a LOCATION off the gateway means no UPnP URL after the search", async () => {
  const responder = await FakeSsdpResponder.start((text, from, socket) => {
    send(socket, answer("http://127.0.0.2:5000/rootDesc.xml", stOf(text)), from);
  });
  try {
    const { clock, log, result } = search(responder);
    await responder.received(2);
    await clock.sleeping(2);
    clock.advance(1500);
    await responder.received(4);
    await clock.sleeping(2);
    clock.advance(1500);
    assert.equal(await result, undefined);
    assert.ok(log.records.some((r) => r.message.startsWith("no UPnP URL: no Internet Gateway")));
    assert.equal(
      log.records.filter((r) => r.level === "warn").length,
      1,
      "4 refused answers, one warning",
    );
  } finally {
    await responder.close();
  }
});

Deno.test("SSDP: answers from another address than the gateway's are not read", async () => {
  // An attacker at 127.0.0.2 answers every search, with a LOCATION that even names the gateway.
  const attacker = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => attacker.bind(0, "127.0.0.2", resolve));
  let answerNow: () => void = () => {};
  const responder = await FakeSsdpResponder.start((text, from, socket) => {
    send(attacker, answer("http://127.0.0.1:6666/evil.xml", stOf(text)), from);
    // The router answers once the attacker's datagram is surely there: after a round trip.
    answerNow = () => send(socket, answer("http://127.0.0.1:5000/rootDesc.xml", stOf(text)), from);
  });
  const echo = dgram.createSocket("udp4");
  try {
    const { result } = search(responder);
    await responder.received(1);
    // One datagram from the attacker's socket to ours and back orders the attacker's answers
    // before the router's on the loopback.
    await new Promise<void>((resolve) => {
      echo.bind(0, "127.0.0.1", () => {
        echo.on("message", () => resolve());
        attacker.send(new Uint8Array([0]), echo.address().port, "127.0.0.1");
      });
    });
    answerNow();
    assert.equal(await result, "http://127.0.0.1:5000/rootDesc.xml");
  } finally {
    await responder.close();
    await new Promise<void>((resolve) => attacker.close(() => resolve()));
    await new Promise<void>((resolve) => echo.close(() => resolve()));
  }
});

Deno.test("SSDP: an oversized answer is dropped unread", async () => {
  const responder = await FakeSsdpResponder.start((text, from, socket) => {
    const big = answer("http://127.0.0.1:5000/rootDesc.xml", stOf(text)).replace(
      "EXT:\r\n",
      `X-PAD: ${"a".repeat(SSDP_MAX_ANSWER_BYTES)}\r\n`,
    );
    send(socket, big, from);
  });
  try {
    const { clock, result } = search(responder, { requests: 1 });
    await responder.received(2);
    await clock.sleeping(2);
    clock.advance(1500);
    assert.equal(await result, undefined);
  } finally {
    await responder.close();
  }
});

Deno.test("SSDP: no answer ends the search after its requests, on the injected clock", async () => {
  const responder = await FakeSsdpResponder.start(() => {});
  try {
    const { clock, log, result } = search(responder);
    await responder.received(2);
    await clock.sleeping(2);
    clock.advance(1500);
    await responder.received(4);
    assert.equal(responder.requests.length, 4, "each search is sent twice");
    await clock.sleeping(2);
    clock.advance(1500);
    assert.equal(await result, undefined);
    assert.deepEqual(log.records.at(-1), {
      level: "info",
      message: "no UPnP URL: no Internet Gateway Device at 127.0.0.1 answered the SSDP search",
    });
  } finally {
    await responder.close();
  }
});

Deno.test("SSDP: an aborted search rejects with the reason and closes its sockets", async () => {
  const responder = await FakeSsdpResponder.start(() => {});
  try {
    const stop = new AbortController();
    const { result } = search(responder, { signal: stop.signal });
    await responder.received(2);
    stop.abort(new Error("session ended"));
    await assert.rejects(result, /session ended/);
  } finally {
    await responder.close();
  }
});
