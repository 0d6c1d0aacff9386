/**
 * A UDP relay between a connecting peer and a listener, for attacks from the side of the path:
 * the client dials {@link UdpRelay.endpoint}, the relay forwards each datagram on, and a test
 * can drop datagrams or inject its own with the very source address and port the victim
 * expects (what an attacker who spoofs IP source addresses achieves on a real network).
 *
 * @module
 */
import type { Endpoint } from "../../src/message/types.ts";

/** Which way a datagram travels through the relay. */
export type Direction = "toListener" | "toClient";

/** Options of {@link UdpRelay.open}. */
export interface UdpRelayOptions {
  /** Sees every datagram the relay would forward; false drops it. Default: forward all. */
  filter?: (direction: Direction, bytes: Uint8Array) => boolean;
}

function socket(): Deno.DatagramConn {
  return Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
}

/** Forwards datagrams between one client and a listener; see the module doc. */
export class UdpRelay {
  /** Where the client connects to. */
  readonly endpoint: Endpoint;
  #front = socket();
  #back = socket();
  #listener: Deno.NetAddr;
  #client: Deno.NetAddr | null = null;
  #filter: NonNullable<UdpRelayOptions["filter"]>;
  #loops: Promise<void>[];

  private constructor(listener: Endpoint, options: UdpRelayOptions) {
    this.#listener = { transport: "udp", hostname: listener.address, port: listener.port };
    this.#filter = options.filter ?? (() => true);
    this.endpoint = { transport: "udp", address: "127.0.0.1", port: this.#frontPort() };
    this.#loops = [this.#run(this.#front, "toListener"), this.#run(this.#back, "toClient")];
  }

  /** Opens a relay in front of `listener`. */
  static open(listener: Endpoint, options: UdpRelayOptions = {}): UdpRelay {
    return new UdpRelay(listener, options);
  }

  #frontPort(): number {
    return (this.#front.addr as Deno.NetAddr).port;
  }

  async #run(conn: Deno.DatagramConn, direction: Direction): Promise<void> {
    try {
      for await (const [bytes, from] of conn) {
        if (direction === "toListener") this.#client ??= from as Deno.NetAddr;
        if (!this.#filter(direction, bytes)) continue;
        await this.inject(direction, bytes);
      }
    } catch {
      // closed
    }
  }

  /**
   * Sends `bytes` as if from the other side: to the listener from the client's relayed
   * address, or to the client from the address it dialled.
   */
  async inject(direction: Direction, bytes: Uint8Array): Promise<void> {
    if (direction === "toListener") await this.#back.send(bytes, this.#listener);
    else {
      if (!this.#client) throw new Error("The client has not sent anything through the relay");
      await this.#front.send(bytes, this.#client);
    }
  }

  /** Closes both sockets. */
  async close(): Promise<void> {
    this.#front.close();
    this.#back.close();
    await Promise.all(this.#loops);
  }
}
