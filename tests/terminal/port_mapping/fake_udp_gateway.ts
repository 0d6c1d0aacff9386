/**
 * An in-process gateway speaking NAT-PMP (RFC 6886) and PCP (RFC 6887 MAP), written from the
 * RFCs and not from the client's codec, on 127.0.0.1 port 0. Like miniupnpd, PCP mappings are
 * tied to their nonce: another nonce for the same internal port gets NOT_AUTHORIZED.
 */
import dgram from "node:dgram";

export interface GatewayRequest {
  bytes: Uint8Array;
  from: dgram.RemoteInfo;
}

export interface FakeUdpGatewayOptions {
  natPmp?: boolean;
  pcp?: boolean;
  externalAddress?: string;
  /** Seconds since epoch reported; a function to change it over time. */
  epoch?: () => number;
  /** Maps an internal port to the external port granted (default the suggested one). */
  externalPort?: (internal: number, suggested: number) => number;
  /** Largest lifetime granted. */
  maxLifetimeS?: number;
  /** Replaces the answer: return the datagrams to send (none = drop). */
  intercept?: (request: GatewayRequest, answer: Uint8Array) => Uint8Array[];
}

export interface FakeMapping {
  transport: "udp" | "tcp";
  internal: number;
  external: number;
  lifetimeS: number;
  nonce?: string;
}

export class FakeUdpGateway {
  readonly socket: dgram.Socket;
  readonly requests: GatewayRequest[] = [];
  readonly mappings = new Map<string, FakeMapping>();
  readonly #options: FakeUdpGatewayOptions;
  #waiters: { n: number; resolve: () => void }[] = [];

  private constructor(socket: dgram.Socket, options: FakeUdpGatewayOptions) {
    this.socket = socket;
    this.#options = options;
    socket.on("message", (bytes: Uint8Array, from: dgram.RemoteInfo) => {
      const request = { bytes: new Uint8Array(bytes), from };
      this.requests.push(request);
      const answer = this.#answer(request.bytes, from);
      const out = answer
        ? (this.#options.intercept ? this.#options.intercept(request, answer) : [answer])
        : [];
      for (const b of out) socket.send(b, from.port, from.address);
      const ready = this.#waiters.filter((w) => this.requests.length >= w.n);
      this.#waiters = this.#waiters.filter((w) => this.requests.length < w.n);
      for (const w of ready) w.resolve();
    });
  }

  static async start(options: FakeUdpGatewayOptions = {}): Promise<FakeUdpGateway> {
    const socket = dgram.createSocket("udp4");
    await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", () => resolve()));
    return new FakeUdpGateway(socket, { natPmp: true, pcp: true, ...options });
  }

  get port(): number {
    return this.socket.address().port;
  }

  /** Resolves once `n` requests arrived. */
  received(n: number): Promise<void> {
    if (this.requests.length >= n) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ n, resolve }));
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }

  #epoch(): number {
    return this.#options.epoch?.() ?? 1000;
  }

  #answer(req: Uint8Array, from: dgram.RemoteInfo): Uint8Array | undefined {
    if (req.length < 2) return undefined;
    if (req[0] === 0) return this.#options.natPmp ? this.#natPmp(req) : undefined;
    if (req[0] === 2) {
      if (this.#options.pcp) return this.#pcp(req, from);
      if (!this.#options.natPmp) return undefined;
      // RFC 6886 §3.5: unsupported version -> result 1, opcode + 128.
      const out = new Uint8Array(8);
      out[1] = 128 + (req[1]! & 0x7f);
      new DataView(out.buffer).setUint16(2, 1);
      new DataView(out.buffer).setUint32(4, this.#epoch());
      return out;
    }
    return undefined;
  }

  #natPmp(req: Uint8Array): Uint8Array | undefined {
    const op = req[1]!;
    if (op === 0) {
      const out = new Uint8Array(12);
      out[1] = 128;
      new DataView(out.buffer).setUint32(4, this.#epoch());
      out.set((this.#options.externalAddress ?? "203.0.113.7").split(".").map(Number), 8);
      return out;
    }
    if (op !== 1 && op !== 2) return undefined;
    if (req.length < 12) return undefined;
    const view = new DataView(req.buffer, req.byteOffset);
    const internal = view.getUint16(4);
    const suggested = view.getUint16(6);
    let lifetime = view.getUint32(8);
    const transport = op === 1 ? "udp" : "tcp";
    const key = `${transport}/${internal}`;
    let external = 0;
    if (lifetime === 0) {
      this.mappings.delete(key);
    } else {
      lifetime = Math.min(lifetime, this.#options.maxLifetimeS ?? 3600);
      external = this.#options.externalPort?.(internal, suggested) ?? (suggested || internal);
      this.mappings.set(key, { transport, internal, external, lifetimeS: lifetime });
    }
    const out = new Uint8Array(16);
    const o = new DataView(out.buffer);
    out[1] = 128 + op;
    o.setUint32(4, this.#epoch());
    o.setUint16(8, internal);
    o.setUint16(10, external);
    o.setUint32(12, lifetime);
    return out;
  }

  #pcp(req: Uint8Array, from: dgram.RemoteInfo): Uint8Array | undefined {
    if (req.length < 24) return undefined;
    const out = new Uint8Array(Math.max(60, Math.min(req.length, 1100)) & ~3);
    out.set(req.subarray(0, Math.min(req.length, out.length)));
    const o = new DataView(out.buffer);
    out[0] = 2;
    out[1] = 0x80 | (req[1]! & 0x7f);
    out[2] = 0;
    o.setUint32(8, this.#epoch());
    out.fill(0, 12, 24);
    const result = (code: number) => {
      out[3] = code;
      o.setUint32(4, 30);
      return out;
    };
    if ((req[1]! & 0x7f) !== 1) return result(4);
    if (req.length < 60) return result(3);
    const v = new DataView(req.buffer, req.byteOffset);
    const client = [...req.subarray(20, 24)].join(".");
    const mapped = req.subarray(8, 20).every((b, i) => b === (i >= 10 ? 0xff : 0));
    if (!mapped || client !== from.address) return result(12);
    const protocol = req[36];
    if (protocol !== 6 && protocol !== 17) return result(9);
    const transport = protocol === 17 ? "udp" : "tcp";
    const internal = v.getUint16(40);
    const suggested = v.getUint16(42);
    let lifetime = v.getUint32(4);
    const nonce = [...req.subarray(24, 36)].join(",");
    const key = `${transport}/${internal}`;
    const existing = this.mappings.get(key);
    if (existing && existing.nonce !== nonce) return result(2);
    let external = 0;
    if (lifetime === 0) {
      this.mappings.delete(key);
    } else {
      lifetime = Math.min(lifetime, this.#options.maxLifetimeS ?? 3600);
      external = existing?.external ??
        this.#options.externalPort?.(internal, suggested) ?? (suggested || internal);
      this.mappings.set(key, { transport, internal, external, lifetimeS: lifetime, nonce });
    }
    out[3] = 0;
    o.setUint32(4, lifetime);
    o.setUint16(42, external);
    out.fill(0, 44, 54);
    out[54] = 0xff;
    out[55] = 0xff;
    out.set((this.#options.externalAddress ?? "203.0.113.7").split(".").map(Number), 56);
    return out;
  }
}

/** Sends `bytes` to `to` from a socket of its own on `from` (a spoofer on the LAN). */
export async function sendFromElsewhere(
  bytes: Uint8Array,
  to: { address: string; port: number },
  from = "127.0.0.2",
): Promise<void> {
  const socket = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(0, from, () => resolve()));
  await new Promise<void>((resolve) => socket.send(bytes, to.port, to.address, () => resolve()));
  await new Promise<void>((resolve) => socket.close(() => resolve()));
}
