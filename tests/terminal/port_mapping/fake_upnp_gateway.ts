/**
 * An in-process UPnP IGD on 127.0.0.1 port 0 (Deno.serve), written from the UPnP IGD v1/v2
 * specifications and miniupnpd's behaviour: a device description at /rootDesc.xml and a
 * control URL for AddPortMapping, AddAnyPortMapping, DeletePortMapping and
 * GetExternalIPAddress. Like miniupnpd's secure_mode, a mapping to another host than the
 * caller is 718 ConflictInMappingEntry and an external port under 1024 is 606.
 */

export interface FakeUpnpOptions {
  /** Which WAN service the description lists. */
  serviceType?: string;
  /** The description's body instead of the generated one. */
  description?: string;
  /** The control URL written into the description. */
  controlUrl?: string;
  /** Only permanent leases (error 725 for any other). */
  onlyPermanent?: boolean;
  /** External port AddAnyPortMapping reserves (default the one asked for). */
  reservePort?: number;
  /** Answers a request instead of the fake (return undefined to let the fake answer). */
  intercept?: (
    request: Request,
    path: string,
  ) => Response | Promise<Response | undefined> | undefined;
}

export interface UpnpCall {
  action: string;
  soapAction: string;
  args: Record<string, string>;
}

export function description(serviceType: string, controlUrl: string): string {
  return `<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0" configId="1337">
<specVersion><major>1</major><minor>1</minor></specVersion>
<device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:2</deviceType>
<friendlyName>fake router</friendlyName>
<serviceList><service><serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType>
<serviceId>urn:upnp-org:serviceId:L3Forwarding1</serviceId><controlURL>/ctl/L3F</controlURL>
<eventSubURL>/evt/L3F</eventSubURL><SCPDURL>/L3F.xml</SCPDURL></service></serviceList>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:2</deviceType>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:2</deviceType>
<serviceList><service><serviceType>${serviceType}</serviceType>
<serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>
<controlURL>${controlUrl}</controlURL><eventSubURL>/evt/IPConn</eventSubURL>
<SCPDURL>/WANIPCn.xml</SCPDURL></service></serviceList></device></deviceList>
</device></deviceList></device></root>`;
}

function fault(code: number, text: string): Response {
  return new Response(
    `<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>${code}</errorCode><errorDescription>${text}</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>`,
    { status: 500, headers: { "content-type": 'text/xml; charset="utf-8"' } },
  );
}

export class FakeUpnpGateway {
  readonly calls: UpnpCall[] = [];
  readonly mappings = new Map<string, { client: string; internal: number; lease: number }>();
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly #options: FakeUpnpOptions;
  readonly serviceType: string;

  constructor(options: FakeUpnpOptions = {}) {
    this.#options = options;
    this.serviceType = options.serviceType ?? "urn:schemas-upnp-org:service:WANIPConnection:2";
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (request, info) => this.#handle(request, info.remoteAddr.hostname),
    );
  }

  get port(): number {
    return this.#server.addr.port;
  }

  get rootUrl(): string {
    return `http://127.0.0.1:${this.port}/rootDesc.xml`;
  }

  async close(): Promise<void> {
    await this.#server.shutdown();
  }

  async #handle(request: Request, remote: string): Promise<Response> {
    const path = new URL(request.url).pathname;
    const own = await this.#options.intercept?.(request, path);
    if (own) return own;
    if (path === "/rootDesc.xml") {
      return new Response(
        this.#options.description ??
          description(this.serviceType, this.#options.controlUrl ?? "/ctl/IPConn"),
        { headers: { "content-type": 'text/xml; charset="utf-8"' } },
      );
    }
    if (path !== "/ctl/IPConn" || request.method !== "POST") {
      return new Response("not found", { status: 404 });
    }
    const soapAction = request.headers.get("soapaction") ?? "";
    const body = await request.text();
    const m = /<\w+:(\w+) xmlns:\w+="([^"]+)">(.*)<\/\w+:\1>/s.exec(body);
    if (!m || soapAction !== `"${m[2]}#${m[1]}"` || m[2] !== this.serviceType) {
      return fault(401, "Invalid Action");
    }
    const action = m[1]!;
    const args: Record<string, string> = {};
    for (const a of m[3]!.matchAll(/<(\w+)>([^<]*)<\/\1>/g)) args[a[1]!] = a[2]!;
    this.calls.push({ action, soapAction, args });
    const ok = (out: string) =>
      new Response(
        `<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:${action}Response xmlns:u="${this.serviceType}">${out}</u:${action}Response></s:Body></s:Envelope>`,
        { headers: { "content-type": 'text/xml; charset="utf-8"' } },
      );
    const key = `${args.NewProtocol}/${args.NewExternalPort}`;
    switch (action) {
      case "GetExternalIPAddress":
        return ok("<NewExternalIPAddress>203.0.113.9</NewExternalIPAddress>");
      case "AddPortMapping":
      case "AddAnyPortMapping": {
        const external = Number(args.NewExternalPort);
        if (args.NewInternalClient !== remote) return fault(718, "ConflictInMappingEntry");
        if (external < 1024) return fault(606, "Action not authorized");
        if (this.#options.onlyPermanent && args.NewLeaseDuration !== "0") {
          return fault(725, "OnlyPermanentLeasesSupported");
        }
        const existing = this.mappings.get(key);
        if (existing && existing.client !== remote) return fault(718, "ConflictInMappingEntry");
        const port = action === "AddAnyPortMapping"
          ? this.#options.reservePort ?? external
          : external;
        this.mappings.set(`${args.NewProtocol}/${port}`, {
          client: args.NewInternalClient!,
          internal: Number(args.NewInternalPort),
          lease: Number(args.NewLeaseDuration),
        });
        return ok(
          action === "AddAnyPortMapping" ? `<NewReservedPort>${port}</NewReservedPort>` : "",
        );
      }
      case "DeletePortMapping":
        if (!this.mappings.delete(key)) return fault(714, "NoSuchEntryInArray");
        return ok("");
      default:
        return fault(401, "Invalid Action");
    }
  }
}
