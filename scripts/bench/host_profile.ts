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
import { selfCpuMs } from "./host_echo.ts";
import { now } from "./rendezvous_stack.ts";

/** A V8 CPU profile (the subset used here). */
interface Profile {
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

/** Sums a profile's samples: self time by function and package, inclusive time of src/. */
export function analyse(p: Profile, requests: number): InProcessResult["profile"] {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const fn = new Map<string, number>();
  const pkg = new Map<string, number>();
  const own = new Map<string, number>();
  let total = 0;
  p.samples.forEach((id, i) => {
    const dt = p.timeDeltas[i] ?? 0;
    const node = byId.get(id);
    if (!node || node.callFrame.functionName === "(idle)") return;
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
  const source = await openSource(hc.receive, { pollIntervalMs: hc.pollIntervalMs });
  const sender = await openSender(hc.send);
  const store = openStore(hc);
  const host = new Host({
    keys,
    network: config.network,
    source,
    sender,
    store,
    subjectMatch: config.subjectMatch,
    policy: { capacity: hc.tableCapacity, expiryMs: hc.expiryMs, peersPerReply: hc.peersPerReply },
    limits: {
      maxMailBytes: hc.maxMailBytes,
      maxBlockBytes: hc.maxBlockBytes,
      requestsPerUserPerHour: hc.requestsPerUserPerHour,
      requestsPerSenderPerHour: hc.requestsPerSenderPerHour,
    },
    allowPrivateAddresses: hc.allowPrivateAddresses,
  });
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
    const cpu0 = selfCpuMs();
    const t0 = now();
    const pass = await host.processPending();
    const wallMs = now() - t0;
    const cpuMs = selfCpuMs() - cpu0;
    let profile: InProcessResult["profile"];
    if (session) {
      const { profile: p } = await post<{ profile: Profile }>(session, "Profiler.stop");
      profile = analyse(p, Math.max(1, pass.answered));
    }
    const answered = pass.answered;
    return {
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
