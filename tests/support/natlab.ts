/**
 * The NAT lab (scripts/natlab/natlab.sh, docs/natlab.md) as tests see it: the running lab's
 * natlab.json, the rule that lab tests are ignored without a lab but fail when
 * MAILPEER_REQUIRE_NATLAB is set (scripts/test sets it and starts the lab), and natlab.sh itself.
 */
import assert from "node:assert/strict";
import { STACK } from "./mailstack.ts";

const REPO = new URL("../../", import.meta.url).pathname;
/** The lab's script. */
export const NATLAB_SH = `${REPO}scripts/natlab/natlab.sh`;

/** natlab.json of a running lab ($NATLAB_DIR, else <repo>/.natlab), if this user may read it. */
function runningLab<T>(): T | undefined {
  const dir = Deno.env.get("NATLAB_DIR") ?? `${REPO}.natlab`;
  try {
    return JSON.parse(Deno.readTextFileSync(`${dir}/natlab.json`)) as T;
  } catch {
    return undefined;
  }
}

/**
 * The running lab, typed as the parts of natlab.json a test module uses, and why its tests must
 * be ignored (`missing`), or undefined when they can run. With `mail`, the mail stack must also
 * listen on the lab's addresses (docs/mailstack.md). Throws at load when MAILPEER_REQUIRE_NATLAB
 * is set and something is missing.
 */
export function labFor<T>(options: { mail?: boolean } = {}): {
  lab: T | undefined;
  missing: string | undefined;
} {
  const lab = runningLab<T & { root: { mail: Record<string, string> } }>();
  const missing = !lab
    ? "the NAT lab is not running"
    : !options.mail
    ? undefined
    : !STACK
    ? "the mail stack is not running"
    : STACK.providers.some((p) => p.labIp !== lab.root.mail[p.domain])
    ? "the mail stack does not listen on the lab addresses (start it after the lab)"
    : undefined;
  if (missing && Deno.env.get("MAILPEER_REQUIRE_NATLAB")) {
    throw new Error(`MAILPEER_REQUIRE_NATLAB is set but ${missing}: scripts/test starts it`);
  }
  return { lab, missing };
}

/** Runs `natlab.sh ARGS…`; fails the test with its stderr when it exits non-zero. */
export async function natlab(...args: string[]): Promise<void> {
  const out = await new Deno.Command("bash", { args: [NATLAB_SH, ...args], stderr: "piped" })
    .output();
  assert.equal(out.code, 0, `natlab.sh ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
}
