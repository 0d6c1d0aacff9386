/**
 * The capacity model (scripts/benchmarks/simulate_model.ts, docs/scaling.md): seeded, so every
 * figure here is exact run to run; the invariants are the ones a user planning a network relies
 * on. No wall clock, no sleeps.
 */
import assert from "node:assert/strict";
import {
  capacity,
  DEFAULTS,
  logNormal,
  LOOPBACK,
  LOOPBACK_FIXED_MS,
  LOOPBACK_IDLE_MS,
  type ModelInputs,
  prng,
  quantiles,
  simulate,
} from "../../scripts/benchmarks/simulate_model.ts";

const base: ModelInputs = { ...DEFAULTS, samples: 5000, seed: 42 };

/** One host with ample caps, so that only the queue at its processes matters. */
const oneHost: ModelInputs = {
  ...base,
  capPerDay: 100_000,
  accountsPerHost: 1_000_000,
  hostRequestsPerHour: 1e9,
  poolSize: 1,
  deliveryP50Ms: 0,
  deliveryP95Ms: 0,
};

Deno.test("the same seed gives the same figures; another seed other samples", () => {
  const a = simulate(base), b = simulate(base);
  assert.deepEqual(a, b);
  const c = simulate({ ...base, seed: 43 });
  assert.notEqual(c.rendezvousMs.p50, a.rendezvousMs.p50);
  assert.equal(c.accounts, a.accounts);
});

Deno.test("more load never needs fewer accounts, hosts or processes", () => {
  let last = capacity({ ...base, peakPerHour: 1 });
  for (let perHour = 2; perHour <= 2_000_000; perHour = Math.ceil(perHour * 1.37)) {
    const next = capacity({ ...base, peakPerHour: perHour });
    assert.ok(next.accounts >= last.accounts, `accounts fell at ${perHour}/h`);
    assert.ok(next.hosts >= last.hosts, `hosts fell at ${perHour}/h`);
    assert.ok(next.processes >= last.processes, `processes fell at ${perHour}/h`);
    assert.ok(next.mailsPerDay >= last.mailsPerDay);
    last = next;
  }
});

Deno.test("the account count is ceil(mails per day / cap) when no hourly cap or sync applies", () => {
  for (const perDay of [1, 499, 500, 501, 1000, 12_345, 1_000_000]) {
    for (const introductions of [0, 1, 3]) {
      const r = capacity({
        ...base,
        peakPerHour: perDay / 24 * base.peakToMean,
        introductionsPerRequest: introductions,
        capHeadroom: 1,
        capPerHour: 0,
        poolSize: 1,
      });
      const mails = perDay * (1 + introductions);
      assert.ok(Math.abs(r.mailsPerDay - mails) < 1e-6 * mails);
      assert.equal(r.accounts, Math.max(1, Math.ceil(r.mailsPerDay / base.capPerDay)));
    }
  }
});

Deno.test("an hourly cap binds when the peak hour needs more accounts than the day", () => {
  const r = capacity({
    ...base,
    peakPerHour: 1000,
    capPerDay: 100_000,
    capPerHour: 100,
    capHeadroom: 1,
    poolSize: 1,
    introductionsPerRequest: 0,
  });
  assert.equal(r.accounts, 10);
});

Deno.test("a pool whose sync alone fills its accounts is refused, with what to change", () => {
  assert.throws(
    () => capacity({ ...base, poolSize: 100, syncIntervalMs: 60_000 }),
    (e: unknown) => e instanceof RangeError && /raise the sync interval/.test(e.message),
  );
  // The same for an hourly cap (8 accounts × 9 usable an hour < 7 × 12 pushes an hour).
  assert.throws(
    () => capacity({ ...base, capPerHour: 10 }),
    (e: unknown) => e instanceof RangeError && /72 an hour/.test(e.message),
  );
});

Deno.test("at zero delivery delay and light load the model meets the loopback rendezvous", () => {
  const loop: ModelInputs = {
    ...base,
    peakPerHour: 1,
    processes: 1,
    deliveryP50Ms: 0,
    deliveryP95Ms: 0,
    pollMs: LOOPBACK.pollMs,
    idleMs: LOOPBACK_IDLE_MS,
    fixedMs: LOOPBACK_FIXED_MS,
    peerRttMs: 0,
    perProcessPerSecond: LOOPBACK.hostPerSecond,
  };
  // Poll mode is the calibration: within half a poll interval (the median wake-up's own spread).
  const poll = simulate({ ...loop, wake: "poll" }).rendezvousMs.p50;
  assert.ok(
    Math.abs(poll - LOOPBACK.pollRendezvousP50Ms) <= LOOPBACK.pollMs / 2,
    `poll: model ${poll} ms, measured ${LOOPBACK.pollRendezvousP50Ms} ms`,
  );
  // IDLE mode is a prediction from the poll calibration: within one poll interval.
  const idle = simulate({ ...loop, wake: "idle" }).rendezvousMs.p50;
  assert.ok(
    Math.abs(idle - LOOPBACK.idleRendezvousP50Ms) <= LOOPBACK.pollMs,
    `idle: model ${idle} ms, measured ${LOOPBACK.idleRendezvousP50Ms} ms`,
  );
});

Deno.test("queueing p95 grows as the utilisation goes to 1, and matches M/M/1", () => {
  const mu = 10; // per second
  let last = -1;
  for (const rho of [0.3, 0.6, 0.8, 0.9, 0.95]) {
    const r = simulate({
      ...oneHost,
      samples: 60_000,
      processes: 1,
      perProcessPerSecond: mu,
      peakPerHour: rho * mu * 3600,
    });
    assert.ok(Math.abs(r.utilisation - rho) < 1e-9);
    const p95 = r.parts.queueWait.p95;
    assert.ok(p95 > last, `p95 ${p95} ms at ρ = ${rho} is not above ${last} ms`);
    last = p95;
    // M/M/1 FIFO: P(W > t) = ρ e^{-(μ-λ) t}, so p95 = ln(ρ / 0.05) / (μ − λ).
    const expected = 1000 * Math.log(rho / 0.05) / (mu * (1 - rho));
    assert.ok(
      Math.abs(p95 - expected) <= 0.2 * expected,
      `ρ = ${rho}: simulated p95 ${p95.toFixed(0)} ms, M/M/1 ${expected.toFixed(0)} ms`,
    );
  }
});

Deno.test("more processes shorten the wait at the same load", () => {
  const at = (processes: number) =>
    simulate({ ...oneHost, processes, perProcessPerSecond: 10, peakPerHour: 0.9 * 10 * 3600 })
      .parts.queueWait.p95;
  assert.ok(at(2) < at(1));
  assert.ok(at(4) <= at(2));
});

Deno.test("the log-normal fit gives back the published p50 and p95", () => {
  const rand = prng(7);
  const xs = Array.from({ length: 40_000 }, () => logNormal(rand, 17_000, 41_700));
  const q = quantiles(xs);
  assert.ok(Math.abs(q.p50 / 17_000 - 1) < 0.03, `p50 ${q.p50}`);
  assert.ok(Math.abs(q.p95 / 41_700 - 1) < 0.05, `p95 ${q.p95}`);
});

Deno.test("delivery and polling add to the rendezvous time; none of it at zero", () => {
  const fast = simulate({ ...base, deliveryP50Ms: 0, deliveryP95Ms: 0, wake: "idle", idleMs: 0 });
  assert.equal(fast.parts.delivery.p99, 0);
  const slow = simulate({ ...base, wake: "poll", pollMs: 60_000 });
  assert.ok(slow.rendezvousMs.p50 > fast.rendezvousMs.p50 + 30_000);
  assert.ok(slow.rendezvousMs.p95 >= slow.rendezvousMs.p50);
  assert.ok(slow.rendezvousMs.p99 >= slow.rendezvousMs.p95);
});
