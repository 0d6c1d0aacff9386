/**
 * A loopback UDP port that reads and never answers: a candidate behind a closed NAT, or a decoy
 * whose received datagrams a test inspects.
 */
import type { Endpoint } from "../../src/message/types.ts";

/** Opens the port; `seen` collects what arrives, `close()` ends it. */
export function silentPort(): { endpoint: Endpoint; seen: Uint8Array[]; close: () => void } {
  const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const seen: Uint8Array[] = [];
  (async () => {
    try {
      for await (const [bytes] of conn) seen.push(bytes);
    } catch {
      // closed
    }
  })();
  const port = (conn.addr as Deno.NetAddr).port;
  return {
    endpoint: { transport: "udp", address: "127.0.0.1", port },
    seen,
    close: () => conn.close(),
  };
}
