/**
 * mailpeer: peers of a P2P application find each other's address through ordinary e-mail.
 *
 * A {@link Terminal} mails a sealed request to a host mailbox, a {@link Host} answers with a
 * few recent peers, and the terminal connects to one of them over an encrypted link whose
 * identities are proven. Mail goes through any {@link MailSender} / {@link MailSource}: the
 * local Maildir post office here, SMTP/IMAP/POP3 servers in production.
 *
 * @example A host and a terminal on a local post office
 * ```ts
 * import {
 *   generateHostKeys, generateIdentityKeys, Host, hostCardOf, HostService, MaildirPostOffice,
 *   MaildirSender, MaildirSource, MemoryStore, TcpTransport, Terminal,
 * } from "./mod.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const po = new MaildirPostOffice(dir);
 * const hostKeys = await generateHostKeys("host@lan.local");
 * const hostSource = new MaildirSource(await po.ensureMailbox("host@lan.local"));
 * const host = new Host({
 *   keys: hostKeys, network: "lan", source: hostSource,
 *   sender: new MaildirSender(po), store: new MemoryStore(),
 *   allowPrivateAddresses: true, // a LAN: everyone is on loopback here
 * });
 * // The service the CLI's `host` runs too: it reads the mailbox until stopped.
 * const stop = new AbortController();
 * const hosting = new HostService({ host }).run({ signal: stop.signal });
 *
 * const source = new MaildirSource(await po.ensureMailbox("alice@lan.local"));
 * const alice = new Terminal({
 *   identity: await generateIdentityKeys("alice"), email: "alice@lan.local", network: "lan",
 *   hosts: [hostCardOf(hostKeys)], sender: new MaildirSender(po), source,
 *   transport: new TcpTransport(), advertise: "127.0.0.1", standbyTimeoutMs: 100,
 * });
 * // Alice is the first: the reply lists nobody, she stands by, and nobody comes.
 * await alice.rendezvous().catch((err) => console.log(err.code)); // "ETIMEOUT"
 * stop.abort();
 * await hosting;
 * await Promise.all([source.close(), hostSource.close()]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @example A game gets a connected, encrypted state channel (UDP) in a few lines
 * ```ts
 * import {
 *   generateHostKeys, generateIdentityKeys, Host, hostCardOf, HostService, MaildirPostOffice,
 *   MaildirSender, MaildirSource, MemoryStore, openDatagramChannel, Terminal, UdpTransport,
 * } from "./mod.ts";
 * import type { EventSink } from "./mod.ts";
 *
 * // Set-up: a host on a local post office (in production: a real mailbox, SMTP + IMAP).
 * const dir = await Deno.makeTempDir();
 * const po = new MaildirPostOffice(dir);
 * const hostKeys = await generateHostKeys("host@lan.local");
 * const hostBox = new MaildirSource(await po.ensureMailbox("host@lan.local"));
 * const stop = new AbortController();
 * const host = new Host({
 *   keys: hostKeys, network: "game", source: hostBox, sender: new MaildirSender(po),
 *   store: new MemoryStore(), allowPrivateAddresses: true, // a LAN: everyone is on loopback
 * });
 * const hosting = new HostService({ host }).run({ signal: stop.signal });
 * const boxes: MaildirSource[] = [];
 * const player = async (name: string, onEvent?: EventSink) => {
 *   const box = new MaildirSource(await po.ensureMailbox(`${name}@lan.local`));
 *   boxes.push(box);
 *   return new Terminal({
 *     identity: await generateIdentityKeys(name), email: `${name}@lan.local`, network: "game",
 *     hosts: [hostCardOf(hostKeys)], sender: new MaildirSender(po), source: box,
 *     transport: new UdpTransport(), advertise: "127.0.0.1", ...(onEvent ? { onEvent } : {}),
 *   });
 * };
 *
 * // The game: each player asks for a peer and gets an encrypted channel.
 * const standby = Promise.withResolvers<void>();
 * const bob = (await player("bob", (e) => e.event === "standby" && standby.resolve())).rendezvous();
 * await standby.promise; // bob came first: the host knew nobody, so he stands by
 * const alice = await (await player("alice")).rendezvous(); // finds bob, connects
 * const aliceChannel = openDatagramChannel(alice.link);
 * const bobChannel = openDatagramChannel((await bob).link);
 * await aliceChannel.send(new TextEncoder().encode(JSON.stringify({ x: 3, y: 4 })));
 * const state = await bobChannel.receive();
 * console.log(new TextDecoder().decode(state!.data)); // {"x":3,"y":4}
 *
 * await aliceChannel.close();
 * await bobChannel.close();
 * stop.abort();
 * await hosting;
 * await Promise.all([hostBox.close(), ...boxes.map((b) => b.close())]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */

export * from "./src/errors.ts";
export type { EventName, EventPeer, EventSink, MailpeerEvent } from "./src/events.ts";
export { FIG4_STEPS, withActor } from "./src/events.ts";
export type { LogFields, Logger, LogLevel } from "./src/log.ts";
export { type Backoff, type Clock, type RandomSource, systemClock } from "./src/runtime.ts";
export * as limits from "./src/limits.ts";

export { type Config } from "./src/config/config_schema.ts";
export { loadConfig, parseConfig } from "./src/config/config.ts";

export type {
  Candidate,
  CandidateType,
  Endpoint,
  IntroductionPayload,
  NatMapping,
  PeerEntry,
  ReplyPayload,
  ReplyRole,
  RequestPayload,
  TransportKind,
} from "./src/message/types.ts";
export { formatHostCard, type HostCard, parseHostCard } from "./src/message/host_card.ts";
export {
  decodeHostKeys,
  decodeIdentityKeys,
  encodeHostKeys,
  encodeIdentityKeys,
  generateHostKeys,
  generateIdentityKeys,
  hostCardOf,
  type HostKeys,
  type IdentityKeys,
} from "./src/message/key_file.ts";

export type {
  MailRef,
  MailSender,
  MailSource,
  OutgoingMail,
  SubjectMatch,
} from "./src/mail/types.ts";
export { MaildirPostOffice } from "./src/mail/maildir/post_office.ts";
export { MaildirSender } from "./src/mail/maildir/sender.ts";
export { MaildirSource } from "./src/mail/maildir/source.ts";
export { SmtpSender } from "./src/mail/smtp/sender.ts";
export type { MailLogin, MailServerOptions } from "./src/mail/types.ts";
export { ImapSource } from "./src/mail/imap/source.ts";
export { Pop3Source } from "./src/mail/pop3/source.ts";

export type { PeerRow, TableStore } from "./src/host/types.ts";
export { Host } from "./src/host/host.ts";
export { type HostOptions, type HostPassResult } from "./src/host/host.ts";
export {
  type HostReady,
  HostService,
  type HostServiceOptions,
  type RunOnceOptions,
} from "./src/host/host_service.ts";
export { JsonFileStore } from "./src/host/store/json_file_store.ts";
export { MemoryStore } from "./src/host/store/memory_store.ts";

/**
 * A status page and metrics for a long-running host (docs/status.md): a {@link HostStatus}
 * collects what the host reports through its events, and {@link serveStatus} shows it on
 * loopback: `/` an HTML page, `/status.json` and `/metrics` (Prometheus text format).
 *
 * @example Watch a host answer on its status server
 * ```ts
 * import {
 *   generateHostKeys, Host, HostStatus, MaildirPostOffice, MaildirSender, MaildirSource,
 *   MemoryStore, serveStatus,
 * } from "./mod.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const po = new MaildirPostOffice(dir);
 * const status = new HostStatus();
 * const store = new MemoryStore();
 * const source = new MaildirSource(await po.ensureMailbox("host@lan.local"));
 * const host = new Host({
 *   keys: await generateHostKeys("host@lan.local"), network: "lan", source,
 *   sender: new MaildirSender(po), store, onEvent: status.sink, // or status.wrap(yourSink)
 * });
 * await host.processPending(); // a pass over an empty mailbox
 * const server = await serveStatus({ status, table: () => store.read(), port: 0 });
 * const metrics = await (await fetch(new URL("metrics", server.url))).text();
 * console.log(metrics.includes("mailpeer_host_passes_total 1")); // true
 * await server.close();
 * await source.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export { HostStatus, type HostStatusOptions, type StatusSnapshot } from "./src/host/status.ts";
export {
  serveStatus,
  startStatus,
  type StatusServer,
  type StatusServerOptions,
} from "./src/host/status_server.ts";

export type { PeerLink, PeerListener, PeerTransport, ReceiveOptions } from "./src/peer/types.ts";
export { TcpTransport } from "./src/peer/tcp_transport.ts";
export { UdpTransport, type UdpTransportOptions } from "./src/peer/udp_transport.ts";

/**
 * The TURN relay client (RFC 8656, docs/relay.md): a {@link TurnClient} allocates a relayed
 * address on a TURN server with long-term credentials, permits peers, binds channels for the
 * bulk path, refreshes all of it on its clock and releases it on close. It runs over any
 * {@link TurnSocket}, e.g. a UDP listener's `stunSocket()`, so the relay leaves from the same
 * port as the punch.
 *
 * @example Over a socket that never hears back, the allocation times out in one line
 * ```ts
 * import { parseTurnUrl, TurnClient } from "./mod.ts";
 *
 * console.log(parseTurnUrl("turn:turn.example.org")); // { host: "turn.example.org", port: 3478 }
 * const socket = { send: () => Promise.resolve(), subscribe: () => () => {} };
 * try {
 *   const turn = await TurnClient.allocate(
 *     { url: "turn:127.0.0.1:3478", user: "alice", password: "secret" },
 *     { socket, requests: 1, backoff: () => 10 },
 *   );
 *   await turn.close(); // releases the allocation
 * } catch (err) {
 *   console.log((err as { code: string }).code); // "ETIMEOUT"
 * }
 * ```
 */
export {
  parseTurnUrl,
  TurnClient,
  type TurnClientOptions,
  type TurnMaintenance,
  type TurnPeerDatagrams,
  type TurnServer,
  type TurnSocket,
} from "./src/peer/turn_client.ts";

export { type Rendezvous, Terminal, type TerminalOptions } from "./src/terminal/terminal.ts";
export { choosePeers, type PeerPolicy } from "./src/terminal/peer_choice.ts";
export { receiveLine, runChat, sendLine } from "./src/apps/chat.ts";
export {
  type ReceivedFile,
  receiveFile,
  sendFile,
  type TransferProgress,
} from "./src/apps/file_transfer.ts";
export { type DatagramChannel, openDatagramChannel } from "./src/apps/datagram_channel.ts";
export { renderProgress } from "./src/apps/progress.ts";

/**
 * Port mapping on the home router (docs/design.md "Reachability", issue 13): a {@link PortMapper}
 * asks the gateway for a mapping with PCP (RFC 6887), NAT-PMP (RFC 6886) or UPnP IGD v1/v2, keeps
 * the protocol that answers, renews the lease at half its lifetime and deletes the mapping on
 * close. The mapping's external address is a candidate peers can connect to. The clients of each
 * protocol implement {@link PortMappingClient}.
 *
 * @example Map the peer UDP port; without a known router it says what to configure
 * ```ts
 * import { PortMapper } from "./mod.ts";
 *
 * // In production: new PortMapper({ gateway: "192.168.1.1",
 * //   upnpUrl: "http://192.168.1.1:5000/rootDesc.xml" })
 * const mapper = new PortMapper({});
 * try {
 *   const mapping = await mapper.map({ transport: "udp", internalPort: 40123 });
 *   console.log(mapping.external); // { address: "203.0.113.7", port: 40123 }
 * } catch (err) {
 *   console.log((err as { code: string }).code); // "EPORTMAP"
 * } finally {
 *   await mapper.close(); // deletes the mapping on the router
 * }
 * ```
 */
export {
  PortMapper,
  type PortMapperOptions,
  type PortMapperRequest,
  type PortMapping,
} from "./src/terminal/port_mapping/port_mapper.ts";
export type {
  MappedPort,
  MappingTransport,
  PortMappingClient,
  PortMappingProtocol,
  PortMappingRequest,
  SocketAddress,
} from "./src/terminal/port_mapping/types.ts";
export { NatPmpClient, type NatPmpClientOptions } from "./src/terminal/port_mapping/nat_pmp.ts";
export { PcpClient, type PcpClientOptions } from "./src/terminal/port_mapping/pcp.ts";
export { UpnpIgdClient, type UpnpIgdClientOptions } from "./src/terminal/port_mapping/upnp_igd.ts";

/**
 * A terminal session's router mapping (`terminal.port_mapping`, docs/port-mapping.md): a
 * {@link SessionPortMapper} is the `portMapper` a `Terminal` takes. It finds what is not
 * configured (the default gateway with {@link defaultGateway}, the UPnP URL at that gateway with
 * {@link discoverUpnpUrl}, which refuses a LOCATION on another host), maps the listening port for
 * the session and deletes the mapping on close.
 *
 * @example Read the default gateway as Linux's /proc/net/route prints it
 * ```ts
 * import { parseDefaultGateway } from "./mod.ts";
 *
 * const routes = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n" +
 *   "eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\n";
 * console.log(parseDefaultGateway(routes, { littleEndian: true })); // "192.168.1.1"
 * ```
 *
 * @example Without a router to ask, the session has no mapping and is told why
 * ```ts
 * import { SessionPortMapper } from "./mod.ts";
 *
 * const mapper = new SessionPortMapper({ findGateway: () => Promise.resolve(undefined) });
 * try {
 *   await mapper.map({ transport: "udp", internalPort: 40123, lifetimeS: 3600 });
 * } catch (err) {
 *   console.log((err as { code: string }).code); // "EPORTMAP"
 * } finally {
 *   await mapper.close(); // deletes the mapping, if any, when the session ends
 * }
 * ```
 */
export {
  SessionPortMapper,
  type SessionPortMapperOptions,
} from "./src/terminal/port_mapping/session_port_mapper.ts";
export {
  defaultGateway,
  type DefaultGatewayOptions,
  discoverUpnpUrl,
  parseDefaultGateway,
  type SsdpSearchOptions,
} from "./src/terminal/port_mapping/gateway_discovery.ts";
