/**
 * Where a terminal mails its later requests after a reply named the host role's holder
 * (docs/decisions.md "First receiver becomes host", "The reply names the holder"): the role's
 * address is followed only when it is the e-mail of a host card this terminal is configured
 * with and that card's key is the one that signed the reply. Any other address is ignored: the
 * reply cannot point the terminal at a mailbox it does not already trust, so a member, a
 * hostile host or a replayed reply can at most narrow the terminal to one of its own hosts.
 *
 * @module
 */
import { bytesEqual } from "../message/bytes.ts";
import type { HostCard } from "../message/host_card.ts";
import type { ReplyPayload } from "../message/types.ts";

/**
 * The configured card a reply's role names, or undefined (no role, or an address or key that is
 * not one of `hosts`).
 *
 * @example
 * ```ts ignore
 * const next = roleHostOf(reply, config.hosts); // mail only `next` while it answers
 * ```
 */
export function roleHostOf(
  reply: Pick<ReplyPayload, "role" | "hostId">,
  hosts: readonly HostCard[],
): HostCard | undefined {
  const role = reply.role;
  if (role === undefined) return undefined;
  const address = role.address.toLowerCase();
  return hosts.find((card) =>
    card.email.toLowerCase() === address && bytesEqual(card.ed25519, reply.hostId)
  );
}
