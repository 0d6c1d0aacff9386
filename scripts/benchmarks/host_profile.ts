/**
 * The host in this process, for its CPU cost per request without process start: a {@link Host}
 * wired like `mailpeer host` (config file → IMAP source, SMTP sender, JSON store) drains mail
 * already waiting with one `processPending()`, timed by `performance.now()` and
 * `process.cpuUsage()`, optionally under the V8 sampling profiler (node:inspector), whose
 * samples are summed into the top costs by function, by package and by our own functions.
 *
 * @module
 */
import { Session } from "node:inspector";
import { loadConfig } from "../../src/config/config.ts";
import { Host } from "../../src/host/host.ts";
import { loadHostKeys, openSender, openSource, openStore } from "../../src/cli/wire.ts";
import { hostPolicyOf } from "../../src/cli/host.ts";
import type { TableStore } from "../../src/host/types.ts";
import type { MailSender, MailSource } from "../../src/mail/types.ts";
import { composeMail } from "../../src/mail/rfc5322/compose.ts";
import { parseMail } from "../../src/mail/rfc5322/parse.ts";
import { dearmorAll } from "../../src/message/armor.ts";
import { openRequest, sealReply, sealRequest } from "../../src/message/block.ts";
import { formatHostCard } from "../../src/message/host_card.ts";
import { generateHostKeys, generateIdentityKeys, hostCardOf } from "../../src/message/key_file.ts";
import { generateX25519 } from "../../src/message/keys.ts";
import { bodyFor, subjectFor } from "../../src/message/mail_text.ts";
import { selfCpuMs } from "./host_echo.ts";
import { statLine } from "./host_site.ts";
import { now } from "./rendezvous_stack.ts";

/** A V8 CPU profile (the subset used here). */
export interface Profile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    children?: number[];
  }[];
  samples: number[];
  timeDeltas: number[];
}

/** One line of a cost list: ms over the whole drain and per request. */
export interface Cost {
  what: string;
  ms: number;
  msPerRequest: number;
  share: number;
}

/** What an in-process drain measured. */
export interface InProcessResult {
  answered: number;
  wallMs: number;
  cpuMs: number;
  cpuMsPerRequest: number;
  perSecond: number;
  /** CPU and wall ms per request spent inside each seam call; "host code" is the rest. */
  seams: Record<string, { cpuMsPerRequest: number; wallMsPerRequest: number; calls: number }>;
  /** CPU ms per request by thread name (/proc/self/task), e.g. main vs tokio workers. */
  threads: Record<string, number>;
  profile?: {
    sampledMs: number;
    byFunction: Cost[];
    byPackage: Cost[];
    /** Inclusive time of the functions in src/ (a request's stages). */
    ownInclusive: Cost[];
  };
}

function post<T>(s: Session, method: string, params: object = {}): Promise<T> {
  return new Promise((resolve, reject) =>
    s.post(method, params, (err, res) => err ? reject(err) : resolve(res as T))
  );
}

const ROOT = new URL("../../", import.meta.url).href;

/** Where a frame's code comes from: an npm package, a file of ours, the runtime, V8. */
function packageOf(url: string, name: string): string {
  if (url === "") return name.startsWith("(") ? name : "(native)";
  const npm = url.match(/registry\.npmjs\.org\/((?:@[^/]+\/)?[^/]+)\//) ??
    url.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//);
  if (npm) return `npm:${npm[1]}`;
  if (url.startsWith(ROOT)) return url.slice(ROOT.length).replace(/\/[^/]*$/, "/");
  if (url.startsWith("ext:") || url.startsWith("node:")) return url.split("/")[0] + "/…";
  return url;
}

function label(f: { functionName: string; url: string; lineNumber: number }): string {
  const file = f.url.startsWith(ROOT)
    ? f.url.slice(ROOT.length)
    : f.url.replace(/^.*registry\.npmjs\.org\//, "npm:");
  return `${f.functionName || "(anonymous)"} ${file ? `${file}:${f.lineNumber + 1}` : ""}`.trim();
}

function top(map: Map<string, number>, total: number, n: number, perReq: number): Cost[] {
  return [...map.entries()].sort((a, b) => b[1] - a[1]).slice(0, n).map(([what, us]) => ({
    what,
    ms: Math.round(us / 100) / 10,
    msPerRequest: Math.round((us / 1000 / perReq) * 1000) / 1000,
    share: Math.round((us / total) * 1000) / 10,
  }));
}

/**
 * Several processes' profiles as one (node ids renumbered apart), to sum what all the
 * processes of a mode spent.
 */
export function mergeProfiles(profiles: readonly Profile[]): Profile {
  const merged: Profile = { nodes: [], samples: [], timeDeltas: [] };
  let offset = 0;
  for (const p of profiles) {
    let highest = 0;
    for (const n of p.nodes) {
      merged.nodes.push({
        ...n,
        id: n.id + offset,
        ...(n.children ? { children: n.children.map((c) => c + offset) } : {}),
      });
      highest = Math.max(highest, n.id);
    }
    for (const id of p.samples) merged.samples.push(id + offset);
    merged.timeDeltas.push(...p.timeDeltas);
    offset += highest + 1;
  }
  return merged;
}

/** Sums a profile's samples: self time by function and package, inclusive time of src/. */
export function analyse(p: Profile, requests: number): InProcessResult["profile"] {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const fn = new Map<string, number>();
  const pkg = new Map<string, number>();
  const own = new Map<string, number>();
  let total = 0;
  // Each sample counts as one typical interval (the median delta), not its own delta: on a
  // busy machine a delta also holds the time the thread waited for a core (seen: 0.5 s), which
  // would land on whatever function happened to run next.
  const deltas = p.timeDeltas.filter((d) => d > 0).sort((a, b) => a - b);
  const dt = deltas.length === 0 ? 0 : deltas[deltas.length >> 1]!;
  p.samples.forEach((id) => {
    const node = byId.get(id);
    // not CPU: idle, and the profiler's own session (node:inspector)
    if (!node || node.callFrame.functionName === "(idle)") return;
    if (node.callFrame.url.includes("inspector")) return;
    total += dt;
    const f = node.callFrame;
    fn.set(label(f), (fn.get(label(f)) ?? 0) + dt);
    const k = packageOf(f.url, f.functionName);
    pkg.set(k, (pkg.get(k) ?? 0) + dt);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const cf = byId.get(at)!.callFrame;
      if (!cf.url.startsWith(`${ROOT}src/`) || !cf.functionName) continue;
      const key = label(cf);
      if (seen.has(key)) continue;
      seen.add(key);
      own.set(key, (own.get(key) ?? 0) + dt);
    }
  });
  return {
    sampledMs: Math.round(total / 100) / 10,
    byFunction: top(fn, total, 15, requests),
    byPackage: top(pkg, total, 12, requests),
    ownInclusive: top(own, total, 15, requests),
  };
}

/** CPU ms of each thread of this process, summed by thread name. */
async function threadCpu(): Promise<Map<string, number>> {
  const r = await new Deno.Command("sh", {
    args: ["-c", `cat /proc/${Deno.pid}/task/*/stat`],
    stderr: "null",
  }).output();
  const out = new Map<string, number>();
  for (const line of new TextDecoder().decode(r.stdout).split("\n")) {
    const stat = statLine(line);
    if (!stat) continue;
    const name = stat.name.replace(/[0-9]+$/, "#");
    out.set(name, (out.get(name) ?? 0) + stat.ms);
  }
  return out;
}

/** Accumulates CPU and wall time of calls, by name. */
class SeamClock {
  readonly totals = new Map<string, { cpu: number; wall: number; calls: number }>();
  async time<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const c0 = selfCpuMs();
    const t0 = now();
    try {
      return await fn();
    } finally {
      const t = this.totals.get(name) ?? { cpu: 0, wall: 0, calls: 0 };
      t.cpu += selfCpuMs() - c0;
      t.wall += now() - t0;
      t.calls++;
      this.totals.set(name, t);
    }
  }
}

function timedSource(inner: MailSource, c: SeamClock): MailSource {
  return {
    list: (m, o) => c.time("IMAP list (NOOP, SEARCH, FETCH envelopes)", () => inner.list(m, o)),
    fetch: (r, o) => c.time("IMAP fetch body", () => inner.fetch(r, o)),
    delete: (r) => c.time("IMAP delete (STORE, UID EXPUNGE)", () => inner.delete(r)),
    deleteMany: (rs) => c.time("IMAP delete (STORE, UID EXPUNGE)", () => inner.deleteMany(rs)),
    claims: inner.claims,
    claim: (r) => inner.claim(r),
    claimMany: (rs) => inner.claimMany(rs),
    recoverClaims: (ms) => inner.recoverClaims(ms),
    quarantine: (r, why) => c.time("IMAP quarantine", () => inner.quarantine(r, why)),
    waitForMail: (o) => inner.waitForMail(o),
    close: () => inner.close(),
  };
}

function timedSender(inner: MailSender, c: SeamClock): MailSender {
  return {
    send: (m, o) => c.time("SMTP send reply (compose + submit)", () => inner.send(m, o)),
    close: () => inner.close(),
  };
}

function timedStore(inner: TableStore, c: SeamClock): TableStore {
  return {
    read: () => inner.read(),
    update: (fn) => c.time("table store update (lock, read, write, fsync)", () => inner.update(fn)),
    close: () => inner.close(),
  };
}

/**
 * Wires a host from `configPath` like `mailpeer host` does, connects its IMAP session, then
 * times one `processPending()` over the mail already waiting.
 */
export async function inProcessDrain(
  configPath: string,
  o: { profile: boolean; env: Record<string, string> },
): Promise<InProcessResult> {
  for (const [k, v] of Object.entries(o.env)) Deno.env.set(k, v);
  const config = await loadConfig(configPath);
  const hc = config.host!;
  const keys = await loadHostKeys(hc.keys);
  const clock = new SeamClock();
  const source = timedSource(
    // as the CLI opens it: a shared mailbox reads no bodies with the listing (they come with
    // the claims)
    await openSource(hc.receive, {
      pollIntervalMs: hc.pollIntervalMs,
      readAhead: !hc.sharedMailbox,
    }),
    clock,
  );
  const sender = timedSender(await openSender(hc.send), clock);
  const store = timedStore(await openStore(hc), clock);
  const host = new Host({ ...hostPolicyOf(config, hc), keys, source, sender, store });
  const session = o.profile ? new Session() : undefined;
  try {
    // connect (TCP, STARTTLS, login, SELECT) outside the timed part
    await source.list({ subject: "[mailpeer] no such mail", mode: "exact" });
    if (session) {
      session.connect();
      await post(session, "Profiler.enable");
      await post(session, "Profiler.setSamplingInterval", { interval: 200 });
      await post(session, "Profiler.start");
    }
    clock.totals.clear();
    const threads0 = await threadCpu();
    const cpu0 = selfCpuMs();
    const t0 = now();
    const pass = await host.processPending();
    const wallMs = now() - t0;
    const cpuMs = selfCpuMs() - cpu0;
    const threads1 = await threadCpu();
    let profile: InProcessResult["profile"];
    if (session) {
      const { profile: p } = await post<{ profile: Profile }>(session, "Profiler.stop");
      profile = analyse(p, Math.max(1, pass.answered));
    }
    const answered = pass.answered;
    const per = (x: number) => Math.round((x / Math.max(1, answered)) * 100) / 100;
    const seams: InProcessResult["seams"] = {};
    let seamCpu = 0, seamWall = 0;
    for (const [name, t] of clock.totals) {
      seams[name] = { cpuMsPerRequest: per(t.cpu), wallMsPerRequest: per(t.wall), calls: t.calls };
      seamCpu += t.cpu;
      seamWall += t.wall;
    }
    seams["host code (parse, open, table rules, seal, events)"] = {
      cpuMsPerRequest: per(cpuMs - seamCpu),
      wallMsPerRequest: per(wallMs - seamWall),
      calls: answered,
    };
    const threads: Record<string, number> = {};
    for (const [name, ms] of threads1) {
      const d = ms - (threads0.get(name) ?? 0);
      if (d > 0) threads[name] = per(d);
    }
    return {
      seams,
      threads,
      answered,
      wallMs: Math.round(wallMs),
      cpuMs: Math.round(cpuMs),
      cpuMsPerRequest: Math.round((cpuMs / Math.max(1, answered)) * 100) / 100,
      perSecond: Math.round((answered / (wallMs / 1000)) * 10) / 10,
      ...(profile ? { profile } : {}),
    };
  } finally {
    session?.disconnect();
    await Promise.allSettled([source.close(), sender.close(), store.close()]);
  }
}

/** CPU and wall ms per call of one stage of a request, in this process, warm. */
export interface StageCost {
  stage: string;
  cpuMs: number;
  wallMs: number;
}

/**
 * The host's per-request stages without the network, each `runs` times on one sealed request:
 * MIME parse (parseMail), dearmor + open + verify the request (HPKE, Ed25519), seal + sign the
 * reply, compose the reply mail (nodemailer's composer). CPU by `process.cpuUsage()`.
 */
export async function stageCosts(runs: number): Promise<StageCost[]> {
  const keys = await generateHostKeys("host@host.test");
  const card = hostCardOf(keys);
  const identity = await generateIdentityKeys("player0");
  const block = await sealRequest({
    network: "bench",
    userId: identity.userId,
    identityKey: identity.ed25519.publicKey,
    endpoints: [{ transport: "tcp", address: "192.0.2.7", port: 5000 }],
    sessionId: crypto.getRandomValues(new Uint8Array(16)),
    createdAt: Date.now(),
    replyKey: (await generateX25519()).publicKey,
    hostCards: [formatHostCard(card)],
  }, { identity, hostCard: card });
  const { raw } = await composeMail({
    from: "alice@a.test",
    to: ["host@host.test"],
    subject: subjectFor("bench", "request"),
    text: bodyFor("bench", "request", block),
  });
  const request = await openRequest(block, keys);
  const peers = Array.from({ length: 8 }, (_, i) => ({
    userId: `p${i}`,
    identityKey: identity.ed25519.publicKey,
    endpoints: [{ transport: "tcp" as const, address: "192.0.2.8", port: 6000 + i }],
    lastSeen: Date.now(),
    failures: 0,
  }));
  const reply = () =>
    sealReply({
      network: "bench",
      sessionId: request.sessionId,
      hostId: keys.ed25519.publicKey,
      createdAt: Date.now(),
      peers,
    }, { hostKeys: keys, replyKey: request.replyKey });
  const sealed = await reply();
  const stages: [string, () => Promise<unknown>][] = [
    ["parse the request mail (parseMail: fast path, else mailparser)", () => parseMail(raw)],
    ["dearmor + open + verify the request (HPKE, Ed25519)", async () => {
      const [b] = dearmorAll(new TextDecoder().decode(raw), { max: 8 });
      return await openRequest(b ?? block, keys);
    }],
    ["seal + sign the reply, 8 peers (HPKE, Ed25519)", reply],
    ["compose the reply mail (composeMail: fast path, else MailComposer)", () =>
      composeMail({
        from: "host@host.test",
        to: ["alice@a.test"],
        subject: subjectFor("bench", "reply"),
        text: bodyFor("bench", "reply", sealed),
      })],
  ];
  const out: StageCost[] = [];
  for (const [stage, fn] of stages) {
    for (let i = 0; i < 5; i++) await fn(); // warm-up
    const c0 = selfCpuMs();
    const t0 = now();
    for (let i = 0; i < runs; i++) await fn();
    out.push({
      stage,
      cpuMs: Math.round(((selfCpuMs() - c0) / runs) * 1000) / 1000,
      wallMs: Math.round(((now() - t0) / runs) * 1000) / 1000,
    });
  }
  return out;
}
