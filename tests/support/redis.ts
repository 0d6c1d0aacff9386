/**
 * The test Redis (scripts/redis/redis.sh) as tests see it. Tests that need it are skipped
 * (ignored) when none is configured; the test command starts it and sets
 * MAILPEER_REQUIRE_STACK, so CI always runs them.
 *
 * The URL comes from $MAILPEER_REDIS_URL, else from `redis.json` in $REDIS_DIR (default
 * <repo>/.redis), which `redis.sh start` writes.
 */
import { join } from "node:path";

const DEFAULT_DIR = new URL("../../.redis", import.meta.url).pathname;

/** The URL of the test Redis, or undefined when none is configured. */
export function loadRedisUrl(): string | undefined {
  const fromEnv = Deno.env.get("MAILPEER_REDIS_URL");
  if (fromEnv) return fromEnv;
  const dir = Deno.env.get("REDIS_DIR") ?? DEFAULT_DIR;
  try {
    const { url } = JSON.parse(Deno.readTextFileSync(join(dir, "redis.json")));
    return typeof url === "string" && url !== "" ? url : undefined;
  } catch {
    return undefined;
  }
}

/** The test Redis URL, loaded once per test module. */
export const REDIS_URL: string | undefined = loadRedisUrl();

if (!REDIS_URL && Deno.env.get("MAILPEER_REQUIRE_STACK")) {
  throw new Error(
    "MAILPEER_REQUIRE_STACK is set but no Redis is configured: start one with " +
      "scripts/redis/redis.sh start, or set MAILPEER_REDIS_URL",
  );
}

/** True when Redis tests must be skipped: no Redis (and MAILPEER_REQUIRE_STACK unset). */
export const NO_REDIS: boolean = REDIS_URL === undefined;

/** A fresh key under `mailpeer:test:`, so tests never share or clobber a table. */
export function uniqueKey(label = "table"): string {
  const suffix = Array.from(crypto.getRandomValues(new Uint8Array(6)))
    .map((b) => b.toString(16).padStart(2, "0")).join("");
  return `mailpeer:test:${label}:${suffix}`;
}
