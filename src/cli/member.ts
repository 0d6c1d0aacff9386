/**
 * A group member's host part, as `combined` runs it with `host.role = "auto"` (docs/config.md
 * "A group with no standing host"): the [host] section names the group's shared mailbox and its
 * network host key; the member answers there only while it holds the host role
 * ({@link RoleService}, docs/decisions.md "First receiver becomes host").
 *
 * @module
 */
import type { Config } from "../config/config_schema.ts";
import type { EventSink } from "../events.ts";
import { Host } from "../host/host.ts";
import { RoleService } from "../host/role/role_service.ts";
import { hostPolicyOf, openHostSender } from "./host.ts";
import { loadHostKeys, openSource, openStore } from "./wire.ts";

/** Builds the member's RoleService from a configuration with [host] role = "auto" and [terminal]. */
export async function memberFromConfig(config: Config, options: { onEvent: EventSink }) {
  const hc = config.host!;
  const keys = await loadHostKeys(hc.keys, { email: hc.email });
  // the service claims each mail before the host sees it, and reads bodies only of mails it took
  const source = await openSource(hc.receive, {
    configKey: "host.receive",
    pollIntervalMs: hc.pollIntervalMs,
    readAhead: false,
  });
  const sender = await openHostSender(hc);
  const store = await openStore(hc);
  const host = new Host({
    ...hostPolicyOf(config, hc),
    sharedMailbox: false,
    keys,
    source,
    sender,
    store,
    onEvent: options.onEvent,
  });
  const service = new RoleService({
    host,
    sender,
    store,
    keys,
    member: config.terminal!.userId,
    policy: { capacity: hc.tableCapacity, expiryMs: hc.expiryMs },
    allowPrivateAddresses: hc.allowPrivateAddresses,
    leaseMs: hc.roleLeaseMs,
    subjectMatch: config.subjectMatch,
    onEvent: options.onEvent,
  });
  const close = async () => {
    await Promise.allSettled([source.close(), sender.close(), store.close()]);
  };
  return { service, store, close };
}
