/**
 * Fuzz (see tests/support/fuzz_check.ts): the headers of a mail around a valid block.
 */
import { headersArb } from "../support/fuzz_arbitraries.ts";
import { generatedAtLeastShare, property } from "../support/fuzz_check.ts";

property(
  "garbage headers around a valid block never crash the host nor reply to a bad address",
  headersArb,
  4,
);

generatedAtLeastShare();
