/**
 * Fuzz (see tests/support/fuzz_check.ts): random bytes, bodies and armored noise, and valid
 * blocks with changed bytes or under the wrong subject.
 */
import fc from "fast-check";
import {
  armoredArb,
  bodyArb,
  bytesArb,
  mutatedArb,
  wrongKindArb,
} from "../support/fuzz_arbitraries.ts";
import { generatedAtLeastShare, property } from "../support/fuzz_check.ts";

property(
  "random bytes, random bodies and armored noise are never answered and never stop the host",
  fc.oneof(bytesArb, bodyArb, armoredArb),
  1,
);
property(
  "valid blocks with flipped, cut, added or removed bytes are quarantined, never answered",
  fc.oneof({ arbitrary: mutatedArb, weight: 4 }, { arbitrary: wrongKindArb, weight: 1 }),
  2,
);

generatedAtLeastShare();
