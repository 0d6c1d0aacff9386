/**
 * The paths of one UDP link, and moving the link from one to a better one while it runs
 * (docs/nat.md "Moving a session to a direct path"): path validation as QUIC does it (RFC 9000
 * §8.2, §9), over the link's own session keys.
 *
 * A *path* is how datagrams travel between this listener and the peer: a route (straight from
 * the listener's socket, or through its TURN relay) and the peer's address on it. A link starts
 * on the path its handshake ran on. {@link LinkPaths.probe} sends PATH_CHALLENGE to addresses of
 * the peer straight from the socket (candidate i starts `i × PUNCH_STAGGER_MS` after the first,
 * each re-sent with the transport's backoff). The peer answers each authentic challenge with
 * PATH_RESPONSE by the path it came on, and challenges that path back, so both NATs open towards
 * each other as in a punch. A path is *validated* when a response echoes a token this side sent
 * on that very path: both directions work. The link then *moves*: frames to the peer take the
 * validated path when it is better (a direct path beats a relayed one), while frames from every
 * admitted path are still taken, so nothing in flight is lost and the reliable stream resends
 * whatever the switch dropped. Each side moves on its own validation. PATH_CANDIDATES tells the
 * peer this side's current addresses over the link (say, after a NAT changed its mapping), so the
 * next probe has something to aim at.
 *
 * Trust: every PATH_* plaintext is sealed under the session keys, with the control frames'
 * sequence and replay window, so only the peer can make this side answer, admit or move; the
 * path id in clear only finds the link. Bounds: `PATH_MAX_PATHS` admitted paths per link,
 * `PUNCH_MAX_CANDIDATES` candidates per probe (and per PATH_CANDIDATES), `PATH_MAX_TOKENS`
 * outstanding challenges, one challenge per path per backoff step, windows of at most
 * `PUNCH_MAX_WINDOW_MS`; a response answers only an authentic challenge, and is no larger.
 *
 * @module
 */
import { toBase64 } from "../message/base64.ts";
import type { Endpoint } from "../message/types.ts";
import {
  PATH_DEAD_MS,
  PATH_LEARNED_WINDOW_MS,
  PATH_MAX_PATHS,
  PATH_MAX_TOKENS,
  PATH_QUIET_MS,
  PATH_SPRAY_ADDRESSES,
  PATH_SPRAY_BURST,
  PATH_SPRAY_PACE_MS,
  PATH_SPRAY_PROBES,
  PATH_SPRAY_SOCKETS,
  PATH_SPRAY_WINDOW_MS,
  PATH_WATCH_MS,
  PUNCH_MAX_CANDIDATES,
  PUNCH_MAX_WINDOW_MS,
  PUNCH_STAGGER_MS,
} from "../limits.ts";
import { type Backoff, type Clock, type RandomSource, systemRandom } from "../runtime.ts";
import {
  decodePathCandidates,
  decodePathProbe,
  encodePathCandidates,
  encodePathProbe,
  PATH_ID_BYTES,
  PATH_TOKEN_BYTES,
} from "./frame.ts";
import { FrameType } from "./frame.ts";

/** How a peer's datagrams reach a listener: straight to its socket, or through its relay. */
export type Route = "direct" | "relay";

/** One path between a listener and a peer. */
export interface LinkPath {
  readonly route: Route;
  /** The peer's address on this route (on `relay`: as the TURN server sees it). */
  readonly remote: Endpoint;
  /**
   * Direct route only: the local port of one of the listener's auxiliary sockets (a spray,
   * {@link LinkPaths.spray}) this path leaves from; absent: the listener's own socket.
   */
  readonly via?: number;
}

/** A candidate address of the peer that a path may go to (`host`, `srflx` or `mapped`). */
export type PathCandidate = Endpoint & { kind?: "host" | "srflx" | "mapped" };

/** A link that moved to a better path. */
export interface PathMove {
  from: LinkPath;
  to: LinkPath;
  /** How the peer sees this side on `to` (the source its PATH_RESPONSE names). */
  observed: Endpoint;
}

/** The PATH_* frame types. */
export type PathFrameType =
  | typeof FrameType.PATH_CHALLENGE
  | typeof FrameType.PATH_RESPONSE
  | typeof FrameType.PATH_CANDIDATES;

/** True for the frame types {@link LinkPaths} handles. */
export function isPathFrame(type: number): type is PathFrameType {
  return type === FrameType.PATH_CHALLENGE || type === FrameType.PATH_RESPONSE ||
    type === FrameType.PATH_CANDIDATES;
}

/** The key of a path in a listener's demultiplexer: the peer's address and the route. */
export function pathKey(path: LinkPath): string {
  const e = path.remote;
  if (path.route === "relay") return `relay|${e.address}|${e.port}`;
  return path.via === undefined
    ? `${e.address}|${e.port}`
    : `aux${path.via}|${e.address}|${e.port}`;
}

/**
 * The path id of a link: the first {@link PATH_ID_BYTES} of SHA-256("mailpeer path id" ‖
 * transcript hash), the same on both ends and unknown to anyone who did not see the handshake.
 */
export async function pathIdOf(transcriptHash: Uint8Array): Promise<Uint8Array> {
  const label = new TextEncoder().encode("mailpeer path id");
  const input = new Uint8Array(label.length + transcriptHash.length);
  input.set(label);
  input.set(transcriptHash, label.length);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", input));
  return digest.slice(0, PATH_ID_BYTES);
}

/** What moving between paths looks like to whoever holds a link (`PeerLink.paths`). */
export interface PathControl {
  /** The path frames to the peer take now. */
  readonly active: LinkPath;
  /**
   * Challenges `candidates` (the peer's addresses, straight from the socket) for `windowMs`
   * (default {@link PATH_LEARNED_WINDOW_MS}): resolves with the move once the link moved to a
   * better path (by this probe, a path the peer's own challenge opened, or any other), null when
   * the window ended without one or the link is not {@link relayed}. `RangeError` for bad
   * options; the signal's reason when aborted.
   */
  probe(
    candidates: readonly PathCandidate[],
    options?: { windowMs?: number; signal?: AbortSignal },
  ): Promise<PathMove | null>;
  /**
   * Says that frames to and from `remote` cross the peer's TURN relay (it is one of the peer's
   * `relay` candidates): a path to it is relayed though this side sends there straight, so a
   * direct path is better. A path by this side's own relay is relayed anyway.
   */
  markRelayed(remote: Endpoint): void;
  /** Whether the active path crosses a relay (this side's or the peer's). */
  readonly relayed: boolean;
  /** True once the link has ended: probes resolve null at once. */
  readonly closed: boolean;
  /** Aborted once the link has ended. */
  readonly ended: AbortSignal;
  /**
   * The birthday spray, for a pair where one NAT maps per destination (docs/nat.md "One hard
   * NAT"): opens `sockets` auxiliary sockets that challenge the peer's mappings in `aim` with the
   * backoff, so that a NAT mapping per destination opens as many ports towards the peer; and
   * challenges `probes` random ports (1024–65535) of the addresses in `scan` once each,
   * `PATH_SPRAY_BURST` every `PATH_SPRAY_PACE_MS`, so that a NAT mapping once opens its filter towards as many of
   * the other NAT's ports. Whichever end has the hard NAT, one half meets the other's. Resolves
   * like {@link probe}; the sockets that did not win close when the window ends. `RangeError`
   * beyond the bounds (`PATH_SPRAY_SOCKETS`, `PATH_SPRAY_PROBES`, `PATH_SPRAY_ADDRESSES`).
   */
  spray(options: SprayOptions): Promise<PathMove | null>;
  /** Tells the peer this side's current candidates (PATH_CANDIDATES on the active path). */
  announce(candidates: readonly PathCandidate[]): Promise<void>;
  /** Calls `listener` each time the link moves; returns the unsubscribe function. */
  onMove(listener: (move: PathMove) => void): () => void;
  /** Calls `listener` with the candidates the peer announces; returns the unsubscribe function. */
  onCandidates(listener: (candidates: PathCandidate[]) => void): () => void;
}

/** Options of {@link PathControl.spray}. */
export interface SprayOptions {
  /** The peer's mappings the auxiliary sockets challenge (1 to `PUNCH_MAX_CANDIDATES`). */
  aim: readonly PathCandidate[];
  /** The peer's NAT addresses whose random ports are challenged (at most `PATH_SPRAY_ADDRESSES`). */
  scan: readonly string[];
  /** Auxiliary sockets; default and most `PATH_SPRAY_SOCKETS`. */
  sockets?: number;
  /** Random ports challenged in all; default and most `PATH_SPRAY_PROBES`. */
  probes?: number;
  /** Default `PATH_SPRAY_WINDOW_MS`, at most `PUNCH_MAX_WINDOW_MS`. */
  windowMs?: number;
  signal?: AbortSignal;
}

/** What {@link LinkPaths} needs from the listener that owns the link's channel. */
export interface PathCarrier {
  readonly clock: Clock;
  readonly backoff: Backoff;
  readonly random?: RandomSource;
  /** Seals a PATH_* plaintext under the session keys and sends it by `path`. */
  send(type: PathFrameType, plaintext: Uint8Array, path: LinkPath): Promise<void>;
  /** Datagrams from `path` reach the link from now on; false when the listener refuses. */
  admit(path: LinkPath): boolean;
  /** Datagrams from `path` no longer reach the link (it was admitted, and is evicted). */
  forget?(path: LinkPath): void;
  /** Frames to the peer take `path` from now on. */
  use(path: LinkPath): void;
  /**
   * Opens up to `count` auxiliary sockets for a spray (their datagrams come back through
   * `received` with `via` set); returns their local ports, fewer when the listener's bound is
   * reached. Absent where a listener cannot.
   */
  openSockets?(count: number): number[];
  /** Closes auxiliary sockets this link opened. */
  closeSockets?(ports: readonly number[]): void;
  /**
   * When the last authentic frame came from the peer, by `clock` (the channel's keepalive
   * bookkeeping): a moved link watches it to fall back when its new path dies.
   */
  heardAt?(): number;
}

/** One running probe (or the probing of learned paths): its window and its outcome. */
interface Round {
  stop: AbortController;
  resolve: (move: PathMove | null) => void;
}

/** The paths of one link; see the module doc. Made by `UdpPeerListener` per established link. */
export class LinkPaths implements PathControl {
  #carrier: PathCarrier;
  #active: LinkPath;
  /** Admitted paths by key, oldest first (a learned path is evicted before the bound refuses). */
  #admitted = new Map<string, LinkPath>();
  /** Outstanding challenges: token (base64) → the path it was sent on. */
  #tokens = new Map<string, LinkPath>();
  /** Paths being challenged now → the rounds challenging them, and the stop of that loop. */
  #challenging = new Map<string, { rounds: Set<Round>; stop: AbortController }>();
  #rounds = new Set<Round>();
  #moves = new Set<(move: PathMove) => void>();
  #offers = new Set<(candidates: PathCandidate[]) => void>();
  #closed = new AbortController();
  /** The peer's relayed addresses (`markRelayed`), as path keys of the direct route. */
  #peerRelays = new Set<string>();
  #spraying = false;
  /** The relayed path the link left for a direct one: where it goes back if that one dies. */
  #fallback: LinkPath | null = null;
  #watching: AbortController | null = null;

  constructor(carrier: PathCarrier, initial: LinkPath) {
    this.#carrier = carrier;
    this.#active = initial;
    this.#admitted.set(pathKey(initial), initial);
  }

  get active(): LinkPath {
    return this.#active;
  }

  get closed(): boolean {
    return this.#closed.signal.aborted;
  }

  get ended(): AbortSignal {
    return this.#closed.signal;
  }

  get relayed(): boolean {
    return this.#rank(this.#active) === 0;
  }

  markRelayed(remote: Endpoint): void {
    if (this.#peerRelays.size >= PATH_MAX_PATHS) return;
    this.#peerRelays.add(pathKey({ route: "direct", remote }));
  }

  /** 0 for a relayed path, 1 for a direct one: a path moves the link only to a higher rank. */
  #rank(path: LinkPath): number {
    return path.route === "relay" || this.#peerRelays.has(pathKey(path)) ? 0 : 1;
  }

  probe(
    candidates: readonly PathCandidate[],
    options: { windowMs?: number; signal?: AbortSignal } = {},
  ): Promise<PathMove | null> {
    if (candidates.length > PUNCH_MAX_CANDIDATES) {
      throw new RangeError(
        `Cannot probe ${candidates.length} paths: give at most ${PUNCH_MAX_CANDIDATES}`,
      );
    }
    for (const c of candidates) {
      if (c.transport !== "udp") {
        throw new TypeError(
          `Cannot probe a ${c.transport} path of a UDP link: give udp candidates`,
        );
      }
    }
    const windowMs = options.windowMs ?? PATH_LEARNED_WINDOW_MS;
    if (!(windowMs > 0 && windowMs <= PUNCH_MAX_WINDOW_MS)) {
      throw new RangeError(
        `Cannot probe paths for ${windowMs} ms: the window must be 1 to ${PUNCH_MAX_WINDOW_MS} ms`,
      );
    }
    options.signal?.throwIfAborted();
    if (this.#closed.signal.aborted || !this.relayed) {
      return Promise.resolve(null);
    }
    return new Promise((resolve, reject) => {
      const round = this.#round(windowMs, resolve);
      this.#abortWith(round, options.signal, reject);
      candidates.forEach((c, i) => {
        const path: LinkPath = {
          route: "direct",
          remote: { transport: "udp", address: c.address, port: c.port },
        };
        this.#after(i * PUNCH_STAGGER_MS, round.stop.signal, () => this.#challenge(path, round));
      });
    });
  }

  spray(options: SprayOptions): Promise<PathMove | null> {
    const sockets = options.sockets ?? PATH_SPRAY_SOCKETS;
    const probes = options.probes ?? PATH_SPRAY_PROBES;
    const windowMs = options.windowMs ?? PATH_SPRAY_WINDOW_MS;
    const { aim, scan } = options;
    if (aim.length < 1 || aim.length > PUNCH_MAX_CANDIDATES) {
      throw new RangeError(
        `Cannot spray at ${aim.length} mappings: give 1 to ${PUNCH_MAX_CANDIDATES}`,
      );
    }
    if (scan.length > PATH_SPRAY_ADDRESSES) {
      throw new RangeError(
        `Cannot scan ${scan.length} addresses: give at most ${PATH_SPRAY_ADDRESSES}`,
      );
    }
    if (!(Number.isInteger(sockets) && sockets >= 0 && sockets <= PATH_SPRAY_SOCKETS)) {
      throw new RangeError(`Cannot spray from ${sockets} sockets: give 0 to ${PATH_SPRAY_SOCKETS}`);
    }
    if (!(Number.isInteger(probes) && probes >= 0 && probes <= PATH_SPRAY_PROBES)) {
      throw new RangeError(`Cannot spray ${probes} probes: give 0 to ${PATH_SPRAY_PROBES}`);
    }
    if (!(windowMs > 0 && windowMs <= PUNCH_MAX_WINDOW_MS)) {
      throw new RangeError(
        `Cannot spray for ${windowMs} ms: the window must be 1 to ${PUNCH_MAX_WINDOW_MS} ms`,
      );
    }
    options.signal?.throwIfAborted();
    if (this.#closed.signal.aborted || !this.relayed || this.#spraying) {
      return Promise.resolve(null);
    }
    this.#spraying = true;
    return new Promise((resolve, reject) => {
      const round = this.#round(windowMs, resolve);
      this.#abortWith(round, options.signal, reject);
      const ports = this.#carrier.openSockets?.(sockets) ?? [];
      round.stop.signal.addEventListener("abort", () => {
        this.#spraying = false;
        const keep = this.#active.via;
        this.#carrier.closeSockets?.(ports.filter((p) => p !== keep));
      }, { once: true });
      // Half one: each auxiliary socket opens a mapping of its own towards one of the peer's.
      ports.forEach((via, i) => {
        const c = aim[i % aim.length]!;
        const path: LinkPath = {
          route: "direct",
          remote: { transport: "udp", address: c.address, port: c.port },
          via,
        };
        this.#after(i, round.stop.signal, () => this.#challenge(path, round));
      });
      // Half two: random ports of the peer's NAT, once each, paced.
      if (scan.length === 0 || probes === 0) return;
      (async () => {
        const random = this.#carrier.random ?? systemRandom;
        for (let j = 0; j < probes && !round.stop.signal.aborted;) {
          for (const end = Math.min(probes, j + PATH_SPRAY_BURST); j < end; j++) {
            const r = random(2);
            const port = 1024 + ((r[0]! << 8 | r[1]!) % (65536 - 1024));
            const remote: Endpoint = { transport: "udp", address: scan[j % scan.length]!, port };
            this.#challengeOnce({ route: "direct", remote });
          }
          await this.#carrier.clock.sleep(PATH_SPRAY_PACE_MS, round.stop.signal);
        }
      })().catch(() => {});
    });
  }

  /** Ends `round` and rejects with the signal's reason when `signal` aborts. */
  #abortWith(round: Round, signal: AbortSignal | undefined, reject: (e: unknown) => void): void {
    if (!signal) return;
    const onAbort = () => {
      round.resolve = () => {};
      this.#end(round, null);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    round.stop.signal.addEventListener(
      "abort",
      () => signal.removeEventListener("abort", onAbort),
      { once: true },
    );
  }

  /** One challenge to `path`, not repeated. */
  #challengeOnce(path: LinkPath): void {
    const token = (this.#carrier.random ?? systemRandom)(PATH_TOKEN_BYTES);
    this.#remember(token, path);
    const plaintext = encodePathProbe({ token, endpoint: path.remote });
    this.#carrier.send(FrameType.PATH_CHALLENGE, plaintext, path).catch(() => {});
  }

  async announce(candidates: readonly PathCandidate[]): Promise<void> {
    const plaintext = encodePathCandidates(candidates, PUNCH_MAX_CANDIDATES);
    await this.#carrier.send(FrameType.PATH_CANDIDATES, plaintext, this.#active);
  }

  onMove(listener: (move: PathMove) => void): () => void {
    this.#moves.add(listener);
    return () => this.#moves.delete(listener);
  }

  onCandidates(listener: (candidates: PathCandidate[]) => void): () => void {
    this.#offers.add(listener);
    return () => this.#offers.delete(listener);
  }

  /**
   * An authentic PATH_* plaintext (the channel opened it under the session keys) that came by
   * `via`. Malformed plaintexts are dropped.
   */
  received(type: PathFrameType, plaintext: Uint8Array, via: LinkPath): void {
    if (this.#closed.signal.aborted) return;
    try {
      if (type === FrameType.PATH_CANDIDATES) {
        const candidates = decodePathCandidates(plaintext, PUNCH_MAX_CANDIDATES);
        for (const listener of this.#offers) listener(candidates);
      } else if (type === FrameType.PATH_CHALLENGE) this.#challenged(plaintext, via);
      else this.#answered(plaintext, via);
    } catch {
      // malformed, though sealed by the peer: dropped
    }
  }

  /** Stops every probe; they resolve null. Idempotent. */
  close(): void {
    if (this.#closed.signal.aborted) return;
    this.#closed.abort();
    this.#watching?.abort();
    for (const round of [...this.#rounds]) this.#end(round, null);
  }

  /** Answers by the path the challenge came on, admits it, and challenges it back. */
  #challenged(plaintext: Uint8Array, via: LinkPath): void {
    const { token } = decodePathProbe(plaintext);
    const answer = encodePathProbe({ token, endpoint: via.remote });
    this.#carrier.send(FrameType.PATH_RESPONSE, answer, via).catch(() => {});
    // The peer speaks by the relay we left: our direct path no longer reaches it.
    const back = this.#fallback;
    if (back && pathKey(via) === pathKey(back) && !this.relayed) return this.#fallBack();
    if (!this.#admit(via) || this.#rank(via) <= this.#rank(this.#active)) return;
    // The peer reaches us this way: challenge it back, so our side validates it too.
    const key = pathKey(via);
    if (this.#challenging.has(key)) {
      // Challenged already, maybe far into its backoff: the peer is there now, ask at once.
      this.#challengeOnce(via);
      return;
    }
    const rounds = [...this.#rounds];
    if (rounds.length === 0) rounds.push(this.#round(PATH_LEARNED_WINDOW_MS, () => {}));
    for (const round of rounds) this.#challenge(via, round);
  }

  #answered(plaintext: Uint8Array, via: LinkPath): void {
    const { token, endpoint } = decodePathProbe(plaintext);
    const id = toBase64(token);
    const sentOn = this.#tokens.get(id);
    if (!sentOn || pathKey(sentOn) !== pathKey(via)) return; // not ours, or by another path
    this.#tokens.delete(id);
    this.#admit(via);
    if (this.#rank(via) <= this.#rank(this.#active)) return;
    this.#move({ from: this.#active, to: via, observed: endpoint });
  }

  #move(move: PathMove): void {
    this.#active = move.to;
    this.#carrier.use(move.to);
    if (this.#rank(move.to) > this.#rank(move.from)) {
      this.#fallback = move.from;
      this.#watch();
    } else {
      this.#watching?.abort();
      this.#watching = null;
    }
    for (const round of [...this.#rounds]) this.#end(round, move);
    for (const listener of this.#moves) listener(move);
  }

  /**
   * Back to the relayed path the link left, when the direct one went silent (below) or the peer
   * came back that way. The peer hears it: a challenge goes out by the relay at once.
   */
  #fallBack(): void {
    const back = this.#fallback;
    if (!back || this.#closed.signal.aborted || !this.#rank(this.#active)) return;
    this.#move({ from: this.#active, to: back, observed: back.remote });
    this.#challengeOnce(back);
  }

  /**
   * While the link runs on a direct path it moved to, checks every `PATH_WATCH_MS` when the
   * peer was last heard: after `PATH_QUIET_MS` of silence it challenges the path (a live peer
   * answers at once), after `PATH_DEAD_MS` it falls back to the relay. Needs `heardAt`.
   */
  #watch(): void {
    const heardAt = this.#carrier.heardAt;
    if (!heardAt) return;
    this.#watching?.abort();
    const stop = new AbortController();
    this.#watching = stop;
    const signal = AbortSignal.any([stop.signal, this.#closed.signal]);
    const { clock } = this.#carrier;
    (async () => {
      while (!signal.aborted) {
        await clock.sleep(PATH_WATCH_MS, signal);
        const silent = clock.now() - heardAt();
        if (silent >= PATH_DEAD_MS) return this.#fallBack();
        if (silent >= PATH_QUIET_MS) this.#challengeOnce(this.#active);
      }
    })().catch(() => {});
  }

  #admit(path: LinkPath): boolean {
    const key = pathKey(path);
    if (this.#admitted.has(key)) return true;
    if (this.#admitted.size >= PATH_MAX_PATHS) {
      // Full of paths probes and sprays opened: the oldest that carries nothing goes, never
      // the first, the active or the fallback path. The newest challenge is the peer now.
      const keep = new Set([this.#active, this.#fallback].filter((p) => p).map((p) => pathKey(p!)));
      const [first] = this.#admitted.keys();
      const victim = [...this.#admitted.entries()].find(([k]) => k !== first && !keep.has(k));
      if (!victim) return false;
      this.#admitted.delete(victim[0]);
      this.#carrier.forget?.(victim[1]);
    }
    if (!this.#carrier.admit(path)) return false;
    this.#admitted.set(key, path);
    return true;
  }

  #round(windowMs: number, resolve: (move: PathMove | null) => void): Round {
    const round: Round = { stop: new AbortController(), resolve };
    this.#rounds.add(round);
    this.#carrier.clock.sleep(windowMs, round.stop.signal).then(
      () => this.#end(round, null),
      () => {},
    );
    return round;
  }

  #end(round: Round, move: PathMove | null): void {
    if (!this.#rounds.delete(round)) return;
    round.stop.abort();
    for (const [key, loop] of this.#challenging) {
      loop.rounds.delete(round);
      if (loop.rounds.size > 0) continue;
      loop.stop.abort();
      this.#challenging.delete(key);
    }
    round.resolve(move);
  }

  #after(ms: number, signal: AbortSignal, fn: () => void): void {
    if (ms === 0) return fn();
    this.#carrier.clock.sleep(ms, signal).then(fn, () => {});
  }

  /** Challenges `path` with a fresh token per backoff step while `round` (or another) runs. */
  #challenge(path: LinkPath, round: Round): void {
    if (round.stop.signal.aborted) return;
    const key = pathKey(path);
    const running = this.#challenging.get(key);
    if (running) {
      running.rounds.add(round); // already challenged by another round: that loop serves both
      return;
    }
    const loop = { rounds: new Set([round]), stop: new AbortController() };
    this.#challenging.set(key, loop);
    (async () => {
      const { clock, backoff } = this.#carrier;
      const random = this.#carrier.random ?? systemRandom;
      for (let attempt = 0; !loop.stop.signal.aborted; attempt++) {
        const token = random(PATH_TOKEN_BYTES);
        this.#remember(token, path);
        const plaintext = encodePathProbe({ token, endpoint: path.remote });
        await this.#carrier.send(FrameType.PATH_CHALLENGE, plaintext, path).catch(() => {});
        await clock.sleep(backoff(attempt), loop.stop.signal);
      }
    })().catch(() => {});
  }

  #remember(token: Uint8Array, path: LinkPath): void {
    if (this.#tokens.size >= PATH_MAX_TOKENS) {
      const oldest = this.#tokens.keys().next().value;
      if (oldest !== undefined) this.#tokens.delete(oldest);
    }
    this.#tokens.set(toBase64(token), path);
  }
}
