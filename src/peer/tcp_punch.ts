/**
 * TCP simultaneous open (docs/nat.md "TCP simultaneous open"): one {@link TcpPunch} dials the
 * TCP candidates of one expected peer *from the listener's own port*, the port whose NAT
 * mapping was announced, while the peer does the same towards this side. Behind NATs that keep
 * the port and filter by address and port, each side's first SYN is dropped by the far router
 * but opens its own; the next SYNs cross and Linux completes a simultaneous open (SYN, SYN/ACK
 * both ways). Where the far side is not behind such a NAT, the SYN reaches its listener, which
 * accepts it as any connection. `TcpPeerListener.punch()` runs it.
 *
 * **Who sends CONNECT.** After a TCP connection exists neither side can tell whether it came
 * from a simultaneous open, its own connect to the peer's listener or the peer's connect to its
 * listener, so TCP's direction does not pick the handshake roles: the keys do, as in the UDP
 * punch (`punchRole()`). The *controlling* side (bytewise smaller key) runs the initiator
 * handshake on every connection of the punch, the *controlled* side the responder handshake;
 * either way the peer must prove `peerKey` (`EIDENTITY` otherwise, that connection only).
 * A connection the listener accepts from one of the candidates is the punch's too: the
 * listener runs the same role on it (`TcpPunch.claims()`), also for one it accepted before the
 * punch started and that has sent nothing yet.
 *
 * A controlled side whose connection stays silent for `PUNCH_TCP_QUIET_MS` sends CONNECT itself:
 * its connect reached a listener that is not punching for it (the peer stands by, was not
 * introduced yet, runs a version without the TCP punch, or saw the connection come from a port
 * that is no candidate: a symmetric NAT's new port), which answers a CONNECT like any
 * dialler's and hands the link to its punch by key. So a refusal (the peer's allow-list) comes
 * back at once, and a candidate that answers for good (another key, a refusal) is not dialled
 * again; when every candidate has, the punch ends with that answer.
 *
 * **Pacing and bounds** (no scanner): at most `PUNCH_MAX_CANDIDATES` TCP candidates, tried at
 * once from the one local port (candidate i starts `i × PUNCH_STAGGER_MS` after the first);
 * each attempt is one connect, given `backoff(n)` ms (then dropped and made again) or, refused
 * at once, retried after that time, plus a random pause of up to half of it; the window is at
 * most `PUNCH_MAX_WINDOW_MS`; nothing is dialled after the window or the first link. Only the
 * candidates are dialled: a symmetric NAT's new port is never learned, it only ever comes in (to
 * a listener, see above).
 *
 * **Why the random pause.** Each connect makes the listener step aside (`TcpPeerListener`): for
 * that moment a SYN from the peer gets a RST, and a connection the listener had taken but not
 * yet accepted is reset with it. Two sides on the same schedule that start together step aside
 * together on every attempt: in the NAT lab's none/none pair with both cores busy, 1 punch in
 * about 150 failed that way for the whole 4 s window (every connect refused or reset). The
 * pause puts the sides' attempts apart after the first one (docs/nat.md "TCP simultaneous
 * open").
 *
 * @module
 */
import { PeerError } from "../errors.ts";
import { toBase64 } from "../message/base64.ts";
import type { Endpoint } from "../message/types.ts";
import { PUNCH_STAGGER_MS } from "../limits.ts";
import type { Backoff, Clock, RandomSource } from "../runtime.ts";
import { REFUSED_REASON } from "./handshake.ts";
import type { PeerLink, PunchOptions, PunchResult, PunchRole } from "./types.ts";
import { checkPunchOptions, PunchOutcome, punchRole } from "./udp_punch.ts";

/** What a TCP punch needs from the listener whose port it dials from. */
export interface TcpPunchHost {
  readonly ownKey: Uint8Array;
  readonly clock: Clock;
  readonly backoff: Backoff;
  /** Draws the pause after each attempt (see `TcpPunch.#attempts`). */
  readonly random: RandomSource;
  /**
   * Connects to `remote` from the listener's port and runs this punch's handshake role on the
   * connection; resolves with the link, which proved the expected key. Rejects with the
   * socket's own error when the connect fails or takes `connectMs`, with a `PeerError` when the
   * handshake fails, and with the signal's reason when `signal` aborts.
   */
  dial(remote: Endpoint, connectMs: number, signal: AbortSignal): Promise<PeerLink>;
}

/**
 * An answer that dialling again cannot change: another key (`EIDENTITY`) or the peer's refusal
 * (DISCONNECT "refused", e.g. its allow-list).
 */
function isFinal(error: unknown): boolean {
  if (!(error instanceof PeerError)) return false;
  return error.code === "EIDENTITY" || (error.code === "EPEER" && error.cause === REFUSED_REASON);
}

function keyOf(e: Endpoint): string {
  return `${e.address}|${e.port}`;
}

/** One TCP punch to one peer; see the module doc. Made and driven by `TcpPeerListener`. */
export class TcpPunch {
  readonly role: PunchRole;
  readonly peerKey: Uint8Array;
  #host: TcpPunchHost;
  #options: PunchOptions;
  #windowMs: number;
  #candidates = new Set<string>();
  #running: Promise<unknown>[] = [];
  /** Candidates that answered for good (another key, a refusal). */
  #finished = 0;
  #outcome: PunchOutcome;

  /** Checks the options (`RangeError`, `TypeError`); `run()` starts the punch. */
  constructor(host: TcpPunchHost, options: PunchOptions) {
    this.#windowMs = checkPunchOptions(options, "tcp");
    this.#host = host;
    this.#options = options;
    this.peerKey = options.peerKey;
    this.role = punchRole(host.ownKey, options.peerKey);
    for (const c of options.candidates) {
      this.#candidates.add(keyOf(c));
    }
    this.#outcome = new PunchOutcome(options.peerKey, this.role, options.candidates);
  }

  /** True once the punch has ended (won, timed out, aborted). */
  get done(): boolean {
    return this.#outcome.done;
  }

  /** Aborted once the punch has ended: handshakes run for it stop. */
  get signal(): AbortSignal {
    return this.#outcome.signal;
  }

  /** The caller's options (for `localEndpoint` and `onEvent`). */
  get options(): PunchOptions {
    return this.#options;
  }

  /** Starts the attempts and the window; settles once. */
  run(): Promise<PunchResult> {
    const where = `peer ${toBase64(this.peerKey).slice(0, 12)}…`;
    this.#outcome.start(this.#host.clock, this.#windowMs, this.#options.signal, () =>
      new PeerError(
        "ETIMEOUT",
        `Cannot open a TCP connection to ${where}: none of ${this.#candidates.size} ` +
          `candidate endpoints completed the handshake in ${this.#windowMs} ms; ` +
          "use a relay or try another peer",
      ));
    this.#options.candidates.forEach((c, i) => {
      const remote: Endpoint = { transport: "tcp", address: c.address, port: c.port };
      this.#running.push(this.#attempts(remote, i * PUNCH_STAGGER_MS));
    });
    return this.#outcome.result;
  }

  /**
   * Whether a connection the listener accepted from `remote` belongs to this punch: one of its
   * candidates, while the punch runs. The listener then runs this punch's role on it.
   */
  claims(remote: Endpoint): boolean {
    return !this.done && this.#candidates.has(keyOf(remote));
  }

  /**
   * A link with this punch's peer, from a connection the listener accepted: the punch wins with
   * it. False when the punch has ended or the key is another.
   */
  offer(link: PeerLink): boolean {
    return this.#outcome.offer(link, "listener");
  }

  /** Ends the punch with `err` (the listener closed). */
  cancel(err: unknown): void {
    this.#outcome.end(err);
  }

  /** Resolves once every attempt of this punch has stopped dialling. */
  async stopped(): Promise<void> {
    await Promise.allSettled(this.#running);
  }

  /** A pause of 0 to `stepMs / 2` ms, drawn from the host's randomness. */
  #jitter(stepMs: number): number {
    const [a = 0, b = 0] = this.#host.random(2);
    return Math.floor((((a << 8) | b) / 65_536) * (stepMs / 2));
  }

  /** Connects to one candidate again and again, paced by the backoff, until the punch ends. */
  async #attempts(remote: Endpoint, delayMs: number): Promise<void> {
    const { clock, backoff } = this.#host;
    const signal = this.#outcome.signal;
    try {
      if (delayMs > 0) await clock.sleep(delayMs, signal);
      this.#options.onEvent?.({ type: "attempt", remote, role: this.role });
      for (let n = 0; !signal.aborted; n++) {
        const started = clock.now();
        const stepMs = backoff(n);
        try {
          const link = await this.#host.dial(remote, stepMs, signal);
          if (this.done) await link.close().catch(() => {});
          else this.#outcome.win(link, "connect");
          return;
        } catch (error) {
          if (signal.aborted) return;
          if (isFinal(error)) {
            // Another key answers there, or the peer refused: that candidate is done.
            this.#options.onEvent?.({ type: "failed", remote, error });
            if (++this.#finished === this.#candidates.size) this.#outcome.end(error);
            return;
          }
          // A connect that failed (refused, no answer yet) is retried without a word; a
          // handshake that failed is told.
          if (error instanceof PeerError) {
            this.#options.onEvent?.({ type: "failed", remote, error });
          }
        }
        // the rest of the step, and up to half a step more, drawn each time (module notes)
        const left = started + stepMs + this.#jitter(stepMs) - clock.now();
        if (left > 0) await clock.sleep(left, signal);
      }
    } catch {
      // the punch ended while waiting
    }
  }
}
