/**
 * The STUN mapping of the listening port and the NAT's mapping behaviour from two answers, and
 * the candidates a terminal gathers from them and from a router mapping (issue 13).
 */
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { PeerError } from "../../src/errors.ts";
import { candidatePriority } from "../../src/message/candidate.ts";
import { gatherCandidates } from "../../src/terminal/gather_candidates.ts";
import { reflectPort } from "../../src/terminal/reflexive.ts";
import { decodeBindingRequest, encodeBindingResponse } from "../../src/net/stun_message.ts";

/** A STUN server on 127.0.0.1 answering with `map(source port)` as the mapped port. */
async function server(map: (port: number) => number) {
  const socket = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  const sources: number[] = [];
  socket.on("message", (packet: Uint8Array, from: dgram.RemoteInfo) => {
    const tid = decodeBindingRequest(packet);
    if (!tid) return;
    sources.push(from.port);
    const mapped = { family: "IPv4" as const, address: "203.0.113.5", port: map(from.port) };
    socket.send(encodeBindingResponse(tid, mapped), from.port, from.address);
  });
  return {
    address: `127.0.0.1:${socket.address().port}`,
    sources,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

Deno.test("two STUN servers that see the same port tell an endpoint-independent NAT; different ports a dependent one", async () => {
  const a = await server((p) => p + 1);
  const same = await server((p) => p + 1);
  const other = await server((p) => p + 2);
  try {
    const independent = await reflectPort({ address: "127.0.0.1", port: 0 }, [
      a.address,
      same.address,
    ]);
    assert.equal(independent.mapping, "endpoint-independent");
    assert.equal(independent.port, independent.localPort + 1);
    assert.deepStrictEqual(
      [...a.sources, ...same.sources].filter((p) => p !== independent.localPort),
      [],
    );
    const dependent = await reflectPort({ address: "127.0.0.1", port: 0 }, [
      a.address,
      other.address,
    ]);
    assert.equal(dependent.mapping, "endpoint-dependent");
    const alone = await reflectPort({ address: "127.0.0.1", port: 0 }, [a.address]);
    assert.equal(alone.mapping, undefined);
  } finally {
    await Promise.all([a.close(), same.close(), other.close()]);
  }
});

Deno.test("a terminal's candidates: its address, the router's mapping, then STUN's, without repeats", async () => {
  const reflexive = {
    address: "203.0.113.5",
    port: 61_000,
    localPort: 7000,
    server: "s",
    mapping: "endpoint-dependent" as const,
  };
  const asked: unknown[] = [];
  const candidates = await gatherCandidates({
    transport: "udp",
    listenPort: 7000,
    advertise: "192.168.1.20",
    reflexive,
    mapper: {
      map: (request) => {
        asked.push(request);
        return Promise.resolve({ external: { address: "203.0.113.5", port: 7000 } });
      },
    },
  });
  assert.deepStrictEqual(asked, [{ transport: "udp", internalPort: 7000, lifetimeS: 3600 }]);
  assert.deepStrictEqual(candidates, [
    {
      transport: "udp",
      address: "192.168.1.20",
      port: 7000,
      type: "host",
      priority: candidatePriority("host"),
    },
    {
      transport: "udp",
      address: "203.0.113.5",
      port: 7000,
      type: "mapped",
      priority: candidatePriority("mapped"),
    },
    {
      transport: "udp",
      address: "203.0.113.5",
      port: 61_000,
      type: "srflx",
      priority: candidatePriority("srflx"),
      mapping: "endpoint-dependent",
    },
  ]);
  // A STUN mapping equal to the announced address adds nothing; a router that refuses, no
  // mapped candidate; over TCP the STUN address comes with the listening port.
  const tcp = await gatherCandidates({
    transport: "tcp",
    listenPort: 7000,
    advertise: "203.0.113.5",
    reflexive,
    mapper: {
      map: () =>
        Promise.reject(new PeerError("ETIMEOUT", "Cannot map a port: no gateway answered; ok")),
    },
  });
  assert.deepStrictEqual(tcp.map((c) => c.type), ["host"]);
});

Deno.test("a relay's address is gathered as a relay candidate after the direct ones, UDP only", async () => {
  const relayed = { address: "198.51.100.40", port: 51_017 };
  const reflexive = {
    address: "203.0.113.5",
    port: 7001,
    localPort: 7000,
    server: "stun.test:3478",
  };
  const udp = await gatherCandidates({
    transport: "udp",
    listenPort: 7000,
    advertise: "192.168.1.20",
    reflexive,
    relayed,
  });
  assert.deepStrictEqual(udp.map((c) => c.type), ["host", "srflx", "relay"]);
  assert.deepStrictEqual(udp.at(-1), {
    transport: "udp",
    ...relayed,
    type: "relay",
    priority: candidatePriority("relay"),
  });
  const tcp = await gatherCandidates({ transport: "tcp", listenPort: 7000, reflexive, relayed });
  assert.deepStrictEqual(tcp.map((c) => c.type), ["srflx"]);
});
