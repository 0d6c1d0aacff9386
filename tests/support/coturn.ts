/**
 * The loopback coturn (scripts/coturn/coturn.sh) as tests see it: STUN always, TURN with
 * long-term credentials. Tests that need it are skipped (ignored) when none runs; the test
 * command starts it and sets MAILPEER_REQUIRE_STACK, so CI always runs them.
 *
 * The server comes from `stun.json` in $COTURN_DIR (default <repo>/.coturn), which
 * `coturn.sh start` writes; $MAILPEER_STUN (`host:port`) names a STUN server instead (no TURN).
 * Also: `stunFixture`, the hex packets of tests/fixtures/stun/.
 */

/** TURN on the loopback coturn: where, the realm and the credentials. */
export interface LoopbackTurn {
  url: string;
  host: string;
  port: number;
  realm: string;
  user: string;
  password: string;
  relayPorts: [number, number];
}

function read(): { stun?: string; turn?: LoopbackTurn } {
  const env = Deno.env.get("MAILPEER_STUN");
  if (env) return { stun: env };
  try {
    const dir = Deno.env.get("COTURN_DIR") ?? new URL("../../.coturn", import.meta.url).pathname;
    const json = JSON.parse(Deno.readTextFileSync(`${dir}/stun.json`));
    const stun = `${json.host}:${json.port}`;
    if (!json.turn) return { stun };
    return {
      stun,
      turn: {
        url: `turn:${json.host}:${json.port}`,
        host: json.host,
        port: json.port,
        realm: json.turn.realm,
        user: json.turn.user,
        password: Deno.readTextFileSync(json.turn.password_file).trim(),
        relayPorts: json.turn.relay_ports,
      },
    };
  } catch {
    return {};
  }
}

const found = read();
/** The loopback STUN server as `host:port`, if one runs. */
export const REAL_STUN: string | undefined = found.stun;
/** TURN on the loopback coturn, if it runs with TURN. */
export const REAL_TURN: LoopbackTurn | undefined = found.turn;

if (
  Deno.env.get("MAILPEER_REQUIRE_STACK") &&
  (!REAL_STUN || (!REAL_TURN && !Deno.env.get("MAILPEER_STUN")))
) {
  throw new Error(
    "MAILPEER_REQUIRE_STACK is set but no STUN/TURN server runs: scripts/test starts coturn",
  );
}

const FIXTURES = new URL("../fixtures/stun/", import.meta.url);

/** A packet from tests/fixtures/stun/: hex bytes, `#` comment lines. */
export function stunFixture(name: string): Uint8Array {
  const text = Deno.readTextFileSync(new URL(name, FIXTURES));
  const hex = text.split("\n").filter((l) => !l.startsWith("#")).join("").replace(/\s/g, "");
  return Uint8Array.from(hex.match(/../g)!, (h) => parseInt(h, 16));
}
