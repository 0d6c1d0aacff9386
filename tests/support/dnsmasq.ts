/**
 * A real DNS server for tests: dnsmasq (`scripts/dnsmasq/install`) as a child process on
 * 127.0.0.1 and a free UDP port, answering only the records a test gives it (no upstream, no
 * /etc/hosts), so nothing leaves the machine. Ready when dnsmasq says "started" (it has bound
 * its sockets by then); stopped by `close()`.
 */

/** dnsmasq's path, when installed. */
export const DNSMASQ: string | undefined = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"].find((p) => {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
});

/** What a test's DNS server answers. */
export interface DnsRecords {
  /** `_imap._tcp.a.test` → target, port, priority, weight. */
  srv?: { name: string; target: string; port: number; priority?: number; weight?: number }[];
  /** Domain → mail exchanger host name. */
  mx?: Record<string, string>;
  /** Host name → IPv4 address. */
  hosts?: Record<string, string>;
}

/** A free UDP port on 127.0.0.1 (the port is released before dnsmasq binds it). */
function freeUdpPort(): number {
  const socket = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  const port = (socket.addr as Deno.NetAddr).port;
  socket.close();
  return port;
}

/** A running dnsmasq; `server` is what `--dns-server` takes. */
export interface Dnsmasq {
  server: string;
  close(): Promise<void>;
}

/** Starts dnsmasq with `records`; resolves once it serves. */
export async function startDnsmasq(records: DnsRecords): Promise<Dnsmasq> {
  if (!DNSMASQ) throw new Error("dnsmasq is not installed: run scripts/dnsmasq/install");
  const port = freeUdpPort();
  const args = [
    "--no-daemon",
    "--no-resolv",
    "--no-hosts",
    "--conf-file=/dev/null",
    "--listen-address=127.0.0.1",
    "--bind-interfaces",
    `--port=${port}`,
    "--pid-file=",
    "--log-facility=-",
    // As root it would switch to "nobody"; it only switches when run as root.
    "--user=root",
    ...(records.srv ?? []).map((r) =>
      `--srv-host=${r.name},${r.target},${r.port},${r.priority ?? 0},${r.weight ?? 1}`
    ),
    ...Object.entries(records.mx ?? {}).map(([domain, host]) => `--mx-host=${domain},${host},10`),
    ...Object.entries(records.hosts ?? {}).map(([name, ip]) => `--host-record=${name},${ip}`),
  ];
  const child = new Deno.Command(DNSMASQ, { args, stdin: "null", stdout: "null", stderr: "piped" })
    .spawn();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) {
      await child.status;
      throw new Error(`dnsmasq did not start: ${seen.trim()}`);
    }
    seen += value;
    if (/started, version/.test(seen)) break;
  }
  // Keep draining its log so that it never blocks on a full pipe.
  const draining = (async () => {
    while (!(await reader.read()).done) { /* its log is not needed */ }
  })();
  return {
    server: `127.0.0.1:${port}`,
    close: async () => {
      child.kill("SIGTERM");
      await child.status;
      await draining.catch(() => {});
    },
  };
}
