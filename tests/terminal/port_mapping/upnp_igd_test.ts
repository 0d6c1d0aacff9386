import assert from "node:assert/strict";
import { PeerError } from "../../../src/errors.ts";
import { UPNP_MAX_DESCRIPTION_BYTES } from "../../../src/limits.ts";
import { ManualClock } from "../../support/manual_clock.ts";
import { UpnpIgdClient } from "../../../src/terminal/port_mapping/upnp_igd.ts";
import { description, FakeUpnpGateway } from "./fake_upnp_gateway.ts";

const TCP_8080 = { transport: "tcp" as const, internalPort: 8080, lifetimeS: 3600 };
const IP1 = "urn:schemas-upnp-org:service:WANIPConnection:1";
const PPP1 = "urn:schemas-upnp-org:service:WANPPPConnection:1";

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

async function refusal(promise: Promise<unknown>, code = "EPORTMAP"): Promise<PeerError> {
  const err = await rejection(promise);
  assert.ok(err instanceof PeerError, `expected a PeerError, got ${err}`);
  assert.equal(err.code, code, err.message);
  assert.match(err.message, /^Cannot [^:]+: .+; .+/);
  return err;
}

Deno.test("UPnP IGD v2: AddAnyPortMapping maps the port and DeletePortMapping removes it", async () => {
  const gw = new FakeUpnpGateway({ reservePort: 18080 });
  const client = new UpnpIgdClient(gw.rootUrl);
  try {
    const mapped = await client.map(TCP_8080);
    assert.deepEqual(mapped, {
      external: { address: "203.0.113.9", port: 18080 },
      internal: { address: "127.0.0.1", port: 8080 },
      lifetimeS: 3600,
      gatewayRestarted: false,
    });
    assert.deepEqual(gw.calls.map((c) => c.action), ["AddAnyPortMapping", "GetExternalIPAddress"]);
    assert.equal(
      gw.calls[0]!.soapAction,
      '"urn:schemas-upnp-org:service:WANIPConnection:2#AddAnyPortMapping"',
    );
    assert.deepEqual(gw.calls[0]!.args, {
      NewRemoteHost: "",
      NewExternalPort: "8080",
      NewProtocol: "TCP",
      NewInternalPort: "8080",
      NewInternalClient: "127.0.0.1",
      NewEnabled: "1",
      NewPortMappingDescription: "mailpeer",
      NewLeaseDuration: "3600",
    });
    assert.ok(gw.mappings.has("TCP/18080"));
    await client.map(TCP_8080);
    assert.equal(
      gw.calls.at(-2)!.args.NewExternalPort,
      "18080",
      "a renewal asks for the port it got",
    );
    await client.unmap(TCP_8080);
    assert.equal(gw.calls.at(-1)!.action, "DeletePortMapping");
    assert.equal(gw.mappings.size, 0);
  } finally {
    await gw.close();
  }
});

for (const serviceType of [IP1, PPP1]) {
  Deno.test(`UPnP IGD v1: ${serviceType.split(":")[3]}:1 maps with AddPortMapping`, async () => {
    const gw = new FakeUpnpGateway({ serviceType });
    const client = new UpnpIgdClient(gw.rootUrl);
    try {
      const mapped = await client.map({ transport: "udp", internalPort: 4000, lifetimeS: 600 });
      assert.deepEqual(mapped.external, { address: "203.0.113.9", port: 4000 });
      assert.equal(gw.calls[0]!.action, "AddPortMapping");
      assert.ok(gw.mappings.has("UDP/4000"));
    } finally {
      await gw.close();
    }
  });
}

Deno.test("UPnP: 718 ConflictInMappingEntry says the port belongs to another host", async () => {
  const gw = new FakeUpnpGateway();
  const client = new UpnpIgdClient(gw.rootUrl, { internalAddress: "127.0.0.99" });
  try {
    const err = await refusal(client.map(TCP_8080));
    assert.equal(
      err.message,
      `Cannot map TCP port 8080 with UPnP IGD: the gateway 127.0.0.1:${gw.port} answered UPnP error 718 ConflictInMappingEntry; choose another external port, or free this one on the router (it maps it to another host)`,
    );
  } finally {
    await gw.close();
  }
});

Deno.test("UPnP: 606 Action not authorized says to allow mapping on the router", async () => {
  const gw = new FakeUpnpGateway();
  const client = new UpnpIgdClient(gw.rootUrl);
  try {
    const err = await refusal(client.map({ ...TCP_8080, externalPort: 80 }));
    assert.match(err.message, /UPnP error 606 Action not authorized; allow UPnP port mapping/);
  } finally {
    await gw.close();
  }
});

Deno.test("UPnP: a router with only permanent leases (725) is asked for one", async () => {
  const gw = new FakeUpnpGateway({ serviceType: IP1, onlyPermanent: true });
  const client = new UpnpIgdClient(gw.rootUrl);
  try {
    const mapped = await client.map(TCP_8080);
    assert.equal(mapped.lifetimeS, 0);
    assert.deepEqual(gw.calls.map((c) => c.args.NewLeaseDuration).slice(0, 2), ["3600", "0"]);
  } finally {
    await gw.close();
  }
});

Deno.test("UPnP: deleting a mapping the router already dropped (714) counts as deleted", async () => {
  const gw = new FakeUpnpGateway();
  const client = new UpnpIgdClient(gw.rootUrl);
  try {
    await client.map(TCP_8080);
    gw.mappings.clear();
    await client.unmap(TCP_8080);
  } finally {
    await gw.close();
  }
});

// ---- from the attacker's side: the HTTP server on the LAN is untrusted ----

function serving(body: string | ReadableStream<Uint8Array>, init: ResponseInit = {}) {
  return (_req: Request, path: string) =>
    path === "/rootDesc.xml" ? new Response(body, init) : undefined;
}

Deno.test("UPnP attacker: a description over the size limit is refused (Content-Length)", async () => {
  const big = description(IP1, "/ctl/IPConn") + " ".repeat(UPNP_MAX_DESCRIPTION_BYTES);
  const gw = new FakeUpnpGateway({ intercept: serving(big) });
  try {
    const err = await refusal(new UpnpIgdClient(gw.rootUrl).map(TCP_8080));
    assert.match(err.message, /over the limit of 65536/);
  } finally {
    await gw.close();
  }
});

Deno.test("UPnP attacker: an endless chunked description is cut at the limit", async () => {
  let pulled = 0;
  const endless = new ReadableStream<Uint8Array>({
    pull(controller) {
      pulled++;
      controller.enqueue(new TextEncoder().encode("<a>".repeat(1024)));
    },
  });
  const gw = new FakeUpnpGateway({ intercept: serving(endless) });
  try {
    const err = await refusal(new UpnpIgdClient(gw.rootUrl).map(TCP_8080));
    assert.match(err.message, /over the limit of 65536 bytes/);
    assert.ok(pulled > 0);
  } finally {
    await gw.close();
  }
});

const BOMB = `<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<root><URLBase>&lol3;</URLBase></root>`;
const EXTERNAL = `<?xml version="1.0"?>
<!DOCTYPE root [<!ENTITY x SYSTEM "file:///etc/passwd">]><root><URLBase>&x;</URLBase></root>`;

for (
  const [name, body, why] of [
    ["an XML bomb (billion laughs)", BOMB, /no DTDs/],
    ["an external entity", EXTERNAL, /no DTDs/],
    ["an undeclared entity", "<root>&lol;</root>", /unknown entity "&lol;"/],
    ["nesting 100 deep", "<a>".repeat(100) + "</a>".repeat(100), /nesting deeper than 32/],
    ["5000 elements", `<root>${"<a/>".repeat(5000)}</root>`, /more than 2048 elements/],
    ["a tag that is never closed", "<root><device>", /not closed/],
    ["no WAN service", description("urn:x:service:Other:1", "/ctl"), /no WANIPConnection/],
    [
      "a control URL on another host",
      description(IP1, "http://198.51.100.1/ctl/IPConn"),
      /leaves the gateway 127\.0\.0\.1/,
    ],
    ["a file: control URL", description(IP1, "file:///etc/passwd"), /leaves the gateway/],
  ] as const
) {
  Deno.test(`UPnP attacker: a description with ${name} is refused`, async () => {
    const gw = new FakeUpnpGateway({ intercept: serving(body) });
    try {
      const err = await refusal(new UpnpIgdClient(gw.rootUrl).map(TCP_8080));
      assert.match(err.message, /sent XML that is refused/);
      assert.match(err.message, why);
      assert.equal(gw.calls.length, 0, "no SOAP call follows");
    } finally {
      await gw.close();
    }
  });
}

Deno.test("UPnP attacker: a redirect is not followed", async () => {
  const gw = new FakeUpnpGateway({
    intercept: serving("", { status: 302, headers: { location: "http://198.51.100.1/x" } }),
  });
  try {
    const err = await refusal(new UpnpIgdClient(gw.rootUrl).map(TCP_8080));
    assert.match(err.message, /HTTP status 302/);
  } finally {
    await gw.close();
  }
});

Deno.test("UPnP attacker: a SOAP answer over its limit or with a bomb is refused", async () => {
  for (const body of ["<x>" + "y".repeat(20_000) + "</x>", BOMB]) {
    const gw = new FakeUpnpGateway({
      intercept: (_req, path) => (path === "/ctl/IPConn" ? new Response(body) : undefined),
    });
    try {
      await refusal(new UpnpIgdClient(gw.rootUrl).map(TCP_8080));
    } finally {
      await gw.close();
    }
  }
});

Deno.test("UPnP attacker: control characters in a fault's description do not reach the message", async () => {
  const gw = new FakeUpnpGateway({
    intercept: (_req, path) =>
      path === "/ctl/IPConn"
        ? new Response(
          `<Envelope><Body><Fault><detail><UPnPError><errorCode>799</errorCode><errorDescription>evil&#27;[2J\nline${
            "x".repeat(200)
          }</errorDescription></UPnPError></detail></Fault></Body></Envelope>`,
          { status: 500 },
        )
        : undefined,
  });
  try {
    const err = await refusal(new UpnpIgdClient(gw.rootUrl).map(TCP_8080));
    assert.ok(![...err.message].some((c) => c.charCodeAt(0) < 32), "no control characters");
    assert.match(err.message, /UPnP error 799 evil \[2J line/);
    assert.ok(err.message.length < 300);
  } finally {
    await gw.close();
  }
});

Deno.test("UPnP attacker: a bogus external address or reserved port is refused", async () => {
  for (
    const [action, out] of [
      ["GetExternalIPAddress", "<NewExternalIPAddress>999.1.1.1</NewExternalIPAddress>"],
      ["AddAnyPortMapping", "<NewReservedPort>70000</NewReservedPort>"],
    ]
  ) {
    const gw = new FakeUpnpGateway({
      intercept: async (req) => {
        if (!req.headers.get("soapaction")?.includes(`#${action}"`)) return undefined;
        await req.text();
        return new Response(
          `<Envelope><Body><u:${action}Response xmlns:u="x">${out}</u:${action}Response></Body></Envelope>`,
        );
      },
    });
    try {
      await refusal(new UpnpIgdClient(gw.rootUrl).map(TCP_8080));
    } finally {
      await gw.close();
    }
  }
});

Deno.test("UPnP: a gateway that does not answer times out on the injected clock", async () => {
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const gw = new FakeUpnpGateway({
    intercept: async () => {
      await held;
      return new Response("late", { status: 503 });
    },
  });
  const clock = new ManualClock();
  try {
    const result = refusal(new UpnpIgdClient(gw.rootUrl, { clock }).map(TCP_8080), "ETIMEOUT");
    await clock.sleeping();
    assert.equal(clock.nextWakeIn, 5000);
    clock.advance(5000);
    const err = await result;
    assert.match(err.message, /did not answer within 5000 ms/);
  } finally {
    release();
    await gw.close();
  }
});
