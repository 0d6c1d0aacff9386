/**
 * The terminal's side of FIG. 4: send a request, wait for the reply, pick a peer, connect,
 * report dead peers with a notice, and stand by for incoming connections when none answers.
 *
 * @module
 */
import { isMailpeerError, PeerError } from "../errors.ts";
import { type EventSink, silentSink } from "../events.ts";
import {
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_REPLY_TIMEOUT_MS,
  DEFAULT_STANDBY_TIMEOUT_MS,
  DEFAULT_TERMINAL_PUNCH_WINDOW_MS,
  DEFAULT_UPGRADE_INTERVAL_MS,
  MAX_CLOCK_SKEW_MS,
  PUNCH_MAX_CANDIDATES,
  PUNCH_MAX_WINDOW_MS,
} from "../limits.ts";
import { type Logger, silentLogger } from "../log.ts";
import { REPLY_READS_ROLE } from "../protocol.ts";
import type { MailSender, MailSource, SubjectMatch } from "../mail/types.ts";
import { sealNotice, sealRequest } from "../message/block.ts";
import { formatHostCard, type HostCard } from "../message/host_card.ts";
import type { IdentityKeys } from "../message/key_file.ts";
import { generateX25519 } from "../message/keys.ts";
import { bodyForBlocks, subjectFor } from "../message/mail_text.ts";
import { candidatesOf, endpointsOf } from "../message/candidate.ts";
import type {
  Candidate,
  Endpoint,
  IntroductionPayload,
  PeerEntry,
  ReplyPayload,
} from "../message/types.ts";
import type {
  PathKind,
  PeerIdentity,
  PeerLink,
  PeerListener,
  PeerTransport,
  PunchCandidate,
} from "../peer/types.ts";
import { pathKindOfKind } from "../peer/udp_punch.ts";
import { TurnClient, type TurnClientOptions, type TurnServer } from "../peer/turn_client.ts";
import { toBase64Url } from "../message/base64.ts";
import { bytesEqual } from "../message/bytes.ts";
import { type Clock, type RandomSource, systemClock, systemRandom } from "../runtime.ts";
import { acceptsPeer, checkPeerPolicy, choosePeers, type PeerPolicy } from "./peer_choice.ts";
import { type CandidateMapper, gatherCandidates } from "./gather_candidates.ts";
import { globalIPv6Addresses, networkInterfaces } from "./address.ts";
import { punchOrder, socketFamilies } from "./happy_eyeballs.ts";
import {
  type FamilyMappings,
  reflectFamilies,
  reflectFrom,
  type ReflectOptions,
  reflectPort,
} from "./reflexive.ts";
import { waitForReply } from "./reply_wait.ts";
import { roleHostOf } from "./role_host.ts";
import { watchIntroductions } from "./introduction_watch.ts";
import { keepUpgrading } from "./path_upgrade.ts";

/** Everything a terminal needs. */
export interface TerminalOptions {
  identity: IdentityKeys;
  /** This terminal's e-mail address (the From of its requests). */
  email: string;
  network: string;
  hosts: HostCard[];
  sender: MailSender;
  source: MailSource;
  transport: PeerTransport;
  /**
   * The address announced to peers (explicit, or a global interface address); with
   * `stunServers`, may be left out: the STUN mapping is announced then.
   */
  advertise?: string;
  /**
   * STUN servers (`host:port`) asked for the reflexive address of the listening port (UDP: from
   * that very port, so the mapping and its port are the ones peers reach; TCP: the address,
   * with the listening port). Default none.
   */
  stunServers?: string[];
  /** Timers, retransmissions and random ids of the STUN requests; defaults from stun.ts. */
  stun?: Omit<ReflectOptions, "signal">;
  /**
   * TURN servers (passwords resolved), UDP only: after STUN the terminal allocates a relay on
   * its listener's socket from the first that answers and announces the relayed address as a
   * `relay` candidate; the relay is released when the session ends (the listener releases it
   * when its last link closes; {@link Rendezvous.relay}). A server that fails is a `warning`
   * event and the next is tried. Default none.
   */
  turnServers?: TurnServer[];
  /** Timers and retransmissions of the TURN client; defaults from turn_client.ts. */
  turn?: Pick<
    TurnClientOptions,
    "clock" | "random" | "backoff" | "requests" | "lifetimeSeconds" | "logger"
  >;
  /** Asks the router for a port mapping (a `mapped` candidate); default none. */
  portMapper?: CandidateMapper;
  /**
   * The local interfaces, read when the listener can send IPv6: their global IPv6 addresses are
   * `host` candidates (docs/nat.md "IPv6"); default `Deno.networkInterfaces()` (none when not
   * permitted).
   */
  interfaces?: () => Deno.NetworkInterfaceInfo[];
  /**
   * Told of every valid introduction on standby (the hook for punching, docs/nat.md "The terminal
   * punches"), before the terminal punches to the introduced peer's candidates itself. Default
   * none.
   */
  onIntroduction?: (introduction: IntroductionPayload) => void | Promise<void>;
  /**
   * Where to listen for peers; default all interfaces of the advertised address's family
   * ({@link defaultListenAddress}), port 0 (any free port). The advertised address is only
   * announced: behind a NAT or a port mapping it is not this machine's.
   */
  listen?: { address: string; port: number };
  subjectMatch?: SubjectMatch["mode"];
  policy?: PeerPolicy;
  replyTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** How long to punch towards one peer after the reply, ms. */
  punchWindowMs?: number;
  /**
   * How often a relayed session looks for a direct path again, ms (docs/nat.md "Moving a session
   * to a direct path"); default `DEFAULT_UPGRADE_INTERVAL_MS`.
   */
  upgradeIntervalMs?: number;
  standbyTimeoutMs?: number;
  clock?: Clock;
  random?: RandomSource;
  onEvent?: EventSink;
  logger?: Logger;
}

/**
 * Where a terminal listens when `listen` is not configured: every interface of the announced
 * address's family (`::` for IPv6, else `0.0.0.0`), and `::` (dual-stack, docs/nat.md "IPv6")
 * as well when a STUN server is an IPv6 literal or `ipv6` says this machine has a global IPv6
 * address. The announced address is never bound: a public address from the configuration or
 * from STUN belongs to the router, not this machine.
 *
 * @example
 * ```ts
 * defaultListenAddress("198.18.0.1"); // "0.0.0.0"
 * defaultListenAddress("2001:db8::1"); // "::"
 * defaultListenAddress("0.0.0.0", { stunServers: ["[2001:db8:4d50::10]:3478"] }); // "::"
 * ```
 */
export function defaultListenAddress(
  advertised: string,
  options: { stunServers?: readonly string[]; ipv6?: boolean } = {},
): string {
  const v6Stun = (options.stunServers ?? []).some((s) => s.startsWith("["));
  return advertised.includes(":") || v6Stun || options.ipv6 ? "::" : "0.0.0.0";
}

/** An established connection and how it came about. */
export interface Rendezvous {
  link: PeerLink;
  /** `initiator` when this terminal connected, `acceptor` when it was on standby. */
  role: "initiator" | "acceptor";
  /** Milliseconds from the start of {@link Terminal.rendezvous} to the established link. */
  ms: number;
  /** How the session's packets travel (docs/nat.md "Path kinds"). */
  path: PathKind;
  /** The reply the host sent. */
  reply: ReplyPayload;
  /**
   * The TURN relay this terminal announced, if any. The listener releases it once the session's
   * link has closed; `close()` (idempotent) waits for that release, or makes it.
   */
  relay?: { readonly relayed: Endpoint; close(): Promise<void> };
}

/** One terminal of a network. */
export class Terminal {
  /** This rendezvous's own candidates: what a peer that handshakes as initiator dialled. */
  #own: readonly Candidate[] = [];
  /**
   * The configured host card the last reply's `role` named (role_host.ts): later requests go to
   * it alone while replies keep naming it; undefined: to every configured host.
   */
  #roleHost: HostCard | undefined;
  readonly #o:
    & Required<
      Omit<
        TerminalOptions,
        "listen" | "policy" | "advertise" | "stun" | "portMapper" | "onIntroduction" | "turn"
      >
    >
    & Pick<
      TerminalOptions,
      "listen" | "policy" | "advertise" | "stun" | "portMapper" | "onIntroduction" | "turn"
    >;

  constructor(options: TerminalOptions) {
    // A list entry that names no key would refuse everyone at standby: say so now.
    if (options.policy) checkPeerPolicy(options.policy);
    this.#o = {
      subjectMatch: "exact",
      replyTimeoutMs: DEFAULT_REPLY_TIMEOUT_MS,
      connectTimeoutMs: DEFAULT_CONNECT_TIMEOUT_MS,
      punchWindowMs: DEFAULT_TERMINAL_PUNCH_WINDOW_MS,
      upgradeIntervalMs: DEFAULT_UPGRADE_INTERVAL_MS,
      standbyTimeoutMs: DEFAULT_STANDBY_TIMEOUT_MS,
      clock: systemClock,
      random: systemRandom,
      onEvent: silentSink,
      logger: silentLogger,
      stunServers: [],
      turnServers: [],
      interfaces: networkInterfaces,
      ...options,
    };
    if (this.#o.advertise === undefined && this.#o.stunServers.length === 0) {
      throw new TypeError(
        "Cannot make a terminal: it has neither an address to announce nor STUN servers to ask; set advertise or stunServers",
      );
    }
  }

  get #peerIdentity(): PeerIdentity {
    const { identity } = this.#o;
    return {
      userId: identity.userId,
      publicKey: identity.ed25519.publicKey,
      privateKey: identity.ed25519.privateKey,
    };
  }

  /** Runs the whole flow and resolves with an established, encrypted link. */
  async rendezvous(options: { signal?: AbortSignal } = {}): Promise<Rendezvous> {
    const o = this.#o;
    const started = o.clock.now();
    // The mailbox is opened first, while the listener and candidates are made, and must work
    // before the request goes out: a wrong password or a missing mailbox ends here, with
    // nothing mailed (docs/decisions.md "The terminal opens its mailbox before it mails").
    const opening = o.source.open?.(options.signal ? { signal: options.signal } : {})
      .then(() => undefined, (err: unknown) => ({ err }));
    const { listener, reflexive } = await this.#listen(options.signal).catch(async (err) => {
      await opening; // nothing left running
      throw err;
    });
    try {
      const relay = await this.#allocateRelay(listener, options.signal);
      // A listener that sends IPv6 announces its global IPv6 addresses too (docs/nat.md "IPv6").
      const interfaces = socketFamilies(listener.endpoint.address).has("IPv6")
        ? o.interfaces()
        : [];
      const candidates = await gatherCandidates({
        transport: o.transport.kind,
        listenPort: listener.endpoint.port,
        ...(relay ? { relayed: relay.relayed } : {}),
        ...(o.advertise !== undefined ? { advertise: o.advertise } : {}),
        ...(reflexive.IPv4 ? { reflexive: reflexive.IPv4 } : {}),
        ...(reflexive.IPv6 ? { reflexiveV6: reflexive.IPv6 } : {}),
        hostAddresses: globalIPv6Addresses(interfaces, listener.endpoint.address),
        localAddresses: interfaces.map((i) => i.address),
        ...(o.portMapper ? { mapper: o.portMapper } : {}),
        logger: o.logger,
        ...(options.signal ? { signal: options.signal } : {}),
      });
      if (candidates.length === 0) {
        throw new PeerError(
          "EADDRESS",
          "Cannot find an address for peers to reach: no address is set and no STUN server answered; set terminal.address or check terminal.stun_servers",
        );
      }
      const failed = await opening;
      if (failed) throw failed.err;
      const endpoints = endpointsOf(candidates);
      const endpoint = endpoints[0]!;
      this.#own = candidates;
      o.onEvent({ event: "listening", endpoint });
      // List while the request is being sent, not after.
      const replyMatch: SubjectMatch = {
        subject: subjectFor(o.network, "reply"),
        mode: o.subjectMatch,
      };
      const warming = o.source.list(replyMatch, options.signal ? { signal: options.signal } : {})
        .catch(() => []);
      const { sessionId, replyPrivateKey, introductionPrivateKey } = await this.#sendRequest(
        candidates,
      );
      const reply = await waitForReply({
        // By the time that listing is done the reply is often there already.
        firstListing: warming,
        source: o.source,
        match: replyMatch,
        hosts: o.hosts,
        sessionId,
        replyPrivateKey,
        notBefore: started - MAX_CLOCK_SKEW_MS,
        timeoutMs: o.replyTimeoutMs,
        clock: o.clock,
        onEvent: o.onEvent,
        logger: o.logger,
        ...(options.signal ? { signal: options.signal } : {}),
      }).catch((err) => {
        // No reply (none in time, or stopped): the next request goes to every configured host.
        this.#roleHost = undefined;
        throw err;
      });
      this.#followRole(reply.reply);
      const found = await this.#connectAny(reply.reply, listener, options.signal);
      // The reply is deleted in the background: the link is ready now, and the mail source
      // finishes the delete before it closes (an IMAP source waits for its commands).
      reply.consume().catch((err) =>
        o.logger.log("warn", `could not delete the reply mail: ${err}`)
      );
      const done = (c: Connected, role: Rendezvous["role"]): Rendezvous => ({
        ...c,
        role,
        ms: o.clock.now() - started,
        reply: reply.reply,
        ...(relay ? { relay } : {}),
      });
      if (found) {
        this.#keepUpgrading(found, listener, options.signal);
        return done(found, "initiator");
      }
      const standby = await this.#standby(
        listener,
        endpoint,
        { sessionId, introductionPrivateKey },
        options.signal,
      );
      this.#connected(standby.link.remote.userId, standby, "acceptor", o.clock.now() - started);
      this.#keepUpgrading(standby, listener, options.signal);
      return done(standby, "acceptor");
    } finally {
      await listener.close().catch(() => {});
    }
  }

  /**
   * Opens the peer listener and learns its STUN mapping. UDP: STUN runs over the listener's own
   * socket, so the mapping found is the one peers reach. TCP: the address from a UDP port of
   * the same interface, announced with the TCP listening port.
   */
  async #listen(
    signal?: AbortSignal,
  ): Promise<{ listener: PeerListener; reflexive: FamilyMappings }> {
    const o = this.#o;
    const at = o.listen ?? {
      address: defaultListenAddress(o.advertise ?? "0.0.0.0", {
        ...(o.transport.kind === "udp" ? { stunServers: o.stunServers } : {}),
      }),
      port: 0,
    };
    const listener = await o.transport.listen(at, {
      identity: this.#peerIdentity,
      accept: (peer) => acceptsPeer(peer, o.policy),
    });
    try {
      return { listener, reflexive: await this.#reflect(listener, at, signal) };
    } catch (err) {
      await listener.close().catch(() => {});
      throw err;
    }
  }

  /**
   * A TURN relay on the listener's socket, after STUN (the first of `turnServers` that
   * allocates), attached to the listener: it speaks through it and releases it when its socket
   * closes. Undefined without servers, on TCP, or when none allocates (each failure a `warning`).
   */
  async #allocateRelay(
    listener: PeerListener,
    signal?: AbortSignal,
  ): Promise<TurnClient | undefined> {
    const o = this.#o;
    if (!listener.stunSocket || !listener.attachRelay) return undefined;
    for (const server of o.turnServers) {
      try {
        const turn = await TurnClient.allocate(server, {
          ...o.turn,
          socket: listener.stunSocket(),
          logger: o.turn?.logger ?? o.logger,
          onLost: (err) => o.onEvent({ event: "warning", message: err.message }),
          ...(signal ? { signal } : {}),
        });
        listener.attachRelay(turn);
        o.logger.log(
          "debug",
          `relay on ${server.url}: ${turn.relayed.address}:${turn.relayed.port}`,
        );
        return turn;
      } catch (err) {
        if (!(err instanceof PeerError) || signal?.aborted) throw err;
        o.onEvent({ event: "warning", message: err.message });
      }
    }
    return undefined;
  }

  /**
   * A relayed session keeps looking for a direct path while it runs (`path_upgrade.ts`),
   * learning this side's mapping again over the listener's socket each round.
   */
  #keepUpgrading(found: Connected, listener: PeerListener, signal?: AbortSignal): void {
    const o = this.#o;
    const stunSocket = listener.stunSocket?.();
    keepUpgrading({
      link: found.link,
      path: found.path,
      peerCandidates: found.peerCandidates ?? [],
      ownCandidates: this.#own,
      learnMappings: async (signal) => {
        if (!stunSocket) return [];
        const found: Endpoint[] = [];
        for (const server of o.stunServers) {
          const r = await reflectFrom(stunSocket, [server], { ...o.stun, signal }).catch(
            () => undefined,
          );
          if (r) found.push({ transport: "udp", address: r.address, port: r.port });
        }
        return found;
      },
      intervalMs: o.upgradeIntervalMs,
      clock: o.clock,
      onEvent: o.onEvent,
      logger: o.logger,
      ...(signal ? { signal } : {}),
    });
  }

  /**
   * The STUN mappings peers will reach, one per address family the listener's socket sends
   * (docs/nat.md "IPv6"); none without STUN or an answer.
   */
  async #reflect(
    listener: PeerListener,
    at: { address: string; port: number },
    signal?: AbortSignal,
  ): Promise<FamilyMappings> {
    const o = this.#o;
    if (o.stunServers.length === 0) return {};
    const options = { ...o.stun, ...(signal ? { signal } : {}) };
    try {
      const families = socketFamilies(listener.endpoint.address);
      const found: FamilyMappings = listener.stunSocket
        ? await reflectFamilies(listener.stunSocket(), o.stunServers, families, options)
        : { IPv4: await reflectPort({ address: at.address, port: 0 }, o.stunServers, options) };
      for (const mapping of [found.IPv4, found.IPv6]) {
        if (!mapping) continue;
        o.onEvent({ event: "address-detected", address: mapping.address, source: "stun" });
      }
      return found;
    } catch (err) {
      if (!(err instanceof PeerError) || signal?.aborted) throw err;
      o.logger.log("warn", err.message, { code: err.code });
      return {};
    }
  }

  /**
   * Follows the host role a reply names, when it is one of the configured host cards signed by
   * the reply's own key (role_host.ts); any other address is ignored with a log line.
   */
  #followRole(reply: ReplyPayload): void {
    const o = this.#o;
    this.#roleHost = roleHostOf(reply, o.hosts);
    if (reply.role !== undefined && this.#roleHost === undefined) {
      o.logger.log(
        "info",
        `the reply names ${reply.role.address} for later requests, which is not a configured host card with the key that signed the reply; mailing the configured hosts`,
      );
    }
  }

  async #sendRequest(
    candidates: Candidate[],
  ): Promise<
    { sessionId: Uint8Array; replyPrivateKey: Uint8Array; introductionPrivateKey: Uint8Array }
  > {
    const o = this.#o;
    const hosts = this.#roleHost ? [this.#roleHost] : o.hosts;
    const sessionId = o.random(16);
    const replyKeys = await generateX25519();
    // Introductions are sealed to a key of this request's own: it lives as long as its row.
    const introductionKeys = await generateX25519();
    const cards = hosts.map(formatHostCard);
    // One mail to every host, one block sealed to each host card: the first reply wins.
    const blocks: Uint8Array[] = [];
    for (const card of hosts) {
      blocks.push(
        await sealRequest({
          network: o.network,
          userId: o.identity.userId,
          identityKey: o.identity.ed25519.publicKey,
          endpoints: endpointsOf(candidates),
          candidates,
          sessionId,
          createdAt: o.clock.now(),
          replyKey: replyKeys.publicKey,
          hostCards: cards,
          introductionKey: introductionKeys.publicKey,
          // the reply may say who answered in the host role (docs/protocol.md "Reply extensions")
          reads: [REPLY_READS_ROLE],
        }, { identity: o.identity, hostCard: card }),
      );
    }
    await o.sender.send({
      from: o.email,
      to: [...new Set(hosts.map((h) => h.email))],
      subject: subjectFor(o.network, "request"),
      text: bodyForBlocks(o.network, "request", blocks),
      date: new Date(o.clock.now()),
    });
    o.onEvent({
      event: "request-sent",
      to: hosts.map((h) => h.email),
      sessionId: toBase64Url(sessionId),
      endpoints: endpointsOf(candidates),
      candidates,
    });
    return {
      sessionId,
      replyPrivateKey: replyKeys.privateKey,
      introductionPrivateKey: introductionKeys.privateKey,
    };
  }

  /**
   * Tries the reply's peers one by one (docs/nat.md "The terminal punches"). A peer that
   * announced typed candidates punches back once the host's introduction reaches it, so it is
   * punched to from the listener's socket (UDP) or port (TCP, docs/nat.md "TCP simultaneous
   * open") for `punchWindowMs`; meanwhile the listener answers no one else. Other peers (a
   * version 1 peer) are dialled candidate after candidate. Every peer that fails gets a notice;
   * a peer with no candidate on this terminal's transport is skipped with a `peer-skipped` event
   * and no notice (docs/decisions.md "Peers on another transport").
   */
  async #connectAny(
    reply: ReplyPayload,
    listener: PeerListener,
    signal?: AbortSignal,
  ): Promise<Connected | undefined> {
    const o = this.#o;
    listener.admit?.("punched");
    try {
      for (const peer of choosePeers(reply.peers, o.policy)) {
        // The peer's candidates on our transport, best first, IPv6 and IPv4 interleaved
        // (happy_eyeballs.ts; a version 1 peer's endpoints are its host candidates, in order).
        const all = candidatesOf(peer);
        const candidates = punchOrder(
          all.filter((c) => c.transport === o.transport.kind),
          { families: socketFamilies(listener.endpoint.address) },
        );
        // A peer this transport cannot reach is skipped, never reported: it was not tried
        // (docs/decisions.md "Peers on another transport").
        if (candidates.length === 0) {
          this.#skipped(peer.userId, all);
          continue;
        }
        // A punch covers every candidate at once; a plain dial takes them one after another.
        const attempts: (() => Promise<Connected>)[] =
          listener.punch && peer.candidates !== undefined
            ? [() => this.#punch(listener, peer, candidates, o.punchWindowMs, signal)]
            : candidates.map((candidate) => () => this.#dial(peer, candidate, signal));
        let lastError: unknown;
        const t0 = o.clock.now();
        for (const attempt of attempts) {
          try {
            const found = await attempt();
            this.#connected(peer.userId, found, "initiator", o.clock.now() - t0);
            return found;
          } catch (err) {
            if (!isMailpeerError(err) || signal?.aborted) throw err;
            lastError = err;
            this.#failed(peer.userId, err);
          }
        }
        await this.#sendNotice(reply, peer, lastError);
      }
      return undefined;
    } finally {
      listener.admit?.("all");
    }
  }

  /** Dials one candidate from a socket of its own, proving the key the host listed. */
  async #dial(
    peer: { userId: string; identityKey: Uint8Array },
    candidate: Candidate,
    signal?: AbortSignal,
  ): Promise<Connected> {
    const o = this.#o;
    const endpoint = {
      transport: candidate.transport,
      address: candidate.address,
      port: candidate.port,
    };
    o.onEvent({ event: "connecting", peer: peer.userId, endpoint });
    const link = await o.transport.connect(endpoint, {
      identity: this.#peerIdentity,
      expectedIdentityKey: peer.identityKey,
      timeoutMs: o.connectTimeoutMs,
      ...(signal ? { signal } : {}),
    });
    this.#checkUserId(link, peer.userId);
    return { link, path: pathKindOfKind(candidate.type) };
  }

  /**
   * Punches to a peer's candidates from the listener's socket (`UdpPeerListener.punch`): the
   * first pair that completes the handshake with the key the host vouched for wins.
   */
  async #punch(
    listener: PeerListener,
    peer: { userId: string; identityKey: Uint8Array },
    candidates: readonly Candidate[],
    windowMs: number,
    signal?: AbortSignal,
  ): Promise<Connected> {
    const o = this.#o;
    if (bytesEqual(peer.identityKey, o.identity.ed25519.publicKey)) {
      throw new PeerError(
        "EIDENTITY",
        `Cannot connect to peer ${peer.userId}: it was listed with this terminal's own identity key; report it and try another peer`,
      );
    }
    const result = await listener.punch!({
      peerKey: peer.identityKey,
      candidates: punchCandidates(candidates),
      windowMs,
      onEvent: (e) => {
        if (e.type === "attempt") {
          o.onEvent({ event: "connecting", peer: peer.userId, endpoint: e.remote });
        } else if (e.type === "permit-failed") {
          o.logger.log("warn", `relay permission for ${e.address}: ${e.error}`);
        } else if (e.type === "learned") {
          o.logger.log("debug", `${peer.userId} answers from ${e.remote.address}:${e.remote.port}`);
        } else {
          o.logger.log("debug", `no answer from ${e.remote.address}:${e.remote.port}: ${e.error}`);
        }
      },
      ...(signal ? { signal } : {}),
    });
    this.#checkUserId(result.link, peer.userId);
    return {
      link: result.link,
      path: this.#pathOf(result.link, candidates, result.reached),
      peerCandidates: candidates,
    };
  }

  /** Lists and notices go by the listed user id too: a link naming another one is closed. */
  #checkUserId(link: PeerLink, userId: string): void {
    if (link.remote.userId === userId) return;
    link.close().catch(() => {});
    throw new PeerError(
      "EIDENTITY",
      `Cannot accept peer ${userId}: it names itself ${
        JSON.stringify(link.remote.userId)
      } in its handshake; report it and try another peer`,
    );
  }

  #connected(peer: string, found: Connected, role: "initiator" | "acceptor", ms: number): void {
    this.#o.onEvent({
      event: "connected",
      peer,
      transport: found.link.transport,
      ms,
      role,
      remote: found.link.remote.endpoint,
      path: found.path,
      ...(found.link.cipher ? { cipher: found.link.cipher } : {}),
    });
  }

  /**
   * How a link's packets travel (docs/nat.md "Path kinds"), judged alike on both ends: `relayed`
   * whenever either end of the pair is a TURN relay candidate, else `mapped` whenever the other end
   * of the pair is a router mapping, else the kind of the candidate the handshake's initiator
   * dialled. The initiator knows what it dialled (`link.remote.endpoint`);
   * the responder reads it from the signed CONNECT (`link.remote.dialled`). `reached` is the
   * address of ours that the peer's probe was sent to, when the punch learned the peer from one.
   */
  #pathOf(
    link: PeerLink,
    peerCandidates: readonly Candidate[],
    reached?: Endpoint,
  ): PathKind {
    const kindIn = (list: readonly Candidate[], at: Endpoint | undefined): PathKind =>
      pathKindOfKind(at && list.find((c) => c.address === at.address && c.port === at.port)?.type);
    const dialled = link.remote.dialled;
    const [initiatorDialled, otherEnd] = dialled
      ? [kindIn(this.#own, dialled), kindIn(peerCandidates, link.remote.endpoint)]
      : [kindIn(peerCandidates, link.remote.endpoint), kindIn(this.#own, reached)];
    if (initiatorDialled === "relayed" || otherEnd === "relayed") return "relayed";
    return otherEnd === "mapped" ? "mapped" : initiatorDialled;
  }

  /** Says why a listed peer is not tried: none of its candidates is on this transport. */
  #skipped(peer: string, candidates: readonly Candidate[]): void {
    const mine = this.#o.transport.kind;
    const theirs = [...new Set(candidates.map((c) => c.transport))];
    this.#o.onEvent({
      event: "peer-skipped",
      peer,
      transports: theirs,
      reason: theirs.length === 0
        ? "it announced no address"
        : `it listens on ${
          theirs.map((t) => t.toUpperCase()).join(" and ")
        } only and this terminal uses ${mine.toUpperCase()}; both ends need the same terminal.transport`,
    });
  }

  #failed(peer: string, err: { code: string; message: string }): void {
    this.#o.onEvent({ event: "connect-failed", peer, code: err.code, message: err.message });
  }

  async #sendNotice(reply: ReplyPayload, peer: PeerEntry, error: unknown): Promise<void> {
    const o = this.#o;
    const reason = isMailpeerError(error) ? error.code : "no usable endpoint";
    const endpoint = peer.endpoints.find((e) => e.transport === o.transport.kind);
    const blocks: Uint8Array[] = [];
    for (const card of o.hosts) {
      blocks.push(
        await sealNotice({
          network: o.network,
          userId: o.identity.userId,
          identityKey: o.identity.ed25519.publicKey,
          sessionId: reply.sessionId,
          createdAt: o.clock.now(),
          failed: [{ userId: peer.userId, reason, ...(endpoint ? { endpoint } : {}) }],
        }, { identity: o.identity, hostCard: card }),
      );
    }
    await o.sender.send({
      from: o.email,
      to: [...new Set(o.hosts.map((h) => h.email))],
      subject: subjectFor(o.network, "notice"),
      text: bodyForBlocks(o.network, "notice", blocks),
      date: new Date(o.clock.now()),
    });
    o.onEvent({ event: "notice-sent", to: o.hosts.map((h) => h.email), failed: [peer.userId] });
  }

  /**
   * Stands by: accepts the first valid CONNECT, and meanwhile watches the mailbox for
   * introductions; each introduced peer is punched to at once (UDP and TCP), for the
   * introduction's window (docs/nat.md "The terminal punches"). Whichever link comes first wins;
   * the others are closed.
   */
  async #standby(
    listener: PeerListener,
    endpoint: Endpoint,
    request: { sessionId: Uint8Array; introductionPrivateKey: Uint8Array },
    signal?: AbortSignal,
  ): Promise<Connected> {
    const o = this.#o;
    const until = o.clock.now() + o.standbyTimeoutMs;
    o.onEvent({ event: "standby", endpoint, untilMs: until });
    const timer = new AbortController();
    const sleeping = o.clock.sleep(o.standbyTimeoutMs, timer.signal).then(
      () => timer.abort(),
      () => {},
    );
    const won = new AbortController();
    const all = AbortSignal.any([...(signal ? [signal] : []), timer.signal, won.signal]);
    let winner: Connected | undefined;
    const extra: PeerLink[] = [];
    const take = (found: Connected) => {
      if (winner) {
        extra.push(found.link);
        return;
      }
      winner = found;
      won.abort();
    };
    const punches: Promise<void>[] = [];
    // The candidates of each introduced peer, for the path of a link it makes before its punch.
    const introduced = new Map<string, Candidate[]>();
    const watching = watchIntroductions({
      source: o.source,
      match: { subject: subjectFor(o.network, "introduction"), mode: o.subjectMatch },
      hosts: o.hosts,
      network: o.network,
      sessionId: request.sessionId,
      introductionPrivateKey: request.introductionPrivateKey,
      clock: o.clock,
      onEvent: o.onEvent,
      logger: o.logger,
      signal: all,
      onIntroduction: async (introduction) => {
        const peer = introduction.peer;
        o.onEvent({
          event: "introduction",
          peer: peer.userId,
          candidates: peer.candidates,
          punchStart: introduction.punchStart,
          punchEnd: introduction.punchEnd,
        });
        await o.onIntroduction?.(introduction);
        const candidates = punchOrder(
          peer.candidates.filter((c) => c.transport === o.transport.kind),
          { families: socketFamilies(listener.endpoint.address) },
        );
        introduced.set(toBase64Url(peer.identityKey), candidates);
        const windowMs = Math.min(introduction.punchEnd - o.clock.now(), PUNCH_MAX_WINDOW_MS);
        if (!listener.punch || candidates.length === 0 || windowMs < 1 || all.aborted) return;
        if (!acceptsPeer(peer, o.policy)) return;
        // Not awaited: the next introduction is punched at the same time.
        const t0 = o.clock.now();
        punches.push(
          this.#punch(listener, peer, candidates, windowMs, all).then((found) => {
            this.#o.logger.log("debug", `punched to ${peer.userId} in ${o.clock.now() - t0} ms`);
            take(found);
          }, (err) => {
            if (!all.aborted && isMailpeerError(err)) this.#failed(peer.userId, err);
          }),
        );
      },
    });
    try {
      const link = await listener.accept({ signal: all });
      const known = introduced.get(toBase64Url(link.remote.identityKey)) ?? [];
      take({ link, path: this.#pathOf(link, known), peerCandidates: known });
      return winner!;
    } catch (err) {
      if (winner) return winner;
      if (signal?.aborted) throw err;
      if (timer.signal.aborted) {
        throw new PeerError(
          "ETIMEOUT",
          `Cannot find a peer: nobody connected during the standby time of ${
            Math.round(o.standbyTimeoutMs / 1000)
          }s; run the client again later or raise terminal.standby_timeout`,
          { cause: err },
        );
      }
      throw err;
    } finally {
      won.abort();
      timer.abort();
      await sleeping;
      await watching;
      await Promise.all(punches);
      // Both came: the first is the one returned; the others are closed.
      await Promise.all(extra.map((l) => l.close().catch(() => {})));
    }
  }
}

/** The best `PUNCH_MAX_CANDIDATES` of a peer's candidates, as a punch takes them. */
function punchCandidates(candidates: readonly Candidate[]): PunchCandidate[] {
  return candidates.slice(0, PUNCH_MAX_CANDIDATES).map((c) => ({
    transport: c.transport,
    address: c.address,
    port: c.port,
    kind: c.type,
  }));
}

/** A link this terminal holds, and how its packets travel. */
interface Connected {
  link: PeerLink;
  path: PathKind;
  /** The peer's candidates, as the host gave them (for a later move to a direct path). */
  peerCandidates?: readonly Candidate[];
}
