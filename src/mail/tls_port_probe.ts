/**
 * Tells, on a connection of its own, whether a port speaks TLS from the first byte. A client
 * configured for STARTTLS (or no TLS) waits for the server's greeting, and a server on an
 * implicit-TLS port (993, 995, 465) waits for the client's TLS handshake: neither ever sends
 * anything. When the greeting is late, the mail clients ask this probe, and a TLS answer
 * becomes a message that says to set `tls = "implicit"` instead of a silent minute.
 *
 * @module
 */

/** Options of {@link speaksImplicitTls}. */
export interface TlsPortProbeOptions {
  /** TLS name to send (SNI). Default: `host`. */
  servername?: string;
  /** How long connecting and the handshake may take together, in ms. */
  timeoutMs: number;
  /** Ends the probe early (it then answers false). */
  signal?: AbortSignal;
}

/** A handshake that failed on the certificate still got a TLS answer from the server. */
const CERTIFICATE_TEXT = /certificate|UnknownIssuer|NotValidForName|BadSignature|Expired|issuer/i;

/**
 * True when a TLS handshake with `host:port` gets a TLS answer (the handshake completes, or
 * fails only on the certificate, which this probe does not judge); false when the server
 * answers in plain text, closes, or says nothing within `timeoutMs`.
 */
export async function speaksImplicitTls(
  host: string,
  port: number,
  options: TlsPortProbeOptions,
): Promise<boolean> {
  const limit = AbortSignal.timeout(options.timeoutMs);
  const signal = options.signal ? AbortSignal.any([limit, options.signal]) : limit;
  let conn: Deno.TcpConn | Deno.TlsConn | undefined;
  const stop = () => {
    try {
      conn?.close();
    } catch {
      // closed already
    }
  };
  signal.addEventListener("abort", stop, { once: true });
  try {
    const tcp = await Deno.connect({ hostname: host, port, signal });
    conn = tcp;
    if (signal.aborted) return false;
    const tls = await Deno.startTls(tcp, { hostname: options.servername ?? host });
    conn = tls;
    await tls.handshake();
    return true;
  } catch (err) {
    return !signal.aborted && err instanceof Error && CERTIFICATE_TEXT.test(err.message);
  } finally {
    signal.removeEventListener("abort", stop);
    stop();
  }
}
