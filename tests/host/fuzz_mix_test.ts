/**
 * Fuzz (see tests/support/fuzz_check.ts): every hostile family mixed in one batch.
 */
import fc from "fast-check";
import {
  armorArb,
  armoredArb,
  bodyArb,
  bytesArb,
  headersArb,
  mutatedArb,
  payloadArb,
  wrongKindArb,
} from "../support/fuzz_arbitraries.ts";
import { generatedAtLeastShare, property } from "../support/fuzz_check.ts";

property(
  "a mix of every hostile family still lets the valid request through",
  fc.oneof(
    bytesArb,
    bodyArb,
    armoredArb,
    mutatedArb,
    wrongKindArb,
    armorArb,
    headersArb,
    payloadArb,
  ),
  6,
);

generatedAtLeastShare();
