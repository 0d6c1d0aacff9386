/**
 * Whether peers can reach this terminal, as far as it can tell alone: what STUN servers see
 * of its UDP port (the reflexive address, `terminal.stun_servers`), and whether the home
 * router grants a port mapping (`terminal.port_mapping`), which `doctor` releases at once.
 * Reaching the port from outside needs a second machine; these are the two answers a
 * terminal gets on its own.
 *
 * @module
 */
import type { TerminalConfig } from "../../config/config_schema.ts";
import { isMailpeerError } from "../../errors.ts";
import { classifyAddress } from "../../net/address_class.ts";
import { StunAddress } from "../../terminal/stun.ts";
import { portMapperFromConfig } from "../client.ts";
import { type CheckReport, resultOf } from "./check.ts";

/** Lifetime of the router mapping doctor asks for, in seconds (it releases it at once). */
const TRIAL_MAPPING_LIFETIME_S = 120;

/** Reports `stun` and `port-mapping` for a terminal. */
export async function checkReach(
  tc: TerminalConfig,
  options: { report: CheckReport; signal?: AbortSignal },
): Promise<void> {
  const stun = resultOf("stun", "terminal.stun_servers");
  if (tc.stunServers.length === 0) {
    options.report(
      tc.address === "auto"
        ? stun.warn(
          'terminal.address = "auto" but no stun_servers: behind a NAT the terminal cannot ' +
            'learn its public address; add stun_servers (e.g. "stun.example.org:3478")',
        )
        : stun.skip(`no stun_servers: the terminal announces ${tc.address} as configured`),
    );
  } else {
    try {
      const found = await new StunAddress(tc.stunServers).query(
        options.signal ? { signal: options.signal } : {},
      );
      const cls = classifyAddress(found.address);
      const text = `${found.server} sees this machine's UDP port ${found.localPort} as ` +
        `${found.address}:${found.port}`;
      options.report(
        cls === "global"
          ? stun.pass(`${text} (a public address)`, { address: found.address, port: found.port })
          : stun.warn(
            `${text}, a ${cls} address: peers on the internet cannot reach it; use a STUN ` +
              "server on the internet",
            { address: found.address, port: found.port },
          ),
      );
    } catch (err) {
      if (!isMailpeerError(err)) throw err;
      options.report(stun.fail(`${err.message}; check terminal.stun_servers`));
    }
  }

  const mapping = resultOf("port-mapping", "terminal.port_mapping");
  const mapper = portMapperFromConfig(tc.portMapping, { onEvent: () => {} });
  if (!mapper) {
    options.report(mapping.skip(
      'port_mapping = "off": the router is not asked for a port (set it to try PCP, NAT-PMP, UPnP)',
    ));
    return;
  }
  // port = 0 (any): ask for a port this machine has free now.
  let port = tc.port;
  if (port === 0) {
    const probe = Deno.listen({ port: 0 });
    port = (probe.addr as Deno.NetAddr).port;
    probe.close();
  }
  try {
    const { external } = await mapper.map(
      { transport: tc.transport, internalPort: port, lifetimeS: TRIAL_MAPPING_LIFETIME_S },
      options.signal ? { signal: options.signal } : {},
    );
    options.report(mapping.pass(
      `the router maps ${external.address}:${external.port} to port ${port}/${tc.transport} ` +
        "(released again)",
      { address: external.address, port: external.port },
    ));
  } catch (err) {
    if (!isMailpeerError(err)) throw err;
    options.report(mapping.warn(
      `${err.message}; without a mapping peers reach this terminal only by hole punching or ` +
        "a relay",
    ));
  } finally {
    await mapper.close().catch(() => {});
  }
}
