/**
 * A relayed session keeps looking for a direct path while it runs (docs/nat.md "Moving a session
 * to a direct path"), as Tailscale does behind DERP and ICE does after a relayed pair won.
 *
 * Every `intervalMs`, and at once when the session starts: this side learns its mapping again
 * (STUN over the listener's socket: a NAT may have changed it), tells the peer its direct
 * candidates over the session itself (PATH_CANDIDATES), and probes the peer's direct candidates
 * (`PathControl.probe`: path validation, `src/peer/link_paths.ts`). Candidates the peer
 * announces are probed at once, so both ends probe at the same time and both NATs open. The
 * first validated direct path takes the session over without a new handshake; the stream goes
 * on. It ends when the link moved, ended, or `signal` aborts.
 *
 * Trust: a peer's announced candidates come over the authenticated session, but the host's
 * address policy never saw them, so they pass the same check as the host's candidates
 * ({@link vouchedClasses}: global, or a class the host already handed out for this peer) and the probe's bounds
 * (`PUNCH_MAX_CANDIDATES`, one challenge per backoff step, a window).
 *
 * @module
 */
import type { EventSink } from "../events.ts";
import {
  PATH_LEARNED_WINDOW_MS,
  PATH_SPRAY_ADDRESSES,
  PATH_SPRAY_SOCKETS_PER_MAPPING,
  PUNCH_MAX_CANDIDATES,
} from "../limits.ts";
import type { Logger } from "../log.ts";
import type { Candidate, Endpoint } from "../message/types.ts";
import type { PathCandidate, PathControl, PathMove } from "../peer/link_paths.ts";
import type { PeerLink } from "../peer/types.ts";
import type { PathKind } from "../peer/types.ts";
import type { Clock } from "../runtime.ts";
import { type AddressClass, classifyAddress } from "../net/address_class.ts";

/** What {@link keepUpgrading} needs. */
export interface UpgradeOptions {
  /** The session; nothing happens unless it has paths and runs on a relayed one. */
  link: PeerLink;
  /** The kind of path the session started on (for the event). */
  path: PathKind;
  /** The peer's candidates from the host's reply or introduction (its `relay` ones mark paths). */
  peerCandidates: readonly Candidate[];
  /** This side's candidates as announced in the request. */
  ownCandidates: readonly Candidate[];
  /**
   * This side's current mappings (STUN over the listener's socket, one per server: a flow kept
   * alive, like the TURN allocation's, may keep an old mapping that a fresh one no longer has).
   */
  learnMappings: (signal: AbortSignal) => Promise<Endpoint[]>;
  intervalMs: number;
  clock: Clock;
  onEvent: EventSink;
  logger: Logger;
  signal?: AbortSignal;
}

/** A peer's candidates a direct path may go to: UDP, not a relay. */
function directOf(candidates: readonly Candidate[]): PathCandidate[] {
  return candidates
    .filter((c) => c.transport === "udp" && c.type !== "relay")
    .map((c) => ({
      transport: "udp",
      address: c.address,
      port: c.port,
      kind: c.type === "host" || c.type === "mapped" ? c.type : "srflx",
    }));
}

function list(cs: readonly Endpoint[]): string {
  return cs.map((c) => `${c.address}:${c.port}`).join(" ");
}

function same(a: Endpoint, b: Endpoint): boolean {
  return a.address === b.address && a.port === b.port;
}

/** `fresh` first, then the `known` ones it does not repeat, at most `PUNCH_MAX_CANDIDATES`. */
function merge(fresh: readonly PathCandidate[], known: readonly PathCandidate[]): PathCandidate[] {
  const out = [...fresh];
  for (const c of known) if (!out.some((o) => same(o, c))) out.push(c);
  return out.slice(0, PUNCH_MAX_CANDIDATES);
}

/**
 * The kind of a direct path the session moved to, judged like the first path (docs/nat.md "Path
 * kinds"): `mapped` when either end is a router mapping, `host` when the peer's end is one of its
 * interface addresses, else `punched`.
 */
export function movedPathKind(
  move: PathMove,
  peer: readonly PathCandidate[],
  own: readonly Candidate[],
): PathKind {
  const theirs = peer.find((c) => same(c, move.to.remote))?.kind;
  const ours = own.find((c) => same(c, move.observed))?.type;
  if (theirs === "mapped" || ours === "mapped") return "mapped";
  return theirs === "host" ? "host" : "punched";
}

/**
 * Which addresses a peer may announce over the session: a global one, or one of an address class
 * (private, reserved, …) the host already handed out for this peer, never loopback, multicast,
 * unspecified or broadcast: what the host's address policy would let through, and no more.
 */
export function vouchedClasses(
  peerCandidates: readonly Candidate[],
): (candidate: PathCandidate) => boolean {
  const classOf = (address: string): AddressClass | undefined => {
    try {
      return classifyAddress(address);
    } catch {
      return undefined;
    }
  };
  const vouched = new Set(peerCandidates.map((c) => classOf(c.address)));
  return (c) => {
    const cls = classOf(c.address);
    if (cls === undefined || !Number.isInteger(c.port) || c.port < 1 || c.port > 65535) {
      return false;
    }
    if (cls === "global") return true;
    return !NEVER.has(cls) && vouched.has(cls);
  };
}

const NEVER: ReadonlySet<AddressClass> = new Set([
  "loopback",
  "multicast",
  "unspecified",
  "broadcast",
]);

/** Starts looking for a direct path; see the module doc. Never rejects; returns at once. */
export function keepUpgrading(o: UpgradeOptions): void {
  const paths: PathControl | undefined = o.link.paths;
  if (!paths) return;
  for (const c of o.peerCandidates) if (c.type === "relay") paths.markRelayed(c);
  if (!paths.relayed || paths.closed) return;
  const peer = o.link.remote.userId;
  let theirs = directOf(o.peerCandidates).slice(0, PUNCH_MAX_CANDIDATES);
  const acceptable = vouchedClasses(o.peerCandidates);
  const signal = AbortSignal.any([paths.ended, ...(o.signal ? [o.signal] : [])]);
  const window = Math.min(o.intervalMs, PATH_LEARNED_WINDOW_MS);
  // The birthday spray (docs/nat.md "One hard NAT"): once per new set of mappings on either
  // side, when probing alone found nothing; a newer set replaces a spray still running.
  let mine: PathCandidate[] = [];
  let sprayedFor = "";
  let spraying: AbortController | null = null;
  const spray = () => {
    // The newest two mappings the peer has (a NAT that changed keeps old flows mapped too).
    const aim = theirs.filter((c) => c.kind !== "host").slice(0, 2);
    const scan = [...new Set(aim.map((c) => c.address))].slice(0, PATH_SPRAY_ADDRESSES);
    const key = JSON.stringify([mine, aim]);
    if (aim.length === 0 || key === sprayedFor || signal.aborted || !paths.relayed) return;
    spraying?.abort();
    sprayedFor = key;
    const current = new AbortController();
    spraying = current;
    o.logger.log("debug", `spraying towards ${list(aim)}`);
    const sockets = PATH_SPRAY_SOCKETS_PER_MAPPING * aim.length;
    paths.spray({ aim, scan, sockets, signal: AbortSignal.any([signal, current.signal]) })
      .catch(() => null)
      .finally(() => {
        if (spraying === current) spraying = null;
      });
  };
  const offCandidates = paths.onCandidates((announced) => {
    const usable = announced.filter(acceptable);
    theirs = merge(usable, theirs);
    if (usable.length === 0 || signal.aborted) return;
    o.logger.log("debug", `${peer} announced ${list(usable)}; probing`);
    paths.probe(usable, { windowMs: window, signal }).then((moved) => moved ?? spray(), () => {});
  });
  // Each move, up to a direct path or back down to the relay when that one died, is an event;
  // the rounds pause while the session runs direct and go on once it is relayed again.
  let kind = o.path;
  let moved!: () => void;
  let nextMove = new Promise<void>((resolve) => moved = resolve);
  const offMove = paths.onMove((move) => {
    const to = paths.relayed ? "relayed" : movedPathKind(move, theirs, o.ownCandidates);
    o.onEvent({ event: "path-changed", peer, from: kind, path: to, remote: move.to.remote });
    kind = to;
    moved();
    nextMove = new Promise<void>((resolve) => moved = resolve);
  });
  const ended = new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    signal.addEventListener("abort", () => resolve(), { once: true });
  });
  const own = directOf(o.ownCandidates);
  (async () => {
    while (!signal.aborted && !paths.closed) {
      if (!paths.relayed) {
        await Promise.race([nextMove, ended]);
        continue;
      }
      const started = o.clock.now();
      const mappings = await o.learnMappings(signal).catch(() => []);
      const fresh = mappings.map((m): PathCandidate => ({ ...m, transport: "udp", kind: "srflx" }));
      mine = merge(fresh, own);
      if (signal.aborted || paths.closed) break;
      if (mine.length > 0) await paths.announce(mine).catch(() => {});
      o.logger.log("debug", `told ${peer} of ${list(mine)}; probing ${list(theirs)}`);
      if (theirs.length > 0) {
        const moved = await paths.probe(theirs, { windowMs: window, signal });
        if (!moved) spray(); // in the background: the rounds go on meanwhile
      }
      const rest = o.intervalMs - (o.clock.now() - started);
      if (rest > 0 && paths.relayed) {
        await o.clock.sleep(rest, AbortSignal.any([signal, paths.ended])).catch(() => {});
      }
    }
  })().catch(() => {}).finally(() => {
    offCandidates();
    offMove();
  });
}
