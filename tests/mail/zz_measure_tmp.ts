import { ImapSource } from "../../src/mail/imap_source.ts";
import { account } from "../support/mailstack.ts";
import { composeMail } from "../../src/mail/compose.ts";
import nodemailer from "nodemailer";
const { provider, user } = account("host2@host.test");
const logs: string[] = [];
const server = {
  host: provider.ip,
  port: 143,
  tls: "starttls" as const,
  user: user.user,
  password: user.password,
  caFile: provider.caFile,
  servername: provider.hostname,
};
const transport = nodemailer.createTransport({
  host: provider.ip,
  port: 25,
  secure: false,
  ignoreTLS: true,
  pool: true,
});
async function measure(idle: boolean, n: number) {
  const src = new ImapSource(server, {
    idle,
    pollIntervalMs: 25,
    logger: { log: (_l, m, f) => logs.push(m + " " + JSON.stringify(f)) },
  });
  const match = { subject: "[mailpeer] measure", mode: "exact" as const };
  for (const r of await src.list(match)) await src.delete(r);
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    await src.list(match);
    const { raw } = await composeMail({
      from: "alice@a.test",
      to: ["host2@host.test"],
      subject: "[mailpeer] measure",
      text: "x",
    });
    const w = src.waitForMail({ signal: AbortSignal.timeout(10000) });
    const t0 = performance.now();
    await transport.sendMail({
      envelope: { from: "alice@a.test", to: ["host2@host.test"] },
      raw: new TextDecoder().decode(raw),
    });
    let refs = await src.list(match);
    await w;
    while (refs.length === 0) {
      await src.waitForMail({ signal: AbortSignal.timeout(10000) });
      refs = await src.list(match);
    }
    times.push(performance.now() - t0);
    for (const r of refs) await src.delete(r);
  }
  await src.close();
  times.sort((a, b) => a - b);
  console.log(
    idle ? "IDLE" : "NOOP25",
    "median ms",
    times[Math.floor(n / 2)].toFixed(0),
    "min",
    times[0].toFixed(0),
    "max",
    times[n - 1].toFixed(0),
  );
}
await measure(false, 15);
await measure(true, 9);
transport.close();
if (Deno.args[0]) console.log(logs.slice(-80).join("\n"));
console.log(
  "password in logs:",
  logs.some((l) => l.includes(user.password)),
  "log lines:",
  logs.length,
);
