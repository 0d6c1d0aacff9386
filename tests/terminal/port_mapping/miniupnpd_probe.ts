/**
 * Helper of miniupnpd_test.ts, run inside a NAT lab namespace with `ip netns exec`:
 *
 *   map PROTOCOL GATEWAY UPNP_URL PORT   (on the LAN host) listens on TCP PORT, maps it with
 *       PROTOCOL only, prints the mapping as one JSON line, waits for one inbound connection
 *       (prints {"connected": "<text received>"}), closes the mapper (deletes the mapping) and
 *       prints {"closed": true}.
 *   connect HOST PORT [TIMEOUT_MS]       (on the "internet" server) connects, sends "hello";
 *       prints {"error": ...} when it cannot connect within TIMEOUT_MS (default 5000: a router
 *       without the mapping drops the SYN, and TCP would retry for minutes).
 */
import { PortMapper } from "../../../src/terminal/port_mapping/port_mapper.ts";
import type { PortMappingProtocol } from "../../../src/terminal/port_mapping/types.ts";

const [mode, ...args] = Deno.args;
const out = (value: unknown) =>
  Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(value) + "\n"));

if (mode === "map") {
  const [protocol, gateway, upnpUrl, portText] = args as [string, string, string, string];
  const port = Number(portText);
  const listener = Deno.listen({ hostname: "0.0.0.0", port });
  const mapper = new PortMapper({
    gateway,
    upnpUrl,
    protocols: [protocol as PortMappingProtocol],
    lifetimeS: 600,
  });
  try {
    out({ mapping: await mapper.map({ transport: "tcp", internalPort: port }) });
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
  const timer = setTimeout(() => {
    out({ error: `no connection within ${timeoutMs} ms` });
    Deno.exit(0);
  }, Number(timeoutMs));
  try {
    const conn = await Deno.connect({ hostname, port: Number(port) });
    await conn.write(new TextEncoder().encode("hello"));
    conn.close();
    out({ sent: true });
  } catch (err) {
    out({ error: err instanceof Error ? err.message : String(err) });
  } finally {
    clearTimeout(timer);
  }
} else {
  Deno.stderr.writeSync(new TextEncoder().encode("usage: miniupnpd_probe.ts map|connect ...\n"));
  Deno.exit(2);
}
