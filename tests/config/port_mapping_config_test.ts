import assert from "node:assert/strict";
import { rejects, terminal } from "./terminal_config.ts";

Deno.test("port mapping is off unless the user turns it on: the router is left alone", () => {
  assert.equal(terminal("").portMapping, "off");
  assert.equal(terminal(`port_mapping = "off"\n`).portMapping, "off");
});

Deno.test('port_mapping = "auto" tries every protocol and finds the gateway and UPnP URL itself', () => {
  assert.deepEqual(terminal(`port_mapping = "auto"\n`).portMapping, {
    protocols: ["pcp", "nat-pmp", "upnp"],
  });
});

Deno.test("a port_mapping table names the gateway, the UPnP URL and the protocols to try", () => {
  assert.deepEqual(
    terminal(
      `port_mapping = { gateway = "192.168.1.1", upnp_url = "http://192.168.1.1:5000/rootDesc.xml", protocols = ["upnp", "pcp"] }\n`,
    ).portMapping,
    {
      gateway: "192.168.1.1",
      upnpUrl: "http://192.168.1.1:5000/rootDesc.xml",
      protocols: ["upnp", "pcp"],
    },
  );
  // As a section, every field optional: what is left out is found as with "auto".
  assert.deepEqual(terminal(`[terminal.port_mapping]\ngateway = "10.0.0.1"\n`).portMapping, {
    gateway: "10.0.0.1",
    protocols: ["pcp", "nat-pmp", "upnp"],
  });
  assert.deepEqual(terminal(`port_mapping = {}\n`).portMapping, {
    protocols: ["pcp", "nat-pmp", "upnp"],
  });
});

Deno.test("a bad port_mapping names the key, what is wrong and what to write, in one line", () => {
  rejects(
    `port_mapping = "on"\n`,
    /^Cannot read terminal\.port_mapping: "on" is not "off", "auto" or a table; write "off", "auto" or /,
  );
  rejects(`port_mapping = true\n`, /^Cannot read terminal\.port_mapping: true is not "off", /);
  rejects(
    `port_mapping = { gateway = "router.lan" }\n`,
    /^Cannot read terminal\.port_mapping\.gateway: "router\.lan" is not an IPv4 address; write the router's LAN address/,
  );
  rejects(
    `port_mapping = { gateway = "192.168.1.256" }\n`,
    /^Cannot read terminal\.port_mapping\.gateway: "192\.168\.1\.256" is not an IPv4 address; /,
  );
  rejects(
    `port_mapping = { upnp_url = "https://192.168.1.1/rootDesc.xml" }\n`,
    /^Cannot read terminal\.port_mapping\.upnp_url: "https:\/\/192\.168\.1\.1\/rootDesc\.xml" is not an http:\/\/ URL; write the router's UPnP description URL/,
  );
  rejects(
    `port_mapping = { upnp_url = "rootDesc.xml" }\n`,
    /^Cannot read terminal\.port_mapping\.upnp_url: "rootDesc\.xml" is not an http:\/\/ URL; /,
  );
  rejects(
    `port_mapping = { protocols = ["pcp", "upnp2"] }\n`,
    /^Cannot read terminal\.port_mapping\.protocols: "upnp2" is not one of pcp, nat-pmp, upnp; /,
  );
  rejects(
    `port_mapping = { protocols = [] }\n`,
    /^Cannot read terminal\.port_mapping\.protocols: no protocol is listed; list some of "pcp", "nat-pmp", "upnp", or set port_mapping = "off"$/,
  );
  rejects(
    `port_mapping = { protocols = ["pcp", "pcp"] }\n`,
    /^Cannot read terminal\.port_mapping\.protocols: "pcp" is listed twice; /,
  );
  rejects(
    `port_mapping = { protocols = "pcp" }\n`,
    /^Cannot read terminal\.port_mapping\.protocols: it must be a list of strings; /,
  );
  rejects(
    `port_mapping = { gatway = "192.168.1.1" }\n`,
    /^Cannot read terminal\.port_mapping\.gatway: it is not a known setting; did you mean gateway\? \(see docs\/config\.md\)$/,
  );
});

Deno.test("the punch window defaults to 15 s and takes a duration from 1 s to 60 s", () => {
  assert.equal(terminal("").punchWindowMs, 15_000);
  assert.equal(terminal(`punch_window = "30s"\n`).punchWindowMs, 30_000);
  assert.equal(terminal(`punch_window = "1s"\n`).punchWindowMs, 1_000);
  assert.equal(terminal(`punch_window = "1m"\n`).punchWindowMs, 60_000);
  assert.equal(terminal(`punch_window = 20\n`).punchWindowMs, 20_000);
  rejects(
    `punch_window = "500ms"\n`,
    /^Cannot read terminal\.punch_window: "500ms" is not from 1s to 60s; /,
  );
  rejects(
    `punch_window = "2m"\n`,
    /^Cannot read terminal\.punch_window: "2m" is not from 1s to 60s; /,
  );
  rejects(
    `punch_window = "soon"\n`,
    /^Cannot read terminal\.punch_window: "soon" is not a duration; /,
  );
});

Deno.test("the upgrade interval of a relayed session defaults to 30 s and takes 1 s to 1 h", () => {
  assert.equal(terminal("").upgradeIntervalMs, 30_000);
  assert.equal(terminal(`upgrade_interval = "1s"\n`).upgradeIntervalMs, 1_000);
  assert.equal(terminal(`upgrade_interval = "1h"\n`).upgradeIntervalMs, 3_600_000);
  rejects(
    `upgrade_interval = "100ms"\n`,
    /^Cannot read terminal\.upgrade_interval: "100ms" is not from 1s to 3600s; /,
  );
  rejects(
    `upgrade_interval = "2h"\n`,
    /^Cannot read terminal\.upgrade_interval: "2h" is not from 1s to 3600s; /,
  );
});
