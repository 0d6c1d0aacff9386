/**
 * {@link ConnectCookies}: the stateless return-routability check of a UDP listener (as DTLS
 * HelloVerifyRequest, QUIC Retry). A first CONNECT is answered with a small COOKIE frame and
 * nothing is kept; only a CONNECT that carries back a valid cookie starts a handshake. So a
 * CONNECT with a spoofed source address earns its victim one datagram smaller than itself, and
 * cannot take a handshake slot.
 *
 * cookie = HMAC-SHA256(listener secret, "mailpeer v2 cookie" ‖ u64 time slot ‖ source address
 * ‖ source port ‖ CONNECT nonce), first {@link COOKIE_BYTES} bytes. The secret is random per
 * listener; the slot is `now / COOKIE_SLOT_MS`, and the current and the previous slot are
 * accepted.
 *
 * @module
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { COOKIE_SLOT_MS } from "../limits.ts";
import { COOKIE_BYTES } from "../protocol.ts";
import type { Endpoint } from "../message/types.ts";
import { type Clock, type RandomSource, systemRandom } from "../runtime.ts";

const DOMAIN = new TextEncoder().encode("mailpeer v2 cookie");
const SECRET_BYTES = 32;

/** Options of {@link ConnectCookies}. */
export interface ConnectCookiesOptions {
  /** Gives the time slot. */
  clock: Clock;
  /** Source of the secret; default `systemRandom`. */
  random?: RandomSource;
}

/** Makes and checks one listener's CONNECT cookies; see the module doc. */
export class ConnectCookies {
  #secret: Uint8Array;
  #clock: Clock;

  constructor(options: ConnectCookiesOptions) {
    this.#secret = (options.random ?? systemRandom)(SECRET_BYTES);
    this.#clock = options.clock;
  }

  /** The cookie for a CONNECT with `nonce` from `from`, in the current time slot. */
  issue(from: Endpoint, nonce: Uint8Array): Uint8Array {
    return this.#mac(this.#slot(), from, nonce);
  }

  /** True when `cookie` was issued to `from` for `nonce` in this time slot or the last. */
  check(from: Endpoint, nonce: Uint8Array, cookie: Uint8Array): boolean {
    if (cookie.length !== COOKIE_BYTES) return false;
    const slot = this.#slot();
    return [slot, slot - 1].some((s) => timingSafeEqual(this.#mac(s, from, nonce), cookie));
  }

  #slot(): number {
    return Math.floor(this.#clock.now() / COOKIE_SLOT_MS);
  }

  #mac(slot: number, from: Endpoint, nonce: Uint8Array): Uint8Array {
    const head = new Uint8Array(8);
    new DataView(head.buffer).setBigUint64(0, BigInt(slot));
    const address = new TextEncoder().encode(from.address);
    const port = Uint8Array.of(from.port >> 8, from.port & 0xff);
    const mac = createHmac("sha256", this.#secret)
      .update(DOMAIN)
      .update(head)
      .update(Uint8Array.of(address.length))
      .update(address)
      .update(port)
      .update(nonce)
      .digest();
    return new Uint8Array(mac.subarray(0, COOKIE_BYTES)); // a copy, off any shared pool
  }
}
