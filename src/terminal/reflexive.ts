/**
 * The server-reflexive address (docs/design.md §7) of the very UDP port the peer listener uses: the
 * address and port a NAT maps that port to, as STUN servers see it, and whether the NAT maps
 * it the same way towards every server (endpoint-independent mapping, RFC 4787) when two or
 * more servers answer.
 *
 * The peer transports do not lend their sockets (src/peer is another layer's), so
 * {@link reflectPort} binds the listener's port itself, asks STUN from it, and closes it; the
 * listener then binds that port. A NAT keeps the mapping of a local port for a while after the
 * socket closed (RFC 4787 REQ-5: at least two minutes), so the mapping found is the one the
 * peer traffic gets. (Once the UDP listener lends its socket, {@link reflectFrom} asks from it
 * directly and the gap between the two binds goes away.)
 *
 * @module
 */
import dgram from "node:dgram";
import { PeerError } from "../errors.ts";
import type { NatMapping } from "../message/types.ts";
import {
  dgramStunSocket,
  StunAddress,
  type StunAddressOptions,
  type StunDetectedAddress,
  type StunSocket,
} from "./stun.ts";

/** The reflexive address of a local UDP port. */
export interface ReflexiveAddress {
  address: string;
  port: number;
  /** The local UDP port the STUN requests left from (the listener's port). */
  localPort: number;
  /** Known when two servers answered: whether they saw the same address and port. */
  mapping?: NatMapping;
  /** The server whose answer gave `address` and `port`. */
  server: string;
}

/** STUN options {@link reflectPort} passes on (the socket is its own). */
export type ReflectOptions = Omit<StunAddressOptions, "socket" | "localAddress" | "localPort"> & {
  signal?: AbortSignal;
};

/**
 * Asks every server from `socket` (each its own transaction) and combines the answers: the
 * first server in order that answered gives the address; two answers tell the NAT's mapping.
 *
 * @throws {PeerError} `ETIMEOUT` or `EADDRESS` when no server answered (the first's reason).
 */
export async function reflectFrom(
  socket: StunSocket,
  servers: readonly string[],
  options: ReflectOptions = {},
): Promise<ReflexiveAddress> {
  const { signal, ...stun } = options;
  if (servers.length === 0) {
    throw new PeerError(
      "EADDRESS",
      "Cannot learn the address peers see from STUN: no STUN server is configured; set terminal.stun_servers",
    );
  }
  const answers = await Promise.allSettled(
    servers.map((server) =>
      new StunAddress([server], { ...stun, socket }).query(signal ? { signal } : {})
    ),
  );
  signal?.throwIfAborted();
  const found = answers.filter((a): a is PromiseFulfilledResult<StunDetectedAddress> =>
    a.status === "fulfilled"
  ).map((a) => a.value);
  const first = found[0];
  if (first === undefined) throw (answers[0] as PromiseRejectedResult).reason;
  const second = found[1];
  const mapping: NatMapping | undefined = second === undefined
    ? undefined
    : second.address === first.address && second.port === first.port
    ? "endpoint-independent"
    : "endpoint-dependent";
  return {
    address: first.address,
    port: first.port,
    localPort: socket.localPort,
    server: first.server,
    ...(mapping ? { mapping } : {}),
  };
}

/**
 * Binds UDP `local` (port 0: a free port), asks the STUN `servers` from it, closes it, and
 * returns the reflexive address with the local port, which the caller's listener binds next.
 *
 * @throws {PeerError} `EADDRESS` (cannot bind, servers refused) or `ETIMEOUT` (none answered).
 */
export async function reflectPort(
  local: { address: string; port: number },
  servers: readonly string[],
  options: ReflectOptions = {},
): Promise<ReflexiveAddress> {
  const socket = dgram.createSocket(local.address.includes(":") ? "udp6" : "udp4");
  await new Promise<void>((resolve, reject) => {
    socket.once("error", (err) => {
      socket.close();
      reject(
        new PeerError(
          "EADDRESS",
          `Cannot open a UDP socket for STUN on ${local.address}:${local.port}: ${err.message}; choose another terminal.port`,
          { cause: err },
        ),
      );
    });
    socket.bind(local.port, local.address, () => {
      socket.removeAllListeners("error");
      resolve();
    });
  });
  try {
    return await reflectFrom(dgramStunSocket(socket), servers, options);
  } finally {
    await new Promise<void>((resolve) => socket.close(() => resolve()));
  }
}
