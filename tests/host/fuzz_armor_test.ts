/**
 * Fuzz (see tests/support/fuzz_check.ts): the armor around a valid block.
 */
import { armorArb } from "../support/fuzz_arbitraries.ts";
import { generatedAtLeastShare, property } from "../support/fuzz_check.ts";

property(
  "mangled armor, base64 and extra blocks are quarantined unless the valid block survives",
  armorArb,
  3,
);

generatedAtLeastShare();
