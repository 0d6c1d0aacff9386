/**
 * Discovery for `mailpeer init` (docs/discovery.md), from the attacker's side too: an
 * autoconfig document is hostile input (huge, malformed, entity bombs, hostile host names,
 * ports out of range, servers without TLS), an autoconfig server may redirect elsewhere or
 * never stop sending, and SRV records may name anything. Local HTTP servers on 127.0.0.1 and
 * a fake DNS; nothing leaves the machine.
 */
import assert from "node:assert/strict";
import { parseAutoconfig, parseXml } from "../../src/config/autoconfig_xml.ts";
import { fetchAutoconfig } from "../../src/config/autoconfig_fetch.ts";
import { discoverServers, type FoundServer, providerDomain } from "../../src/config/discovery.ts";
import type { DnsLookup, SrvAnswer } from "../../src/config/dns_lookup.ts";
import { parseNameServer } from "../../src/config/dns_lookup.ts";
import { hostnameProblem } from "../../src/config/server_candidate.ts";
import { ConfigError } from "../../src/errors.ts";
import { MailError } from "../../src/errors.ts";
import { AUTOCONFIG_MAX_BYTES, AUTOCONFIG_MAX_ELEMENTS } from "../../src/limits.ts";

const EMAIL = "alice@example.org";

function doc(servers: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
<!-- a comment -->
<clientConfig version="1.1">
  <emailProvider id="example.org">
    <domain>example.org</domain>
${servers}
  </emailProvider>
</clientConfig>`;
}

function server(
  tag: "incomingServer" | "outgoingServer",
  type: string,
  hostname: string,
  port: string,
  socket: string,
  username = "%EMAILADDRESS%",
): string {
  return `<${tag} type="${type}"><hostname>${hostname}</hostname><port>${port}</port>` +
    `<socketType>${socket}</socketType><username>${username}</username></${tag}>`;
}

Deno.test("an autoconfig document gives IMAP, POP3 and SMTP servers with their login names", () => {
  const { candidates, notes } = parseAutoconfig(
    doc([
      server("incomingServer", "imap", "IMAP.Example.org.", "993", "SSL"),
      server("incomingServer", "pop3", "pop.example.org", "995", "SSL", "%EMAILLOCALPART%"),
      server("outgoingServer", "smtp", "smtp.example.org", "587", "STARTTLS"),
    ].join("\n")),
    { email: EMAIL, source: "autoconfig" },
  );
  assert.deepEqual(notes, []);
  assert.deepEqual(candidates, [
    {
      protocol: "imap",
      hostname: "imap.example.org",
      port: 993,
      tls: "implicit",
      username: EMAIL,
      source: "autoconfig",
    },
    {
      protocol: "pop3",
      hostname: "pop.example.org",
      port: 995,
      tls: "implicit",
      username: "alice",
      source: "autoconfig",
    },
    {
      protocol: "smtp",
      hostname: "smtp.example.org",
      port: 587,
      tls: "starttls",
      username: EMAIL,
      source: "autoconfig",
    },
  ]);
});

Deno.test("hostile host names in an autoconfig document are refused, never offered", () => {
  const hostile = [
    "evil.test/../x",
    "evil test.org",
    "-bad.example.org",
    "bad-.example.org",
    "under_score.example.org",
    "localhost",
    "a..example.org",
    "example.org:25",
    "http://example.org",
    "x".repeat(64) + ".example.org",
    "1.2.3.4.5",
    "",
  ];
  const { candidates, notes } = parseAutoconfig(
    doc(hostile.map((h) => server("incomingServer", "imap", h, "993", "SSL")).join("\n")),
    { email: EMAIL, source: "autoconfig" },
  );
  assert.deepEqual(candidates, []);
  assert.equal(notes.length, hostile.length, notes.join("\n"));
  for (const h of hostile) assert.notEqual(hostnameProblem(h), undefined, h);
  assert.equal(hostnameProblem("127.0.0.11"), undefined);
  assert.equal(hostnameProblem("::1"), undefined);
});

Deno.test("ports out of range, servers without TLS and unknown types are dropped with a note", () => {
  const { candidates, notes } = parseAutoconfig(
    doc([
      server("incomingServer", "imap", "imap.example.org", "0", "SSL"),
      server("incomingServer", "imap", "imap.example.org", "65536", "SSL"),
      server("incomingServer", "imap", "imap.example.org", "-1", "SSL"),
      server("incomingServer", "imap", "imap.example.org", "99999999", "SSL"),
      server("incomingServer", "imap", "imap.example.org", "abc", "SSL"),
      server("incomingServer", "imap", "imap.example.org", "143", "plain"),
      server("incomingServer", "exchange", "ews.example.org", "443", "SSL"),
      server("incomingServer", "smtp", "smtp.example.org", "465", "SSL"),
      server("incomingServer", "imap", "imap.example.org", "993", "SSL", "%REALNAME%"),
    ].join("\n")),
    { email: EMAIL, source: "ispdb" },
  );
  assert.equal(notes.length, 8, notes.join("\n"));
  assert.ok(notes.some((n) => /without TLS/.test(n)));
  // An unknown placeholder in the login name: the server is kept, the e-mail address is tried.
  assert.equal(candidates.length, 1);
  assert.equal(candidates[0]!.username, undefined);
});

Deno.test("an autoconfig document with a DOCTYPE (entity bomb, external entity) is refused", () => {
  const bomb = `<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<clientConfig><emailProvider><incomingServer type="imap"><hostname>&lol2;</hostname>
</incomingServer></emailProvider></clientConfig>`;
  assert.throws(() => parseAutoconfig(bomb, { email: EMAIL, source: "autoconfig" }), /DOCTYPE/);
  const external = `<!DOCTYPE x SYSTEM "file:///etc/passwd"><clientConfig/>`;
  assert.throws(() => parseXml(external), /DOCTYPE/);
  assert.throws(() => parseXml("<a>&lol;</a>"), /unknown entity/);
  assert.equal(parseXml("<a>&lt;&#65;&#x42;&amp;</a>").text, "<AB&");
});

Deno.test("a huge, deep or crowded autoconfig document is refused before it is read", () => {
  const huge = doc(" ".repeat(AUTOCONFIG_MAX_BYTES));
  assert.throws(() => parseXml(huge), /larger than/);
  const crowded = `<a>${"<b/>".repeat(AUTOCONFIG_MAX_ELEMENTS + 1)}</a>`;
  assert.throws(() => parseXml(crowded), /more than \d+ elements/);
  const deep = "<a>".repeat(100) + "</a>".repeat(100);
  assert.throws(() => parseXml(deep), /deeper than/);
});

Deno.test("a malformed autoconfig document is one EDISCOVER line, never a crash", () => {
  const bad = [
    "",
    "not xml at all",
    "<clientConfig>",
    "<clientConfig></emailProvider>",
    "<clientConfig><emailProvider></clientConfig></emailProvider>",
    "<a/><b/>",
    "<html><body>hello</body></html>",
    "<clientConfig/>",
    "<clientConfig><emailProvider><!-- never closed",
    "<clientConfig a=unquoted/>",
    "<clientConfig>&</clientConfig>",
    "<clientConfig>\u0000</clientConfig>",
  ];
  for (const text of bad) {
    assert.throws(
      () => parseAutoconfig(text, { email: EMAIL, source: "autoconfig" }),
      (err: unknown) =>
        err instanceof ConfigError && err.code === "EDISCOVER" && !err.message.includes("\n"),
      JSON.stringify(text),
    );
  }
});

/** A plain HTTP server on 127.0.0.1 for the fetch tests. */
function httpServer(handler: (request: Request) => Response) {
  const paths: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    paths.push(new URL(req.url).pathname);
    return handler(req);
  });
  return { origin: `http://127.0.0.1:${server.addr.port}`, paths, close: () => server.shutdown() };
}

Deno.test("autoconfig is fetched only over https, plain http only for an explicit loopback override", async () => {
  const s = httpServer(() => new Response(doc("")));
  try {
    const refused = await fetchAutoconfig(`${s.origin}/x`);
    assert.equal(refused.ok, false);
    assert.match(!refused.ok ? refused.why : "", /only https/);
    assert.deepEqual(s.paths, []);
    const allowed = await fetchAutoconfig(`${s.origin}/x`, { allowLoopbackHttp: true });
    assert.equal(allowed.ok, true);
    const remote = await fetchAutoconfig("http://192.0.2.1/x", { allowLoopbackHttp: true });
    assert.match(!remote.ok ? remote.why : "", /only https/);
    const file = await fetchAutoconfig("file:///etc/passwd", { allowLoopbackHttp: true });
    assert.match(!file.ok ? file.why : "", /only https/);
  } finally {
    await s.close();
  }
});

Deno.test("an autoconfig redirect to another host is reported and not followed; one within the host is", async () => {
  const elsewhere = httpServer(() => new Response(doc("")));
  const s = httpServer((req) => {
    const path = new URL(req.url).pathname;
    if (path === "/away") {
      return new Response(null, { status: 302, headers: { location: `${elsewhere.origin}/x` } });
    }
    if (path === "/here") {
      return new Response(null, { status: 301, headers: { location: "/final" } });
    }
    if (path === "/loop") {
      return new Response(null, { status: 302, headers: { location: "/loop" } });
    }
    if (path === "/final") return new Response(doc(""));
    return new Response("no", { status: 404 });
  });
  try {
    const away = await fetchAutoconfig(`${s.origin}/away`, { allowLoopbackHttp: true });
    assert.match(!away.ok ? away.why : "", /another host: not followed/);
    assert.deepEqual(elsewhere.paths, []);
    const here = await fetchAutoconfig(`${s.origin}/here`, { allowLoopbackHttp: true });
    assert.equal(here.ok && here.url, `${s.origin}/final`);
    const loop = await fetchAutoconfig(`${s.origin}/loop`, { allowLoopbackHttp: true });
    assert.match(!loop.ok ? loop.why : "", /more than 3 redirects/);
    const missing = await fetchAutoconfig(`${s.origin}/none`, { allowLoopbackHttp: true });
    assert.match(!missing.ok ? missing.why : "", /HTTP status 404/);
  } finally {
    await s.close();
    await elsewhere.close();
  }
});

Deno.test("an autoconfig server that never stops sending is cut off at the size limit", async () => {
  let sent = 0;
  const chunk = new Uint8Array(16 * 1024).fill(0x20);
  const s = httpServer(() =>
    new Response(
      new ReadableStream({
        pull(controller) {
          sent += chunk.length;
          controller.enqueue(chunk);
        },
      }),
    )
  );
  try {
    const endless = await fetchAutoconfig(`${s.origin}/x`, { allowLoopbackHttp: true });
    assert.match(!endless.ok ? endless.why : "", /larger than 65536 bytes/);
    assert.ok(sent < 64 * 1024 * 1024, `${sent} bytes were produced`);
  } finally {
    await s.close();
  }
});

/** A DNS that answers from a table, and counts the questions. */
function fakeDns(
  records: {
    srv?: Record<string, SrvAnswer[]>;
    mx?: Record<string, string[]>;
    a?: Record<string, string[]>;
  },
): DnsLookup & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    srv: (name) => {
      asked.push(`SRV ${name}`);
      return Promise.resolve(records.srv?.[name] ?? []);
    },
    mx: (name) => {
      asked.push(`MX ${name}`);
      return Promise.resolve(records.mx?.[name] ?? []);
    },
    addresses: (name) => {
      asked.push(`A ${name}`);
      return Promise.resolve(records.a?.[name] ?? []);
    },
  };
}

const srv = (target: string, port: number, priority = 0): SrvAnswer => ({
  priority,
  weight: 1,
  port,
  target,
});

/** Autoconfig URLs where nothing listens: those sources find nothing, without the network. */
const NOWHERE = {
  autoconfig: "http://127.0.0.1:1/autoconfig",
  wellKnown: "http://127.0.0.1:1/well-known",
  ispdb: "http://127.0.0.1:1/ispdb/%EMAILDOMAIN%",
};

Deno.test("discovery asks autoconfig, well-known, ISPDB, SRV, MX, guesses in order and probes each server before offering it", async () => {
  const dns = fakeDns({
    srv: {
      "_imaps._tcp.example.org": [srv("down.example.org", 993, 0), srv("imap.example.org", 993, 5)],
      "_imap._tcp.example.org": [srv(".", 0)],
      "_submission._tcp.example.org": [
        srv("bad name.example.org", 587),
        srv("smtp.example.org", 587),
      ],
    },
  });
  const probed: string[] = [];
  const result = await discoverServers(EMAIL, {
    urls: NOWHERE,
    fetch: { allowLoopbackHttp: true },
    dns,
    probe: (s: FoundServer) => {
      probed.push(`${s.protocol} ${s.hostname}:${s.port}`);
      return Promise.resolve(
        s.hostname === "down.example.org" ? { ok: false, why: "refused" } : { ok: true },
      );
    },
  });
  assert.equal(result.incoming?.hostname, "imap.example.org");
  assert.equal(result.incoming?.source, "srv");
  assert.equal(result.outgoing?.hostname, "smtp.example.org");
  assert.equal(result.outgoing?.tls, "starttls");
  assert.deepEqual(probed, [
    "imap down.example.org:993",
    "imap imap.example.org:993",
    "smtp smtp.example.org:587",
  ]);
  const sources = result.notes.map((n) => n.split(":")[0]);
  assert.deepEqual(sources.slice(0, 3), ["autoconfig", "well-known", "ispdb"]);
  assert.ok(result.notes.some((n) => n.includes("bad name.example.org")));
  // Found both: MX and the guesses were never asked.
  assert.ok(!dns.asked.some((q) => q.startsWith("MX")));
});

Deno.test("discovery falls back to the usual names, and a refused password stops it at once", async () => {
  const dns = fakeDns({});
  const probed: string[] = [];
  const result = await discoverServers(EMAIL, {
    sources: ["guess"],
    dns,
    probe: (s) => {
      probed.push(`${s.hostname}:${s.port}`);
      return Promise.resolve(
        s.hostname === "mail.example.org" ? { ok: true } : { ok: false, why: "no" },
      );
    },
  });
  assert.equal(result.incoming?.hostname, "mail.example.org");
  assert.equal(result.incoming?.protocol, "imap");
  assert.equal(result.outgoing?.hostname, "mail.example.org");
  assert.equal(probed[0], "imap.example.org:993");

  await assert.rejects(
    discoverServers(EMAIL, {
      sources: ["guess"],
      dns,
      probe: () => Promise.reject(new MailError("EAUTH", "Cannot log in: refused; check it")),
    }),
    /Cannot log in/,
  );
});

Deno.test("discovery asks the ISPDB for the provider of the domain's MX", async () => {
  const asked: string[] = [];
  const s = httpServer((req) => {
    asked.push(new URL(req.url).pathname);
    return new Response(doc([
      server("incomingServer", "imap", "imap.provider.net", "993", "SSL"),
      server("outgoingServer", "smtp", "smtp.provider.net", "465", "SSL"),
    ].join("\n")));
  });
  try {
    const result = await discoverServers(EMAIL, {
      sources: ["mx"],
      urls: { ispdb: `${s.origin}/v1.1/%EMAILDOMAIN%` },
      fetch: { allowLoopbackHttp: true },
      dns: fakeDns({ mx: { "example.org": ["mx1.provider.net."] } }),
      probe: () => Promise.resolve({ ok: true }),
    });
    assert.deepEqual(asked, ["/v1.1/provider.net"]);
    assert.equal(result.incoming?.hostname, "imap.provider.net");
    assert.equal(result.incoming?.source, "mx");
    // The login name stays the user's own address, not one at the provider's domain.
    assert.equal(result.incoming?.username, EMAIL);
  } finally {
    await s.close();
  }
});

Deno.test("the provider of an MX is its last two labels, or three under a country's registry level", () => {
  assert.equal(providerDomain("aspmx.l.google.com."), "google.com");
  // under a country's second level the provider is one label further left
  assert.equal(providerDomain("mx1.hotmail.co.uk"), "hotmail.co.uk");
  assert.equal(providerDomain("mx.mail.bigpond.com.au"), "bigpond.com.au");
  assert.equal(providerDomain("mx5.mail.yahoo.co.jp"), "yahoo.co.jp");
  assert.equal(providerDomain("mail.example.ne.jp"), "example.ne.jp");
  // a two-letter country without such a level, and such a label under a longer top level
  assert.equal(providerDomain("mx00.emig.gmx.de"), "gmx.de");
  assert.equal(providerDomain("mx.example.co.example.com"), "example.com");
  assert.equal(providerDomain("co.uk"), "co.uk", "nothing left of it to take");
  assert.equal(providerDomain("bad name"), undefined);
});

Deno.test("with a DNS server of its own, discovery connects to the address it resolved and keeps the name for TLS", async () => {
  const result = await discoverServers(EMAIL, {
    sources: ["srv"],
    resolveHosts: true,
    dns: fakeDns({
      srv: {
        "_imaps._tcp.example.org": [srv("nowhere.example.org", 993), srv("mail.example.org", 993)],
        "_submissions._tcp.example.org": [srv("mail.example.org", 465)],
      },
      a: { "mail.example.org": ["192.0.2.10"] },
    }),
    probe: () => Promise.resolve({ ok: true }),
  });
  assert.equal(result.incoming?.hostname, "mail.example.org");
  assert.equal(result.incoming?.address, "192.0.2.10");
  assert.ok(result.notes.some((n) => /nowhere\.example\.org does not resolve/.test(n)));
});

Deno.test("an address without a usable domain, or a bad --dns-server, is one line", async () => {
  await assert.rejects(
    discoverServers("alice@bad domain", {
      dns: fakeDns({}),
      probe: () => Promise.resolve({ ok: true }),
    }),
    /no usable domain/,
  );
  assert.deepEqual(parseNameServer("127.0.0.1:5353"), { ipAddr: "127.0.0.1", port: 5353 });
  assert.deepEqual(parseNameServer("[::1]:53"), { ipAddr: "::1", port: 53 });
  assert.deepEqual(parseNameServer("10.0.0.1"), { ipAddr: "10.0.0.1", port: 53 });
  for (const bad of ["dns.example.org", "127.0.0.1:0", "127.0.0.1:70000", ""]) {
    assert.throws(() => parseNameServer(bad), /Cannot use the DNS server/, bad);
  }
});
