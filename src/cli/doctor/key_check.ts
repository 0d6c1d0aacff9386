/**
 * The key checks of `mailpeer doctor`: the host key file and the terminal's identity file are
 * there, readable by their owner only (mode 0600) and well-formed, and the host cards the
 * configuration lists agree with the host keys it has.
 *
 * @module
 */
import type { Config } from "../../config/config_schema.ts";
import { isMailpeerError } from "../../errors.ts";
import { formatHostCard, type HostCard } from "../../message/host_card.ts";
import { hostCardOf, type HostKeys } from "../../message/key_file.ts";
import { loadHostKeys, loadIdentity, parseHostCards } from "../wire.ts";
import { type CheckReport, resultOf } from "./check.ts";

function sameKeys(a: HostCard, b: HostCard): boolean {
  const eq = (x: Uint8Array, y: Uint8Array) =>
    x.length === y.length && x.every((v, i) => v === y[i]);
  return a.email.toLowerCase() === b.email.toLowerCase() && eq(a.x25519, b.x25519) &&
    eq(a.ed25519, b.ed25519);
}

/** Reports `key-file` for each role's key file and `host-card` for the cards. */
export async function checkKeys(config: Config, report: CheckReport): Promise<void> {
  let hostKeys: HostKeys | undefined;
  if (config.host) {
    const hc = config.host;
    const r = resultOf("key-file", "host.keys");
    try {
      hostKeys = await loadHostKeys(hc.keys, { email: hc.email });
      if (hostKeys.email.toLowerCase() !== hc.email.toLowerCase()) {
        report(r.fail(
          `${hc.keys} holds the keys of ${hostKeys.email}, but host.email is ${hc.email}; set ` +
            `host.keys to the key file of ${hc.email}, or make one with \`mailpeer keygen ` +
            `--host ${hc.email} -o ${hc.keys}\``,
        ));
      } else {
        report(r.pass(`${hc.keys}: mode 0600, the keys of ${hostKeys.email}`));
      }
    } catch (err) {
      if (!isMailpeerError(err)) throw err;
      report(r.fail(err.message));
    }
    const lists = [["host.pool", hc.pool, "pool"], ["host.links", hc.links, "link"]] as const;
    for (const [key, cards, what] of lists) {
      if (cards.length === 0) continue;
      const result = resultOf("host-card", key);
      try {
        parseHostCards(cards, key);
        report(result.pass(`${cards.length} ${what} card${cards.length === 1 ? "" : "s"} read`));
      } catch (err) {
        if (!isMailpeerError(err)) throw err;
        report(result.fail(err.message));
      }
    }
  }
  if (!config.terminal) {
    if (hostKeys) {
      report(
        resultOf("host-card", "host.keys").pass(
          `terminals must list this host card: ${formatHostCard(hostCardOf(hostKeys))}`,
        ),
      );
    }
    return;
  }
  const tc = config.terminal;
  const r = resultOf("key-file", "terminal.identity");
  try {
    const identity = await loadIdentity(tc.identity, { userId: tc.userId });
    report(
      identity.userId === tc.userId
        ? r.pass(`${tc.identity}: mode 0600, the identity of ${identity.userId}`)
        : r.fail(
          `terminal.user_id is ${JSON.stringify(tc.userId)} but ${tc.identity} is the identity ` +
            `of ${JSON.stringify(identity.userId)}; set user_id to that, or make an identity ` +
            `with \`mailpeer keygen --user ${tc.userId} -o ${tc.identity}\``,
        ),
    );
  } catch (err) {
    if (!isMailpeerError(err)) throw err;
    report(r.fail(err.message));
  }
  const cards = resultOf("host-card", "terminal.hosts");
  let parsed: HostCard[];
  try {
    parsed = parseHostCards(tc.hosts);
  } catch (err) {
    if (!isMailpeerError(err)) throw err;
    report(cards.fail(err.message));
    return;
  }
  if (!hostKeys) {
    report(cards.pass(
      `${parsed.length} host card${parsed.length === 1 ? "" : "s"} read (${
        parsed.map((c) => c.email).join(", ")
      }); their keys can be compared only where the host keys are`,
    ));
    return;
  }
  const mine = hostCardOf(hostKeys);
  const i = parsed.findIndex((c) => c.email.toLowerCase() === mine.email.toLowerCase());
  if (i < 0) {
    report(cards.warn(
      `terminal.hosts does not list this machine's host ${mine.email}: the terminal asks ` +
        "other hosts only; add the card that `mailpeer keygen --card " +
        `${config.host!.keys}\` prints`,
    ));
  } else if (!sameKeys(parsed[i]!, mine)) {
    report(cards.fail(
      `terminal.hosts[${i}] names ${mine.email} with other keys than ${config.host!.keys} ` +
        "holds: the host cannot open this terminal's requests, and its replies fail the " +
        `signature check; replace it with what \`mailpeer keygen --card ${
          config.host!.keys
        }\` prints`,
    ));
  } else {
    report(cards.pass(`terminal.hosts[${i}] matches the keys in ${config.host!.keys}`));
  }
}
