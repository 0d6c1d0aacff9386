/**
 * Property/fuzz tests of the host against hostile mail (issue 5), declared by
 * tests/host/fuzz_*_test.ts: well over 10,000 generated malformed mails and blocks, never a
 * crash, never a reply to a hostile mail, and a valid request in the same batch is still
 * answered.
 *
 * Each run puts 40–60 hostile mails of one or more families and one valid request (a random
 * user, sealed to the host) at a random place among them into a {@link MemoryMailbox}, runs
 * one `processPending()` and checks that:
 * - it resolves;
 * - the valid requester got exactly one reply, for its session, and has its row;
 * - every hostile mail under a mailpeer subject was quarantined or deleted (never left behind to
 *   fail again on every pass), every other mail is untouched;
 * - the only other replies answer hostile mails that still carry a valid signed request (for
 *   example a valid block with a garbage `Date:`), at most one each, and no hostile mail that
 *   does not is answered.
 *
 * Each generated mail is counted. Every test file runs in its own isolate, so each file ends
 * with {@link generatedAtLeastShare}: its properties generated at least their share of the
 * `MIN_TOTAL` hostile mails, and over the `PROPERTIES` properties the shares add up to it.
 * fast-check prints the counterexample (a plain description of the mails) and the seed when a
 * property fails.
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { endpointProblem } from "../../src/host/address_policy.ts";
import { Host } from "../../src/host/host.ts";
import { MemoryStore } from "../../src/host/store/memory_store.ts";
import { dearmor } from "../../src/message/armor.ts";
import { bytesEqual } from "../../src/message/bytes.ts";
import { openReply } from "../../src/message/block.ts";
import { isIPv4, isIPv6, userIdProblem } from "../../src/message/field_rules.ts";
import { generateIdentityKeys } from "../../src/message/key_file.ts";
import { bodyFor } from "../../src/message/mail_text.ts";
import type { Endpoint } from "../../src/message/types.ts";
import { ManualClock } from "./manual_clock.ts";
import type { Hostile } from "./fuzz_arbitraries.ts";
import { type Made, make } from "./fuzz_make.ts";
import {
  card,
  keys,
  mailOf,
  MIN_TOTAL,
  NETWORK,
  NOW,
  pool,
  requestOf,
  RUNS,
  SEED,
  standardHeaders,
  SUBJECTS,
} from "./fuzz_host.ts";
import { MemoryMailbox, MemoryPostOffice } from "./memory_mail.ts";

/** Properties over all fuzz test files; each generates its share of `MIN_TOTAL` mails. */
export const PROPERTIES = 6;

/** Hostile mails generated and delivered by this file's properties. */
let generated = 0;
let runNo = 0;
/** Properties this file declared. */
let declared = 0;

const validUserArb = fc.string({ unit: "grapheme", minLength: 1, maxLength: 16 })
  .filter((u) => userIdProblem(u) === undefined && !u.startsWith("pool-"));
const endpointArb: fc.Arbitrary<Endpoint> = fc.record({
  transport: fc.constantFrom<"tcp" | "udp">("tcp", "udp"),
  address: fc.oneof(fc.ipV4(), fc.ipV6()),
  port: fc.integer({ min: 1, max: 65535 }),
}).filter((e) =>
  (isIPv4(e.address) || isIPv6(e.address)) &&
  endpointProblem(e, { allowPrivate: true }) === undefined
);

interface Run {
  hostile: Hostile[];
  validAt: number;
  user: string;
  endpoints: Endpoint[];
}

function runArb(family: fc.Arbitrary<Hostile>): fc.Arbitrary<Run> {
  return fc.record({
    hostile: fc.array(family, { minLength: 40, maxLength: 60 }),
    validAt: fc.nat({ max: 60 }),
    user: validUserArb,
    endpoints: fc.array(endpointArb, { minLength: 1, maxLength: 3 }),
  });
}

/** Runs one batch through a fresh host and checks everything the module doc promises. */
async function check(run: Run): Promise<void> {
  const n = ++runNo;
  const box = new MemoryMailbox();
  const po = new MemoryPostOffice({ now: () => NOW });
  const store = new MemoryStore();
  const host = new Host({
    keys,
    network: NETWORK,
    source: box,
    sender: po.sender(),
    store,
    clock: new ManualClock(NOW),
    allowPrivateAddresses: true,
  });
  const made: (Made & { id: string })[] = [];
  const validAt = run.validAt % (run.hostile.length + 1);
  const validEmail = `valid-${n}@player.test`;
  const identity = await generateIdentityKeys(run.user);
  const endpoints = run.endpoints.map((e) => ({ ...e })); // plain objects, not fc records
  const valid = await requestOf(identity, endpoints);
  let validId = "";
  for (let i = 0; i <= run.hostile.length; i++) {
    if (i === validAt) {
      const raw = mailOf(
        standardHeaders({ from: validEmail, subject: SUBJECTS.request, id: -n }),
        bodyFor(NETWORK, "request", valid.block),
      );
      validId = box.deliver(raw);
    }
    const h = run.hostile[i];
    if (h === undefined) continue;
    const m = await make(h, generated++);
    made.push({ ...m, id: box.deliver(m.raw) });
  }

  const result = await host.processPending();

  // The valid request: answered once, for its session, and in the table.
  const toValid = po.sent.filter((s) => s.mail.to.includes(validEmail));
  assert.equal(toValid.length, 1, "the valid requester gets exactly one reply");
  // The composed bytes are checked by the corpus test; here the sent text is enough (fast).
  const reply = await openReply(dearmor(toValid[0]!.mail.text), {
    replyPrivateKey: valid.replyPrivateKey,
    hostCard: card,
    sessionId: valid.sessionId,
  });
  assert.ok(!reply.peers.some((p) => p.userId === run.user), "never the requester itself");
  const row = (await store.read()).find((r) => r.userId === run.user);
  assert.deepEqual(row?.endpoints, endpoints, "the valid request's row is in the table");
  assert.ok(box.deleted.includes(validId));

  // Every hostile mailpeer mail is gone; every other mail untouched.
  for (const m of made) {
    const left = box.get(m.id);
    if (m.expect === "untouched") {
      assert.ok(left !== undefined && bytesEqual(left, m.raw), `mail ${m.id} was touched`);
    } else {
      assert.equal(left, undefined, `mailpeer mail ${m.id} (${m.expect}) was left behind`);
    }
  }

  // Other replies only answer mails that still carry a valid request, at most once each.
  const budget = new Map<number, number>();
  for (const m of made) {
    if (m.expect === "maybe") budget.set(m.pool!, (budget.get(m.pool!) ?? 0) + 1);
  }
  for (const sent of po.sent) {
    if (sent.mail.to.includes(validEmail)) continue;
    const block = dearmor(sent.mail.text);
    let owner: number | undefined;
    for (const [p, left] of budget) {
      if (left <= 0) continue;
      const opened = await openReply(block, {
        replyPrivateKey: pool[p]!.replyPrivateKey,
        hostCard: card,
      }).then(() => true, () => false);
      if (opened) {
        owner = p;
        break;
      }
    }
    assert.ok(owner !== undefined, `a reply to ${sent.mail.to} answers no valid request`);
    budget.set(owner, budget.get(owner)! - 1);
  }
  assert.equal(result.answered, po.sent.length);
  assert.equal(result.quarantined, box.quarantined.length);
  assert.equal(result.answered + result.stale + result.notices, box.deleted.length);
  assert.equal(result.notices, 0, "no hostile notice may flag anyone");
}

/** Declares a test that runs `check` on `RUNS` batches of `family`, from seed `SEED + seedOffset`. */
export function property(name: string, family: fc.Arbitrary<Hostile>, seedOffset: number): void {
  declared++;
  Deno.test(name, async () => {
    await fc.assert(fc.asyncProperty(runArb(family), check), {
      seed: SEED + seedOffset,
      numRuns: RUNS,
    });
  });
}

/**
 * Declares the test that the properties declared so far in this file generated at least their
 * share of `MIN_TOTAL` hostile mails. Call it once, after them.
 */
export function generatedAtLeastShare(): void {
  const min = Math.ceil(MIN_TOTAL / PROPERTIES) * declared;
  Deno.test(`the properties above generated at least ${min} hostile mails`, () => {
    assert.ok(generated >= min, `only ${generated} hostile mails were generated`);
  });
}
