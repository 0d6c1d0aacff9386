/**
 * The clock skew `mailpeer doctor` reads from the `Received:` stamp of its mail to itself.
 */
import assert from "node:assert/strict";
import {
  CLOCK_SKEW_WARN_MS,
  deliveredAt,
  estimateSkew,
  skewResult,
} from "../../src/cli/doctor/clock_skew.ts";
import { formatDuration } from "../../src/duration.ts";
import { MAX_CLOCK_SKEW_MS } from "../../src/limits.ts";

const raw = (headers: string) => new TextEncoder().encode(`${headers}\r\n\r\nbody\r\n`);

Deno.test("the delivery time is the topmost dated Received header, comments and folding aside", () => {
  const mail = raw(
    "Return-Path: <alice@a.test>\r\n" +
      "Received: from mail.a.test\r\n\tby mail.a.test with LMTP\r\n\tid x; Fri, 04 Dec 2026 20:58:01 +0000\r\n" +
      "Received: from [127.0.0.1] by mail.a.test (Postfix) with ESMTPSA id 1;\r\n Fri,  4 Dec 2026 20:57:59 +0000 (UTC)\r\n" +
      "Subject: x",
  );
  assert.equal(deliveredAt(mail), Date.parse("2026-12-04T20:58:01Z"));
  assert.equal(deliveredAt(raw("Received: by nowhere\r\nSubject: x")), undefined);
});

Deno.test("the skew estimate brackets the server's whole-second stamp between send and sight", () => {
  const server = Date.parse("2026-12-04T20:58:01Z");
  // Sent 200 ms before the stamp's second began, seen 300 ms after: the clocks agree.
  const agree = estimateSkew(server, server - 200, server + 300);
  assert.ok(Math.abs(agree.skewMs) <= agree.uncertaintyMs);
  assert.equal(agree.uncertaintyMs, 750);
  // This machine 20 minutes ahead.
  const ahead = estimateSkew(server, server + 1_200_000 - 100, server + 1_200_000 + 100);
  assert.ok(Math.abs(ahead.skewMs + 1_200_000) <= ahead.uncertaintyMs);
});

Deno.test("skew is a pass within a minute, a warning below the host's limit, a failure above", () => {
  const at = (skewMs: number) =>
    skewResult("terminal.receive", "IMAP x:143", {
      skewMs,
      uncertaintyMs: 500,
    });
  assert.equal(at(2_000).status, "pass");
  assert.equal(at(-(CLOCK_SKEW_WARN_MS + 5_000)).status, "warn");
  assert.equal(at(MAX_CLOCK_SKEW_MS + 5_000).status, "fail");
  assert.match(
    at(-(MAX_CLOCK_SKEW_MS + 5_000)).message,
    /ahead of the clock of IMAP x:143: hosts refuse/,
  );
  assert.match(at(MAX_CLOCK_SKEW_MS + 5_000).message, /behind the clock of IMAP x:143: hosts take/);
});

Deno.test("a skew of 19m59.6s is said as 20m00s, never 19m60s", () => {
  assert.equal(formatDuration(1_199_600), "20m00s");
  assert.equal(formatDuration(119_700), "2m00s");
  assert.equal(formatDuration(125_000), "2m05s");
});
