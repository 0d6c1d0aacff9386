/**
 * `terminal.port_mapping` as a user runs it: real `mailpeer client` subprocesses whose router is
 * the in-process fake UPnP IGD on 127.0.0.1 (tests/terminal/port_mapping/fake_upnp_gateway.ts).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { events, mailpeer, Running } from "../support/cli.ts";
import { FakeUpnpGateway } from "../terminal/port_mapping/fake_upnp_gateway.ts";

/** A directory with a host key, bob's identity and a configuration with `port_mapping`. */
async function setup(portMapping: string, standbyTimeout: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "mailpeer-pmap-" });
  const host = await mailpeer(
    ["keygen", "--host", "host@lan.test", "-o", "host.keys.json", "--json"],
    { cwd: dir },
  );
  assert.equal(host.code, 0, host.stderr);
  const card = events(host.stdout)[0]?.card as string;
  const bob = await mailpeer(["keygen", "--user", "bob", "-o", "bob.json"], { cwd: dir });
  assert.equal(bob.code, 0, bob.stderr);
  await Deno.writeTextFile(
    join(dir, "mailpeer.toml"),
    `
network = "pmaptest"
post_office = "po"
[host]
email = "host@lan.test"
allow_private_addresses = true
[terminal]
user_id = "bob"
email = "bob@lan.test"
identity = "bob.json"
hosts = ["${card}"]
address = "127.0.0.1"
reply_timeout = "20s"
standby_timeout = "${standbyTimeout}"
poll_interval = "100ms"
port_mapping = ${portMapping}
`,
  );
  return dir;
}

/** Runs the host once at a time (as cron would) until it answered one request. */
async function hostAnswersOnce(dir: string): Promise<void> {
  let answered = 0;
  for (let i = 0; i < 200 && answered === 0; i++) {
    const once = await mailpeer(["host", "--once", "--json"], { cwd: dir });
    assert.equal(once.code, 0, once.stderr);
    answered = events(once.stdout).filter((e) => e.event === "reply-sent").length;
  }
  assert.equal(answered, 1);
}

Deno.test("with port_mapping the router maps the client's port, peers are told it, and it is deleted when the client gives up", async () => {
  const router = new FakeUpnpGateway();
  const dir = await setup(`{ upnp_url = "${router.rootUrl}", protocols = ["upnp"] }`, "1s");
  try {
    const client = mailpeer(["client", "--json", "-m", "hi"], { cwd: dir });
    await hostAnswersOnce(dir);
    const c = await client;
    // No peer: standby, then the standby time runs out (an error exit).
    assert.equal(c.code, 1, c.stderr);
    assert.equal(events(c.stdout).at(-1)?.code, "ETIMEOUT");

    const add = router.calls.find((call) => call.action === "AddAnyPortMapping");
    assert.ok(add, "the router was asked for a mapping");
    assert.equal(add.args.NewInternalClient, "127.0.0.1");
    const port = Number(add.args.NewInternalPort);
    const table = events((await mailpeer(["table", "--json"], { cwd: dir })).stdout);
    const endpoints = table[0]?.endpoints as { address: string; port: number }[];
    assert.ok(
      endpoints.some((e) => e.address === "203.0.113.9" && e.port === port),
      `the router's address is one of bob's candidates: ${JSON.stringify(endpoints)}`,
    );
    assert.deepEqual(
      router.calls.map((call) => call.action).filter((a) => a !== "GetExternalIPAddress"),
      ["AddAnyPortMapping", "DeletePortMapping"],
    );
    assert.equal(router.mappings.size, 0, "the router forgot the mapping");
  } finally {
    await router.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a client stopped by a signal on standby deletes its router mapping", async () => {
  const router = new FakeUpnpGateway();
  const dir = await setup(`{ upnp_url = "${router.rootUrl}", protocols = ["upnp"] }`, "10m");
  try {
    const client = new Running(["client", "--json", "-m", "hi"], { cwd: dir });
    await hostAnswersOnce(dir);
    await client.waitFor((e) => e.event === "standby");
    assert.equal(router.mappings.size, 1, "mapped while the client waits for peers");
    await client.stop(); // SIGTERM
    assert.equal(router.mappings.size, 0, "the router forgot the mapping");
    assert.ok(router.calls.some((call) => call.action === "DeletePortMapping"));
  } finally {
    await router.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a router that maps nothing is a warning event and the client goes on without it", async () => {
  // Nothing listens on port 1 of the loopback: the "router" refuses every connection.
  const dir = await setup(
    `{ upnp_url = "http://127.0.0.1:1/rootDesc.xml", protocols = ["upnp"] }`,
    "1s",
  );
  try {
    const client = mailpeer(["client", "--json", "-m", "hi"], { cwd: dir });
    await hostAnswersOnce(dir);
    const c = await client;
    const evs = events(c.stdout);
    const warning = evs.find((e) => e.event === "warning");
    assert.match(
      String(warning?.message),
      /^Cannot map TCP port \d+ on the router: UPnP IGD: .*; enable PCP, NAT-PMP or UPnP on the router, or forward the port by hand$/,
    );
    assert.ok(evs.some((e) => e.event === "standby"), "it went on to stand by");
    assert.equal(evs.at(-1)?.code, "ETIMEOUT");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test('port_mapping = "off" (the default) never talks to the router', async () => {
  const router = new FakeUpnpGateway();
  const dir = await setup(`"off"`, "1s");
  try {
    const client = mailpeer(["client", "--json", "-m", "hi"], { cwd: dir });
    await hostAnswersOnce(dir);
    assert.equal((await client).code, 1);
    assert.equal(router.calls.length, 0);
  } finally {
    await router.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/** A fake router whose external address is 127.0.0.2, so no test traffic leaves the loopback. */
function loopbackRouter(): FakeUpnpGateway {
  return new FakeUpnpGateway({
    intercept: (request) => {
      const action = request.headers.get("soapaction") ?? "";
      if (!action.endsWith('#GetExternalIPAddress"')) return undefined;
      const service = action.slice(1, action.indexOf("#"));
      return new Response(
        `<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:GetExternalIPAddressResponse xmlns:u="${service}"><NewExternalIPAddress>127.0.0.2</NewExternalIPAddress></u:GetExternalIPAddressResponse></s:Body></s:Envelope>`,
        { headers: { "content-type": 'text/xml; charset="utf-8"' } },
      );
    },
  });
}

Deno.test("the receiver's router mapping lasts through the transfer and is deleted when it is done", async () => {
  const router = loopbackRouter();
  const dir = await setup(`{ upnp_url = "${router.rootUrl}", protocols = ["upnp"] }`, "30s");
  try {
    // alice: the same site, without port mapping.
    const keygen = await mailpeer(["keygen", "--user", "alice", "-o", "alice.json"], { cwd: dir });
    assert.equal(keygen.code, 0, keygen.stderr);
    const bobConfig = await Deno.readTextFile(join(dir, "mailpeer.toml"));
    await Deno.writeTextFile(
      join(dir, "alice.toml"),
      bobConfig.replace('user_id = "bob"', 'user_id = "alice"')
        .replace('email = "bob@lan.test"', 'email = "alice@lan.test"')
        .replace('identity = "bob.json"', 'identity = "alice.json"')
        .replace(/port_mapping = .*\n/, ""),
    );
    await Deno.writeTextFile(join(dir, "hello.txt"), "hello through the router\n");
    await Deno.mkdir(join(dir, "inbox"));
    const host = new Running(["host", "--json"], { cwd: dir });
    try {
      const bob = new Running(["receive", "inbox", "--json"], { cwd: dir });
      await bob.waitFor((e) => e.event === "standby");
      assert.equal(router.mappings.size, 1, "mapped while bob stands by");
      const alice = await mailpeer(["send", "hello.txt", "--config", "alice.toml", "--json"], {
        cwd: dir,
      });
      assert.equal(alice.code, 0, alice.stderr + alice.stdout);
      assert.equal((await bob.status).code, 0, bob.stderr);
      assert.equal(
        await Deno.readTextFile(join(dir, "inbox", "hello.txt")),
        "hello through the router\n",
      );
      assert.equal(router.mappings.size, 0, "deleted once the transfer ended");
      assert.deepEqual(
        router.calls.map((call) => call.action).filter((a) => a !== "GetExternalIPAddress"),
        ["AddAnyPortMapping", "DeletePortMapping"],
      );
    } finally {
      await host.stop();
    }
  } finally {
    await router.close();
    await Deno.remove(dir, { recursive: true });
  }
});
