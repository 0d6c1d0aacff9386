/**
 * Chat: UTF-8 text lines over an established link, one line per data frame.
 *
 * @module
 */
import type { PeerLink } from "../peer/types.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: false });

/** Sends one chat line. */
export function sendLine(link: PeerLink, line: string): Promise<void> {
  return link.send(encoder.encode(line));
}

/** Receives one chat line, or null when the peer disconnected. */
export async function receiveLine(
  link: PeerLink,
  options: { signal?: AbortSignal } = {},
): Promise<string | null> {
  const data = await link.receive(options);
  return data === null ? null : decoder.decode(data);
}

/**
 * Runs an interactive chat: every line of `input` is sent, every received line is passed to
 * `onLine`. Ends when input ends (then disconnects) or the peer disconnects.
 */
export async function runChat(
  link: PeerLink,
  options: { input: AsyncIterable<string>; onLine: (line: string) => void; signal?: AbortSignal },
): Promise<void> {
  const done = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, done.signal]) : done.signal;
  const receiving = (async () => {
    while (true) {
      const line = await receiveLine(link, { signal }).catch(() => null);
      if (line === null) break;
      options.onLine(line);
    }
    done.abort();
  })();
  const sending = (async () => {
    for await (const line of options.input) {
      if (done.signal.aborted) break;
      await sendLine(link, line);
    }
  })();
  await Promise.race([receiving, sending]);
  await link.close();
  done.abort();
  await receiving;
}
