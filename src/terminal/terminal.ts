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
  MAX_CLOCK_SKEW_MS,
} from "../limits.ts";
import { type Logger, silentLogger } from "../log.ts";
import type { MailSender, MailSource, SubjectMatch } from "../mail/types.ts";
import { toBase64Url } from "../message/base64.ts";
import { sealNotice, sealRequest } from "../message/block.ts";
import { formatHostCard, type HostCard } from "../message/host_card.ts";
import type { IdentityKeys } from "../message/key_file.ts";
import { generateX25519 } from "../message/keys.ts";
import { bodyForBlocks, subjectFor } from "../message/mail_text.ts";
import { byPriority, candidatesOf, endpointsOf } from "../message/candidate.ts";
import type {
  Candidate,
  Endpoint,
  IntroductionPayload,
  PeerEntry,
  ReplyPayload,
} from "../message/types.ts";
import type { PeerIdentity, PeerLink, PeerListener, PeerTransport } from "../peer/types.ts";
import { type Clock, type RandomSource, systemClock, systemRandom } from "../runtime.ts";
import { acceptsPeer, checkPeerPolicy, choosePeers, type PeerPolicy } from "./peer_choice.ts";
import { type CandidateMapper, gatherCandidates } from "./gather_candidates.ts";
import { type ReflectOptions, reflectPort, type ReflexiveAddress } from "./reflexive.ts";
import { waitForReply } from "./reply_wait.ts";
import { watchIntroductions } from "./introduction_watch.ts";

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
  /** Asks the router for a port mapping (a `mapped` candidate); default none. */
  portMapper?: CandidateMapper;
  /**
   * Told of every valid introduction on standby (the hook for punching, docs/design.md §7), before the
   * terminal tries the introduced peer's candidates itself (UDP). Default none.
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
  standbyTimeoutMs?: number;
  /** How long to punch towards one peer after the reply, ms. */
  punchWindowMs?: number;
  clock?: Clock;
  random?: RandomSource;
  onEvent?: EventSink;
  logger?: Logger;
}

/**
 * Where a terminal listens when `listen` is not configured: every interface of the announced
 * address's family (`::` for IPv6, else `0.0.0.0`). The announced address is never bound: a
 * public address from the configuration or from STUN belongs to the router, not this machine.
 *
 * @example
 * ```ts
 * defaultListenAddress("198.18.0.1"); // "0.0.0.0"
 * defaultListenAddress("2001:db8::1"); // "::"
 * ```
 */
export function defaultListenAddress(advertised: string): string {
  return advertised.includes(":") ? "::" : "0.0.0.0";
}

/** An established connection and how it came about. */
export interface Rendezvous {
  link: PeerLink;
  /** `initiator` when this terminal connected, `acceptor` when it was on standby. */
  role: "initiator" | "acceptor";
  /** Milliseconds from the start of {@link Terminal.rendezvous} to the established link. */
  ms: number;
  /** The reply the host sent. */
  reply: ReplyPayload;
}

/** One terminal of a network. */
export class Terminal {
  readonly #o:
    & Required<
      Omit<
        TerminalOptions,
        | "listen"
        | "policy"
        | "advertise"
        | "stun"
        | "portMapper"
        | "onIntroduction"
        | "punchWindowMs"
      >
    >
    & Pick<
      TerminalOptions,
      "listen" | "policy" | "advertise" | "stun" | "portMapper" | "onIntroduction" | "punchWindowMs"
    >;

  constructor(options: TerminalOptions) {
    // A list entry that names no key would refuse everyone at standby: say so now.
    if (options.policy) checkPeerPolicy(options.policy);
    this.#o = {
      subjectMatch: "exact",
      replyTimeoutMs: DEFAULT_REPLY_TIMEOUT_MS,
      connectTimeoutMs: DEFAULT_CONNECT_TIMEOUT_MS,
      standbyTimeoutMs: DEFAULT_STANDBY_TIMEOUT_MS,
      clock: systemClock,
      random: systemRandom,
      onEvent: silentSink,
      logger: silentLogger,
      stunServers: [],
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
    const { listener, reflexive } = await this.#listen(options.signal);
    try {
      const candidates = await gatherCandidates({
        transport: o.transport.kind,
        listenPort: listener.endpoint.port,
        ...(o.advertise !== undefined ? { advertise: o.advertise } : {}),
        ...(reflexive ? { reflexive } : {}),
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
      const endpoints = endpointsOf(candidates);
      const endpoint = endpoints[0]!;
      o.onEvent({ event: "listening", endpoint });
      // Open the mailbox connection while the request is being sent, not after.
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
      });
      const link = await this.#connectAny(reply.reply, options.signal);
      // The reply is deleted in the background: the link is ready now, and the mail source
      // finishes the delete before it closes (an IMAP source waits for its commands).
      reply.consume().catch((err) =>
        o.logger.log("warn", `could not delete the reply mail: ${err}`)
      );
      if (link) return { link, role: "initiator", ms: o.clock.now() - started, reply: reply.reply };
      const standby = await this.#standby(
        listener,
        endpoint,
        { sessionId, introductionPrivateKey },
        options.signal,
      );
      o.onEvent({
        event: "connected",
        peer: standby.link.remote.userId,
        transport: standby.link.transport,
        ms: o.clock.now() - started,
        role: standby.role,
      });
      return { ...standby, ms: o.clock.now() - started, reply: reply.reply };
    } finally {
      await listener.close().catch(() => {});
    }
  }

  /**
   * Opens the peer listener; with STUN, on the UDP port whose mapping STUN just saw. Another
   * program may take a free port in the gap between the two binds: then both are tried again,
   * twice at most.
   */
  async #listen(
    signal?: AbortSignal,
  ): Promise<{ listener: PeerListener; reflexive: ReflexiveAddress | undefined }> {
    const o = this.#o;
    const base = o.listen ?? { address: defaultListenAddress(o.advertise ?? "0.0.0.0"), port: 0 };
    for (let attempt = 0;; attempt++) {
      const reflexive = await this.#reflect(base, signal);
      const reused = reflexive !== undefined && o.transport.kind === "udp";
      const at = reused ? { ...base, port: reflexive.localPort } : base;
      try {
        const listener = await o.transport.listen(at, {
          identity: this.#peerIdentity,
          accept: (peer) => acceptsPeer(peer, o.policy),
        });
        return { listener, reflexive };
      } catch (err) {
        if (!(err instanceof PeerError) || !reused || base.port !== 0 || attempt >= 2) throw err;
        o.logger.log(
          "warn",
          `the STUN port was taken before the listener bound it: ${err.message}`,
        );
      }
    }
  }

  /** The STUN mapping of the port about to be listened on, or undefined (no STUN, no answer). */
  async #reflect(
    local: { address: string; port: number },
    signal?: AbortSignal,
  ): Promise<ReflexiveAddress | undefined> {
    const o = this.#o;
    if (o.stunServers.length === 0) return undefined;
    try {
      const found = await reflectPort(local, o.stunServers, {
        ...o.stun,
        ...(signal ? { signal } : {}),
      });
      o.onEvent({ event: "address-detected", address: found.address, source: "stun" });
      return found;
    } catch (err) {
      if (!(err instanceof PeerError) || signal?.aborted) throw err;
      o.logger.log("warn", err.message, { code: err.code });
      return undefined;
    }
  }

  async #sendRequest(
    candidates: Candidate[],
  ): Promise<
    { sessionId: Uint8Array; replyPrivateKey: Uint8Array; introductionPrivateKey: Uint8Array }
  > {
    const o = this.#o;
    const sessionId = o.random(16);
    const replyKeys = await generateX25519();
    // Introductions are sealed to a key of this request's own: it lives as long as its row.
    const introductionKeys = await generateX25519();
    const cards = o.hosts.map(formatHostCard);
    // One mail to every host, one block sealed to each host card: the first reply wins.
    const blocks: Uint8Array[] = [];
    for (const card of o.hosts) {
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
        }, { identity: o.identity, hostCard: card }),
      );
    }
    await o.sender.send({
      from: o.email,
      to: [...new Set(o.hosts.map((h) => h.email))],
      subject: subjectFor(o.network, "request"),
      text: bodyForBlocks(o.network, "request", blocks),
      date: new Date(o.clock.now()),
    });
    o.onEvent({
      event: "request-sent",
      to: o.hosts.map((h) => h.email),
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

  async #connectAny(reply: ReplyPayload, signal?: AbortSignal): Promise<PeerLink | undefined> {
    const o = this.#o;
    for (const peer of choosePeers(reply.peers, o.policy)) {
      // The peer's candidates on our transport, best first (a version 1 peer's endpoints are
      // its host candidates, in its order).
      const endpoints = endpointsOf(
        byPriority(candidatesOf(peer).filter((c) => c.transport === o.transport.kind)),
      );
      let lastError: unknown;
      for (const endpoint of endpoints) {
        o.onEvent({ event: "connecting", peer: peer.userId, endpoint });
        const t0 = o.clock.now();
        try {
          const link = await o.transport.connect(endpoint, {
            identity: this.#peerIdentity,
            expectedIdentityKey: peer.identityKey,
            timeoutMs: o.connectTimeoutMs,
            ...(signal ? { signal } : {}),
          });
          if (link.remote.userId !== peer.userId) {
            // The key is the listed one, but lists and notices go by the listed user id too.
            await link.close().catch(() => {});
            throw new PeerError(
              "EIDENTITY",
              `Cannot accept peer ${peer.userId}: it names itself ${
                JSON.stringify(link.remote.userId)
              } in its handshake; report it and try another peer`,
            );
          }
          o.onEvent({
            event: "connected",
            peer: peer.userId,
            transport: link.transport,
            ms: o.clock.now() - t0,
            role: "initiator",
          });
          return link;
        } catch (err) {
          if (!isMailpeerError(err) || signal?.aborted) throw err;
          lastError = err;
          o.onEvent({
            event: "connect-failed",
            peer: peer.userId,
            code: err.code,
            message: err.message,
          });
        }
      }
      await this.#sendNotice(reply, peer, lastError);
    }
    return undefined;
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
   * introductions; over UDP, an introduced peer is connected to directly (its candidates, best
   * first), and whichever link comes first wins.
   */
  async #standby(
    listener: PeerListener,
    endpoint: Endpoint,
    request: { sessionId: Uint8Array; introductionPrivateKey: Uint8Array },
    signal?: AbortSignal,
  ): Promise<{ link: PeerLink; role: "initiator" | "acceptor" }> {
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
    let introduced: PeerLink | undefined;
    let accepted: PeerLink | undefined;
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
        o.onEvent({
          event: "introduction",
          peer: introduction.peer.userId,
          candidates: introduction.peer.candidates,
          punchStart: introduction.punchStart,
          punchEnd: introduction.punchEnd,
        });
        await o.onIntroduction?.(introduction);
        if (introduced || o.transport.kind !== "udp") return;
        // The requester dials us first, as soon as it has its reply; we dial it only from the
        // punch window on, when its own attempt has had its time. Two links to one peer made at
        // once would each side keep another (the punching step settles that with a tie-break).
        const wait = introduction.punchStart - o.clock.now();
        if (wait > 0) await o.clock.sleep(wait, all).catch(() => {});
        if (all.aborted || introduced) return;
        introduced = await this.#connectIntroduced(introduction, all);
        if (introduced) won.abort();
      },
    });
    try {
      accepted = await listener.accept({ signal: all });
      return { link: accepted, role: "acceptor" };
    } catch (err) {
      if (introduced) return { link: introduced, role: "initiator" };
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
      // Both came: the accepted link is the one returned; the other is closed.
      if (accepted && introduced) await introduced.close().catch(() => {});
    }
  }

  /**
   * Connects to an introduced peer's candidates on our transport, best first, proving the key
   * the host vouched for. The first link is returned; failures are `connect-failed` events.
   */
  async #connectIntroduced(
    introduction: IntroductionPayload,
    signal: AbortSignal,
  ): Promise<PeerLink | undefined> {
    const o = this.#o;
    const peer = introduction.peer;
    const candidates = byPriority(peer.candidates.filter((c) => c.transport === o.transport.kind));
    for (const candidate of candidates) {
      if (signal.aborted) return undefined;
      const endpoint = {
        transport: candidate.transport,
        address: candidate.address,
        port: candidate.port,
      };
      o.onEvent({ event: "connecting", peer: peer.userId, endpoint });
      try {
        const link = await o.transport.connect(endpoint, {
          identity: this.#peerIdentity,
          expectedIdentityKey: peer.identityKey,
          timeoutMs: o.connectTimeoutMs,
          signal,
        });
        if (link.remote.userId === peer.userId) return link;
        await link.close().catch(() => {});
        throw new PeerError(
          "EIDENTITY",
          `Cannot accept peer ${peer.userId}: it names itself ${
            JSON.stringify(link.remote.userId)
          } in its handshake; try another peer`,
        );
      } catch (err) {
        if (!isMailpeerError(err) || signal.aborted) return undefined;
        o.onEvent({
          event: "connect-failed",
          peer: peer.userId,
          code: err.code,
          message: err.message,
        });
      }
    }
    return undefined;
  }
}
