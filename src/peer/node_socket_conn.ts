/**
 * A connected `node:net` socket seen as the byte stream a TCP frame channel reads and writes
 * ({@link ByteConn}, the part of `Deno.TcpConn` that `tcp_transport.ts` uses). The TCP punch
 * needs `node:net`: only `net.connect({ localPort })` dials *from* a chosen port, the port the
 * listener announced (docs/nat.md "TCP simultaneous open"); `Deno.connect` cannot bind one.
 *
 * @module
 */
import type { Socket } from "node:net";

/** The byte stream a TCP frame channel runs on; `Deno.TcpConn` is one. */
export interface ByteConn {
  /** Reads into `p`; the count, or null at the end of the stream. */
  read(p: Uint8Array): Promise<number | null>;
  /** Writes some of `p` (here: all of it); the count written. */
  write(p: Uint8Array): Promise<number>;
  close(): void;
  /**
   * Closes with a RST instead of a FIN, so no TIME_WAIT holds the address pair: a punch dials
   * the same candidate from the same port again. Absent where the runtime cannot.
   */
  reset?(): void;
}

/** Bytes a socket buffers ahead of `read()` before it stops reading from the kernel. */
const HIGH_WATER_BYTES = 256 * 1024;

/** A connected `node:net` socket as a {@link ByteConn}; see the module doc. */
export class NodeSocketConn implements ByteConn {
  #socket: Socket;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #ended = false;
  #error: Error | null = null;
  #wake: (() => void) | null = null;

  constructor(socket: Socket) {
    this.#socket = socket;
    socket.on("data", (chunk: Uint8Array) => {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
      if (this.#buffered >= HIGH_WATER_BYTES) socket.pause();
      this.#notify();
    });
    socket.on("end", () => {
      this.#ended = true;
      this.#notify();
    });
    socket.on("error", (err: Error) => {
      this.#error ??= err;
      this.#notify();
    });
    socket.on("close", () => {
      this.#ended = true;
      this.#notify();
    });
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  async read(p: Uint8Array): Promise<number | null> {
    if (p.length === 0) return 0;
    while (this.#chunks.length === 0) {
      if (this.#error) throw this.#error;
      if (this.#ended) return null;
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
    let n = 0;
    while (n < p.length && this.#chunks.length > 0) {
      const chunk = this.#chunks[0]!;
      const take = Math.min(chunk.length, p.length - n);
      p.set(chunk.subarray(0, take), n);
      n += take;
      if (take === chunk.length) this.#chunks.shift();
      else this.#chunks[0] = chunk.subarray(take);
    }
    this.#buffered -= n;
    if (this.#buffered < HIGH_WATER_BYTES && this.#socket.isPaused()) this.#socket.resume();
    return n;
  }

  write(p: Uint8Array): Promise<number> {
    return new Promise((resolve, reject) => {
      if (this.#error) return reject(this.#error);
      if (this.#socket.destroyed) return reject(new Error("the connection is closed"));
      // A copy: the caller may reuse `p` once this resolves, before the socket sent it.
      this.#socket.write(p.slice(), (err) => err ? reject(err) : resolve(p.length));
    });
  }

  close(): void {
    this.#socket.destroy();
  }

  reset(): void {
    this.#socket.resetAndDestroy();
  }
}
