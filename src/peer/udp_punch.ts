/**
 * UDP hole punching (docs/nat.md "UDP hole punching"): one {@link UdpPunch} races the candidate
 * endpoints of one expected peer from the socket of a UDP listener, the socket whose NAT mapping
 * was announced. `UdpPeerListener.punch()` runs it; both peers punch to each other at the same
 * time.
 *
 * **Who initiates.** Both sides know both identity keys (their own, and the peer's from the
 * host's reply or introduction), so the roles need no negotiation: the side whose Ed25519
 * identity key is bytewise smaller is *controlling* and runs the handshake as initiator; the
 * other is *controlled* and answers as responder. Exactly one handshake, so exactly one link.
 * - Controlling: CONNECT to every candidate (candidate i starts `i × PUNCH_STAGGER_MS` after
 *   the first, ICE-like, or `i × staggerMs` when the caller asks for a slower pace; a `relay` candidate not before `PUNCH_RELAY_DELAY_MS`), each re-sent
 *   with the transport's backoff and following the listener's COOKIE round, until one
 *   completes CONNECT / CONNECT_ACK / ACK with the expected key; the others stop. A CONNECT_ACK with another key fails that candidate only
 *   (`EIDENTITY`, told through `onEvent`). A probe from the peer (below) arriving from an
 *   address that is not a candidate, e.g. a symmetric NAT's new port, adds that source as a
 *   *peer-reflexive* candidate (at most `PUNCH_MAX_PEER_REFLEXIVE`): the answer goes to the
 *   source actually seen.
 * - Controlled: sends *probes* to every candidate with the same staggers and backoff, so its
 *   own NAT opens towards the peer. A probe is an ordinary CONNECT datagram (without cookie)
 *   carrying this side's identity key; the controlling listener takes it as a probe and never
 *   answers it, while the controlling side's CONNECTs reach this listener, which answers them
 *   (COOKIE, CONNECT_ACK) at the source it saw. The responder handshake that proves the
 *   expected key ends the punch; one with any other key stays an ordinary standby link.
 *
 * **Bounds** (no amplifier, no scanner): at most `PUNCH_MAX_CANDIDATES` caller-given UDP
 * candidates plus `PUNCH_MAX_PEER_REFLEXIVE` learned ones, a window of at most
 * `PUNCH_MAX_WINDOW_MS`, one datagram per candidate per backoff step (≥ 100 ms by default),
 * nothing sent after the window or the first success; a listener runs at most
 * `PUNCH_MAX_CONCURRENT` punches. Spoofed CONNECTs still get only the stateless COOKIE.
 *
 * @module
 */
import { PeerError } from "../errors.ts";
import { toBase64 } from "../message/base64.ts";
import { bytesEqual } from "../message/bytes.ts";
import { generateX25519 } from "../message/keys.ts";
import type { Endpoint } from "../message/types.ts";
import {
  PUNCH_DEFAULT_WINDOW_MS,
  PUNCH_MAX_CANDIDATES,
  PUNCH_MAX_CONCURRENT,
  PUNCH_MAX_PEER_REFLEXIVE,
  PUNCH_MAX_STAGGER_MS,
  PUNCH_MAX_WINDOW_MS,
  PUNCH_RELAY_DELAY_MS,
  PUNCH_STAGGER_MS,
} from "../limits.ts";
import { type Backoff, type Clock, type RandomSource, systemRandom } from "../runtime.ts";
import { encodeConnect, NONCE_BYTES } from "./frame.ts";
import { encodeDatagram, FrameType } from "./frame.ts";
import type {
  CandidateKind,
  PathKind,
  PeerIdentity,
  PeerLink,
  PunchCandidate,
  PunchOptions,
  PunchResult,
  PunchRole,
} from "./types.ts";

/**
 * The path kind of a pair whose end is a candidate of `kind`: `host` and `mapped` as they are,
 * `relayed` for a `relay` candidate, `punched` for a NAT's mapping (`srflx`, or no candidate at
 * all: a peer-reflexive source).
 */
export function pathKindOfKind(kind: CandidateKind | undefined): PathKind {
  if (kind === "relay") return "relayed";
  return kind === "host" || kind === "mapped" ? kind : "punched";
}

/**
 * The path kind of reaching `remote` given the peer's candidates: `host` / `mapped` / `relayed`
 * when it is a candidate of that kind (`relay` for `relayed`), else `punched`.
 */
export function pathKindOf(
  remote: Endpoint,
  candidates: readonly PunchCandidate[],
): PathKind {
  return pathKindOfKind(
    candidates.find((c) => c.address === remote.address && c.port === remote.port)?.kind,
  );
}

/** What a punch needs from the listener that owns the socket. */
export interface PunchHost {
  readonly identity: PeerIdentity;
  readonly local: Endpoint;
  readonly clock: Clock;
  readonly backoff: Backoff;
  readonly random?: RandomSource;
  /**
   * Runs the initiator handshake to `remote` from the listener's socket; `relay`: through the
   * listener's relay (a peer whose probe came that way).
   */
  initiate(
    remote: Endpoint,
    expectedKey: Uint8Array,
    signal: AbortSignal,
    route?: "direct" | "relay",
    claim?: () => boolean,
  ): Promise<PeerLink>;
  /** Sends one datagram from the listener's socket. */
  send(bytes: Uint8Array, to: Endpoint): Promise<void>;
}

/** `controlling` when `own` is bytewise smaller than `peer`; equal keys are a `RangeError`. */
export function punchRole(own: Uint8Array, peer: Uint8Array): PunchRole {
  const n = Math.min(own.length, peer.length);
  for (let i = 0; i < n; i++) {
    if (own[i] !== peer[i]) return own[i]! < peer[i]! ? "controlling" : "controlled";
  }
  if (own.length === peer.length) {
    throw new RangeError("Cannot punch to a peer with this terminal's own identity key");
  }
  return own.length < peer.length ? "controlling" : "controlled";
}

function keyOf(e: Endpoint, route: "direct" | "relay" = "direct"): string {
  return route === "relay" ? `relay|${e.address}|${e.port}` : `${e.address}|${e.port}`;
}

/**
 * Checks a punch's options for a punch over `transport` (`RangeError`, `TypeError`); the window
 * in ms. Shared by the UDP and the TCP punch (`tcp_punch.ts`).
 */
export function checkPunchOptions(options: PunchOptions, transport: "udp" | "tcp"): number {
  const { candidates } = options;
  if (candidates.length === 0 || candidates.length > PUNCH_MAX_CANDIDATES) {
    throw new RangeError(
      `Cannot punch with ${candidates.length} candidates: give 1 to ${PUNCH_MAX_CANDIDATES}`,
    );
  }
  for (const c of candidates) {
    if (c.transport !== transport) {
      throw new TypeError(
        `Cannot punch to a ${c.transport} candidate from a ${transport} listener: give ` +
          `${transport} candidates only`,
      );
    }
  }
  const windowMs = options.windowMs ?? PUNCH_DEFAULT_WINDOW_MS;
  if (!(windowMs > 0 && windowMs <= PUNCH_MAX_WINDOW_MS)) {
    throw new RangeError(
      `Cannot punch for ${windowMs} ms: the window must be 1 to ${PUNCH_MAX_WINDOW_MS} ms`,
    );
  }
  return windowMs;
}

/** A UDP punch's stagger (`PunchOptions.staggerMs`, default `PUNCH_STAGGER_MS`); `RangeError`. */
export function punchStaggerMs(options: PunchOptions): number {
  const staggerMs = options.staggerMs ?? PUNCH_STAGGER_MS;
  if (!(staggerMs >= PUNCH_STAGGER_MS && staggerMs <= PUNCH_MAX_STAGGER_MS)) {
    throw new RangeError(
      `Cannot punch with a stagger of ${staggerMs} ms: give ${PUNCH_STAGGER_MS} to ` +
        `${PUNCH_MAX_STAGGER_MS} ms`,
    );
  }
  return staggerMs;
}

/**
 * Registers `punch` under its peer's key in a listener's running punches; `PeerError` `EPEER`
 * when the listener is `closed`, already punching to that key, or runs `PUNCH_MAX_CONCURRENT`.
 * `what` starts the messages ("Cannot punch a hole to peer …"). Returns the key it is under.
 */
export function addPunch<P>(
  punches: Map<string, P>,
  peerKey: Uint8Array,
  punch: P,
  options: { closed: boolean; what: string },
): string {
  const id = toBase64(peerKey);
  const what = `${options.what} ${id.slice(0, 12)}…`;
  if (options.closed) {
    throw new PeerError("EPEER", `${what}: the listener is closed; listen again`);
  }
  if (punches.has(id)) {
    throw new PeerError("EPEER", `${what}: a punch to this peer is already running; wait for it`);
  }
  if (punches.size >= PUNCH_MAX_CONCURRENT) {
    throw new PeerError(
      "EPEER",
      `${what}: ${PUNCH_MAX_CONCURRENT} punches are already running; wait for one to end`,
    );
  }
  punches.set(id, punch);
  return id;
}

/**
 * How one punch ends, shared by the UDP and the TCP punch (`tcp_punch.ts`): once, with a link
 * that proved the peer's key, the caller's abort, or the window's end; `signal` stops whatever
 * the punch still runs.
 */
export class PunchOutcome {
  /** Settles once: the winning pair, or why there is none. */
  readonly result: Promise<PunchResult>;
  #peerKey: Uint8Array;
  #role: PunchRole;
  #candidates: readonly PunchCandidate[];
  #done = new AbortController();
  #settle: ((r: PunchResult) => void) | null = null;
  #fail: ((err: unknown) => void) | null = null;

  constructor(peerKey: Uint8Array, role: PunchRole, candidates: readonly PunchCandidate[]) {
    this.#peerKey = peerKey;
    this.#role = role;
    this.#candidates = candidates;
    this.result = new Promise((resolve, reject) => {
      this.#settle = resolve;
      this.#fail = reject;
    });
  }

  /** True once the punch has ended (won, timed out, aborted). */
  get done(): boolean {
    return this.#done.signal.aborted;
  }

  /** Aborted once the punch has ended. */
  get signal(): AbortSignal {
    return this.#done.signal;
  }

  /** Ends the punch when `signal` aborts, and with `timeout()` once `windowMs` has passed. */
  start(clock: Clock, windowMs: number, signal: AbortSignal | undefined, timeout: () => unknown) {
    if (signal?.aborted) this.end(signal.reason);
    const onAbort = () => this.end(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    this.#done.signal.addEventListener("abort", () => {
      signal?.removeEventListener("abort", onAbort);
    }, { once: true });
    clock.sleep(windowMs, this.#done.signal).then(() => this.end(timeout()), () => {});
  }

  /** Wins with `link` if it proved the peer's key; false when the punch ended or it did not. */
  offer(link: PeerLink, via?: PunchResult["via"]): boolean {
    if (this.done || !bytesEqual(link.remote.identityKey, this.#peerKey)) return false;
    this.win(link, via);
    return true;
  }

  /** Wins with `link` (its key is proved); `reached` as in {@link PunchResult}. */
  win(link: PeerLink, via?: PunchResult["via"], reached?: Endpoint): void {
    const remote = link.remote.endpoint;
    const settle = this.#settle;
    this.end(null);
    settle?.({
      link,
      path: pathKindOf(remote, this.#candidates),
      role: this.#role,
      local: link.local,
      remote,
      ...(via ? { via } : {}),
      ...(reached ? { reached } : {}),
    });
  }

  /** Ends the punch with `err`; null when it was won. Later calls do nothing. */
  end(err: unknown): void {
    if (this.done) return;
    const fail = this.#fail;
    this.#settle = this.#fail = null;
    this.#done.abort();
    if (err !== null) fail?.(err);
  }
}

/** One punch to one peer; see the module doc. Made and driven by `UdpPeerListener`. */
export class UdpPunch {
  readonly role: PunchRole;
  readonly peerKey: Uint8Array;
  #host: PunchHost;
  #options: PunchOptions;
  #windowMs: number;
  #staggerMs: number;
  #tried = new Set<string>();
  #learned = 0;
  /** Learned source → the address of ours its probe was sent to. */
  #reached = new Map<string, Endpoint>();
  #running: Promise<unknown>[] = [];
  #outcome: PunchOutcome;
  /** An attempt got past the peer's CONNECT_ACK and sends the ACK: no other one may. */
  #claimed = false;

  /** Checks the options (`RangeError`, `TypeError`); `run()` starts the punch. */
  constructor(host: PunchHost, options: PunchOptions) {
    this.#windowMs = checkPunchOptions(options, "udp");
    this.#staggerMs = punchStaggerMs(options);
    this.#host = host;
    this.#options = options;
    this.peerKey = options.peerKey;
    this.role = punchRole(host.identity.publicKey, options.peerKey);
    this.#outcome = new PunchOutcome(options.peerKey, this.role, options.candidates);
  }

  /** True once the punch has ended (won, timed out, aborted). */
  get done(): boolean {
    return this.#outcome.done;
  }

  /** Starts the attempts (or probes) and the window; settles once. */
  run(): Promise<PunchResult> {
    const where = `peer ${toBase64(this.peerKey).slice(0, 12)}…`;
    this.#outcome.start(this.#host.clock, this.#windowMs, this.#options.signal, () =>
      new PeerError(
        "ETIMEOUT",
        `Cannot punch a hole to ${where}: none of ${this.#tried.size} candidate endpoints ` +
          `completed the handshake in ${this.#windowMs} ms; use a relay or try another peer`,
      ));
    this.#options.candidates.forEach((c, i) => {
      const remote: Endpoint = { transport: "udp", address: c.address, port: c.port };
      this.#tried.add(keyOf(remote));
      // A relay costs the TURN server's bandwidth and a detour: direct candidates first.
      const at = c.kind === "relay"
        ? Math.max(i * this.#staggerMs, PUNCH_RELAY_DELAY_MS)
        : i * this.#staggerMs;
      this.#after(at, () => this.#start(remote));
    });
    return this.#outcome.result;
  }

  /**
   * A probe of this punch's peer came from `from` (controlling side), addressed to `reached`: a
   * source not yet tried becomes a peer-reflexive candidate, within the bound. `relay`: the probe
   * came through the listener's relay, so the CONNECT goes back through it (a pair of its own,
   * apart from `from` reached directly).
   */
  learn(from: Endpoint, reached?: Endpoint, route: "direct" | "relay" = "direct"): void {
    const key = keyOf(from, route);
    if (this.done || this.role !== "controlling" || this.#tried.has(key)) return;
    if (this.#learned >= PUNCH_MAX_PEER_REFLEXIVE) return;
    this.#learned++;
    if (reached) this.#reached.set(key, reached);
    this.#tried.add(key);
    this.#options.onEvent?.({ type: "learned", remote: from });
    this.#start(from, route);
  }

  /**
   * A responder handshake with this punch's peer completed on the listener (the controlled
   * side's normal way to win; on either side, a link with the peer that came before the punch
   * started): the punch wins with it. False when the punch has ended or the key is another.
   */
  offer(link: PeerLink): boolean {
    return this.#outcome.offer(link);
  }

  /** Resolves once every attempt and probe of this punch has stopped sending. */
  async stopped(): Promise<void> {
    while (true) {
      const n = this.#running.length;
      await Promise.allSettled(this.#running);
      if (this.#running.length === n) return;
    }
  }

  #after(ms: number, fn: () => void): void {
    if (ms === 0) return fn();
    this.#host.clock.sleep(ms, this.#outcome.signal).then(fn, () => {});
  }

  #start(remote: Endpoint, route: "direct" | "relay" = "direct"): void {
    if (this.done) return;
    this.#options.onEvent?.({ type: "attempt", remote, role: this.role });
    if (this.role === "controlled") {
      this.#running.push(this.#probe(remote).catch(() => {}));
      return;
    }
    // Several pairs may get their CONNECT_ACK within a millisecond (two through the same
    // relay): only the first to claim sends its ACK, so the peer completes the same one.
    let mine = false;
    const claim = () => {
      if (this.done || this.#claimed) return false;
      this.#claimed = mine = true;
      return true;
    };
    const attempt = this.#host.initiate(remote, this.peerKey, this.#outcome.signal, route, claim)
      .then(
        (link) =>
          this.done
            ? link.close().catch(() => {})
            : this.#outcome.win(link, undefined, this.#reached.get(keyOf(remote, route))),
        (error) => {
          if (mine) this.#claimed = false; // its ACK never left: another may still win
          if (!this.done) this.#options.onEvent?.({ type: "failed", remote, error });
        },
      );
    this.#running.push(attempt);
  }

  /** Controlled side: CONNECT datagrams without cookie, re-sent with backoff. */
  async #probe(remote: Endpoint): Promise<void> {
    const { identity, local, clock, backoff } = this.#host;
    const nonce = (this.#host.random ?? systemRandom)(NONCE_BYTES);
    const body = encodeConnect({
      destination: remote,
      source: this.#options.localEndpoint ?? local,
      userId: identity.userId,
      identityKey: identity.publicKey,
      nonce,
      ephemeralKey: (await generateX25519()).publicKey,
    });
    const bytes = encodeDatagram({ type: FrameType.CONNECT, body });
    const signal = this.#outcome.signal;
    for (let attempt = 0; !signal.aborted; attempt++) {
      await this.#host.send(bytes, remote).catch(() => {});
      await clock.sleep(backoff(attempt), signal);
    }
  }
}
