/**
 * Fuzz (see tests/support/fuzz_check.ts): correctly sealed and signed request payloads with
 * hostile fields.
 */
import { payloadArb } from "../support/fuzz_arbitraries.ts";
import { generatedAtLeastShare, property } from "../support/fuzz_check.ts";

property(
  "sealed and signed payloads with hostile fields are refused by the codec, not answered",
  payloadArb,
  5,
);

generatedAtLeastShare();
