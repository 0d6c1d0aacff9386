/**
 * Helper of mapped_candidate_test.ts, run inside a NAT lab namespace with `ip netns exec`:
 *
 *   gather PORT    (on host A, behind router A with miniupnpd) listens on TCP PORT, gathers the
 *       terminal's candidates with `terminal.port_mapping = "auto"` as the CLI wires it (the
 *       default route's gateway, the UPnP URL by SSDP, PCP then NAT-PMP then UPnP), prints
 *       {"candidates": [...], "mapping": {...}}, waits for one inbound connection (prints
 *       {"connected": "<text>"}), closes the session's mapper (the mapping is deleted) and
 *       prints {"closed": true}.
 *   connect HOST PORT [TIMEOUT_MS]    (on the lab's "internet" server) connects and sends "hello",
 *       or prints {"error": ...} when it cannot within TIMEOUT_MS (default 5000).
 */
import { portMapperFromConfig } from "../../src/cli/client.ts";
import { gatherCandidates } from "../../src/terminal/gather_candidates.ts";

const [mode, ...args] = Deno.args;
const out = (value: unknown) =>
  Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(value) + "\n"));

if (mode === "gather") {
  const port = Number(args[0]);
  const listener = Deno.listen({ hostname: "0.0.0.0", port });
  const mapper = portMapperFromConfig(
    { protocols: ["pcp", "nat-pmp", "upnp"] }, // what "auto" reads as
    { onEvent: (event) => out({ event }) },
  )!;
  try {
    void mapper.prepare();
    const candidates = await gatherCandidates({ transport: "tcp", listenPort: port, mapper });
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
} else if (mode === "connect") {
  const [hostname, port, timeoutMs = "5000"] = args as [string, string, string?];
  // Without a mapping router A drops the SYN: give up after the timeout instead of TCP's minutes.
  const timer = setTimeout(() => {
    out({ error: `no connection within ${timeoutMs} ms` });
    Deno.exit(0);
  }, Number(timeoutMs));
  try {
    const conn = await Deno.connect({ hostname, port: Number(port) });
    clearTimeout(timer);
    await conn.write(new TextEncoder().encode("hello"));
    conn.close();
    out({ sent: true });
  } catch (err) {
    clearTimeout(timer);
    out({ error: err instanceof Error ? err.message : String(err) });
  }
} else {
  Deno.stderr.writeSync(
    new TextEncoder().encode("usage: mapped_candidate_probe.ts gather|connect\n"),
  );
  Deno.exit(2);
}
