// Mail through the real stack between terminals behind two NATs of the lab (docs/natlab.md,
// docs/mailstack.md "Terminals in the NAT lab"). Needs the NAT lab and a mail stack started after
// it (so its providers also listen on their lab addresses 198.18.0.25x); ignored without them,
// failing when MAILPEER_REQUIRE_NATLAB is set (scripts/test sets it and starts both, lab first).
import assert from "node:assert/strict";
import { join } from "node:path";
import { labFor } from "../support/natlab.ts";

const REPO = new URL("../../", import.meta.url).pathname;
const CLIENT = new URL("./lab_mail_client.ts", import.meta.url).pathname;

interface Lab {
  hosts: Record<"a" | "b", { ns: string; ip: string; router: "rta" | "rtb" }>;
  routers: Record<"rta" | "rtb", { wan: string; nat: string }>;
}
const { lab: LAB, missing: MISSING } = labFor<Lab>({ mail: true });
const STACK_FILE = join(Deno.env.get("MAILSTACK_DIR") ?? `${REPO}.mailstack`, "stack.json");

/** lab_mail_client.ts inside namespace `ns`, its stdout as JSON lines. */
function client(ns: string, args: string[], signal: AbortSignal) {
  const child = new Deno.Command("ip", {
    args: [
      ...["netns", "exec", ns, Deno.execPath(), "run", "--no-prompt"],
      ...["--config", `${REPO}deno.json`, "--allow-read", "--allow-env", "--allow-net"],
      ...["--allow-sys=hostname", CLIENT, ...args],
    ],
    stdout: "piped",
    stderr: "inherit",
    signal,
  }).spawn();
  const chunks = child.stdout.pipeThrough(new TextDecoderStream())[Symbol.asyncIterator]();
  let buffered = "";
  let exited = false;
  const status = child.status.finally(() => exited = true);
  return {
    /** The next JSON line; fails with the client's error or when it ended without one. */
    async next(): Promise<Record<string, unknown>> {
      while (!buffered.includes("\n")) {
        const { value, done } = await chunks.next();
        assert.ok(!done, `the client in ${ns} ended without an answer`);
        buffered += value;
      }
      const end = buffered.indexOf("\n");
      const line = JSON.parse(buffered.slice(0, end)) as Record<string, unknown>;
      buffered = buffered.slice(end + 1);
      assert.equal(line.error, undefined, `the client in ${ns} failed: ${line.error}`);
      return line;
    },
    status,
    /** Ends the client if it still runs (a failed test must not leave it waiting). */
    async stop(): Promise<void> {
      if (!exited) child.kill();
      await chunks.return?.();
      await status;
    },
  };
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

Deno.test({
  name: "a terminal behind NAT A mails a terminal behind NAT B through the real mail stack",
  ignore: MISSING !== undefined,
  async fn() {
    const lab = LAB!;
    const subject = `[mailpeer] lab mail ${crypto.randomUUID()}`;
    // A safety net only (a hung server must not hang the suite); nothing is timed.
    const guard = AbortSignal.timeout(120_000);

    // host@host.test reads from behind router B (IMAP 143 + STARTTLS on 198.18.0.253, IDLE)...
    const reader = client(
      lab.hosts.b.ns,
      ["receive", STACK_FILE, "host@host.test", subject],
      guard,
    );
    let sender: ReturnType<typeof client> | undefined;
    let raw: string;
    let sent: Record<string, unknown>;
    try {
      assert.deepEqual(await reader.next(), { listening: true });
      // ...while alice@a.test submits from behind router A (587 + STARTTLS + AUTH on .251).
      sender = client(
        lab.hosts.a.ns,
        ["send", STACK_FILE, "alice@a.test", "host@host.test", subject],
        guard,
      );
      sent = await sender.next();
      assert.equal((await sender.status).code, 0);
      raw = (await reader.next() as { raw: string }).raw;
      assert.equal((await reader.status).code, 0);
    } finally {
      await sender?.stop();
      await reader.stop();
    }
    assert.match(raw, new RegExp(`^Message-ID: ${escape(String(sent.messageId))}`, "mi"));
    assert.match(raw, new RegExp(`^Subject: ${escape(subject)}`, "m"));
    // a.test took it from router A's WAN address (through the NAT), over TLS with a login
    // (ESMTPSA), and relayed it to host.test.
    const routerA = lab.routers[lab.hosts.a.router];
    const seen = routerA.nat === "none" ? lab.hosts.a.ip : routerA.wan;
    assert.match(
      raw,
      new RegExp(
        `^Received: from .*\\[${
          escape(seen)
        }\\]\\)\r\n\tby mail\\.a\\.test \\(Postfix\\) with ESMTPSA `,
        "m",
      ),
    );
    assert.match(raw, /^\tby mail\.host\.test \(Postfix\) with ESMTPS /m);
  },
});

Deno.test({
  name: "a client behind NAT A can deliver to a provider's own users but relay nothing",
  ignore: MISSING !== undefined,
  async fn() {
    const lab = LAB!;
    const guard = AbortSignal.timeout(120_000);
    const ask = async (from: string, to: string) => {
      const probe = client(lab.hosts.a.ns, ["rcpt", STACK_FILE, "a.test", from, to], guard);
      try {
        const { rcpt } = await probe.next() as { rcpt: string };
        assert.equal((await probe.status).code, 0);
        return rcpt;
      } finally {
        await probe.stop();
      }
    };
    // Port 25 on the lab address is a provider's inbound MX, as on loopback...
    assert.match(await ask("bob@b.test", "alice@a.test"), /^250 /);
    // ...and no relay: not to another provider of the stack, not off the machine.
    assert.match(await ask("alice@a.test", "host@host.test"), /^554 .*Relay access denied/);
    assert.match(await ask("alice@a.test", "someone@example.com"), /^554 .*Relay access denied/);
  },
});
