import assert from "node:assert/strict";
import { COOKIE_SLOT_MS } from "../../src/limits.ts";
import type { Endpoint } from "../../src/message/types.ts";
import { ConnectCookies } from "../../src/peer/connect_cookie.ts";
import { ManualClock } from "../support/manual_clock.ts";

const from: Endpoint = { transport: "udp", address: "192.0.2.7", port: 40000 };
const nonce = new Uint8Array(16).fill(5);

Deno.test("a cookie lets back the address, port and CONNECT it was given to, and nothing else", () => {
  const cookies = new ConnectCookies({ clock: new ManualClock() });
  const cookie = cookies.issue(from, nonce);
  assert.equal(cookie.length, 16);
  assert.ok(cookies.check(from, nonce, cookie));
  assert.ok(!cookies.check({ ...from, port: 40001 }, nonce, cookie), "another port");
  assert.ok(!cookies.check({ ...from, address: "192.0.2.8" }, nonce, cookie), "another address");
  assert.ok(!cookies.check(from, new Uint8Array(16), cookie), "another CONNECT");
  assert.ok(!cookies.check(from, nonce, cookie.subarray(1)), "a short cookie");
  const other = new ConnectCookies({ clock: new ManualClock() });
  assert.ok(!other.check(from, nonce, cookie), "another listener's secret");
});

Deno.test("a cookie is good for one to two time slots, then a new one is needed", () => {
  const clock = new ManualClock(Math.floor(Date.UTC(2026, 0, 1) / COOKIE_SLOT_MS) * COOKIE_SLOT_MS);
  const cookies = new ConnectCookies({ clock });
  const cookie = cookies.issue(from, nonce);
  clock.advance(COOKIE_SLOT_MS);
  assert.ok(cookies.check(from, nonce, cookie), "still good in the next slot");
  clock.advance(COOKIE_SLOT_MS);
  assert.ok(!cookies.check(from, nonce, cookie), "too old two slots later");
  assert.ok(cookies.check(from, nonce, cookies.issue(from, nonce)));
});
