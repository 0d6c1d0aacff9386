/**
 * A local HTTPS server for autoconfig tests, on 127.0.0.1 and a free port, with a certificate
 * (for the IP 127.0.0.1) that a test CA signs: the mail stack's own CA when its key is
 * readable, so that one `--ca-file` trusts both the autoconfig server and the mail servers.
 * Serves whatever the test's handler answers; counts the requests.
 */
import { join } from "node:path";

/** A certificate and key for 127.0.0.1, signed by the CA of `caCert`/`caKey`. */
export async function makeServerCert(
  dir: string,
  ca: { cert: string; key: string },
): Promise<{ cert: string; key: string }> {
  const key = join(dir, "autoconfig.key");
  const csr = join(dir, "autoconfig.csr");
  const cert = join(dir, "autoconfig.crt");
  const ext = join(dir, "autoconfig.ext");
  await Deno.writeTextFile(ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  const run = async (args: string[]) => {
    const out = await new Deno.Command("openssl", { args, stdout: "null", stderr: "piped" })
      .output();
    if (out.code !== 0) {
      throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
    }
  };
  await run([
    "req",
    "-new",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    key,
    "-out",
    csr,
    "-subj",
    "/CN=127.0.0.1",
  ]);
  await run([
    "x509",
    "-req",
    "-in",
    csr,
    "-CA",
    ca.cert,
    "-CAkey",
    ca.key,
    "-CAcreateserial",
    "-CAserial",
    join(dir, "ca.srl"),
    "-out",
    cert,
    "-days",
    "2",
    "-extfile",
    ext,
  ]);
  return { cert: await Deno.readTextFile(cert), key: await Deno.readTextFile(key) };
}

/** A running HTTPS server. */
export interface AutoconfigServer {
  /** `https://127.0.0.1:PORT`. */
  origin: string;
  /** Paths asked, in order. */
  requests: string[];
  close(): Promise<void>;
}

/** Serves `handler` over HTTPS with `tls` on 127.0.0.1. */
export function startAutoconfigServer(
  tls: { cert: string; key: string },
  handler: (request: Request) => Response | Promise<Response>,
): AutoconfigServer {
  const requests: string[] = [];
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: tls.cert,
    key: tls.key,
    onListen: () => {},
  }, (request) => {
    const url = new URL(request.url);
    requests.push(url.pathname + url.search);
    return handler(request);
  });
  return {
    origin: `https://127.0.0.1:${server.addr.port}`,
    requests,
    close: () => server.shutdown(),
  };
}

/** A Thunderbird autoconfig document for the given servers. */
export function autoconfigXml(
  domain: string,
  servers: { kind: "imap" | "pop3" | "smtp"; hostname: string; port: number; socket: string }[],
): string {
  const entry = (s: (typeof servers)[number]) => {
    const tag = s.kind === "smtp" ? "outgoingServer" : "incomingServer";
    return `    <${tag} type="${s.kind}">
      <hostname>${s.hostname}</hostname>
      <port>${s.port}</port>
      <socketType>${s.socket}</socketType>
      <authentication>password-cleartext</authentication>
      <username>%EMAILADDRESS%</username>
    </${tag}>`;
  };
  return `<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="${domain}">
    <domain>${domain}</domain>
    <displayName>${domain} test mail</displayName>
${servers.map(entry).join("\n")}
  </emailProvider>
</clientConfig>
`;
}
