/**
 * A mail source that does what another does, except where a test overrides a method (to count
 * calls, fail once, or watch what is asked).
 */
import type { MailSource } from "../../src/mail/types.ts";

/** `inner`'s methods, bound to it, with `overrides` in their place. */
export function wrapSource(inner: MailSource, overrides: Partial<MailSource> = {}): MailSource {
  return {
    claims: inner.claims,
    list: (match, options) => inner.list(match, options),
    fetch: (ref, options) => inner.fetch(ref, options),
    delete: (ref) => inner.delete(ref),
    deleteMany: (refs) => inner.deleteMany(refs),
    quarantine: (ref, reason) => inner.quarantine(ref, reason),
    waitForMail: (options) => inner.waitForMail(options),
    claim: (ref) => inner.claim(ref),
    claimMany: (refs) => inner.claimMany(refs),
    recoverClaims: (olderThanMs) => inner.recoverClaims(olderThanMs),
    close: () => inner.close(),
    ...overrides,
  };
}
