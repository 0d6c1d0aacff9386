/**
 * Helper of mapped_candidate_test.ts, run inside a NAT lab namespace with `ip netns exec`:
 *
 *   gather PORT    (on host A, behind router A with miniupnpd) listens on TCP PORT, gathers the
 *       terminal's candidates with `terminal.port_mapping = "auto"` as the CLI wires it (the
 *       default route's gateway, the UPnP URL by SSDP, PCP then NAT-PMP then UPnP), prints
 *       {"candidates": [...], "mapping": {...}}, waits for one inbound connection (prints
 *       {"connected": "<text>"}), closes the session's mapper (the mapping is deleted) and
 *       prints {"closed": true}.
 *
 * The internet side is tests/terminal/port_mapping/miniupnpd_probe.ts `connect`.
 */
import { portMapperFromConfig } from "../../src/cli/client.ts";
import { gatherCandidates } from "../../src/terminal/gather_candidates.ts";

const [mode, ...args] = Deno.args;
const out = (value: unknown) =>
  Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(value) + "\n"));

if (mode === "gather") {
  const port = Number(args[0]);
  const listener = Deno.listen({ hostname: "0.0.0.0", port });
  // Why there is no mapping, if there is none: on stderr, which the test shows.
  const logger = {
    log: (level: string, message: string) =>
      Deno.stderr.writeSync(new TextEncoder().encode(`${level}: ${message}\n`)),
  };
  const mapper = portMapperFromConfig(
    { protocols: ["pcp", "nat-pmp", "upnp"] }, // what "auto" reads as
    { onEvent: (event) => out({ event }), logger },
  )!;
  try {
    void mapper.prepare();
    const candidates = await gatherCandidates({
      transport: "tcp",
      listenPort: port,
      mapper,
      logger,
    });
    out({ candidates, mapping: mapper.mapping ?? null });
    const conn = await listener.accept();
    const buf = new Uint8Array(64);
    const n = await conn.read(buf);
    out({ connected: new TextDecoder().decode(buf.subarray(0, n ?? 0)) });
    conn.close();
  } catch (err) {
    out({ error: err instanceof Error ? err.message : String(err) });
  } finally {
    listener.close();
    await mapper.close();
    out({ closed: true });
  }
} else {
  Deno.stderr.writeSync(
    new TextEncoder().encode("usage: mapped_candidate_probe.ts gather PORT\n"),
  );
  Deno.exit(2);
}
