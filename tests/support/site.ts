/**
 * A site on the real mail stack: a temporary directory with host keys, identities and one
 * configuration per role (host@host.test, bob@b.test, alice@a.test).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { events, mailpeer } from "./cli.ts";
import { account, STACK } from "./mailstack.ts";

/** How the host reads its mailbox. */
export type Receive = "imap" | "pop3";

/** What a site's configurations say beyond the defaults. */
export interface SiteOptions {
  receive: Receive;
  network?: string;
  /**
   * The terminals' `[terminal]` lines after `hosts` (default: a fixed 127.0.0.1 address and 60 s
   * timeouts), e.g. `address = "auto"` with the NAT lab's STUN servers.
   */
  terminal?: string;
  /** The terminals reach their providers on the stack's NAT-lab addresses (docs/mailstack.md). */
  labMail?: boolean;
}

/** A temporary directory with keys and one configuration per role, talking to the real stack. */
export async function makeSite(options: SiteOptions) {
  const dir = await Deno.makeTempDir({ prefix: "mailpeer-e2e-" });
  const network = options.network ?? `e2e-${crypto.randomUUID().slice(0, 8)}`;
  const env: Record<string, string> = {};
  const host = await mailpeer([
    "keygen",
    "--host",
    "host@host.test",
    "-o",
    "host.keys.json",
    "--json",
  ], { cwd: dir });
  assert.equal(host.code, 0, host.stderr);
  const card = events(host.stdout)[0]?.card as string;

  const server = (address: string, kind: "imap" | "pop3" | "smtp", lab = false) => {
    const { provider, user } = account(address);
    if (lab && provider.labIp === undefined) {
      throw new Error(`${provider.domain} does not listen in the NAT lab: start the lab first`);
    }
    const envName = `MP_PASS_${address.replace(/[^a-z0-9]/gi, "_").toUpperCase()}`;
    env[envName] = user.password;
    const port = kind === "imap"
      ? provider.ports.imap
      : kind === "pop3"
      ? provider.ports.pop3
      : provider.ports.submission;
    return [
      `kind = "${kind}"`,
      `host = "${lab ? provider.labIp : provider.ip}"`,
      `port = ${port}`,
      `tls = "starttls"`,
      `user = "${user.user}"`,
      `password_env = "${envName}"`,
      `ca_file = "${STACK!.caFile}"`,
      `servername = "${provider.hostname}"`,
    ].join("\n");
  };

  await Deno.writeTextFile(
    join(dir, "host.toml"),
    `network = "${network}"
[host]
email = "host@host.test"
poll_interval = "100ms"
allow_private_addresses = true
[host.receive]
${server("host@host.test", options.receive)}
${options.receive === "imap" ? "idle = false" : ""}
[host.send]
${server("host@host.test", "smtp")}
`,
  );
  for (const [user, address] of [["bob", "bob@b.test"], ["alice", "alice@a.test"]] as const) {
    const r = await mailpeer(["keygen", "--user", user, "-o", `${user}.json`], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    await Deno.writeTextFile(
      join(dir, `${user}.toml`),
      `network = "${network}"
[terminal]
user_id = "${user}"
email = "${address}"
identity = "${user}.json"
hosts = ["${card}"]
${options.terminal ?? 'address = "127.0.0.1"\nreply_timeout = "60s"\nstandby_timeout = "60s"'}
[terminal.receive]
${server(address, "imap", options.labMail)}
[terminal.send]
${server(address, "smtp", options.labMail)}
`,
    );
  }
  return { dir, env, network, card, cleanup: () => Deno.remove(dir, { recursive: true }) };
}
