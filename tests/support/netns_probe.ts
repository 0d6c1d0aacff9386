/**
 * Runs a Deno script inside a NAT lab namespace (`ip netns exec`, so as root) and reads the JSON
 * lines it prints as they come: the helper of the lab tests that drive probes on both sides of a
 * router (tests/terminal/port_mapping/miniupnpd_test.ts, tests/natlab/mapped_candidate_test.ts).
 */

/** A running probe: its process and its next JSON line. */
export interface NetnsProbe {
  child: Deno.ChildProcess;
  /** The next line, parsed; rejects when the probe ended first. */
  next(): Promise<Record<string, unknown>>;
}

/** Starts `script` with `args` in `netns`; `killAfterMs` is a safety net only. */
export function netnsProbe(
  netns: string,
  script: string,
  args: string[],
  options: { killAfterMs?: number } = {},
): NetnsProbe {
  const child = new Deno.Command("ip", {
    args: ["netns", "exec", netns, Deno.execPath(), "run", "-A", "--no-prompt", script, ...args],
    stdout: "piped",
    stderr: "inherit",
    ...(options.killAfterMs ? { signal: AbortSignal.timeout(options.killAfterMs) } : {}),
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).values();
  let buffer = "";
  return {
    child,
    async next(): Promise<Record<string, unknown>> {
      for (;;) {
        const nl = buffer.indexOf("\n");
        if (nl >= 0) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          return JSON.parse(line);
        }
        const { value, done } = await lines.next();
        if (done) throw new Error(`the probe in ${netns} ended early`);
        buffer += value;
      }
    },
  };
}
