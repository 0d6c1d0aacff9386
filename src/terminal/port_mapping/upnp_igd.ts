/**
 * UPnP IGD client (Internet Gateway Device v1 and v2): reads the gateway's device description
 * from a given root URL, finds its WANIPConnection:2, WANIPConnection:1 or WANPPPConnection:1
 * service and calls AddAnyPortMapping (v2) or AddPortMapping, DeletePortMapping and
 * GetExternalIPAddress over SOAP.
 *
 * The HTTP server is untrusted: every body is read up to a size limit within a timeout,
 * redirects are not followed, the control URL must stay on the description's host, the XML is
 * read by `upnp_xml.ts` (no DTDs, no entities beyond the predefined five), and SOAP faults
 * become `PeerError`s that name the UPnP error (606 Action not authorized, 718
 * ConflictInMappingEntry, …) and what to do about it.
 *
 * @module
 */
import { PeerError } from "../../errors.ts";
import {
  PORT_MAPPING_MAX_LIFETIME_S,
  UPNP_HTTP_TIMEOUT_MS,
  UPNP_MAX_DESCRIPTION_BYTES,
  UPNP_MAX_SOAP_BYTES,
} from "../../limits.ts";
import { type Clock, systemClock } from "../../runtime.ts";
import { ipv4ToNumber } from "./gateway_socket.ts";
import type {
  MappedPort,
  MappingCallOptions,
  PortMappingClient,
  PortMappingRequest,
} from "./types.ts";
import {
  childText,
  escapeXml,
  findElement,
  findElements,
  parseXml,
  type XmlElement,
  XmlRefused,
} from "./upnp_xml.ts";

/** Service types searched for, most preferred first. */
export const UPNP_WAN_SERVICES = [
  "urn:schemas-upnp-org:service:WANIPConnection:2",
  "urn:schemas-upnp-org:service:WANIPConnection:1",
  "urn:schemas-upnp-org:service:WANPPPConnection:1",
] as const;

/** UPnP errors a gateway may answer, with what the terminal's user can do about them. */
export const UPNP_ERRORS: Readonly<Record<number, { name: string; hint: string }>> = {
  401: { name: "Invalid Action", hint: "the router does not offer this action" },
  402: { name: "Invalid Args", hint: "the router refused the arguments" },
  501: { name: "Action Failed", hint: "try again later or forward the port by hand" },
  606: {
    name: "Action not authorized",
    hint:
      "allow UPnP port mapping for this host and port on the router, or forward the port by hand",
  },
  714: { name: "NoSuchEntryInArray", hint: "the mapping is already gone" },
  718: {
    name: "ConflictInMappingEntry",
    hint:
      "choose another external port, or free this one on the router (it maps it to another host)",
  },
  724: { name: "SamePortValuesRequired", hint: "use the same internal and external port" },
  725: { name: "OnlyPermanentLeasesSupported", hint: "ask for a permanent lease" },
  726: { name: "RemoteHostOnlySupportsWildcard", hint: "leave the remote host empty" },
  727: { name: "ExternalPortOnlySupportsWildcard", hint: "leave the external port empty" },
  728: { name: "NoPortMapsAvailable", hint: "delete unused mappings on the router" },
  729: { name: "ConflictWithOtherMechanisms", hint: "free the port on the router" },
  732: { name: "WildCardNotPermittedInIntPort", hint: "give an internal port" },
};

/** The WAN connection service found in a device description. */
export interface UpnpService {
  /** Its service type, one of {@link UPNP_WAN_SERVICES}. */
  serviceType: string;
  /** Its absolute control URL (on the description's host). */
  controlUrl: string;
}

/** A SOAP fault's UPnP error. */
export interface UpnpFault {
  /** The UPnP error code (e.g. 718), or 0 when the fault had none. */
  code: number;
  /** The gateway's description, cleaned of control characters and cut to 80 characters. */
  description: string;
}

/**
 * Finds the preferred WAN connection service in a device description; its control URL is
 * resolved against `URLBase` or `descriptionUrl` and must stay on `descriptionUrl`'s host.
 * Throws {@link XmlRefused} when there is none usable.
 */
export function findWanService(root: XmlElement, descriptionUrl: string): UpnpService {
  const services = findElements(root, "service");
  const base = childText(root, "URLBase") || descriptionUrl;
  for (const wanted of UPNP_WAN_SERVICES) {
    const service = services.find((s) => childText(s, "serviceType") === wanted);
    const control = service && childText(service, "controlURL");
    if (!control) continue;
    let url: URL;
    try {
      url = new URL(control, new URL(base, descriptionUrl));
    } catch {
      throw new XmlRefused(`the control URL ${JSON.stringify(control.slice(0, 80))} is not a URL`);
    }
    const from = new URL(descriptionUrl);
    if (url.protocol !== "http:" || url.hostname !== from.hostname) {
      throw new XmlRefused(
        `the control URL ${
          JSON.stringify(url.href.slice(0, 80))
        } leaves the gateway ${from.hostname}`,
      );
    }
    return { serviceType: wanted, controlUrl: url.href };
  }
  throw new XmlRefused("it lists no WANIPConnection or WANPPPConnection service");
}

/** The UPnP error of a SOAP fault envelope, or undefined when `root` holds none. */
export function readSoapFault(root: XmlElement): UpnpFault | undefined {
  const fault = findElement(root, "Fault");
  if (!fault) return undefined;
  const error = findElement(fault, "UPnPError");
  const code = Number(error && childText(error, "errorCode"));
  const description = (error && childText(error, "errorDescription")) ??
    (childText(fault, "faultstring") ?? "");
  return {
    code: Number.isInteger(code) && code > 0 && code < 1000 ? code : 0,
    description: cleanText(description),
  };
}

function cleanText(text: string): string {
  // deno-lint-ignore no-control-regex -- control characters from the router are what is removed
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, " ").trim().slice(0, 80);
}

/** The SOAP envelope of `action` with `args` in order. */
export function soapEnvelope(
  serviceType: string,
  action: string,
  args: readonly (readonly [string, string | number])[],
): string {
  const body = args.map(([k, v]) => `<${k}>${escapeXml(String(v))}</${k}>`).join("");
  return `<?xml version="1.0"?>\r\n<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" ` +
    `s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>` +
    `<u:${action} xmlns:u="${serviceType}">${body}</u:${action}></s:Body></s:Envelope>\r\n`;
}

/** Options of {@link UpnpIgdClient}. */
export interface UpnpIgdClientOptions {
  /**
   * The terminal's LAN address to map to (NewInternalClient); default the local address of a
   * TCP connection to the control URL's host.
   */
  internalAddress?: string;
  /** Description of the mapping shown on the router; default `mailpeer`. */
  description?: string;
  /** Time one HTTP request may take; default {@link UPNP_HTTP_TIMEOUT_MS}. */
  timeoutMs?: number;
  /** Largest device description; default {@link UPNP_MAX_DESCRIPTION_BYTES}. */
  maxDescriptionBytes?: number;
  /** Largest SOAP response; default {@link UPNP_MAX_SOAP_BYTES}. */
  maxSoapBytes?: number;
  /** Timers for the timeout; default `systemClock`. */
  clock?: Clock;
}

/** An HTTP failure, fault or refused body (wrapped into a PeerError by the caller). */
class UpnpFailure extends Error {
  readonly fault: UpnpFault | undefined;
  readonly timedOut: boolean;
  constructor(
    message: string,
    options: { fault?: UpnpFault; timedOut?: boolean; cause?: unknown },
  ) {
    super(message, { cause: options.cause });
    this.fault = options.fault;
    this.timedOut = options.timedOut ?? false;
  }
}

/**
 * A UPnP IGD client for the gateway whose device description is at `rootUrl` (e.g.
 * `http://192.168.1.1:5000/rootDesc.xml`; found by SSDP or configured).
 *
 * @example
 * ```ts ignore
 * const client = new UpnpIgdClient("http://192.168.1.1:5000/rootDesc.xml");
 * const mapped = await client.map({ transport: "tcp", internalPort: 8080, lifetimeS: 3600 });
 * await client.unmap({ transport: "tcp", internalPort: 8080, lifetimeS: 3600 });
 * ```
 */
export class UpnpIgdClient implements PortMappingClient {
  readonly protocol = "upnp";
  readonly #rootUrl: string;
  readonly #options: UpnpIgdClientOptions;
  #service: Promise<UpnpService> | undefined;
  #internalAddress: string | undefined;
  readonly #externalPorts = new Map<string, number>();

  constructor(rootUrl: string, options: UpnpIgdClientOptions = {}) {
    const url = new URL(rootUrl);
    if (url.protocol !== "http:") {
      throw new TypeError(`Not an http: UPnP description URL: ${JSON.stringify(rootUrl)}`);
    }
    this.#rootUrl = url.href;
    this.#options = options;
  }

  /** The gateway's WAN connection service (the description is read once). */
  service(options: MappingCallOptions = {}): Promise<UpnpService> {
    this.#service ??= this.#readDescription(options.signal);
    this.#service.catch(() => (this.#service = undefined));
    return this.#service;
  }

  async #readDescription(signal: AbortSignal | undefined): Promise<UpnpService> {
    const what = "read the UPnP device description";
    try {
      const body = await this.#http(this.#rootUrl, {
        method: "GET",
        maxBytes: this.#options.maxDescriptionBytes ?? UPNP_MAX_DESCRIPTION_BYTES,
        signal,
      });
      if (body.status !== 200) throw new UpnpFailure(`HTTP status ${body.status}`, {});
      const root = parseXml(body.text, { maxLength: body.text.length });
      return findWanService(root, this.#rootUrl);
    } catch (err) {
      throw this.#error(what, err, signal);
    }
  }

  /** The gateway's external IPv4 address (GetExternalIPAddress). */
  async externalAddress(options: MappingCallOptions = {}): Promise<string> {
    const what = "learn the external address with UPnP IGD";
    try {
      const out = await this.#call("GetExternalIPAddress", [], options.signal);
      const address = out.get("NewExternalIPAddress") ?? "";
      if (ipv4ToNumber(address) === undefined || address === "0.0.0.0") {
        throw new UpnpFailure(
          `the gateway reports ${JSON.stringify(cleanText(address))} as its external address`,
          {},
        );
      }
      return address;
    } catch (err) {
      throw this.#error(what, err, options.signal, "check that the router is connected");
    }
  }

  /**
   * Creates or renews a mapping: AddAnyPortMapping on IGD v2 (the router may pick another
   * external port), AddPortMapping on v1; a router that only keeps permanent leases (725) is
   * asked again for one.
   */
  async map(request: PortMappingRequest, options: MappingCallOptions = {}): Promise<MappedPort> {
    const key = `${request.transport}/${request.internalPort}`;
    const what =
      `map ${request.transport.toUpperCase()} port ${request.internalPort} with UPnP IGD`;
    const signal = options.signal;
    try {
      const service = await this.service(options);
      const internal = await this.#internal(service);
      const external = this.#externalPorts.get(key) ?? request.externalPort ??
        request.internalPort;
      const lifetimeS = Math.min(request.lifetimeS, PORT_MAPPING_MAX_LIFETIME_S);
      const args = (lease: number) =>
        [
          ["NewRemoteHost", ""],
          ["NewExternalPort", external],
          ["NewProtocol", request.transport.toUpperCase()],
          ["NewInternalPort", request.internalPort],
          ["NewInternalClient", internal],
          ["NewEnabled", 1],
          ["NewPortMappingDescription", this.#options.description ?? "mailpeer"],
          ["NewLeaseDuration", lease],
        ] as const;
      const v2 = service.serviceType.endsWith("WANIPConnection:2");
      const add = async (lease: number): Promise<number> => {
        if (v2) {
          const out = await this.#call("AddAnyPortMapping", args(lease), signal);
          const port = Number(out.get("NewReservedPort"));
          if (!Number.isInteger(port) || port < 1 || port > 0xffff) {
            throw new UpnpFailure(
              `the gateway reserved port ${
                JSON.stringify(cleanText(out.get("NewReservedPort") ?? ""))
              }`,
              {},
            );
          }
          return port;
        }
        await this.#call("AddPortMapping", args(lease), signal);
        return external;
      };
      let lease = lifetimeS;
      let port: number;
      try {
        port = await add(lease);
      } catch (err) {
        if (!(err instanceof UpnpFailure && err.fault?.code === 725)) throw err;
        lease = 0;
        port = await add(lease);
      }
      this.#externalPorts.set(key, port);
      const address = await this.externalAddress(options);
      return {
        external: { address, port },
        internal: { address: internal, port: request.internalPort },
        lifetimeS: lease,
        gatewayRestarted: false,
      };
    } catch (err) {
      throw this.#error(what, err, signal);
    }
  }

  /** Deletes the mapping (DeletePortMapping); one that is already gone (714) counts as deleted. */
  async unmap(request: PortMappingRequest, options: MappingCallOptions = {}): Promise<void> {
    const key = `${request.transport}/${request.internalPort}`;
    const external = this.#externalPorts.get(key);
    if (external === undefined) return;
    try {
      await this.#call("DeletePortMapping", [
        ["NewRemoteHost", ""],
        ["NewExternalPort", external],
        ["NewProtocol", request.transport.toUpperCase()],
      ], options.signal);
    } catch (err) {
      if (!(err instanceof UpnpFailure && err.fault?.code === 714)) {
        throw this.#error(
          `delete the mapping of ${request.transport.toUpperCase()} port ${request.internalPort} with UPnP IGD`,
          err,
          options.signal,
        );
      }
    }
    this.#externalPorts.delete(key);
  }

  /** Nothing to release: every request has its own HTTP connection. */
  close(): Promise<void> {
    return Promise.resolve();
  }

  async #internal(service: UpnpService): Promise<string> {
    if (this.#options.internalAddress) return this.#options.internalAddress;
    if (this.#internalAddress) return this.#internalAddress;
    const url = new URL(service.controlUrl);
    try {
      const conn = await Deno.connect({ hostname: url.hostname, port: Number(url.port || 80) });
      this.#internalAddress = (conn.localAddr as Deno.NetAddr).hostname;
      conn.close();
    } catch (err) {
      throw new UpnpFailure(`cannot connect to ${url.host} (${String(err)})`, { cause: err });
    }
    return this.#internalAddress;
  }

  /** Calls a SOAP action; resolves with its output arguments by name. */
  async #call(
    action: string,
    args: readonly (readonly [string, string | number])[],
    signal: AbortSignal | undefined,
  ): Promise<Map<string, string>> {
    const service = await this.service({ signal });
    const response = await this.#http(service.controlUrl, {
      method: "POST",
      headers: {
        "content-type": 'text/xml; charset="utf-8"',
        soapaction: `"${service.serviceType}#${action}"`,
      },
      body: soapEnvelope(service.serviceType, action, args),
      maxBytes: this.#options.maxSoapBytes ?? UPNP_MAX_SOAP_BYTES,
      signal,
    });
    const root = parseXml(response.text, { maxLength: response.text.length });
    const fault = readSoapFault(root);
    if (fault || response.status !== 200) {
      const f = fault ?? { code: 0, description: `HTTP status ${response.status}` };
      throw new UpnpFailure(`${action} failed`, { fault: f });
    }
    const result = findElement(root, `${action}Response`);
    if (!result) throw new XmlRefused(`the answer to ${action} holds no ${action}Response`);
    return new Map(result.children.map((c) => [c.name, c.text.trim()]));
  }

  /** One HTTP exchange: no redirects, the body read up to `maxBytes` within the timeout. */
  async #http(
    url: string,
    init: {
      method: string;
      headers?: Record<string, string>;
      body?: string;
      maxBytes: number;
      signal: AbortSignal | undefined;
    },
  ): Promise<{ status: number; text: string }> {
    const clock = this.#options.clock ?? systemClock;
    const timeoutMs = this.#options.timeoutMs ?? UPNP_HTTP_TIMEOUT_MS;
    const timer = new AbortController();
    const done = new AbortController();
    clock.sleep(timeoutMs, done.signal).then(() => timer.abort(), () => {});
    const signal = init.signal ? AbortSignal.any([init.signal, timer.signal]) : timer.signal;
    try {
      const response = await fetch(url, {
        method: init.method,
        headers: { "accept-encoding": "identity", ...init.headers },
        body: init.body,
        redirect: "manual",
        signal,
      });
      const length = Number(response.headers.get("content-length"));
      if (length > init.maxBytes) {
        await response.body?.cancel();
        throw new UpnpFailure(
          `the answer is ${length} bytes, over the limit of ${init.maxBytes}`,
          {},
        );
      }
      const chunks: Uint8Array[] = [];
      let size = 0;
      const reader = response.body?.getReader();
      while (reader) {
        const { done: end, value } = await reader.read();
        if (end) break;
        size += value.length;
        if (size > init.maxBytes) {
          await reader.cancel();
          throw new UpnpFailure(`the answer is over the limit of ${init.maxBytes} bytes`, {});
        }
        chunks.push(value);
      }
      const bytes = new Uint8Array(size);
      let at = 0;
      for (const c of chunks) {
        bytes.set(c, at);
        at += c.length;
      }
      return { status: response.status, text: new TextDecoder().decode(bytes) };
    } catch (err) {
      if (timer.signal.aborted && !init.signal?.aborted) {
        throw new UpnpFailure(`${url} did not answer within ${timeoutMs} ms`, {
          timedOut: true,
          cause: err,
        });
      }
      if (err instanceof UpnpFailure || init.signal?.aborted) throw err;
      throw new UpnpFailure(
        `HTTP to ${url} failed (${err instanceof Error ? err.message : String(err)})`,
        {
          cause: err,
        },
      );
    } finally {
      done.abort();
    }
  }

  /** Turns a failure into "Cannot <what>: <why>; <hint>" (abort reasons pass through). */
  #error(
    what: string,
    err: unknown,
    signal: AbortSignal | undefined,
    hint = "check the router's UPnP setting, forward the port by hand or use another protocol",
  ): unknown {
    if (signal?.aborted || err instanceof PeerError) return err;
    const gateway = new URL(this.#rootUrl).host;
    if (err instanceof UpnpFailure && err.fault) {
      const known = UPNP_ERRORS[err.fault.code];
      const shown = err.fault.code
        ? `${err.fault.code} ${known?.name ?? err.fault.description}`
        : err.fault.description;
      return new PeerError(
        "EPORTMAP",
        `Cannot ${what}: the gateway ${gateway} answered UPnP error ${shown}; ${
          known?.hint ?? hint
        }`,
        { cause: err },
      );
    }
    if (err instanceof XmlRefused) {
      return new PeerError(
        "EPORTMAP",
        `Cannot ${what}: the gateway ${gateway} sent XML that is refused (${err.message}); ${hint}`,
        { cause: err },
      );
    }
    if (err instanceof UpnpFailure) {
      return new PeerError(
        err.timedOut ? "ETIMEOUT" : "EPORTMAP",
        `Cannot ${what}: ${err.message}; ${hint}`,
        { cause: err },
      );
    }
    return err;
  }
}
