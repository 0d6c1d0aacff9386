/**
 * The owner of a TURN allocation answering one peer over it, as the terminal will once the relay
 * is wired in (docs/relay.md "What's next"): the first datagram names the peer, a channel is
 * bound to it, and a responder handshake runs on a `DatagramFrameChannel` whose datagrams go
 * through `TurnClient.send`. Used by the TURN tests and `scripts/bench-turn`.
 */
import type { Endpoint } from "../../src/message/types.ts";
import { DatagramFrameChannel } from "../../src/peer/datagram_channel.ts";
import { decodeDatagram } from "../../src/peer/frame.ts";
import { respondHandshake } from "../../src/peer/handshake.ts";
import { ReliableLink } from "../../src/peer/reliable_link.ts";
import type { TurnClient } from "../../src/peer/turn_client.ts";
import type { PeerIdentity } from "../../src/peer/types.ts";
import { systemClock } from "../../src/runtime.ts";

/** Largest DATA fragment: a 1,200-byte datagram less the sealed frame's overhead. */
const MAX_FRAGMENT_BYTES = 1_200 - 26;

/**
 * Resolves with the peer whose datagram reaches `turn` first (its address must be permitted).
 * Call before the peer sends.
 */
export function firstPeer(turn: TurnClient): Promise<Endpoint> {
  return new Promise((resolve) => {
    const off = turn.onData((peer) => {
      off();
      resolve(peer);
    });
  });
}

/**
 * Answers `peer` over the relay: binds a channel, runs the responder handshake (the peer's
 * CONNECT is sent again on its backoff) and returns the sealed link.
 */
export async function answerOverRelay(
  turn: TurnClient,
  peer: Endpoint,
  identity: PeerIdentity,
): Promise<ReliableLink> {
  await turn.bindChannel(peer);
  const channel = new DatagramFrameChannel({
    role: "responder",
    remote: peer,
    sendDatagram: (bytes) => turn.send(peer, bytes),
    clock: systemClock,
    backoff: () => 100,
    keepaliveMs: 15_000,
    idleTimeoutMs: 45_000,
  });
  turn.datagrams(peer).subscribe((bytes) => {
    try {
      channel.deliver(decodeDatagram(bytes), bytes);
    } catch {
      // not a mailpeer frame: dropped
    }
  });
  const result = await respondHandshake(channel, { identity, ordered: false });
  channel.establish(result.cipher);
  return new ReliableLink(channel, result.cipher, {
    local: turn.relayed,
    remote: { ...result.peer, endpoint: peer },
    maxFragmentBytes: MAX_FRAGMENT_BYTES,
    clock: systemClock,
  });
}
