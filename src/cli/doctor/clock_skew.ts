/**
 * Clock skew against a mail server, from the mail `doctor` sends itself: the server stamps
 * the time of delivery in the topmost `Received:` header (Dovecot's LMTP, Postfix), to the
 * second; this machine knows when it sent the mail and when it saw it arrive. A host refuses
 * requests dated more than `MAX_CLOCK_SKEW_MS` ahead of its own clock, and a terminal's reply
 * deadline and the table's expiry read the clock too.
 *
 * @module
 */
import { formatDuration } from "../../duration.ts";
import { MAX_CLOCK_SKEW_MS } from "../../limits.ts";
import { headerValues } from "../../mail/rfc5322/header_values.ts";
import type { CheckResult } from "./check.ts";
import { resultOf } from "./check.ts";

/** Skew above this is a warning (fail above `MAX_CLOCK_SKEW_MS`). */
export const CLOCK_SKEW_WARN_MS = 60_000;

/** The delivery time the topmost dated `Received:` header states, or undefined. */
export function deliveredAt(raw: Uint8Array): number | undefined {
  for (const value of headerValues(raw, "received")) {
    const semi = value.lastIndexOf(";");
    if (semi < 0) continue;
    const text = value.slice(semi + 1).replace(/\([^)]*\)/g, " ").replace(/\s+/g, " ").trim();
    const ms = Date.parse(text);
    if (Number.isFinite(ms)) return ms;
  }
  return undefined;
}

/**
 * How far the server's clock is ahead of this machine's (negative: behind), in ms, and how
 * sure: the server's stamp is whole seconds, taken somewhen between `sentAt` and `seenAt`
 * (this machine's clock).
 */
export function estimateSkew(
  serverMs: number,
  sentAt: number,
  seenAt: number,
): { skewMs: number; uncertaintyMs: number } {
  // server time lies in [serverMs, serverMs + 1000); local time in [sentAt, seenAt]
  const low = serverMs - seenAt;
  const high = serverMs + 1000 - sentAt;
  return { skewMs: Math.round((low + high) / 2), uncertaintyMs: Math.round((high - low) / 2) };
}

/** The checklist line for the skew between this machine and the server of `target`. */
export function skewResult(
  target: string,
  server: string,
  skew: { skewMs: number; uncertaintyMs: number },
): CheckResult {
  const r = resultOf("clock-skew", target);
  const details = { skewMs: skew.skewMs, uncertaintyMs: skew.uncertaintyMs };
  const off = Math.max(0, Math.abs(skew.skewMs) - skew.uncertaintyMs);
  const direction = skew.skewMs < 0 ? "ahead of" : "behind";
  const said = `this machine's clock is ${formatDuration(Math.abs(skew.skewMs))} ${direction} ` +
    `the clock of ${server}`;
  const fix = "set the clock right: enable NTP (timedatectl set-ntp true, or chrony/ntpd)";
  if (off > MAX_CLOCK_SKEW_MS) {
    const harm = skew.skewMs < 0
      ? `hosts refuse requests dated more than ${formatDuration(MAX_CLOCK_SKEW_MS)} ahead of ` +
        "their clock"
      : "hosts take this machine's requests for old ones, and its deadlines and the expiry " +
        "of certificates are read wrong";
    return r.fail(`${said}: ${harm}; ${fix}`, details);
  }
  if (off > CLOCK_SKEW_WARN_MS) {
    return r.warn(
      `${said}: within the ${formatDuration(MAX_CLOCK_SKEW_MS)} a host accepts, but ` +
        `drifting; ${fix}`,
      details,
    );
  }
  return r.pass(
    `the clocks agree to within ${
      formatDuration(Math.max(1000, Math.abs(skew.skewMs) + skew.uncertaintyMs))
    }`,
    details,
  );
}
