/**
 * The server-reflexive address (docs/design.md "Reachability") of the very UDP port the peer
 * listener uses: the address and port a NAT maps that port to, as STUN servers see it, and whether
 * the NAT maps it the same way towards every server (endpoint-independent mapping, RFC 4787) when
 * two or more servers answer.
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
  parseStunServer,
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

/** The STUN mapping of one socket per address family; either may be missing. */
export interface FamilyMappings {
  IPv4?: ReflexiveAddress;
  IPv6?: ReflexiveAddress;
}

/**
 * {@link reflectFrom} once per address family of a dual-stack socket (docs/nat.md "IPv6"): the
 * servers named by an IPv6 literal (`[2001:db8::10]:3478`) give the IPv6 mapping, the others
 * the IPv4 one, each with its own mapping behaviour (an IPv4 and an IPv6 answer never compare).
 * A family not in `families` (what the socket can send to) is not asked. A server named by a
 * host name counts as IPv4; whatever family its answer has, that is where it is filed.
 *
 * @throws {PeerError} like {@link reflectFrom} when no server of any family answered.
 */
export async function reflectFamilies(
  socket: StunSocket,
  servers: readonly string[],
  families: ReadonlySet<"IPv4" | "IPv6">,
  options: ReflectOptions = {},
): Promise<FamilyMappings> {
  const isV6 = (s: string) => {
    try {
      return parseStunServer(s).host.includes(":");
    } catch {
      return false;
    }
  };
  const groups = (["IPv4", "IPv6"] as const)
    .filter((f) => families.has(f))
    .map((f) => servers.filter((s) => isV6(s) === (f === "IPv6")))
    .filter((g) => g.length > 0);
  if (groups.length === 0) {
    throw new PeerError(
      "EADDRESS",
      `Cannot learn the address peers see from STUN: no server of terminal.stun_servers is of an address family the listening socket reaches (${
        [...families].join(", ")
      }); add such a server or change terminal.listen`,
    );
  }
  const answers = await Promise.allSettled(groups.map((g) => reflectFrom(socket, g, options)));
  options.signal?.throwIfAborted();
  const found: FamilyMappings = {};
  for (const a of answers) {
    if (a.status !== "fulfilled") continue;
    const family = a.value.address.includes(":") ? "IPv6" : "IPv4";
    found[family] ??= a.value;
  }
  if (found.IPv4 === undefined && found.IPv6 === undefined) {
    throw (answers[0] as PromiseRejectedResult).reason;
  }
  return found;
}
