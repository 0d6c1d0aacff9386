// The transfer protocol the peer bench's Node anchors share (as scripts/benchmarks/peer_end.ts):
// an 8-byte big-endian byte count, then that many bytes; the receiver answers 1 byte once it
// holds them all. The sender times from its first write to that byte. One JSON line per report.
import process from "node:process";

export const MiB = 1024 * 1024;
export const BLOCK = 256 * 1024;
export const payload = new Uint8Array(BLOCK);
for (let at = 0; at < BLOCK; at += 65536) crypto.getRandomValues(payload.subarray(at, at + 65536));

/** Writes one JSON report line on stdout. */
export function report(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

/** Nearest-rank median. */
export function p50(xs) {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.max(1, Math.ceil(0.5 * sorted.length)) - 1];
}

export function header(bytes) {
  const h = new Uint8Array(8);
  new DataView(h.buffer).setBigUint64(0, BigInt(bytes));
  return h;
}

/**
 * Receives one transfer from `chunks` (an async iterable of Uint8Array or Uint8ArrayList), calls
 * `ack()` once every byte is in, then reads on until the sender closes: leaving the loop early
 * would destroy the stream (hyperdht's resets it before the ack goes out).
 */
export async function receiveTransfer(chunks, ack) {
  const head = new Uint8Array(8);
  let headAt = 0;
  let total = -1;
  let got = 0;
  let acked = false;
  try {
    for await (const c of chunks) {
      let bytes = c instanceof Uint8Array ? c : c.subarray();
      if (total < 0) {
        const take = Math.min(8 - headAt, bytes.length);
        head.set(bytes.subarray(0, take), headAt);
        headAt += take;
        bytes = bytes.subarray(take);
        if (headAt < 8) continue;
        total = Number(new DataView(head.buffer).getBigUint64(0));
      }
      got += bytes.length;
      if (!acked && got >= total) {
        acked = true;
        await ack();
      }
    }
  } catch (err) {
    if (!acked) throw err; // else: the sender closed its end as it may
  }
  if (!acked) throw new Error(`the sender closed after ${got} of ${total} bytes`);
  return got;
}

/**
 * Sends `total` bytes in 256 KiB writes (`write(chunk)` resolves when more may be written), then
 * waits for `acked`; returns MB/s from the first write to the ack.
 */
export async function sendTransfer(total, write, acked) {
  const started = performance.now();
  await write(header(total));
  for (let sent = 0; sent < total; sent += BLOCK) await write(payload);
  await acked;
  return total / MiB / ((performance.now() - started) / 1000);
}

/** The first chunk of `chunks` (the ack); null when the stream ended first. */
export async function firstChunk(chunks) {
  for await (const c of chunks) return c;
  return null;
}

/** Resolves when stdin closes: the driver ended this process. */
export function stdinClosed() {
  return new Promise((resolve) => {
    process.stdin.on("end", resolve).on("close", resolve).resume();
  });
}

/** Parses `send <address> <mib> <runs> <handshakes>` from process.argv. */
export function sendArgs() {
  const [, , , address, mib, runs, handshakes] = process.argv;
  return { address, mib: Number(mib), runs: Number(runs), handshakes: Number(handshakes) };
}
